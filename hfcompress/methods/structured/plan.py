"""How many units a structured step removes, checked against the model before any work.

transformers' Llama-style configs hold one size for all layers, so every layer loses the same number of
heads/neurons (chosen per layer by importance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import HFCompressError
from ..layers import architecture_name
from .experts import check_expert_removal, expert_counts

TARGETS = ("heads", "neurons", "layers", "experts")


@dataclass
class RemovalPlan:
    """How many units one structured step removes: ``remove`` of ``total`` (per layer for heads/neurons)."""

    unit: str
    total: int
    remove: int

    @property
    def keep(self) -> int:
        return self.total - self.remove


def llama_style_layers(model: Any) -> Any:
    layers = getattr(getattr(model, "model", None), "layers", None)
    ok = layers is not None and len(layers) > 0 and all(
        hasattr(layer, "self_attn") and hasattr(layer, "mlp") for layer in layers
    )
    if ok:
        attn, mlp = layers[0].self_attn, layers[0].mlp
        ok = all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")) and all(
            hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")
        )
    if not ok:
        arch = architecture_name(model)
        raise HFCompressError(
            f"structured pruning supports Llama-style decoders (q/k/v/o_proj attention, gate/up/down_proj MLP); "
            f"{arch} is not one; use PruneConfig or LowRankConfig instead"
        )
    return layers


def head_geometry(model: Any) -> tuple[int, int, int]:
    cfg = model.config
    heads = cfg.num_attention_heads
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return heads, kv, head_dim


def plan_removal(model: Any, config: Any) -> RemovalPlan:
    """Check ``config`` against the model and return how many units go; raises a one-line error if impossible.

    Example:
        >>> from hfcompress import StructuredPruneConfig
        >>> from hfcompress.testing import tiny_model
        >>> plan_removal(tiny_model("llama", layers=4)[0], StructuredPruneConfig(target="layers", count=1))
        RemovalPlan(unit='decoder layers', total=4, remove=1)
    """
    if config.target == "experts":
        total, top_k = expert_counts(model)
        remove = config.count if config.count is not None else round(total * config.ratio)
        check_expert_removal(total, top_k, remove, config)
        if remove <= 0:
            raise HFCompressError(f"ratio={config.ratio} removes none of the {total} experts per layer; use a larger ratio or count=1")
        return RemovalPlan("experts per MoE layer", total, remove)
    layers = llama_style_layers(model)
    if config.target == "heads":
        _, kv, _ = head_geometry(model)
        unit, total = "KV groups (a key/value head with its query heads) per layer", kv
    elif config.target == "neurons":
        unit, total = "MLP neurons per layer", layers[0].mlp.gate_proj.out_features
    else:
        unit, total = "decoder layers", len(layers)
    remove = config.count if config.count is not None else round(total * config.ratio)
    multiple = getattr(config, "multiple_of", 1) or 1
    if config.target == "neurons" and config.count is None and multiple > 1:
        # The kept width rounded to whole quantization blocks, when such a width exists strictly between 0 and total.
        keep = round((total - total * config.ratio) / multiple) * multiple
        if 0 < keep < total:
            remove = total - keep
    if remove >= total:
        raise HFCompressError(
            f"cannot remove {remove} {config.target} of the {total} {unit} this model has; at least one must stay: "
            f"use count <= {total - 1} or a smaller ratio"
        )
    if remove <= 0:
        raise HFCompressError(
            f"ratio={config.ratio} removes none of the {total} {unit}; use a larger ratio or count=1"
        )
    return RemovalPlan(unit, total, remove)


