"""How low-rank factorization presents itself.

Example:
    >>> LowRankPresentation("low_rank").label({"kind": "low_rank", "energy": 0.95})
    'SVD 95% energy'
"""

from __future__ import annotations

from typing import Any

from ..registry import MethodPresentation, percent
from .config import LowRankConfig


class LowRankPresentation(MethodPresentation):
    """Linear layers stored as two smaller factors (needs the modeling file in the folder)."""

    family = "low-rank"

    def __init__(self, kind: str = "low_rank") -> None:
        super().__init__(kind, {"lowrank": {}, "low_rank": {}, "svd": {}})

    def label(self, step: dict[str, Any]) -> str:
        prefix = "ASVD" if step.get("activation_aware") else "SVD"
        if step.get("rank") is not None:
            return f"{prefix} rank {step['rank']}"
        return f"{prefix} {percent(step.get('energy'))} energy"

    def summary(self, step: dict[str, Any]) -> str:
        return "low-rank SVD"

    def sentence(self, step: dict[str, Any]) -> str:
        size = (f"rank {step['rank']}" if step.get("rank") is not None
                else f"the smallest rank keeping {step.get('energy')} of the singular-value energy")
        aware = ", activation-aware (each input channel scaled by its calibration RMS)" if step.get("activation_aware") else ""
        return f"Low-rank factorisation (truncated SVD{aware}) of {', '.join(step.get('targets') or [])} to {size}."

    def tags(self, step: dict[str, Any]) -> list[str]:
        return ["low-rank", "svd"]

    def example(self) -> LowRankConfig:
        return LowRankConfig(rank=8)
