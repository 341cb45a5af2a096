"""Layer inspection shared by the method families: which Linear layers a step acts on, and group sizes that fit them.

Example:
    >>> from hfcompress.testing import tiny_model
    >>> model, _ = tiny_model("llama")
    >>> sorted(target_linear_layers(model))[0]
    'model.layers.0.mlp.down_proj'
    >>> resolve_group_size("auto", model)   # widths 64 and 128: 128 does not divide 64
    64
"""

from __future__ import annotations

import re
from functools import reduce
from math import gcd
from typing import Any, Iterable

from ..errors import HFCompressError


def name_matches(name: str, pattern: str) -> bool:
    """A module name matches an entry when it equals it, ends with ``.entry``, or matches an ``re:`` pattern.

    Example:
        >>> name_matches("model.layers.0.mlp.up_proj", "mlp.up_proj"), name_matches("lm_head", "re:^lm")
        (True, True)
    """
    if pattern.startswith("re:"):
        return re.search(pattern[3:], name) is not None
    return name == pattern or name.endswith("." + pattern)


def target_linear_layers(model: Any, ignore: Iterable[str] = ("lm_head",)) -> dict[str, Any]:
    """The ``torch.nn.Linear`` layers a weight-compression step acts on: name -> module, ``ignore`` left out."""
    import torch

    ignore = list(ignore)
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not any(name_matches(name, pattern) for pattern in ignore)
    }


def resolve_group_size(group_size: Any, model: Any, ignore: Iterable[str] = ("lm_head",)) -> int | None:
    """Turn ``group_size`` into a size that divides every target layer's input width (None = per channel).

    ``"auto"`` picks 128 when it divides every layer, else the largest of 64 and 32 that does, else per
    channel. An explicit size that does not divide a layer raises an error naming the width and the sizes
    that would work (e.g. SmolLM2's width 576 takes 64 or 192, not 128).
    """
    if group_size in (None, -1):
        return None
    widths = sorted({m.in_features for m in target_linear_layers(model, ignore).values()})
    if not widths:
        raise HFCompressError("the model has no Linear layers to quantize (check 'ignore')")
    if group_size == "auto":
        for candidate in (128, 64, 32):
            if all(w % candidate == 0 for w in widths):
                return candidate
        return None
    bad = [w for w in widths if w % group_size]
    if bad:
        common = reduce(gcd, widths)
        working = [d for d in (16, 32, 64, 96, 128, 192, 256) if common % d == 0]
        hint = f"use group_size={' or '.join(map(str, working))}" if working else "use group_size=None (per channel)"
        raise HFCompressError(f"group_size={group_size} does not divide layer width {bad[0]} of this model; {hint}")
    return group_size


def decoder_layers(model: Any) -> Any:
    """The ``ModuleList`` of decoder layers (``model.model.layers`` for Llama-style models), or None."""
    base = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    layers = getattr(base, "layers", None)
    if layers is None:
        layers = getattr(getattr(model, "model", None), "layers", None)
    return layers


def architecture_name(model: Any) -> str:
    """The architecture a user recognises, e.g. ``LlamaForCausalLM``."""
    return ",".join(getattr(model.config, "architectures", None) or [type(model).__name__])


def count_parameters(model: Any) -> int:
    """Parameters of ``model``, tied tensors counted once (``parameters()`` yields each tensor once)."""
    return int(sum(p.numel() for p in model.parameters()))


def forget_config_source(model: Any) -> None:
    """Detach the model's config from the folder it was read from, once its shapes changed.

    llm-compressor re-reads ``config.json`` from ``config.name_or_path`` when it runs and when it saves
    (``resave_config`` overwrites the saved config.json with that file): a later GPTQ step would otherwise
    write the *original* sizes next to the pruned weights. With no source folder it keeps our config.
    """
    model.config.name_or_path = ""
    if hasattr(model, "name_or_path"):
        model.name_or_path = ""


def moe_blocks(model: Any) -> list[Any]:
    """The sparse MoE blocks (a router ``gate`` and 3-D ``experts``) of the decoder layers, in order."""
    blocks = []
    for layer in decoder_layers(model) or []:
        block = getattr(layer, "mlp", None)
        experts, gate = getattr(block, "experts", None), getattr(block, "gate", None)
        if experts is not None and gate is not None and hasattr(experts, "gate_up_proj") and hasattr(experts, "down_proj") \
                and getattr(getattr(gate, "weight", None), "dim", lambda: 0)() == 2:
            blocks.append(block)
    return blocks


def refuse_quantized_moe(model: Any, method: str) -> None:
    """A one-line refusal for compressed-tensors quantization of a mixture-of-experts model.

    llm-compressor quantizes one Linear per expert and stores them so (``experts.N.w1.weight_packed``, or, repacked,
    dense fused weights with stacked scales); transformers' fused experts take neither, and a reload would initialize
    the experts at random. Refused until a loader takes them; GGUF and the pruning methods reload fine.
    """
    if moe_blocks(model):
        raise HFCompressError(
            f"{method} of a mixture-of-experts model ({architecture_name(model)}) is refused: transformers cannot load its "
            "quantized experts back (they would be re-initialized at random); quantize for llama.cpp with GGUFConfig, "
            "or shrink it with StructuredPruneConfig(target='experts') or PruneConfig, whose outputs reload"
        )
