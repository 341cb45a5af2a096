"""The config of structured pruning: remove whole attention heads (KV groups), MLP neurons or decoder layers.

Example:
    >>> from hfcompress import StructuredPruneConfig
    >>> StructuredPruneConfig(target="neurons", ratio=0.25).importance
    'activation'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from ...config import CompressionConfig, check_fraction, option, register_config
from ...errors import HFCompressError
from .plan import TARGETS, plan_removal


@register_config("structured_prune")
@dataclass
class StructuredPruneConfig(CompressionConfig):
    """Remove whole attention heads (KV groups for GQA), MLP neurons, decoder layers or MoE experts; shapes really shrink."""

    target: str = option("'heads', 'neurons', 'layers' or 'experts' (mixture-of-experts layers).", default="neurons")
    ratio: float = option("Fraction of the target units removed (0 < r < 1).", default=0.25)
    importance: str = option(
        "How units are ranked: 'magnitude' (weights only) or 'activation' (calibration data; for experts REAP-style "
        "router weight x output norm); for experts also 'frequency' (how often the router picks each).",
        default="activation",
    )
    count: Union[int, None] = option(
        "Number of units removed (per layer for heads/neurons, in total for layers); overrides ratio when set.", default=None
    )
    merge: bool = option(
        "target='experts' only: fold each removed expert into the kept expert whose router row is most alike, as a "
        "usage-weighted average of their weights (M-SMoE / HC-SMoE style), instead of discarding it.", default=False,
    )
    multiple_of: int = option(
        "With target='neurons' and a ratio: the MLP width kept is rounded to a multiple of this, so quantization "
        "that follows finds whole blocks (llama.cpp's 32-weight blocks, GPTQ's groups of 32 or 64); 1 keeps the exact "
        "ratio. SmolLM2's 1536 neurons at ratio 0.2 keep 1216, not 1229 (which would leave ffn_down in F16 in a GGUF).",
        default=32,
    )

    def validate(self) -> None:
        if self.target not in TARGETS:
            raise HFCompressError(f"unknown structured target {self.target!r}; use one of {', '.join(TARGETS)}")
        if self.count is not None and (not isinstance(self.count, int) or isinstance(self.count, bool) or self.count <= 0):
            raise HFCompressError(f"count={self.count!r} must be a positive integer (units removed), or None to use ratio")
        allowed = ("magnitude", "activation", "frequency") if self.target == "experts" else ("magnitude", "activation")
        if self.importance not in allowed:
            raise HFCompressError(f"importance={self.importance!r} is not valid for target={self.target!r}; use "
                                  + " or ".join(repr(a) for a in allowed))
        check_fraction("ratio", self.ratio)
        if not isinstance(self.merge, bool):
            raise HFCompressError(f"merge={self.merge!r} must be True or False")
        if self.merge and self.target != "experts":
            raise HFCompressError(f"merge=True folds removed experts into kept ones, so it needs target='experts', not "
                                  f"target={self.target!r}; drop merge")
        if not isinstance(self.multiple_of, int) or isinstance(self.multiple_of, bool) or self.multiple_of < 1:
            raise HFCompressError(f"multiple_of={self.multiple_of!r} must be a positive integer (1 keeps the exact ratio), e.g. 32")

    def validate_for_model(self, model: Any) -> None:
        plan_removal(model, self)

    @property
    def needs_calibration(self) -> bool:
        return self.importance in ("activation", "frequency")
