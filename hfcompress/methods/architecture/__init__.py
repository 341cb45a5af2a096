"""Architecture compression: fewer key/value heads (GQA conversion) (our torch code).

Example:
    >>> from hfcompress.methods.architecture import GQAConfig
    >>> GQAConfig(num_key_value_heads=2).num_key_value_heads
    2
"""

from ..registry import register_method
from .config import GQAConfig
from .gqa import TorchGQA, kv_groups
from .presentation import GQAPresentation

register_method(GQAPresentation(), config=GQAConfig, adapters=[TorchGQA])

__all__ = ["GQAConfig", "kv_groups"]
