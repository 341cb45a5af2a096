"""The config of quantization-aware training: fake-quantized weights trained with distillation from the base.

Example:
    >>> from hfcompress import QATConfig
    >>> QATConfig(bits=2, group_size=64).stored_bits, QATConfig(bits="ternary").stored_bits
    (2, 2)
    >>> QATConfig(bits=1)
    Traceback (most recent call last):
    hfcompress.errors.HFCompressError: QATConfig.bits=1 is not supported; use 8, 4, 3, 2 or 'ternary' (BitNet-style {-1, 0, 1} x scale)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Union

from ...config import CompressionConfig, check_group_size, check_positive_ints, option, register_config
from ...errors import HFCompressError
from ..distill.config import list_placeholder
from ..layers import refuse_quantized_moe, resolve_group_size
from ..quantization.config import check_observer

BITS = (8, 4, 3, 2, "ternary")


@register_config("qat")
@dataclass
class QATConfig(CompressionConfig):
    """Quantization-aware training: the weights train while the forward pass sees them rounded to the grid.

    The student is the model so far with every target Linear fake-quantized (straight-through rounding,
    learned scales); the teacher is the unquantized base model of the run by default. After training the
    weights are stored as integers on exactly the grid the training simulated (compressed-tensors,
    pack-quantized), so plain transformers loads the variant. Put a PTQ step before it to start from its
    grid: ``[GPTQConfig(bits=4, group_size=64), QATConfig(bits=4, group_size=64)]``.

    Example:
        >>> from hfcompress import QATConfig
        >>> QATConfig(bits=4, group_size=64, steps=200).describe()
        'qat(group_size=64, steps=200)'
    """

    must_be_last: ClassVar[bool] = True
    # It starts from the grid a PTQ step left (its scales and zero points), then trains on it.
    follows_quantization: ClassVar[bool] = True

    memory_factor: ClassVar[float] = 6.0  # as distillation: student, gradients, two Adam moments, teacher

    bits: Union[int, str] = option("Weight bits: 8, 4, 3, 2, or 'ternary' ({-1, 0, 1} x scale, stored as int2).", default=4)
    group_size: Union[int, str, None] = option(
        "Weights per quantization scale; None = per output channel, 'auto' = 128 or the largest size that divides "
        "every layer.",
        default="auto",
    )
    symmetric: bool = option("Symmetric quantization (no zero point); ternary is always symmetric.", default=False)
    observer: str = option(
        "How the starting scales are chosen (as RTNConfig's): 'imatrix_mse' (clipping search weighted by calibration "
        "activations), 'mse' or 'minmax'; ternary always starts from absmean scales.",
        default="imatrix_mse",
    )
    learn_scales: bool = option("Train each group's scale with the weights (LSQ); False keeps the starting scales.", default=True)
    teacher: Union[str, None] = option(
        "'base' = the unquantized model this run started from; a model id or folder; None = no teacher "
        "(next-token cross-entropy only).",
        default="base",
    )
    alpha: float = option("Weight of the next-token cross-entropy; 1 - alpha goes to the KL term from the teacher.", default=0.0)
    temperature: float = option("Softmax temperature of the teacher's soft targets.", default=1.0)
    # Measured on the embedded SmolLM2 at W4 g64 (benchmarks/qat.py): 40 steps of 4 x 256 tokens at 1e-4 from the
    # imatrix_mse grid gave ppl x1.089 against GPTQ's default x1.119 (about 20 minutes of this 2-core CPU).
    steps: int = option("Optimizer steps.", default=40)
    learning_rate: float = option("Peak learning rate of weights and scales (AdamW, warm-up then cosine).", default=1e-4)
    batch_size: int = option("Sequences per optimizer step.", default=4)
    seq_len: int = option("Tokens per training sequence.", default=256)
    data: Union[str, list, None] = option("Training text: None = the calibration text; a file, datasets id or list of strings.",
                                          default=None)
    warmup: float = option("Learning-rate warm-up: a fraction of the steps (< 1) or a number of steps.", default=0.05)
    eval_every: int = option("Evaluate perplexity and agreement with the teacher every N steps (0 = off).", default=0)
    eval_tokens: int = option("Held-out tokens for those evaluations (and the before/after numbers).", default=2048)
    save_every: int = option("Write a checkpoint every N steps (the last one is kept) so a stopped run resumes.", default=50)
    run_dir: Union[str, None] = option("Folder for checkpoints; None = a cache folder deleted when the run finishes.", default=None)
    resume: bool = option("Continue from the last checkpoint in the run folder when there is one.", default=True)
    seed: int = option("Seed for data order.", default=0)
    ignore: list[str] = option("Layers left in full precision (and trained as they are).", default_factory=lambda: ["lm_head"])

    def validate(self) -> None:
        if self.bits not in BITS or isinstance(self.bits, bool):
            raise HFCompressError(
                f"QATConfig.bits={self.bits!r} is not supported; use 8, 4, 3, 2 or 'ternary' (BitNet-style {{-1, 0, 1}} x scale)"
            )
        check_group_size(self.group_size)
        check_observer(self.observer)
        check_positive_ints(self, "steps", "batch_size", "seq_len", "eval_tokens", "save_every")
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise HFCompressError(f"eval_every={self.eval_every!r} must be 0 (off) or a positive integer")
        if not 0.0 <= self.alpha <= 1.0:
            raise HFCompressError(f"alpha={self.alpha!r} is out of range; use a number from 0 to 1")
        if self.temperature <= 0:
            raise HFCompressError(f"temperature={self.temperature!r} must be positive, e.g. 1.0")
        if self.learning_rate <= 0:
            raise HFCompressError(f"learning_rate={self.learning_rate!r} must be positive, e.g. 2e-5")
        if self.teacher is None and self.alpha != 1.0:
            raise HFCompressError("teacher=None trains on next-token cross-entropy only; set alpha=1.0 too (or name a teacher)")
        if not isinstance(self.warmup, (int, float)) or self.warmup < 0 or (isinstance(self.warmup, float) and 1 <= self.warmup and not self.warmup.is_integer()):
            raise HFCompressError(f"warmup={self.warmup!r} must be a fraction below 1 or a whole number of steps")

    def to_dict(self) -> dict[str, Any]:
        """As the base class, but texts given in Python are recorded by count and hash (as distillation's are)."""
        out = super().to_dict()
        if isinstance(out["data"], list):
            out["data"] = list_placeholder(out["data"])
        return out

    @property
    def stored_bits(self) -> int:
        """Bits per weight on disk (ternary codes are stored as int2)."""
        return 2 if self.bits == "ternary" else int(self.bits)

    @property
    def is_symmetric(self) -> bool:
        """Whether the grid has no zero point (ternary always: its codes are -1, 0, 1 around zero)."""
        return self.symmetric or self.bits == "ternary"

    @property
    def code_range(self) -> tuple[int, int]:
        """The integer codes the training may use: ``(-8, 7)`` for 4 bits, ``(-1, 1)`` for ternary."""
        if self.bits == "ternary":
            return -1, 1
        return -(2 ** (self.stored_bits - 1)), 2 ** (self.stored_bits - 1) - 1

    @property
    def needs_calibration(self) -> bool:
        return self.data is None or (self.observer == "imatrix_mse" and self.bits != "ternary")

    def resolved_group_size(self, model: Any) -> int | None:
        """The group size this config quantizes ``model`` with (``'auto'`` resolved; None = per channel)."""
        return resolve_group_size(self.group_size, model, self.ignore)

    def validate_for_model(self, model: Any) -> None:
        refuse_quantized_moe(model, "quantization-aware training")
        self.resolved_group_size(model)
