"""The config of low-rank factorization (truncated SVD, optionally activation-aware).

Example:
    >>> from hfcompress import LowRankConfig
    >>> LowRankConfig(rank=16).energy is None
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from ...config import CompressionConfig, check_fraction, option, register_config
from ...errors import HFCompressError
from ..layers import name_matches


def low_rank_targets(model: Any, config: "LowRankConfig") -> dict[str, Any]:
    """The Linear layers ``config.targets`` names (suffixes, exact names or ``re:`` patterns), lm_head never."""
    import torch

    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and not name.endswith("lm_head")
        and any(name_matches(name, t) for t in config.targets)
    }


@register_config("low_rank")
@dataclass
class LowRankConfig(CompressionConfig):
    """Factor chosen Linear layers into two smaller ones by truncated SVD (rank or kept energy).

    Defaults measured on SmolLM2-135M's MLPs (benchmarks/results/pruning_quality.json): plain SVD keeping 90%
    of the energy multiplied perplexity by ~19,000; activation-aware SVD keeping 95% by 4.8 (3.8% fewer
    parameters). Low rank alone costs a small model a lot: pair it with distillation.

    Example:
        >>> from hfcompress import LowRankConfig
        >>> LowRankConfig(energy=0.9).rank is None
        True
    """

    rank: Union[int, float, None] = option("Kept rank: an integer, or a float in (0, 1) as a fraction of full rank.", default=None)
    energy: Union[float, None] = option("Keep the smallest rank whose singular values hold this fraction of the energy.", default=0.95)
    targets: list[str] = option("Layer name suffixes to factor.", default_factory=lambda: ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"])
    activation_aware: bool = option(
        "Scale each input channel by its calibration RMS before the SVD (ASVD-style), so the kept rank preserves "
        "the layer's outputs rather than its raw weights; needs calibration data.",
        default=True,
    )

    def validate(self) -> None:
        if self.rank is not None and self.energy is not None:
            # rank wins when both are given explicitly; energy is only the default.
            self.energy = None
        if self.rank is None and self.energy is None:
            raise HFCompressError("LowRankConfig needs rank or energy, e.g. LowRankConfig(energy=0.9)")
        if self.rank is not None:
            if isinstance(self.rank, float):
                check_fraction("rank", self.rank)
            elif not isinstance(self.rank, int) or self.rank <= 0:
                raise HFCompressError(f"rank={self.rank!r} must be a positive integer or a fraction in (0, 1)")
        if self.energy is not None:
            check_fraction("energy", self.energy, 0.0, 1.0 + 1e-9)
        if not self.targets:
            raise HFCompressError("LowRankConfig.targets is empty; name layers such as 'mlp.up_proj'")

    def validate_for_model(self, model: Any) -> None:
        layers = low_rank_targets(model, self)
        if not layers:
            raise HFCompressError(f"LowRankConfig.targets {self.targets} match no Linear layer of this model; use suffixes such as 'mlp.up_proj'")
        if isinstance(self.rank, int):
            for name, layer in layers.items():
                full = min(layer.in_features, layer.out_features)
                if self.rank > full:
                    raise HFCompressError(
                        f"rank={self.rank} is larger than the full rank {full} of {name} ({layer.out_features}x{layer.in_features}); "
                        f"use rank <= {full} or a fraction such as rank=0.25"
                    )

    @property
    def needs_calibration(self) -> bool:
        return self.activation_aware
