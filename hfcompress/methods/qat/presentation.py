"""How quantization-aware training presents itself.

Example:
    >>> QATPresentation("qat").label({"kind": "qat", "bits": "ternary", "group_size": 64, "steps": 300})
    'QAT ternary g64'
"""

from __future__ import annotations

from typing import Any

from ..registry import MethodPresentation
from .config import QATConfig


def _bits_words(step: dict[str, Any]) -> str:
    return "ternary ({-1, 0, 1} x scale, stored as int2)" if step.get("bits") == "ternary" else f"{step.get('bits')}-bit"


class QATPresentation(MethodPresentation):
    """Fake-quantized training, then integer weights on the trained grid."""

    family = "qat"
    trains = True
    quantizes = True
    relation = "quantized"
    limit_text = ("Quantization-aware training stores integer weights with scales (compressed-tensors, pack-quantized); "
                  "transformers on a CPU dequantizes them on load, so there the variant is smaller on disk but neither "
                  "smaller in memory nor faster. vLLM's compressed-tensors kernels (GPU) run 4- and 8-bit weights; 2-bit "
                  "and ternary weights have no fast kernel there. The training used a small amount of text, so behaviour "
                  "outside it may drift from the base.")

    def label(self, step: dict[str, Any]) -> str:
        group = step.get("group_size")
        suffix = "" if group in (None, "auto") else f" g{group}"
        bits = "ternary" if step.get("bits") == "ternary" else f"{step.get('bits', '?')}-bit"
        return f"QAT {bits}{suffix}"

    def summary(self, step: dict[str, Any]) -> str:
        return "QAT ternary" if step.get("bits") == "ternary" else f"QAT {step.get('bits')}-bit"

    def sentence(self, step: dict[str, Any]) -> str:
        teacher = step.get("teacher")
        source = ("soft targets of the unquantized base model" if teacher == "base"
                  else "next-token cross-entropy only" if teacher is None else f"soft targets of {teacher}")
        group = step.get("group_size")
        groups = "one scale per output channel" if group in (None, -1) else (
            "automatic group size" if group == "auto" else f"groups of {group} weights")
        scales = "learned" if step.get("learn_scales", True) else "fixed"
        return (f"Quantization-aware training to {_bits_words(step)} weights, {groups}, {scales} scales: {step.get('steps')} "
                f"steps of {step.get('batch_size')} x {step.get('seq_len')} tokens at learning rate {step.get('learning_rate')}, "
                f"with the rounding simulated in the forward pass (straight-through gradients) and {source}.")

    def tags(self, step: dict[str, Any]) -> list[str]:
        bits = "ternary" if step.get("bits") == "ternary" else f"{step.get('bits')}-bit"
        return ["qat", "quantization-aware-training", bits, "quantized"]

    def example(self) -> QATConfig:
        return QATConfig(bits=4, group_size=32, steps=2, batch_size=2, seq_len=32, eval_tokens=64, save_every=2)
