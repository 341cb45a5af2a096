"""Low rank: truncated SVD of chosen Linear layers, plain or activation-aware (our torch code).

Example:
    >>> from hfcompress.methods.lowrank import LowRankConfig
    >>> LowRankConfig().activation_aware
    True
"""

from ..registry import register_method
from .adapter import TorchLowRank, choose_rank
from .config import LowRankConfig, low_rank_targets
from .presentation import LowRankPresentation

register_method(LowRankPresentation(), config=LowRankConfig, adapters=[TorchLowRank])

__all__ = ["LowRankConfig", "choose_rank", "low_rank_targets"]
