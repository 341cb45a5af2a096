"""The config of unstructured and N:M weight pruning (magnitude, Wanda, SparseGPT).

Example:
    >>> from hfcompress import PruneConfig
    >>> PruneConfig(method="sparsegpt", pattern="2:4").sparsity
    0.5
    >>> PruneConfig(pattern="3:4", sparsity=0.5)
    Traceback (most recent call last):
    hfcompress.errors.HFCompressError: pattern 3:4 means sparsity 0.25, but sparsity=0.5 was asked; drop sparsity or use pattern='unstructured'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Union

from ...config import CompressionConfig, check_fraction, check_positive_ints, option, register_config
from ...errors import HFCompressError
from ..layers import target_linear_layers

PRUNE_METHODS = ("magnitude", "wanda", "sparsegpt")
DEFAULT_SPARSITY = 0.5


@register_config("prune")
@dataclass
class PruneConfig(CompressionConfig):
    """Unstructured or N:M weight pruning of Linear layers (magnitude, Wanda or SparseGPT)."""

    method: str = option("Which weights go: 'magnitude' (data-free), 'wanda' or 'sparsegpt' (use calibration data).", default="wanda")
    sparsity: Union[float, None] = option(
        "Fraction of weights set to zero in each pruned layer (0 < s < 1); default 0.5. An N:M pattern implies 1 - N/M.",
        default=None,
    )
    pattern: str = option("'unstructured' or an N:M pattern such as '2:4' or '4:8'.", default="unstructured")
    ignore: list[str] = option("Layers left dense.", default_factory=lambda: ["lm_head"])
    dampening_frac: float = option("SparseGPT only: Hessian dampening as a fraction of its mean diagonal.", default=0.01)
    block_size: int = option("SparseGPT only: columns pruned together before the error is propagated.", default=128)

    def validate(self) -> None:
        check_positive_ints(self, "block_size")
        check_fraction("dampening_frac", self.dampening_frac)
        if self.method not in PRUNE_METHODS:
            raise HFCompressError(f"unknown pruning method {self.method!r}; use one of {', '.join(PRUNE_METHODS)}")
        if self.pattern != "unstructured":
            n, m = self.nm
            if not (0 < n < m):
                raise HFCompressError(f"pattern={self.pattern!r} is not valid; N:M needs 0 < N < M, e.g. '2:4'")
            # An N:M pattern fixes the sparsity: an explicit different sparsity is a conflict, not silently replaced.
            implied = 1 - n / m
            if self.sparsity is not None and abs(self.sparsity - implied) > 1e-9:
                raise HFCompressError(
                    f"pattern {self.pattern} means sparsity {implied:g}, but sparsity={self.sparsity!r} was asked; "
                    "drop sparsity or use pattern='unstructured'"
                )
            self.sparsity = implied
        elif self.sparsity is None:
            self.sparsity = DEFAULT_SPARSITY
        check_fraction("sparsity", self.sparsity)

    @property
    def nm(self) -> tuple[int, int]:
        """(N, M) of an N:M pattern."""
        match = re.fullmatch(r"(\d+):(\d+)", str(self.pattern))
        if not match:
            raise HFCompressError(f"pattern={self.pattern!r} is not valid; use 'unstructured' or N:M such as '2:4'")
        return int(match.group(1)), int(match.group(2))

    def validate_for_model(self, model: Any) -> None:
        if self.pattern == "unstructured":
            return
        _, m = self.nm
        for name, layer in target_linear_layers(model, self.ignore).items():
            if layer.in_features % m:
                raise HFCompressError(
                    f"pattern {self.pattern} needs layer widths divisible by {m}, but {name} has width "
                    f"{layer.in_features}; add it to ignore or use another pattern"
                )

    @property
    def needs_calibration(self) -> bool:
        return self.method != "magnitude"
