"""Quantization-aware training: weights trained through simulated rounding, then stored on that grid.

Example:
    >>> from hfcompress.methods.qat import QATConfig
    >>> QATConfig(bits="ternary").code_range
    (-1, 1)
"""

from ..registry import register_method
from .adapter import TorchQAT
from .config import QATConfig
from .presentation import QATPresentation

# `--method qat --bits 2` on the command line; ternary is not a number of bits, so it has its own name.
register_method(QATPresentation("qat", cli_names={"qat": {}, "qat-ternary": {"bits": "ternary"}}), config=QATConfig,
                adapters=[TorchQAT])

__all__ = ["QATConfig"]
