"""GGUF export: llama.cpp's converter, importance matrix and quantizer write files llama.cpp, Ollama and LM Studio run.

Example:
    >>> from hfcompress.methods.gguf import GGUFConfig
    >>> GGUFConfig(quant="IQ4_NL").uses_imatrix
    True
"""

from ..registry import register_method
from .adapter import LlamaCppGGUF
from .config import GGUFConfig
from .presentation import GGUFPresentation

register_method(GGUFPresentation("gguf"), config=GGUFConfig, adapters=[LlamaCppGGUF])

__all__ = ["GGUFConfig"]
