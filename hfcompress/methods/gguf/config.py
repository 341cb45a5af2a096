"""The config of GGUF export: llama.cpp's file types, with an importance matrix from the calibration text.

Example:
    >>> from hfcompress import GGUFConfig
    >>> GGUFConfig(quant="Q4_K_M").uses_imatrix
    True
    >>> GGUFConfig(quant="Q8_0").uses_imatrix
    False
    >>> GGUFConfig(quant="Q4_K_Z")
    Traceback (most recent call last):
    hfcompress.errors.HFCompressError: quant='Q4_K_Z' is not a GGUF type hfcompress writes; use one of F32, F16, BF16, Q8_0, Q6_K, Q5_K_M, Q5_K_S, Q4_K_M, Q4_K_S, Q4_0, IQ4_NL, IQ4_XS, Q3_K_M, Q2_K
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Union

from ...config import CompressionConfig, option, register_config
from ...errors import HFCompressError
from ..backends.llamacpp import FLOAT_TYPES, GGUF_TYPES
from .convert import check_architecture

# Types whose rounding an importance matrix steers (8-bit and float types gain nothing from it).
IMATRIX_TYPES = tuple(t for t in GGUF_TYPES if t not in (*FLOAT_TYPES, "Q8_0"))


@register_config("gguf")
@dataclass
class GGUFConfig(CompressionConfig):
    """Write the model as a GGUF file of one llama.cpp type, for llama.cpp, Ollama and LM Studio (a last step)."""

    must_be_last: ClassVar[bool] = True
    last_reason: ClassVar[str] = "writes a GGUF file"
    # It reads a quantized variant itself (dequantized first), so a GGUF step may follow quantization.
    follows_quantization: ClassVar[bool] = True

    quant: str = option("llama.cpp file type: F16, BF16, Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0, IQ4_NL, ...", default="Q4_K_M")
    imatrix: Union[bool, None] = option(
        "Weight the rounding by an importance matrix llama.cpp computes on the calibration text; None = on for the "
        "types it helps (K- and IQ-quants), off for F16/BF16/Q8_0.",
        default=None,
    )
    imatrix_context: int = option("Tokens per chunk llama-imatrix evaluates.", default=512)

    def validate(self) -> None:
        if self.quant not in GGUF_TYPES:
            raise HFCompressError(f"quant={self.quant!r} is not a GGUF type hfcompress writes; use one of {', '.join(GGUF_TYPES)}")
        if self.imatrix and self.quant not in IMATRIX_TYPES:
            raise HFCompressError(f"imatrix=True does nothing for {self.quant} (float or 8-bit); drop it or choose a K-quant such as Q4_K_M")
        if not isinstance(self.imatrix_context, int) or self.imatrix_context < 16:
            raise HFCompressError(f"imatrix_context={self.imatrix_context!r} must be an integer of at least 16 tokens")

    @property
    def uses_imatrix(self) -> bool:
        """Whether an importance matrix is computed (explicitly, or by default for the types it helps)."""
        return self.quant in IMATRIX_TYPES if self.imatrix is None else bool(self.imatrix)

    @property
    def needs_calibration(self) -> bool:
        return self.uses_imatrix

    def validate_for_model(self, model: Any) -> None:
        check_architecture(model)
