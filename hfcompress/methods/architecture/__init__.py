"""Architecture compression: fewer key/value heads (GQA conversion), layers sharing weights (our torch code).

Example:
    >>> from hfcompress.methods.architecture import GQAConfig
    >>> GQAConfig(num_key_value_heads=2).num_key_value_heads
    2
    >>> ShareLayersConfig(every=3).layer_groups(6)
    [[0, 1, 2], [3, 4, 5]]
"""

from ..registry import register_method
from .config import GQAConfig, ShareLayersConfig
from .gqa import TorchGQA, kv_groups
from .presentation import GQAPresentation, ShareLayersPresentation
from .share_layers import TorchShareLayers

register_method(GQAPresentation(), config=GQAConfig, adapters=[TorchGQA])
register_method(ShareLayersPresentation(), config=ShareLayersConfig, adapters=[TorchShareLayers])

__all__ = ["GQAConfig", "ShareLayersConfig", "kv_groups"]
