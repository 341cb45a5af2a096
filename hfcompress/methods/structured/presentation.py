"""How structured pruning presents itself.

Example:
    >>> StructuredPresentation("structured_prune").label({"kind": "structured_prune", "ratio": 0.25, "target": "neurons"})
    '−25% neurons'
"""

from __future__ import annotations

from typing import Any, Sequence

from ..registry import MethodPresentation, percent
from .config import StructuredPruneConfig


_EXPERT_RANKING = {
    "activation": "those that contributed least on calibration data (router weight x output norm, as REAP ranks them)",
    "frequency": "those the router picked least on calibration data",
    "magnitude": "those with the smallest weights (no data)",
}


class StructuredPresentation(MethodPresentation):
    """Heads, neurons, layers or MoE experts removed: shapes and config.json shrink."""

    family = "structured"

    def __init__(self, kind: str = "structured_prune") -> None:
        super().__init__(kind, {"structured": {}, "structured_prune": {}})

    def label(self, step: dict[str, Any]) -> str:
        merged = " merged" if step.get("merge") else ""
        if step.get("count"):
            return f"−{step['count']} {step.get('target', 'units')}{merged}"
        return f"−{percent(step.get('ratio'))} {step.get('target', 'units')}{merged}"

    def summary(self, step: dict[str, Any]) -> str:
        return f"structured pruning of {percent(step.get('ratio'))} of the {step.get('target')}"

    def sentence(self, step: dict[str, Any]) -> str:
        amount = f"{step['count']} of the {step.get('target')}" if step.get("count") else f"{percent(step.get('ratio'))} of the {step.get('target')}"
        if step.get("target") == "experts":
            ranked = _EXPERT_RANKING.get(str(step.get("importance")), str(step.get("importance")))
            if step.get("merge"):
                return (f"Expert merging: {amount} of every mixture-of-experts layer, {ranked}, were folded into the kept "
                        "expert whose router row is most alike (a usage-weighted average of their weights); their router "
                        "rows were removed and config.json's expert count says so.")
            return (f"Expert pruning: removed {amount} of every mixture-of-experts layer, {ranked}, with the router's rows "
                    "for them; config.json's expert count says so.")
        return (f"Structured pruning: removed {amount} (ranked by {step.get('importance')}); "
                "layer shapes shrink and config.json says so.")

    def tags(self, step: dict[str, Any]) -> list[str]:
        return ["pruned", "structured-pruning", f"pruned-{step.get('target', 'neurons')}"] + (["moe"] if step.get("target") == "experts" else [])

    def limits(self, step: dict[str, Any], kinds: Sequence[str]) -> list[str]:
        if step.get("target") != "experts":
            return []
        return [("Expert pruning makes the weights smaller on disk and in memory, not faster: each token still runs "
                 "the same number of experts (num_experts_per_tok). Text unlike the calibration data may need the "
                 "experts that were dropped.")]

    def example(self) -> StructuredPruneConfig:
        return StructuredPruneConfig(target="neurons", ratio=0.25)
