"""The config of unstructured and N:M weight pruning (magnitude, Wanda, SparseGPT), one-shot or gradual.

Gradual pruning follows Zhu & Gupta, "To prune, or not to prune" (2017): the sparsity rises over ``stages``
prune steps along their cubic schedule s_t = s_f * (1 - (1 - t/n)^3), t = 1..n, and a training step after each
stage recovers before the next one prunes further. It runs as recipe expansion (``PruneConfig.expand``): one
gradual config becomes [prune s_1, finetune, prune s_2, finetune, ..., prune s_f, finetune], every stage an
ordinary step with its own record, so the masks are nested by the same machinery that keeps any pruning mask
through later steps.

Example:
    >>> from hfcompress import DistillConfig, PruneConfig
    >>> PruneConfig(method="sparsegpt", pattern="2:4").sparsity
    0.5
    >>> PruneConfig(pattern="3:4", sparsity=0.5)
    Traceback (most recent call last):
    hfcompress.errors.HFCompressError: pattern 3:4 means sparsity 0.25, but sparsity=0.5 was asked; drop sparsity or use pattern='unstructured'
    >>> gradual = PruneConfig(method="magnitude", sparsity=0.7, schedule="gradual", stages=4,
    ...                       finetune=DistillConfig(steps=10))
    >>> gradual.stage_sparsities()
    [0.404687, 0.6125, 0.689062, 0.7]
    >>> [step.kind for step in gradual.expand()]
    ['prune', 'distill', 'prune', 'distill', 'prune', 'distill', 'prune', 'distill']
    >>> PruneConfig(pattern="2:4", schedule="gradual", stages=4, finetune=DistillConfig(steps=10))
    Traceback (most recent call last):
    hfcompress.errors.HFCompressError: schedule='gradual' needs pattern='unstructured': an N:M pattern fixes the sparsity at 1 - N/M, so there is no schedule to rise along; use schedule='oneshot' with pattern '2:4'
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Union

from ...config import CompressionConfig, check_fraction, check_positive_ints, option, register_config
from ...errors import HFCompressError
from ...recipe import step_dict
from ..layers import target_linear_layers
from ..registry import presentation_for

PRUNE_METHODS = ("magnitude", "wanda", "sparsegpt")
SCHEDULES = ("oneshot", "gradual")
DEFAULT_SPARSITY = 0.5
DEFAULT_STAGES = 4


def cubic_sparsities(final: float, stages: int) -> list[float]:
    """Zhu & Gupta's cubic schedule: the sparsity after each of ``stages`` prune steps, the last exactly ``final``.

    s_t = final * (1 - (1 - t/n)^3) for t = 1..n: large steps first, while the model still has many redundant
    weights, and ever smaller ones as it nears the target. Rounded to 6 decimals for readable recipes and step
    records (the last stage is ``final`` itself, unrounded).

    Example:
        >>> cubic_sparsities(0.5, 2)
        [0.4375, 0.5]
    """
    steps = [round(final * (1 - (1 - t / stages) ** 3), 6) for t in range(1, stages)]
    return [*steps, final]


@register_config("prune")
@dataclass
class PruneConfig(CompressionConfig):
    """Unstructured or N:M weight pruning of Linear layers (magnitude, Wanda or SparseGPT), at once or gradually.

    Example:
        >>> from hfcompress import DistillConfig, PruneConfig
        >>> PruneConfig(method="wanda", sparsity=0.7, schedule="gradual", stages=4,
        ...             finetune=DistillConfig(steps=25)).stage_sparsities()
        [0.404687, 0.6125, 0.689062, 0.7]
    """

    method: str = option("Which weights go: 'magnitude' (data-free), 'wanda' or 'sparsegpt' (use calibration data).", default="wanda")
    sparsity: Union[float, None] = option(
        "Fraction of weights set to zero in each pruned layer (0 < s < 1); default 0.5. An N:M pattern implies 1 - N/M.",
        default=None,
    )
    pattern: str = option("'unstructured' or an N:M pattern such as '2:4' or '4:8'.", default="unstructured")
    ignore: list[str] = option("Layers left dense.", default_factory=lambda: ["lm_head"])
    dampening_frac: float = option("SparseGPT only: Hessian dampening as a fraction of its mean diagonal.", default=0.01)
    block_size: int = option("SparseGPT only: columns pruned together before the error is propagated.", default=128)
    schedule: str = option(
        "'oneshot' (all weights pruned at once) or 'gradual' (Zhu & Gupta 2017: the sparsity rises over `stages` prune "
        "steps along a cubic schedule, each followed by `finetune`; weights pruned at one stage stay pruned).",
        default="oneshot",
    )
    stages: Union[int, None] = option(
        "schedule='gradual' only: how many prune steps reach `sparsity` (at least 2; default 4).", default=None,
    )
    finetune: Union[CompressionConfig, dict, None] = option(
        "schedule='gradual' only: the training step run after every stage, e.g. DistillConfig(steps=10). Its steps "
        "are per stage (the run trains stages x steps in all); stage k trains with seed + k - 1, so the stages see "
        "different batches.",
        default=None,
    )

    def validate(self) -> None:
        check_positive_ints(self, "block_size")
        check_fraction("dampening_frac", self.dampening_frac)
        if self.method not in PRUNE_METHODS:
            raise HFCompressError(f"unknown pruning method {self.method!r}; use one of {', '.join(PRUNE_METHODS)}")
        self._validate_schedule()
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

    def _validate_schedule(self) -> None:
        if self.schedule not in SCHEDULES:
            raise HFCompressError(f"schedule={self.schedule!r} is not valid; use 'oneshot' or 'gradual'")
        if isinstance(self.finetune, dict):
            # A recipe file or hfcompress.json holds the training step as a dict, in either spelling of a step.
            self.finetune = CompressionConfig.from_dict(step_dict(self.finetune))
        if self.schedule == "oneshot":
            for name in ("stages", "finetune"):
                if getattr(self, name) is not None:
                    raise HFCompressError(
                        f"{name}= is used only with schedule='gradual'; set schedule='gradual', or drop {name} "
                        "(to train after one-shot pruning, add e.g. DistillConfig(steps=200) as the next recipe step)"
                    )
            return
        if self.pattern != "unstructured":
            raise HFCompressError(
                "schedule='gradual' needs pattern='unstructured': an N:M pattern fixes the sparsity at 1 - N/M, so there "
                f"is no schedule to rise along; use schedule='oneshot' with pattern {self.pattern!r}"
            )
        if self.stages is None:
            self.stages = DEFAULT_STAGES
        if not isinstance(self.stages, int) or isinstance(self.stages, bool) or self.stages < 2:
            raise HFCompressError(
                f"stages={self.stages!r} must be a whole number of at least 2 for schedule='gradual' (one stage is "
                "one-shot pruning); use e.g. stages=4, or schedule='oneshot'"
            )
        self._validate_finetune()

    def _validate_finetune(self) -> None:
        finetune = self.finetune
        example = "finetune=DistillConfig(steps=10)"
        if finetune is None:
            raise HFCompressError(
                f"schedule='gradual' needs a training step to recover after each stage, e.g. {example} (without one, "
                "gradual pruning only repeats one-shot pruning); add finetune or use schedule='oneshot'"
            )
        if not isinstance(finetune, CompressionConfig):
            raise HFCompressError(f"finetune must be a training config, not {type(finetune).__name__}; use e.g. {example}")
        # Training that keeps full-precision weights: quantization-aware training stores a quantized grid, which
        # the next stage's pruning could not edit.
        if not presentation_for(finetune.kind).trains or finetune.must_be_last:
            raise HFCompressError(
                f"finetune={finetune.kind} is not a training step that keeps the weights in full precision; use {example}"
            )
        # The student must be the model being pruned, or the stages would train (and keep) some other model.
        if getattr(finetune, "student", None) is not None:
            raise HFCompressError(
                f"finetune's student={finetune.student!r} would replace the model being pruned; leave student=None in "
                "the fine-tuning of a gradual pruning"
            )

    def stage_sparsities(self) -> list[float]:
        """The sparsity after each stage (``[sparsity]`` for one-shot pruning); see ``cubic_sparsities``."""
        if self.schedule != "gradual":
            return [self.sparsity]
        return cubic_sparsities(self.sparsity, self.stages)

    def expand(self) -> list[CompressionConfig]:
        """One-shot pruning runs as itself; gradual pruning as [prune s_1, finetune, ..., prune s_f, finetune].

        Each stage is a one-shot prune of the model the earlier stages left: the pruning adapters keep every weight
        an earlier stage removed at zero, so the stages' masks are nested.
        """
        if self.schedule != "gradual":
            return [self]
        steps: list[CompressionConfig] = []
        for stage, sparsity in enumerate(self.stage_sparsities(), start=1):
            steps.append(dataclasses.replace(self, sparsity=sparsity, schedule="oneshot", stages=None, finetune=None))
            steps.append(self._stage_finetune(stage))
        return steps

    def _stage_finetune(self, stage: int) -> CompressionConfig:
        changes: dict[str, Any] = {}
        if isinstance(getattr(self.finetune, "seed", None), int):
            changes["seed"] = self.finetune.seed + stage - 1
        # A run folder shared by the stages would make stage 2 resume stage 1's finished checkpoint.
        if getattr(self.finetune, "run_dir", None):
            changes["run_dir"] = f"{self.finetune.run_dir.rstrip('/')}/stage-{stage}"
        return dataclasses.replace(self.finetune, **changes)

    @property
    def nm(self) -> tuple[int, int]:
        """(N, M) of an N:M pattern."""
        match = re.fullmatch(r"(\d+):(\d+)", str(self.pattern))
        if not match:
            raise HFCompressError(f"pattern={self.pattern!r} is not valid; use 'unstructured' or N:M such as '2:4'")
        return int(match.group(1)), int(match.group(2))

    def validate_for_model(self, model: Any) -> None:
        if self.finetune is not None:
            self.finetune.validate_for_model(model)
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
        # A gradual magnitude pruning still reads calibration text when its fine-tuning trains on it.
        return self.method != "magnitude" or bool(self.finetune is not None and self.finetune.needs_calibration)
