"""How distillation presents itself.

Example:
    >>> DistillPresentation("distill").label({"kind": "distill", "steps": 300})
    'distill 300 steps'
"""

from __future__ import annotations

from typing import Any

from ..registry import MethodPresentation
from .config import DistillConfig


class DistillPresentation(MethodPresentation):
    """Training a student on a teacher's soft targets."""

    family = "distillation"
    trains = True
    limit_text = "Distillation trained on a small amount of text; behaviour outside that text may drift from the teacher."

    def label(self, step: dict[str, Any]) -> str:
        return f"distill {step.get('steps', '?')} steps"

    def summary(self, step: dict[str, Any]) -> str:
        return "distillation"

    def sentence(self, step: dict[str, Any]) -> str:
        teacher = step.get("teacher") or "the base model"
        return (f"Knowledge distillation from {teacher}: {step.get('steps')} steps, alpha {step.get('alpha')}, "
                f"temperature {step.get('temperature')}, loss {step.get('loss')}, learning rate {step.get('learning_rate')}.")

    def tags(self, step: dict[str, Any]) -> list[str]:
        return ["distilled", "knowledge-distillation"]

    def example(self) -> DistillConfig:
        return DistillConfig(steps=2, batch_size=2, seq_len=32, eval_every=0, eval_tokens=64, save_every=2)
