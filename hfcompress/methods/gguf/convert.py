"""From the model a recipe produced to a plain transformers folder llama.cpp's converter reads.

Earlier steps may leave what the converter does not know: compressed-tensors weights (dequantized here through
transformers' own compressed-tensors loader), low-rank factors (multiplied back into one dense matrix: GGUF has
no two-factor layer, so the file does not keep the low-rank saving), custom modeling code (dropped with them).

Example:
    >>> from hfcompress.testing import tiny_model
    >>> check_architecture(tiny_model("qwen3")[0]) is None
    True
"""

from __future__ import annotations

import functools
import json
import re
import shutil
from pathlib import Path
from typing import Any, Callable

from ...errors import HFCompressError
from ..backends.llamacpp import llama_cpp_home
from ..layers import architecture_name


@functools.lru_cache(maxsize=1)
def converter_architectures() -> frozenset[str] | None:
    """The model classes llama.cpp's converter registers (read from its source), or None when it is not installed."""
    home = llama_cpp_home()
    if home is None:
        return None
    names: set[str] = set()
    table = home / "conversion" / "__init__.py"
    if table.is_file():
        names |= set(re.findall(r'^\s*"(\w+)":\s*"', table.read_text(encoding="utf-8"), flags=re.M))
    for source in (home / "conversion").glob("*.py"):
        for args in re.findall(r"@ModelBase\.register\(([^)]*)\)", source.read_text(encoding="utf-8"), flags=re.S):
            names |= set(re.findall(r'"(\w+)"', args))
    return frozenset(names) or None


def check_architecture(model: Any) -> None:
    """One line, before any work, when llama.cpp's converter does not know the model's architecture."""
    known = converter_architectures()
    architectures = list(getattr(model.config, "architectures", None) or [type(model).__name__])
    # A low-rank model saves as LowRank<Base>; the converter sees the base after the factors are merged.
    architectures = [a.removeprefix("LowRank") for a in architectures]
    if known is not None and not any(a in known for a in architectures):
        raise HFCompressError(
            f"llama.cpp's converter does not support {architecture_name(model)}; GGUF export needs an architecture "
            "llama.cpp runs (Llama, Qwen2/3, Mistral, Mixtral, Gemma 3, ...): use a compressed-tensors method instead"
        )


def dense_folder(model: Any, tokenizer: Any, save_model: Callable[[Any, Path], None], target: Path) -> dict[str, Any]:
    """Write ``model`` into ``target`` as plain dense transformers weights with its tokenizer; returns what was undone.

    ``save_model`` writes the model in the format the recipe's last step produced.
    """
    import torch
    from transformers import AutoModelForCausalLM

    undone: dict[str, Any] = {}
    staged = target.with_name(target.name + "-staged")
    save_model(model, staged)
    config = json.loads((staged / "config.json").read_text(encoding="utf-8"))
    quantized = (config.get("quantization_config") or {}).get("quant_method")
    low_rank = bool(config.get("low_rank_layers"))
    shared = bool(config.get("shared_layer_groups"))
    if not quantized and not low_rank and not shared:
        staged.rename(target)
    else:
        kwargs: dict[str, Any] = {"dtype": torch.float32, "trust_remote_code": low_rank or shared}
        if quantized == "compressed-tensors":
            from transformers import CompressedTensorsConfig

            kwargs["quantization_config"] = CompressedTensorsConfig(run_compressed=False)
            undone["dequantized"] = "compressed-tensors weights decompressed to float32 before conversion"
        elif quantized:
            raise HFCompressError(f"a {quantized} checkpoint cannot be converted to GGUF here; start from its base model "
                                  "or a compressed-tensors variant")
        dense = AutoModelForCausalLM.from_pretrained(staged, **kwargs)
        if low_rank:
            undone["low_rank_merged"] = _merge_low_rank(dense)
        if shared:
            undone["shared_layers_copied"] = _untie_shared_layers(dense)
        if quantized:
            _strip_quantization(dense)
        type(dense).save_pretrained(dense, target, safe_serialization=True)
        shutil.rmtree(staged, ignore_errors=True)
        del dense
    tokenizer.save_pretrained(target)
    return undone


def _strip_quantization(model: Any) -> None:
    # Decompressed, each Linear holds float weights but still carries its scales and zero points (parameters the
    # converter cannot map) and the quantization config: drop them, keeping the dense weights.
    for module in model.modules():
        for name in [n for n in list(module._parameters) + list(module._buffers) if n != "weight" and n.startswith(("weight_", "input_", "output_"))]:
            module._parameters.pop(name, None)
            module._buffers.pop(name, None)
        for attribute in ("quantization_scheme", "quantization_status", "quantization_enabled"):
            if attribute in module.__dict__:
                delattr(module, attribute)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")


def _untie_shared_layers(model: Any) -> int:
    """Give every layer that shares a tensor its own copy of it and go back to the base class; the tensors copied.

    llama.cpp has no tied decoder layers: the GGUF file holds every layer's weights, so layer sharing saves nothing
    there (the step records what it undid)."""
    import torch

    # {tied parameter: the group's first layer's}, from the folder's own modeling file (SharedLayersMixin).
    ties = model._shared_layer_ties()
    for target in ties:
        parameter = model.get_parameter(target)
        parent, _, leaf = target.rpartition(".")
        setattr(model.get_submodule(parent), leaf, torch.nn.Parameter(parameter.detach().clone(), requires_grad=parameter.requires_grad))
    _back_to_base_class(model, "shared_layer_groups")
    # The layer ties were recorded at init; recompute them for the base class (only its own ties, e.g. embeddings).
    model.all_tied_weights_keys = model.get_expanded_tied_weights_keys(all_submodels=True)
    return len(ties)


def _merge_low_rank(model: Any) -> int:
    # W = second @ first: the product is the dense layer the factors approximate; the class goes back to its base.
    import torch

    merged = 0
    for name, module in list(model.named_modules()):
        if type(module).__name__ != "LowRankLinear":
            continue
        dense = torch.nn.Linear(module.in_features, module.out_features, bias=module.second.bias is not None)
        with torch.no_grad():
            dense.weight.copy_(module.second.weight @ module.first.weight)
            if module.second.bias is not None:
                dense.bias.copy_(module.second.bias)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, dense)
        merged += 1
    _back_to_base_class(model, "low_rank_layers")
    return merged


def _back_to_base_class(model: Any, custom_key: str) -> None:
    # A model loaded through its custom modeling file becomes its transformers base class again, and its config
    # loses what pointed at that file, so the converter and transformers see a plain model.
    base = next(c for c in type(model).__mro__[1:] if c.__module__.startswith("transformers."))
    model.__class__ = base
    for key in ("auto_map", custom_key):
        if hasattr(model.config, key):
            delattr(model.config, key)
    model.config.architectures = [base.__name__]
