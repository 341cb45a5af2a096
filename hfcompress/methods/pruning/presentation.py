"""How pruning presents itself: labels, card sentences, tags and limits.

Example:
    >>> PrunePresentation("prune").label({"kind": "prune", "method": "wanda", "sparsity": 0.5, "pattern": "unstructured"})
    'Wanda 50%'
"""

from __future__ import annotations

from typing import Any, Sequence

from ..registry import MethodPresentation, percent, presentation_for
from .config import PRUNE_METHODS, PruneConfig


class PrunePresentation(MethodPresentation):
    """Unstructured and N:M pruning: zeros in dense weights."""

    family = "pruning"
    sparsifies = True

    def __init__(self, kind: str = "prune") -> None:
        super().__init__(kind, {"prune": {}, **{name: {"method": name} for name in PRUNE_METHODS}})

    def label(self, step: dict[str, Any]) -> str:
        pattern = step.get("pattern", "unstructured")
        amount = pattern if pattern not in (None, "unstructured") else percent(step.get("sparsity"))
        return f"{str(step.get('method', 'prune')).capitalize()} {amount}"

    def summary(self, step: dict[str, Any]) -> str:
        pattern = step.get("pattern") or "unstructured"
        return f"{step.get('method')} {pattern if pattern != 'unstructured' else percent(step.get('sparsity'))} pruning"

    def sentence(self, step: dict[str, Any]) -> str:
        pattern = step.get("pattern") or "unstructured"
        how = "unstructured" if pattern == "unstructured" else f"{pattern} semi-structured (N:M)"
        ignore = step.get("ignore") or []
        kept = f"; left dense: {', '.join(ignore)}" if ignore else ""
        return f"{str(step.get('method', '')).capitalize()} pruning to {percent(step.get('sparsity'))} sparsity, {how}{kept}."

    def tags(self, step: dict[str, Any]) -> list[str]:
        pattern = str(step.get("pattern") or "unstructured")
        sparsity_tag = "unstructured-sparsity" if pattern == "unstructured" else f"{pattern.replace(':', 'of')}-sparsity"
        return ["pruned", str(step.get("method", "magnitude")), "sparse", sparsity_tag]

    def limits(self, step: dict[str, Any], kinds: Sequence[str]) -> list[str]:
        if any(presentation_for(k).quantizes for k in kinds):
            return []  # the quantized format is what shrinks the file; the zeros ride along
        return ["Pruned weights are stored as dense tensors holding zeros: the files are not smaller and plain "
                "transformers runs no faster; speed-ups need a sparsity-aware runtime."]

    def example(self) -> PruneConfig:
        return PruneConfig(method="wanda", sparsity=0.5)
