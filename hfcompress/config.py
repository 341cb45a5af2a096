"""Method configs, recipes and YAML files.

One dataclass per compression method (as peft has one config per tuner). Each config validates itself
where it is built, so a bad value fails at once with one clear line, and round-trips through
``to_dict``/``from_dict`` and YAML. A *recipe* is a list of configs applied in order; a YAML file holds
one recipe or a grid of named recipes.

Example:
    >>> import hfcompress as hfc
    >>> recipe = [hfc.PruneConfig(method="wanda", sparsity=0.5), hfc.GPTQConfig(bits=4, group_size=64)]
    >>> hfc.recipe_from_yaml(hfc.recipe_to_yaml(recipe)) == recipe
    True
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence, Union

import yaml

from .errors import HFCompressError

_CONFIG_REGISTRY: dict[str, type["CompressionConfig"]] = {}


def register_config(kind: str):
    """Class decorator that makes a config reachable by its ``kind`` string (in YAML, CLI and hfcompress.json).

    Example:
        >>> @register_config("my_method")          # doctest: +SKIP
        ... @dataclass
        ... class MyConfig(CompressionConfig):
        ...     strength: float = 0.5
    """

    def wrap(cls: type[CompressionConfig]) -> type[CompressionConfig]:
        if kind in _CONFIG_REGISTRY and _CONFIG_REGISTRY[kind] is not cls:
            raise ValueError(f"config kind {kind!r} is registered twice")
        cls.kind = kind
        _CONFIG_REGISTRY[kind] = cls
        return cls

    return wrap


def config_kinds() -> list[str]:
    """The kinds of compression step that configs exist for, e.g. ``['awq', 'gptq', ...]``."""
    return sorted(_CONFIG_REGISTRY)


_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass
class CompressionConfig:
    """Base of every method config: validation, ``to_dict``/``from_dict`` and the ``kind`` string.

    Subclasses override ``validate()`` (checks that need only the config) and ``validate_for_model()``
    (checks that need the model's shapes, run before any work starts).

    Example:
        >>> from hfcompress import GPTQConfig, CompressionConfig
        >>> cfg = CompressionConfig.from_dict({"kind": "gptq", "bits": 4, "group_size": 64})
        >>> cfg == GPTQConfig(bits=4, group_size=64)
        True
    """

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        self._check_field_types()
        self.validate()

    def _check_field_types(self) -> None:
        # YAML and the CLI hand over strings and numbers as written; a wrong type fails here with the field's
        # name instead of deep inside a backend. A single name where a list of names is expected (``ignore:
        # lm_head``) is taken as that one name, not iterated letter by letter.
        for f in dataclasses.fields(self):
            value, hint = getattr(self, f.name), str(f.type).replace(" ", "")
            if hint == "list[str]":
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                    raise HFCompressError(f"{f.name}={value!r} must be a list of layer names, e.g. ['lm_head']")
                setattr(self, f.name, list(value))
                continue
            allowed = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}.get(hint)
            if allowed is None or value is None and "None" in hint:
                continue
            if not isinstance(value, allowed) or (isinstance(value, bool) and hint != "bool"):
                raise HFCompressError(
                    f"{type(self).__name__}.{f.name}={value!r} must be {_TYPE_WORDS[hint]}"
                )

    def validate(self) -> None:
        """Raise HFCompressError for values that can never work, whatever the model."""

    def validate_for_model(self, model: Any) -> None:
        """Raise HFCompressError for values that cannot work on this model (layer widths, head counts)."""

    @property
    def needs_calibration(self) -> bool:
        """Whether this step reads calibration text (data-free methods return False)."""
        return False

    def to_dict(self) -> dict[str, Any]:
        """A plain dict with ``kind`` first; JSON- and YAML-safe."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CompressionConfig":
        """Build the right config from a dict holding ``kind`` (or call on a subclass without it)."""
        data = dict(data)
        kind = data.pop("kind", None) or cls.kind
        if not kind:
            raise HFCompressError(f"a recipe step needs a 'kind' (one of {', '.join(config_kinds())})")
        target = _CONFIG_REGISTRY.get(kind)
        if target is None:
            raise HFCompressError(f"unknown compression method {kind!r}; known methods: {', '.join(config_kinds())}")
        names = {f.name for f in dataclasses.fields(target)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise HFCompressError(
                f"{target.__name__} has no option {', '.join(map(repr, unknown))}; valid options: {', '.join(sorted(names))}"
            )
        return target(**data)

    def describe(self) -> str:
        """One short human line for logs and cards, e.g. ``gptq(bits=4, group_size=64)``."""
        defaults = type(self)()
        changed = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(defaults, f.name)
        ]
        return f"{self.kind}({', '.join(changed)})"


# --------------------------------------------------------------------------------------------------------
# Shared checks


def _check_bits(bits: int, allowed: Sequence[int], method: str) -> None:
    if bits not in allowed:
        raise HFCompressError(
            f"{method} does not support bits={bits}; use one of {', '.join(map(str, allowed))}"
        )


def _check_group_size(group_size: Any) -> None:
    if group_size in (None, "auto"):
        return
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size <= 0 and group_size != -1:
        raise HFCompressError(
            f"group_size={group_size!r} is not valid; use a positive integer such as 64 or 128, "
            "None (-1) for one scale per output channel, or 'auto'"
        )


# Weight observers (how each group's scale and zero point are chosen), by our name -> llm-compressor's.
OBSERVERS = {"minmax": None, "mse": "memoryless_mse", "imatrix_mse": "imatrix_mse"}


def _check_observer(observer: str) -> None:
    if observer not in OBSERVERS:
        raise HFCompressError(f"observer={observer!r} is not valid; use one of {', '.join(OBSERVERS)}")


def _check_fraction(name: str, value: float, low: float = 0.0, high: float = 1.0) -> None:
    if not isinstance(value, (int, float)) or not (low < value < high):
        raise HFCompressError(f"{name}={value!r} is out of range; use a number strictly between {low} and {high}")


def target_linear_layers(model: Any, ignore: Iterable[str] = ("lm_head",)) -> dict[str, Any]:
    """The ``torch.nn.Linear`` layers a weight-compression step acts on: name -> module, ``ignore`` left out.

    A name is ignored when it equals an entry, ends with ``.entry``, or matches an ``re:`` pattern.

    Example:
        >>> layers = target_linear_layers(model)            # doctest: +SKIP
        >>> sorted(layers)[:1]
        ['model.layers.0.mlp.down_proj']
    """
    import torch

    ignore = list(ignore)
    out = {}
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if any(_name_matches(name, pattern) for pattern in ignore):
            continue
        out[name] = module
    return out


def _name_matches(name: str, pattern: str) -> bool:
    if pattern.startswith("re:"):
        return re.search(pattern[3:], name) is not None
    return name == pattern or name.endswith("." + pattern)


def resolve_group_size(group_size: Any, model: Any, ignore: Iterable[str] = ("lm_head",)) -> int | None:
    """Turn ``group_size`` into a size that divides every target layer's input width (None = per channel).

    ``"auto"`` picks 128 when it divides every layer, else the largest of 64 and 32 that does, else per
    channel. An explicit size that does not divide a layer raises an error naming the width and the sizes
    that would work (e.g. SmolLM2's width 576 takes 64 or 192, not 128).

    Example:
        >>> resolve_group_size("auto", smollm2)              # doctest: +SKIP
        64
    """
    if group_size in (None, -1):
        return None
    widths = sorted({m.in_features for m in target_linear_layers(model, ignore).values()})
    if not widths:
        raise HFCompressError("the model has no Linear layers to quantize (check 'ignore')")
    if group_size == "auto":
        for candidate in (128, 64, 32):
            if all(w % candidate == 0 for w in widths):
                return candidate
        return None
    bad = [w for w in widths if w % group_size]
    if bad:
        from math import gcd
        from functools import reduce

        common = reduce(gcd, widths)
        working = [d for d in (16, 32, 64, 96, 128, 192, 256) if common % d == 0]
        hint = f"use group_size={' or '.join(map(str, working))}" if working else "use group_size=None (per channel)"
        raise HFCompressError(
            f"group_size={group_size} does not divide layer width {bad[0]} of this model; {hint}"
        )
    return group_size


# --------------------------------------------------------------------------------------------------------
# Quantization


@register_config("rtn")
@dataclass
class RTNConfig(CompressionConfig):
    """Round-to-nearest weight-only quantization (int8 or int4); data-free and the fastest method.

    Defaults: 8-bit per output channel is near lossless; at 4 bits, asymmetric groups of 128 (or the
    largest size that divides the model's layers) measured far better than symmetric on SmolLM2.

    Example:
        >>> from hfcompress import RTNConfig
        >>> RTNConfig(bits=4).describe()
        'rtn(bits=4)'
    """

    bits: int = _help("Weight bits: 8 or 4.", default=8)
    group_size: Union[int, str, None] = _help(
        "Weights per quantization scale; None = one per output channel, 'auto' = 128 or the largest size "
        "that divides every layer (None for 8-bit).",
        default="auto",
    )
    symmetric: bool = _help("Symmetric (no zero point) quantization; asymmetric keeps more quality at 4 bits.", default=False)
    observer: str = _help(
        "How each group's scale is chosen: 'minmax' (data-free), 'mse' (clipping search), or 'imatrix_mse' "
        "(clipping search weighted by calibration activations; needs calibration data, measured best at 4 bits).",
        default="minmax",
    )
    ignore: list[str] = _help("Layers left in full precision (names, suffixes or 're:' patterns).", default_factory=lambda: ["lm_head"])

    def validate(self) -> None:
        _check_bits(self.bits, (4, 8), "RTN")
        _check_group_size(self.group_size)
        _check_observer(self.observer)

    @property
    def needs_calibration(self) -> bool:
        return self.observer == "imatrix_mse"

    def validate_for_model(self, model: Any) -> None:
        resolve_group_size(self.effective_group_size_hint, model, self.ignore)

    @property
    def effective_group_size_hint(self) -> Any:
        """8-bit 'auto' means per channel (groups buy nothing measurable at 8 bits)."""
        return None if (self.group_size == "auto" and self.bits == 8) else self.group_size


@register_config("gptq")
@dataclass
class GPTQConfig(CompressionConfig):
    """GPTQ weight quantization: rounds each layer's weights while correcting the error with calibration data.

    Example:
        >>> from hfcompress import GPTQConfig
        >>> GPTQConfig(bits=4, group_size=64).to_dict()["group_size"]
        64
    """

    bits: int = _help("Weight bits: 4 or 8.", default=4)
    group_size: Union[int, str, None] = _help(
        "Weights per quantization scale; None = per output channel, 'auto' = 128 or the largest size that "
        "divides every layer.",
        default="auto",
    )
    symmetric: bool = _help("Symmetric quantization (no zero point). Asymmetric measured far better on small models.", default=False)
    observer: str = _help(
        "How each group's scale is chosen: 'imatrix_mse' (clipping search weighted by calibration activations; "
        "measured best), 'mse', or 'minmax' (llm-compressor's default).",
        default="imatrix_mse",
    )
    actorder: Union[str, None] = _help("Activation ordering: None, 'static' or 'weight' (llm-compressor names).", default=None)
    dampening_frac: float = _help("Hessian dampening as a fraction of its mean diagonal.", default=0.01)
    block_size: int = _help("Columns quantized together before the error is propagated.", default=128)
    ignore: list[str] = _help("Layers left in full precision.", default_factory=lambda: ["lm_head"])

    def validate(self) -> None:
        _check_bits(self.bits, (4, 8), "GPTQ")
        _check_group_size(self.group_size)
        _check_observer(self.observer)
        if self.actorder not in (None, "static", "weight"):
            raise HFCompressError(f"actorder={self.actorder!r} is not valid; use None, 'static' or 'weight'")
        _check_fraction("dampening_frac", self.dampening_frac)
        if self.block_size <= 0:
            raise HFCompressError(f"block_size={self.block_size} must be a positive integer such as 128")

    def validate_for_model(self, model: Any) -> None:
        resolve_group_size(self.group_size, model, self.ignore)

    @property
    def needs_calibration(self) -> bool:
        return True


@register_config("awq")
@dataclass
class AWQConfig(CompressionConfig):
    """AWQ: activation-aware scaling of salient weight channels, then 4-bit weight quantization.

    Example:
        >>> from hfcompress import AWQConfig
        >>> AWQConfig(group_size=64).bits
        4
    """

    bits: int = _help("Weight bits: 4 (AWQ's format) or 8.", default=4)
    group_size: Union[int, str, None] = _help(
        "Weights per quantization scale; 'auto' = 128 or the largest size that divides every layer.", default="auto"
    )
    symmetric: bool = _help("Symmetric quantization; AWQ is designed around asymmetric (zero-point) groups.", default=False)
    duo_scaling: bool = _help("Search scales using both activations and weights (AWQ's default).", default=True)
    grid_points: int = _help(
        "Scale candidates tried per layer group in AWQ's search (llm-compressor's n_grid); the search time grows with it.",
        default=20,
    )
    ignore: list[str] = _help("Layers left in full precision.", default_factory=lambda: ["lm_head"])

    def validate(self) -> None:
        _check_bits(self.bits, (4, 8), "AWQ")
        _check_group_size(self.group_size)
        if self.grid_points < 2:
            raise HFCompressError(f"grid_points={self.grid_points} must be at least 2 (20 is AWQ's default)")

    def validate_for_model(self, model: Any) -> None:
        resolve_group_size(self.group_size, model, self.ignore)

    @property
    def needs_calibration(self) -> bool:
        return True


# --------------------------------------------------------------------------------------------------------
# Pruning, low rank, distillation


_PRUNE_METHODS = ("magnitude", "wanda", "sparsegpt")


@register_config("prune")
@dataclass
class PruneConfig(CompressionConfig):
    """Unstructured or N:M weight pruning of Linear layers (magnitude, Wanda or SparseGPT).

    Example:
        >>> from hfcompress import PruneConfig
        >>> PruneConfig(method="sparsegpt", pattern="2:4").sparsity
        0.5
    """

    method: str = _help("Which weights go: 'magnitude' (data-free), 'wanda' or 'sparsegpt' (use calibration data).", default="wanda")
    sparsity: float = _help("Fraction of weights set to zero in each pruned layer (0 < s < 1). For N:M patterns it is 1 - N/M.", default=0.5)
    pattern: str = _help("'unstructured' or an N:M pattern such as '2:4' or '4:8'.", default="unstructured")
    ignore: list[str] = _help("Layers left dense.", default_factory=lambda: ["lm_head"])
    dampening_frac: float = _help("SparseGPT only: Hessian dampening as a fraction of its mean diagonal.", default=0.01)
    block_size: int = _help("SparseGPT only: columns pruned together before the error is propagated.", default=128)

    def validate(self) -> None:
        if self.block_size <= 0:
            raise HFCompressError(f"block_size={self.block_size} must be a positive integer such as 128")
        _check_fraction("dampening_frac", self.dampening_frac)
        if self.method not in _PRUNE_METHODS:
            raise HFCompressError(f"unknown pruning method {self.method!r}; use one of {', '.join(_PRUNE_METHODS)}")
        if self.pattern != "unstructured":
            n, m = self.nm
            if not (0 < n < m):
                raise HFCompressError(f"pattern={self.pattern!r} is not valid; N:M needs 0 < N < M, e.g. '2:4'")
            # An N:M pattern fixes the sparsity: the default (0.5) is replaced by it, anything else is a conflict.
            implied = 1 - n / m
            if abs(self.sparsity - implied) > 1e-9 and abs(self.sparsity - 0.5) > 1e-9:
                raise HFCompressError(
                    f"pattern {self.pattern} means sparsity {implied:g}, but sparsity={self.sparsity!r} was asked; "
                    "drop sparsity or use pattern='unstructured'"
                )
            self.sparsity = implied
        _check_fraction("sparsity", self.sparsity)

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


_STRUCTURED_TARGETS = ("heads", "neurons", "layers")


@register_config("structured_prune")
@dataclass
class StructuredPruneConfig(CompressionConfig):
    """Remove whole attention heads (KV groups for GQA), MLP neurons or decoder layers; shapes really shrink.

    Example:
        >>> from hfcompress import StructuredPruneConfig
        >>> StructuredPruneConfig(target="neurons", ratio=0.25).importance
        'activation'
    """

    target: str = _help("'heads', 'neurons' or 'layers'.", default="neurons")
    ratio: float = _help("Fraction of the target units removed (0 < r < 1).", default=0.25)
    importance: str = _help("How units are ranked: 'magnitude' (weights only) or 'activation' (calibration data).", default="activation")
    count: Union[int, None] = _help(
        "Number of units removed (per layer for heads/neurons, in total for layers); overrides ratio when set.", default=None
    )

    def validate(self) -> None:
        if self.target not in _STRUCTURED_TARGETS:
            raise HFCompressError(f"unknown structured target {self.target!r}; use one of {', '.join(_STRUCTURED_TARGETS)}")
        if self.count is not None and (not isinstance(self.count, int) or isinstance(self.count, bool) or self.count <= 0):
            raise HFCompressError(f"count={self.count!r} must be a positive integer (units removed), or None to use ratio")
        if self.importance not in ("magnitude", "activation"):
            raise HFCompressError(f"importance={self.importance!r} is not valid; use 'magnitude' or 'activation'")
        _check_fraction("ratio", self.ratio)

    def validate_for_model(self, model: Any) -> None:
        from .methods.structured import plan_removal

        plan_removal(model, self)

    @property
    def needs_calibration(self) -> bool:
        return self.importance == "activation"


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

    rank: Union[int, float, None] = _help("Kept rank: an integer, or a float in (0, 1) as a fraction of full rank.", default=None)
    energy: Union[float, None] = _help("Keep the smallest rank whose singular values hold this fraction of the energy.", default=0.95)
    targets: list[str] = _help("Layer name suffixes to factor.", default_factory=lambda: ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"])
    activation_aware: bool = _help(
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
                _check_fraction("rank", self.rank)
            elif not isinstance(self.rank, int) or self.rank <= 0:
                raise HFCompressError(f"rank={self.rank!r} must be a positive integer or a fraction in (0, 1)")
        if self.energy is not None:
            _check_fraction("energy", self.energy, 0.0, 1.0 + 1e-9)
        if not self.targets:
            raise HFCompressError("LowRankConfig.targets is empty; name layers such as 'mlp.up_proj'")

    def validate_for_model(self, model: Any) -> None:
        from .methods.lowrank import check_low_rank_targets

        check_low_rank_targets(model, self)

    @property
    def needs_calibration(self) -> bool:
        return self.activation_aware


@register_config("distill")
@dataclass
class DistillConfig(CompressionConfig):
    """Knowledge distillation of the student (the model so far) from a teacher on soft targets.

    Example:
        >>> from hfcompress import DistillConfig
        >>> DistillConfig(steps=200, alpha=0.5, temperature=2.0).loss
        'forward_kl'
    """

    teacher: Union[str, None] = _help("Teacher model (Hub id or folder); None = the base model of this run.", default=None)
    student: Union[str, dict, None] = _help(
        "None = the model produced by the previous steps; a model id/folder; or a dict of config overrides "
        "(e.g. {'num_hidden_layers': 12}) for a smaller student initialised from the teacher.",
        default=None,
    )
    alpha: float = _help("Weight of the next-token cross-entropy; 1 - alpha goes to the KL term.", default=0.5)
    temperature: float = _help("Softmax temperature of the soft targets (the KL term is scaled by T^2).", default=2.0)
    loss: str = _help("'forward_kl', 'reverse_kl' or 'jsd' (generalized Jensen-Shannon).", default="forward_kl")
    jsd_beta: float = _help("Teacher weight of the mixture in loss='jsd' (0 < beta < 1; 0.5 = symmetric JSD).", default=0.5)
    steps: int = _help("Optimizer steps.", default=200)
    learning_rate: float = _help("Peak learning rate (AdamW, linear warm-up then cosine decay).", default=5e-5)
    batch_size: int = _help("Sequences per optimizer step (before gradient accumulation).", default=4)
    gradient_accumulation_steps: int = _help("Micro-batches accumulated per optimizer step.", default=1)
    seq_len: int = _help("Tokens per training sequence.", default=256)
    data: Union[str, list, None] = _help(
        "Training text: None = the calibration text; 'synthetic' = generated by the teacher; a file, "
        "datasets id or list of strings; prompt/response pairs (list of dicts or .jsonl) for task_specific.",
        default=None,
    )
    task_specific: bool = _help(
        "Distil only on the responses of prompt/response pairs (loss masked to response tokens); needs pairs in "
        "data, or data='synthetic'.",
        default=False,
    )
    prompts: Union[str, list, None] = _help(
        "Prompts the teacher answers when data='synthetic' (file, datasets id or list); None = openings of the "
        "calibration texts.",
        default=None,
    )
    num_synthetic: int = _help("How many synthetic examples the teacher writes (data='synthetic').", default=256)
    max_new_tokens: int = _help("Tokens the teacher writes per synthetic example.", default=128)
    warmup: float = _help("Learning-rate warm-up: a fraction of the steps (< 1) or a number of steps.", default=0.05)
    freeze_embeddings: bool = _help("Keep the token embeddings (and a tied lm_head) fixed.", default=False)
    eval_every: int = _help("Evaluate student perplexity and teacher agreement every N steps (0 = off).", default=50)
    eval_tokens: int = _help("Held-out tokens for those evaluations (and before/after numbers).", default=2048)
    save_every: int = _help("Write a checkpoint every N steps (the last one is kept) so a stopped run resumes.", default=100)
    run_dir: Union[str, None] = _help(
        "Folder for checkpoints; kept after the run. None = a folder in the hfcompress cache keyed by the run, "
        "deleted when the run finishes.",
        default=None,
    )
    resume: bool = _help("Continue from the last checkpoint in the run folder when there is one.", default=True)
    seed: int = _help("Seed for data order, sampling and initialisation.", default=0)

    def validate(self) -> None:
        if not (0.0 <= self.alpha <= 1.0):
            raise HFCompressError(f"alpha={self.alpha!r} is out of range; use a number from 0 to 1")
        if self.temperature <= 0:
            raise HFCompressError(f"temperature={self.temperature!r} must be positive, e.g. 2.0")
        if self.loss not in ("forward_kl", "reverse_kl", "jsd"):
            raise HFCompressError(f"loss={self.loss!r} is not valid; use 'forward_kl', 'reverse_kl' or 'jsd'")
        for name in ("steps", "batch_size", "gradient_accumulation_steps", "seq_len"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise HFCompressError(f"{name}={getattr(self, name)!r} must be a positive integer")
        if self.learning_rate <= 0:
            raise HFCompressError(f"learning_rate={self.learning_rate!r} must be positive, e.g. 5e-5")
        _check_fraction("jsd_beta", self.jsd_beta)
        for name in ("num_synthetic", "max_new_tokens", "eval_tokens", "save_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise HFCompressError(f"{name}={getattr(self, name)!r} must be a positive integer")
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise HFCompressError(f"eval_every={self.eval_every!r} must be 0 (off) or a positive integer")
        if not isinstance(self.warmup, (int, float)) or self.warmup < 0 or (isinstance(self.warmup, float) and 1 <= self.warmup and not self.warmup.is_integer()):
            raise HFCompressError(f"warmup={self.warmup!r} must be a fraction below 1 or a whole number of steps")
        if self.student is not None and not isinstance(self.student, (str, dict)):
            raise HFCompressError(
                f"student={self.student!r} is not valid; use None (the model so far), 'self', a model id/folder, "
                "or a dict such as {'num_hidden_layers': 12}"
            )
        if isinstance(self.student, dict):
            allowed = ("num_hidden_layers", "intermediate_size")
            unknown = sorted(set(self.student) - set(allowed))
            if unknown or not self.student:
                raise HFCompressError(
                    f"student overrides {unknown or '{}'} are not supported; a dict student sets "
                    f"{' and/or '.join(allowed)} (pass a model id or folder for other shapes)"
                )
            for key, value in self.student.items():
                if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                    raise HFCompressError(f"student {key}={value!r} must be a positive integer")
        if self.task_specific and self.data is None:
            raise HFCompressError(
                "task_specific=True needs data= prompt/response pairs (a list of dicts or a .jsonl file) or data='synthetic'"
            )
        if self.prompts is not None and self.data != "synthetic":
            raise HFCompressError("prompts= is used only with data='synthetic'; set data='synthetic' or drop prompts")

    @property
    def needs_calibration(self) -> bool:
        return self.data is None or (self.data == "synthetic" and self.prompts is None)

    def check_data_is_present(self) -> None:
        """Raise when ``data``/``prompts`` only hold the record of a list given in Python (a reloaded recipe)."""
        for name in ("data", "prompts"):
            if isinstance(getattr(self, name), str) and _PLACEHOLDER.fullmatch(getattr(self, name)):
                raise HFCompressError(
                    f"{name}= was a list given in Python when this recipe was recorded (only its size and hash were kept); "
                    f"pass the texts again, e.g. DistillConfig({name}=[...]) or a file"
                )

    def to_dict(self) -> dict[str, Any]:
        """As the base class, but texts given in Python are recorded by count and hash, not copied into
        hfcompress.json, recipe.yaml and results (which get published): they are the user's data."""
        out = super().to_dict()
        for name in ("data", "prompts"):
            if isinstance(out[name], list):
                out[name] = _list_placeholder(out[name])
        return out


_PLACEHOLDER = re.compile(r"<\d+ items given in Python, sha256:[0-9a-f]+>")


def _list_placeholder(items: list[Any]) -> str:
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(items, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"<{len(items)} items given in Python, sha256:{digest}>"


# --------------------------------------------------------------------------------------------------------
# Recipes and YAML

Recipe = list  # a list of CompressionConfig, applied in order


def as_recipe(recipe: Any) -> list[CompressionConfig]:
    """Normalise what users pass as ``recipe=``: one config, a list, dicts, a YAML path or None.

    Example:
        >>> from hfcompress import RTNConfig
        >>> as_recipe(RTNConfig()) == [RTNConfig()]
        True
    """
    if recipe is None:
        return []
    if isinstance(recipe, CompressionConfig):
        return [recipe]
    if isinstance(recipe, (str, Path)):
        return load_recipe(recipe)
    if isinstance(recipe, dict):
        return [_step_from_yaml(recipe)]
    if isinstance(recipe, (list, tuple)):
        steps = []
        for step in recipe:
            if isinstance(step, CompressionConfig):
                steps.append(step)
            elif isinstance(step, dict):
                steps.append(_step_from_yaml(step))
            else:
                raise HFCompressError(f"a recipe step must be a config such as hfc.GPTQConfig(...), not {type(step).__name__}")
        return steps
    raise HFCompressError(f"recipe must be a config, a list of configs or a YAML path, not {type(recipe).__name__}")


QUANTIZATION_KINDS = ("rtn", "gptq", "awq")


def check_recipe_order(recipe: Sequence[CompressionConfig]) -> None:
    """Refuse recipes whose steps cannot follow each other.

    A quantization step must come last: pruning, structured pruning, low-rank factoring or training
    would change weights that already carry quantization scales (and the saved format would drop or
    break them). Prune, then quantize; not the other way round.

    Example:
        >>> from hfcompress import GPTQConfig, PruneConfig
        >>> check_recipe_order([PruneConfig(pattern="2:4"), GPTQConfig()])   # fine: quantize last
    """
    for i, step in enumerate(recipe[:-1]):
        if step.kind in QUANTIZATION_KINDS:
            later = recipe[i + 1]
            raise HFCompressError(
                f"recipe step {i + 1} ({step.kind}) quantizes, so nothing can follow it, but step {i + 2} is {later.kind}; "
                f"put quantization last (e.g. [{later.kind}, {step.kind}])"
            )


def _step_from_yaml(step: dict[str, Any]) -> CompressionConfig:
    # Two spellings are accepted: {"gptq": {"bits": 4}} (compact) and {"kind": "gptq", "bits": 4}.
    if "kind" not in step and len(step) == 1:
        (kind, options), = step.items()
        return CompressionConfig.from_dict({"kind": kind, **(options or {})})
    return CompressionConfig.from_dict(step)


def recipe_to_dicts(recipe: Sequence[CompressionConfig]) -> list[dict[str, Any]]:
    """The recipe as a list of ``{"kind": ..., **options}`` dicts (what hfcompress.json stores)."""
    return [step.to_dict() for step in recipe]


def recipe_to_yaml(recipe: Sequence[CompressionConfig]) -> str:
    """YAML text for a recipe, in the compact ``- gptq: {bits: 4, ...}`` form.

    Example:
        >>> from hfcompress import GPTQConfig
        >>> print(recipe_to_yaml([GPTQConfig(bits=4, group_size=64)]).splitlines()[0])
        recipe:
    """
    steps = []
    for step in recipe:
        options = step.to_dict()
        kind = options.pop("kind")
        steps.append({kind: options})
    return yaml.safe_dump({"recipe": steps}, sort_keys=False)


def recipe_from_yaml(text: str) -> list[CompressionConfig]:
    """Parse YAML text holding one recipe (a list, or a mapping with a ``recipe`` key)."""
    data = _safe_load(text, "recipe")
    if isinstance(data, dict) and "recipe" in data:
        data = data["recipe"]
    if isinstance(data, dict) and ("variants" in data or "recipes" in data):
        raise HFCompressError("this YAML holds a grid of named recipes; use load_grid / 'hfcompress grid' for it")
    if not isinstance(data, list):
        raise HFCompressError("a recipe YAML must be a list of steps or a mapping with a 'recipe:' list")
    return as_recipe(data)


def load_recipe(path: str | Path) -> list[CompressionConfig]:
    """Read one recipe from a YAML file.

    Example:
        >>> recipe = load_recipe("recipes/gptq-4bit.yaml")        # doctest: +SKIP
    """
    return recipe_from_yaml(_read_text(path))


def load_grid(path: str | Path) -> dict[str, list[CompressionConfig]]:
    """Read the named recipes of a grid YAML: ``variants: {name: [steps...], ...}`` (``recipes:`` is accepted too).

    A variant may also be ``{recipe: [steps], num_samples: N, seq_len: L}``; this returns its recipe only.
    Use ``hfcompress.grid.parse_grid`` for the grid's and the variants' calibration settings, which
    ``run_grid`` and ``hfcompress grid`` read from the same file.

    Example:
        >>> grid = load_grid("grid.yaml")                            # doctest: +SKIP
        >>> list(grid)
        ['rtn-int8', 'gptq-4bit']
    """
    from .grid import parse_grid

    variants, _ = parse_grid(Path(path))
    return {name: list(variant.recipe) for name, variant in variants.items()}


def grid_to_yaml(grid: dict[str, Sequence[CompressionConfig]]) -> str:
    """YAML text for a grid of named recipes (the inverse of ``load_grid``).

    Example:
        >>> print(grid_to_yaml({"rtn-int8": [RTNConfig(bits=8)]}).splitlines()[0])
        variants:
    """
    from .grid import GridVariant, grid_yaml

    return grid_yaml({name: GridVariant(name, list(recipe)) for name, recipe in grid.items()}, {})


def _read_text(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise HFCompressError(f"recipe file {str(path)!r} not found")
    return path.read_text(encoding="utf-8")


def _safe_load(text: str, what: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else "syntax error"
        raise HFCompressError(f"the {what} YAML could not be parsed: {first}") from None
