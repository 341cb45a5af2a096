"""How the quantization methods present themselves: labels, card sentences, tags and limits.

Example:
    >>> QuantizationPresentation("gptq").sentence({"kind": "gptq", "bits": 4, "group_size": 64, "symmetric": False,
    ...                                            "dampening_frac": 0.01, "block_size": 128, "ignore": ["lm_head"]})
    'GPTQ 4-bit weight quantization, asymmetric (with zero points), groups of 64 weights, error correction from calibration data (dampening 0.01, block 128); left in full precision: lm_head.'
"""

from __future__ import annotations

from typing import Any

from ..registry import MethodPresentation
from .config import AWQConfig, GPTQConfig, RTNConfig


def group_text(step: dict[str, Any]) -> str:
    """How the step groups its scales, in words."""
    group = step.get("group_size")
    if step.get("kind") == "rtn" and step.get("bits") == 8 and group == "auto":
        group = None  # RTNConfig: 8-bit "auto" means one scale per output channel
    if group in (None, -1):
        return "one scale per output channel"
    return "automatic group size" if group == "auto" else f"groups of {group} weights"


def _symmetry(step: dict[str, Any]) -> str:
    return "symmetric" if step.get("symmetric") else "asymmetric (with zero points)"


def _kept(step: dict[str, Any]) -> str:
    ignore = step.get("ignore") or []
    return f"; left in full precision: {', '.join(ignore)}" if ignore else ""


class QuantizationPresentation(MethodPresentation):
    """RTN, GPTQ, AWQ: integer weights with scales."""

    family = "quantization"
    quantizes = True
    relation = "quantized"
    limit_text = ("Weight-only quantization: activations stay in floating point; speed depends on the kernels of the "
                  "runtime (CPU runs of packed weights can be slower than the base).")

    def label(self, step: dict[str, Any]) -> str:
        group = step.get("group_size")
        suffix = "" if group in (None, "auto") else f" g{group}"
        return f"{self.kind.upper()} {step.get('bits', '?')}-bit{suffix}"

    def summary(self, step: dict[str, Any]) -> str:
        return f"{self.kind.upper()} {step.get('bits')}-bit"

    def sentence(self, step: dict[str, Any]) -> str:
        bits, groups, symmetry, kept = step.get("bits"), group_text(step), _symmetry(step), _kept(step)
        if self.kind == "rtn":
            return f"Round-to-nearest {bits}-bit weight quantization, {symmetry}, {groups}{kept} (data-free)."
        if self.kind == "gptq":
            order = f", act-order {step['actorder']}" if step.get("actorder") else ""
            return (f"GPTQ {bits}-bit weight quantization, {symmetry}, {groups}, error correction from calibration data "
                    f"(dampening {step.get('dampening_frac')}, block {step.get('block_size')}{order}){kept}.")
        return f"AWQ activation-aware scaling, then {bits}-bit weight quantization, {symmetry}, {groups}{kept}."

    def tags(self, step: dict[str, Any]) -> list[str]:
        return [self.kind, f"{step.get('bits')}-bit", f"int{step.get('bits')}", "quantized"]

    def example(self) -> Any:
        return {"rtn": RTNConfig(bits=8), "gptq": GPTQConfig(bits=4, group_size=32), "awq": AWQConfig(bits=4, group_size=32, grid_points=3)}[self.kind]
