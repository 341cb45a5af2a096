"""Structured pruning: remove attention heads (KV groups), MLP neurons or decoder layers (our torch code).

Example:
    >>> from hfcompress.methods.structured import StructuredPruneConfig
    >>> StructuredPruneConfig(target="layers", count=2).count
    2
"""

from ..registry import register_method
from .adapter import TorchStructuredPruning
from .config import StructuredPruneConfig
from .presentation import StructuredPresentation

register_method(StructuredPresentation(), config=StructuredPruneConfig, adapters=[TorchStructuredPruning])

__all__ = ["StructuredPruneConfig"]
