"""How pruning presents itself: labels, card sentences, tags and limits.

Example:
    >>> PrunePresentation("prune").label({"kind": "prune", "method": "wanda", "sparsity": 0.5, "pattern": "unstructured"})
    'Wanda 50%'
    >>> gradual = {"kind": "prune", "method": "magnitude", "sparsity": 0.7, "schedule": "gradual", "stages": 4,
    ...            "finetune": {"kind": "distill", "steps": 10}}
    >>> PrunePresentation("prune").label(gradual)
    'Magnitude 70% gradual'
    >>> PrunePresentation("prune").schedule(gradual)
    'gradual, 4 stages 0.40 → 0.70'
"""

from __future__ import annotations

from typing import Any, Sequence

from ..registry import MethodPresentation, percent, presentation_for
from .config import PRUNE_METHODS, PruneConfig, cubic_sparsities


class PrunePresentation(MethodPresentation):
    """Unstructured and N:M pruning: zeros in dense weights."""

    family = "pruning"
    sparsifies = True

    def __init__(self, kind: str = "prune") -> None:
        super().__init__(kind, {"prune": {}, **{name: {"method": name} for name in PRUNE_METHODS}})

    def label(self, step: dict[str, Any]) -> str:
        pattern = step.get("pattern", "unstructured")
        amount = pattern if pattern not in (None, "unstructured") else percent(step.get("sparsity"))
        gradual = " gradual" if _is_gradual(step) else ""
        return f"{str(step.get('method', 'prune')).capitalize()} {amount}{gradual}"

    def summary(self, step: dict[str, Any]) -> str:
        pattern = step.get("pattern") or "unstructured"
        amount = pattern if pattern != "unstructured" else percent(step.get("sparsity"))
        gradual = f" ({self.schedule(step)})" if _is_gradual(step) else ""
        return f"{step.get('method')} {amount} pruning{gradual}"

    def schedule(self, step: dict[str, Any]) -> str:
        """How the sparsity was reached, e.g. ``one-shot`` or ``gradual, 4 stages 0.40 → 0.70``."""
        if not _is_gradual(step):
            return "one-shot"
        stages = _stage_sparsities(step)
        if not stages:
            return f"gradual, {step.get('stages')} stages"
        return f"gradual, {len(stages)} stages {stages[0]:.2f} → {stages[-1]:.2f}"

    def sentence(self, step: dict[str, Any]) -> str:
        pattern = step.get("pattern") or "unstructured"
        how = "unstructured" if pattern == "unstructured" else f"{pattern} semi-structured (N:M)"
        ignore = step.get("ignore") or []
        kept = f"; left dense: {', '.join(ignore)}" if ignore else ""
        text = f"{str(step.get('method', '')).capitalize()} pruning to {percent(step.get('sparsity'))} sparsity, {how}{kept}."
        if not _is_gradual(step):
            return text
        stages = _stage_sparsities(step)
        rising = ", ".join(f"{s:.2f}" for s in stages) if stages else "?"
        finetune = step.get("finetune") if isinstance(step.get("finetune"), dict) else {}
        trained = presentation_for(finetune.get("kind")).label(finetune) if finetune else "no training"
        return (f"{text} Schedule: {self.schedule(step)} (Zhu & Gupta's cubic schedule: {rising}); each stage prunes "
                f"the model the earlier stages left, so pruned weights stay pruned, and is followed by {trained}.")

    def tags(self, step: dict[str, Any]) -> list[str]:
        pattern = str(step.get("pattern") or "unstructured")
        sparsity_tag = "unstructured-sparsity" if pattern == "unstructured" else f"{pattern.replace(':', 'of')}-sparsity"
        tags = ["pruned", str(step.get("method", "magnitude")), "sparse", sparsity_tag]
        finetune = step.get("finetune")
        if _is_gradual(step):
            tags.append("gradual-pruning")
            if isinstance(finetune, dict):
                tags += presentation_for(finetune.get("kind")).tags(finetune)
        return tags

    def limits(self, step: dict[str, Any], kinds: Sequence[str]) -> list[str]:
        finetune = step.get("finetune")
        # A gradual pruning trains: its fine-tuning's limits are the variant's too (the recipe lists no such step).
        trained = presentation_for(finetune.get("kind")).limits(finetune, kinds) if _is_gradual(step) and isinstance(finetune, dict) else []
        if any(presentation_for(k).quantizes for k in kinds):
            return trained  # the quantized format is what shrinks the file; the zeros ride along
        return ["Pruned weights are stored as dense tensors holding zeros: the files are not smaller and plain "
                "transformers runs no faster; speed-ups need a sparsity-aware runtime.", *trained]

    def example(self) -> PruneConfig:
        return PruneConfig(method="wanda", sparsity=0.5)


def _is_gradual(step: dict[str, Any]) -> bool:
    return step.get("schedule") == "gradual"


def _stage_sparsities(step: dict[str, Any]) -> list[float]:
    # Recomputed from the recorded step (a card may render a variant another version made): [] if it cannot be.
    try:
        return cubic_sparsities(float(step["sparsity"]), int(step["stages"]))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return []
