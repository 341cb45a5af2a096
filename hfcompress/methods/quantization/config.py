"""Configs of the quantization methods: round-to-nearest, GPTQ and AWQ (weight-only, integer, grouped scales).

Example:
    >>> from hfcompress import GPTQConfig
    >>> GPTQConfig(bits=4, group_size=64).describe()
    'gptq(group_size=64)'
    >>> GPTQConfig(bits=3)
    Traceback (most recent call last):
    hfcompress.errors.HFCompressError: GPTQ does not support bits=3; use one of 4, 8
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Union

from ...config import CompressionConfig, check_bits, check_fraction, check_group_size, option, register_config
from ...errors import HFCompressError
from ..layers import refuse_quantized_moe, resolve_group_size

# Weight observers (how each group's scale and zero point are chosen), by our name -> llm-compressor's.
OBSERVERS = {"minmax": None, "mse": "memoryless_mse", "imatrix_mse": "imatrix_mse"}


def check_observer(observer: str) -> None:
    if observer not in OBSERVERS:
        raise HFCompressError(f"observer={observer!r} is not valid; use one of {', '.join(OBSERVERS)}")


@dataclass
class QuantizationConfig(CompressionConfig):
    """Shared by the weight quantization configs: they write integer weights with scales, so they come last."""

    must_be_last: ClassVar[bool] = True

    def resolved_group_size(self, model: Any) -> int | None:
        """The group size this config quantizes ``model`` with (``'auto'`` resolved; None = per channel)."""
        return resolve_group_size(self.group_size, model, self.ignore)



@register_config("rtn")
@dataclass
class RTNConfig(QuantizationConfig):
    """Round-to-nearest weight-only quantization (int8 or int4); data-free and the fastest method.

    Defaults: 8-bit per output channel is near lossless; at 4 bits, asymmetric groups of 128 (or the
    largest size that divides the model's layers) measured far better than symmetric on SmolLM2.

    Example:
        >>> from hfcompress import RTNConfig
        >>> RTNConfig(bits=4).describe()
        'rtn(bits=4)'
    """

    memory_factor: ClassVar[float] = 1.2  # data-free rounding: the model and one layer's packed copy

    bits: int = option("Weight bits: 8 or 4.", default=8)
    group_size: Union[int, str, None] = option(
        "Weights per quantization scale; None = one per output channel, 'auto' = 128 or the largest size "
        "that divides every layer (None for 8-bit).",
        default="auto",
    )
    symmetric: bool = option("Symmetric (no zero point) quantization; asymmetric keeps more quality at 4 bits.", default=False)
    observer: str = option(
        "How each group's scale is chosen: 'minmax' (data-free), 'mse' (clipping search), or 'imatrix_mse' "
        "(clipping search weighted by calibration activations; needs calibration data, measured best at 4 bits).",
        default="minmax",
    )
    ignore: list[str] = option("Layers left in full precision (names, suffixes or 're:' patterns).", default_factory=lambda: ["lm_head"])

    def validate(self) -> None:
        check_bits(self.bits, (4, 8), "RTN")
        check_group_size(self.group_size)
        check_observer(self.observer)

    @property
    def needs_calibration(self) -> bool:
        return self.observer == "imatrix_mse"

    def validate_for_model(self, model: Any) -> None:
        refuse_quantized_moe(model, self.kind.upper())
        self.resolved_group_size(model)

    def resolved_group_size(self, model: Any) -> int | None:
        # 8-bit 'auto' means per channel (groups buy nothing measurable at 8 bits).
        hint = None if (self.group_size == "auto" and self.bits == 8) else self.group_size
        return resolve_group_size(hint, model, self.ignore)


@register_config("gptq")
@dataclass
class GPTQConfig(QuantizationConfig):
    """GPTQ weight quantization: rounds each layer's weights while correcting the error with calibration data.

    Example:
        >>> from hfcompress import GPTQConfig
        >>> GPTQConfig(bits=4, group_size=64).to_dict()["group_size"]
        64
    """

    bits: int = option("Weight bits: 4 or 8.", default=4)
    group_size: Union[int, str, None] = option(
        "Weights per quantization scale; None = per output channel, 'auto' = 128 or the largest size that "
        "divides every layer.",
        default="auto",
    )
    symmetric: bool = option("Symmetric quantization (no zero point). Asymmetric measured far better on small models.", default=False)
    observer: str = option(
        "How each group's scale is chosen: 'imatrix_mse' (clipping search weighted by calibration activations; "
        "measured best), 'mse', or 'minmax' (llm-compressor's default).",
        default="imatrix_mse",
    )
    # Defaults measured side by side with llm-compressor's own (benchmarks/vs_backend.py, embedded SmolLM2, W4 g64):
    # ppl x1.119 / KL 0.122 against GPTQModifier's defaults' x1.127 / KL 0.132; actorder=None gave x1.177.
    actorder: Union[str, None] = option(
        "Activation ordering: 'weight' (columns in order of activation size; measured best), None, or 'static' "
        "(an alias of 'weight' in llm-compressor; desc_act with static groups in GPTQModel and AutoGPTQ).",
        default="weight",
    )
    dampening_frac: float = option("Hessian dampening as a fraction of its mean diagonal (0.05 measured best of 0.01/0.05/0.1).", default=0.05)
    block_size: int = option("Columns quantized together before the error is propagated (64 measured a little better than 128).", default=64)
    ignore: list[str] = option("Layers left in full precision.", default_factory=lambda: ["lm_head"])

    def validate(self) -> None:
        check_bits(self.bits, (4, 8), "GPTQ")
        check_group_size(self.group_size)
        check_observer(self.observer)
        if self.actorder not in (None, "static", "weight"):
            raise HFCompressError(f"actorder={self.actorder!r} is not valid; use None, 'static' or 'weight'")
        check_fraction("dampening_frac", self.dampening_frac)
        if self.block_size <= 0:
            raise HFCompressError(f"block_size={self.block_size} must be a positive integer such as 128")

    def validate_for_model(self, model: Any) -> None:
        refuse_quantized_moe(model, self.kind.upper())
        self.resolved_group_size(model)

    @property
    def needs_calibration(self) -> bool:
        return True


@register_config("awq")
@dataclass
class AWQConfig(QuantizationConfig):
    """AWQ: activation-aware scaling of salient weight channels, then 4-bit weight quantization.

    Example:
        >>> from hfcompress import AWQConfig
        >>> AWQConfig(group_size=64).bits
        4
    """

    bits: int = option("Weight bits: 4 (AWQ's format) or 8.", default=4)
    group_size: Union[int, str, None] = option(
        "Weights per quantization scale; 'auto' = 128 or the largest size that divides every layer.", default="auto"
    )
    symmetric: bool = option("Symmetric quantization; AWQ is designed around asymmetric (zero-point) groups.", default=False)
    duo_scaling: bool = option("Search scales using both activations and weights (AWQ's default).", default=True)
    grid_points: int = option(
        "Scale candidates tried per layer group in AWQ's search (llm-compressor's n_grid); the search time grows with it.",
        default=20,
    )
    ignore: list[str] = option("Layers left in full precision.", default_factory=lambda: ["lm_head"])

    def validate(self) -> None:
        check_bits(self.bits, (4, 8), "AWQ")
        check_group_size(self.group_size)
        # llm-compressor's duo-scaling search spaces its points by 1 / (n_grid - 2): 3 is its smallest working grid.
        smallest = 3 if self.duo_scaling else 2
        if self.grid_points < smallest:
            raise HFCompressError(f"grid_points={self.grid_points} must be at least {smallest}"
                                  f"{' with duo_scaling' if self.duo_scaling else ''} (20 is AWQ's default)")

    def validate_for_model(self, model: Any) -> None:
        refuse_quantized_moe(model, self.kind.upper())
        self.resolved_group_size(model)

    @property
    def needs_calibration(self) -> bool:
        return True
