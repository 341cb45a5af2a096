"""Quantization: round-to-nearest, GPTQ and AWQ (llm-compressor by default; GPTQModel, AutoGPTQ and AutoAWQ when named).

Example:
    >>> from hfcompress.methods.quantization import GPTQConfig
    >>> GPTQConfig().must_be_last
    True
"""

from ..registry import register_method
from .config import AWQConfig, GPTQConfig, RTNConfig
from .gptqmodel import GPTQModelAdapter
from .legacy import AutoAWQAdapter, AutoGPTQAdapter
from .llmcompressor import LLMCompressorQuantization
from .presentation import QuantizationPresentation

register_method(QuantizationPresentation("rtn"), config=RTNConfig, adapters=[LLMCompressorQuantization])
register_method(QuantizationPresentation("gptq"), config=GPTQConfig,
                adapters=[LLMCompressorQuantization, GPTQModelAdapter, AutoGPTQAdapter])
register_method(QuantizationPresentation("awq"), config=AWQConfig, adapters=[LLMCompressorQuantization, GPTQModelAdapter, AutoAWQAdapter])

__all__ = ["RTNConfig", "GPTQConfig", "AWQConfig"]
