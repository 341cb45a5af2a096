"""Pruning: magnitude (our torch code), Wanda and SparseGPT (llm-compressor); unstructured or N:M.

Example:
    >>> from hfcompress.methods.pruning import PruneConfig
    >>> PruneConfig(method="magnitude").needs_calibration
    False
"""

from ..registry import register_method
from .config import PruneConfig
from .llmcompressor import LLMCompressorPruning
from .magnitude import TorchMagnitudePruning
from .masks import SparsityMask, magnitude_mask, nm_violations, sparsity_report
from .presentation import PrunePresentation

register_method(PrunePresentation(), config=PruneConfig, adapters=[LLMCompressorPruning, TorchMagnitudePruning])

__all__ = ["PruneConfig", "SparsityMask", "magnitude_mask", "nm_violations", "sparsity_report"]
