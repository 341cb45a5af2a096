"""The configs of architecture compression: fewer key/value heads (GQA conversion).

Example:
    >>> from hfcompress.methods.architecture import GQAConfig
    >>> GQAConfig(num_key_value_heads=1).method
    'pca'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...config import CompressionConfig, option, register_config
from ...errors import HFCompressError
from .attention import attention_geometry

GQA_METHODS = ("mean", "pca")


@register_config("gqa")
@dataclass
class GQAConfig(CompressionConfig):
    """Merge each group's key/value heads so the model ends with ``num_key_value_heads`` of them (query heads kept).

    The KV cache shrinks by ``old / new`` KV heads; the weights shrink only by the removed k/v projection rows.
    ``method="pca"`` (default) merges each group onto its principal components on calibration data (keys per
    rotary frequency) and refits the query and output projections to match; ``"mean"`` averages the heads and
    needs no data. Measured on SmolLM2-135M, 3 -> 1 KV heads (benchmarks/results/gqa.json): perplexity x1010 of the
    base with the mean merge, x7.1 with the PCA merge (32 calibration samples); a merged model needs distillation.

    Example:
        >>> from hfcompress import GQAConfig
        >>> GQAConfig(num_key_value_heads=1, method="mean").needs_calibration
        False
    """

    num_key_value_heads: int = option("KV heads the model ends with; must divide the number of query heads.", default=1)
    method: str = option(
        "'pca': each group's keys (per rotary frequency) and values are replaced by their principal components on "
        "calibration data, and the query and output projections are refit to them; 'mean': average the heads' "
        "projections (data-free).",
        default="pca",
    )

    def validate(self) -> None:
        if isinstance(self.num_key_value_heads, bool) or self.num_key_value_heads < 1:
            raise HFCompressError(f"num_key_value_heads={self.num_key_value_heads!r} must be a positive integer, e.g. 1")
        if self.method not in GQA_METHODS:
            raise HFCompressError(f"unknown GQA merge method {self.method!r}; use one of {', '.join(GQA_METHODS)}")

    def validate_for_model(self, model: Any) -> None:
        heads, kv, _ = attention_geometry(model)
        k = self.num_key_value_heads
        if kv == 1:
            raise HFCompressError("this model already has a single KV head (multi-query attention); there is nothing to merge")
        if k >= kv:
            raise HFCompressError(f"num_key_value_heads={k} does not reduce this model's {kv} KV heads; use a number below {kv}")
        if heads % k:
            working = [d for d in range(1, kv) if heads % d == 0]
            raise HFCompressError(
                f"num_key_value_heads={k} does not divide the {heads} query heads; use one of {', '.join(map(str, working))}"
            )

    @property
    def needs_calibration(self) -> bool:
        return self.method == "pca"
