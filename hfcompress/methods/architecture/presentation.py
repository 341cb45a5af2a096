"""How architecture compression presents itself (GQA conversion).

Example:
    >>> GQAPresentation().label({"kind": "gqa", "num_key_value_heads": 1, "method": "pca"})
    'GQA 1 KV head (PCA)'
"""

from __future__ import annotations

from typing import Any, Sequence

from ..registry import MethodPresentation
from .config import GQAConfig

_MERGES = {
    "mean": "averaging the projections of the heads it replaces",
    "pca": ("projecting the heads it replaces onto their principal components on calibration data (keys per rotary "
            "frequency), with the query and output projections refit to match"),
}


class GQAPresentation(MethodPresentation):
    """Fewer key/value heads: the KV cache shrinks; query heads and the MLPs are untouched."""

    family = "architecture"

    def __init__(self, kind: str = "gqa") -> None:
        super().__init__(kind, {"gqa": {}})

    def label(self, step: dict[str, Any]) -> str:
        k = step.get("num_key_value_heads")
        return f"GQA {k} KV head{'' if k == 1 else 's'} ({str(step.get('method', '?')).upper() if step.get('method') == 'pca' else step.get('method')})"

    def summary(self, step: dict[str, Any]) -> str:
        return f"GQA conversion to {step.get('num_key_value_heads')} KV heads"

    def sentence(self, step: dict[str, Any]) -> str:
        return (f"GQA conversion: the key/value heads were merged into {step.get('num_key_value_heads')} per layer by "
                f"{_MERGES.get(str(step.get('method')), str(step.get('method')))}; config.json's num_key_value_heads "
                "says so and the query heads are kept.")

    def tags(self, step: dict[str, Any]) -> list[str]:
        return ["gqa", "kv-cache-compression"]

    def limits(self, step: dict[str, Any], kinds: Sequence[str]) -> list[str]:
        return [("GQA conversion shrinks the KV cache (kv_cache_bytes_per_token) and the key/value projections, not "
                 "the rest of the weights; nothing got faster at short contexts (the query heads and MLPs do the same "
                 "work), a saving in speed shows only where reading the KV cache dominates, at long contexts or large "
                 "batches. Merged heads lose quality that a short distillation run recovers only in part.")]

    def example(self) -> GQAConfig:
        return GQAConfig(num_key_value_heads=1)
