"""How GGUF export presents itself.

Example:
    >>> GGUFPresentation("gguf").label({"kind": "gguf", "quant": "Q4_K_M", "imatrix": None})
    'GGUF Q4_K_M imatrix'
"""

from __future__ import annotations

from typing import Any

from ..registry import MethodPresentation
from .config import IMATRIX_TYPES, GGUFConfig


def _imatrix(step: dict[str, Any]) -> bool:
    return step.get("quant") in IMATRIX_TYPES if step.get("imatrix") is None else bool(step.get("imatrix"))


class GGUFPresentation(MethodPresentation):
    """A GGUF file of one llama.cpp type."""

    family = "gguf"
    quantizes = True
    relation = "quantized"
    limit_text = ("GGUF is llama.cpp's format (llama.cpp, llama-cpp-python, Ollama, LM Studio); its speed and quality "
                  "figures are measured with llama.cpp. transformers can load the file but dequantizes it to float32, "
                  "so there it is neither smaller in memory nor faster.")

    def label(self, step: dict[str, Any]) -> str:
        return f"GGUF {step.get('quant', '?')}{' imatrix' if _imatrix(step) else ''}"

    def sentence(self, step: dict[str, Any]) -> str:
        weighting = (", rounding weighted by an importance matrix llama.cpp computed on the calibration text"
                     if _imatrix(step) else "")
        return f"GGUF export with llama.cpp's converter and quantizer to {step.get('quant')}{weighting}."

    def tags(self, step: dict[str, Any]) -> list[str]:
        return ["gguf", "llama-cpp", str(step.get("quant", "")).lower()] + (["imatrix"] if _imatrix(step) else [])

    def example(self) -> GGUFConfig:
        return GGUFConfig(quant="Q8_0")

    def example_model(self) -> dict[str, Any]:
        return {"tokenizer": "smollm2"}  # a tokenizer llama.cpp's converter recognises
