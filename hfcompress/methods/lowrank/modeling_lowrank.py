"""Modeling code for low-rank (SVD-factored) checkpoints written by hfcompress; copied into every such folder.

transformers has no layer that holds a Linear as two factors, so a factored checkpoint needs this file:
``config.json`` carries ``auto_map`` -> ``modeling_lowrank.LowRank<Base>`` and ``low_rank_layers``
({layer name: rank}), and the folder loads with
``AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)``. The class is the original
architecture's class (e.g. ``LlamaForCausalLM``) whose listed Linear layers are replaced by ``LowRankLinear``
before the weights are read. This file imports only torch and transformers (no hfcompress needed to load).

Example:
    >>> from transformers import AutoModelForCausalLM
    >>> model = AutoModelForCausalLM.from_pretrained("out/SmolLM2-lowrank", trust_remote_code=True)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import torch
import transformers

_CLASSES: dict[str, type] = {}


class LowRankLinear(torch.nn.Module):
    """``y = second(first(x))``: a ``out x in`` Linear stored as ``rank x in`` and ``out x rank`` factors.

    Example:
        >>> layer = LowRankLinear(64, 128, rank=8, bias=False)
        >>> layer(torch.zeros(2, 64)).shape
        torch.Size([2, 128])
    """

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.first = torch.nn.Linear(in_features, rank, bias=False)
        self.second = torch.nn.Linear(rank, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


def replace_with_low_rank(model: torch.nn.Module, ranks: dict[str, int]) -> None:
    """Swap each named Linear of ``model`` for an (uninitialised) ``LowRankLinear`` of the given rank."""
    for name, rank in ranks.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        old = getattr(parent, child)
        new = LowRankLinear(old.in_features, old.out_features, int(rank), bias=old.bias is not None)
        new.to(device=old.weight.device, dtype=old.weight.dtype)
        setattr(parent, child, new)


class LowRankMixin:
    """Mixed in before a transformers model class: builds the factored layers named in ``config.low_rank_layers``."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        replace_with_low_rank(self, dict(getattr(config, "low_rank_layers", None) or {}))


def low_rank_class(base: type) -> type:
    """``LowRank<Base>``: ``base`` (e.g. ``LlamaForCausalLM``) with factored layers; saved models point at it."""
    name = f"LowRank{base.__name__}"
    if name not in _CLASSES:
        _CLASSES[name] = type(name, (LowRankMixin, base), {"__module__": __name__, "_auto_class": "AutoModelForCausalLM"})
    return _CLASSES[name]


def __getattr__(name: str) -> type:
    # auto_map names e.g. "modeling_lowrank.LowRankLlamaForCausalLM"; transformers looks it up with getattr.
    if name.startswith("LowRank") and hasattr(transformers, name[len("LowRank"):]):
        return low_rank_class(getattr(transformers, name[len("LowRank"):]))
    raise AttributeError(name)
