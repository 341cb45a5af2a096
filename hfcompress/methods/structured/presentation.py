"""How structured pruning presents itself.

Example:
    >>> StructuredPresentation("structured_prune").label({"kind": "structured_prune", "ratio": 0.25, "target": "neurons"})
    '−25% neurons'
"""

from __future__ import annotations

from typing import Any

from ..registry import MethodPresentation, percent
from .config import StructuredPruneConfig


class StructuredPresentation(MethodPresentation):
    """Heads, neurons or layers removed: shapes and config.json shrink."""

    family = "structured"

    def __init__(self, kind: str = "structured_prune") -> None:
        super().__init__(kind, {"structured": {}, "structured_prune": {}})

    def label(self, step: dict[str, Any]) -> str:
        return f"−{percent(step.get('ratio'))} {step.get('target', 'units')}"

    def summary(self, step: dict[str, Any]) -> str:
        return f"structured pruning of {percent(step.get('ratio'))} of the {step.get('target')}"

    def sentence(self, step: dict[str, Any]) -> str:
        amount = f"{step['count']} of the {step.get('target')}" if step.get("count") else f"{percent(step.get('ratio'))} of the {step.get('target')}"
        return (f"Structured pruning: removed {amount} (ranked by {step.get('importance')}); "
                "layer shapes shrink and config.json says so.")

    def tags(self, step: dict[str, Any]) -> list[str]:
        return ["pruned", "structured-pruning", f"pruned-{step.get('target', 'neurons')}"]

    def example(self) -> StructuredPruneConfig:
        return StructuredPruneConfig(target="neurons", ratio=0.25)
