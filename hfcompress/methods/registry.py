"""The adapter contract, the method registry, and how each method presents itself.

An adapter is small (as transformers' ``HfQuantizer`` is): it declares which config kinds it serves, which
packages it needs and whether it needs a GPU; ``compress`` translates our config into the backend's, calls the
backend and returns a ``StepResult``; ``save`` writes the format the backend produces. The registry checks the
environment before any work starts and fails with one line naming the pip extra.

A method family registers with one call (as peft's ``register_peft_method``)::

    register_method(QuantizationPresentation("gptq"), config=GPTQConfig, adapters=[LLMCompressorQuantization])

Its ``MethodPresentation`` tells the card, the Space, the comparison table and the CLI what the method is
called, which family it belongs to, the sentence a card writes about a step, its tags and its honest limits;
a kind nobody registered (a recipe from a newer version) still renders through the generic presentation.

Example:
    >>> from hfcompress.methods.registry import presentation_for, get_adapter
    >>> from hfcompress import GPTQConfig
    >>> presentation_for("gptq").family, presentation_for("gptq").label({"kind": "gptq", "bits": 4, "group_size": 64})
    ('quantization', 'GPTQ 4-bit g64')
    >>> get_adapter(GPTQConfig()).name
    'llmcompressor'
    >>> presentation_for("future_method").family
    'other'
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Sequence

from ..config import CompressionConfig
from ..errors import BackendUnavailableError, HFCompressError

# ---------------------------------------------------------------------------------------------------------
# What a step receives and returns


class AfterStepHook:
    """Something a step leaves for the steps after it, which the orchestrator applies after each of them.

    Pruning uses it to keep its mask: a later GPTQ step refills pruned slots while it compensates rounding
    error, and a later training step would refill them with gradient updates. ``restore`` puts the invariant
    back after a step and says what it did; ``hold_during_training`` keeps it while a trainer updates weights.
    """

    #: The key under which ``restore``'s report is recorded in the later step's info.
    info_key: ClassVar[str] = "after_step"

    def restore(self, model: Any) -> dict[str, Any] | None:
        """Re-establish the invariant on ``model`` after a later step; a report for the step info, or None."""
        return None

    def hold_during_training(self, model: Any) -> Callable[[], None]:
        """Keep the invariant while ``model`` trains; returns the function that stops holding it."""
        return lambda: None


@dataclass
class StepContext:
    """What the orchestrator hands every step besides the model: nothing travels as attributes on the model.

    Attributes:
        calibration: ``hfcompress.data.CalibrationData`` (None for a recipe of data-free steps).
        source: the ``ModelSource`` of the run's base model (distillation's default teacher reloads it).
        holds: hooks left by earlier steps (sparsity masks) that a training step must respect.
        progress: whether to show progress bars.
        save_model: writes a model in the format the recipe's steps so far produce (a step that re-reads the
            model from disk, such as GGUF export, uses it).
    """

    calibration: Any = None
    source: Any = None
    holds: list[AfterStepHook] = field(default_factory=list)
    progress: bool = True
    save_model: Callable[[Any, Path], None] = lambda model, out_dir: type(model).save_pretrained(model, out_dir, safe_serialization=True)


@dataclass
class StepResult:
    """What ``compress`` returns: the model (the same object or a new one), what it did, and what it leaves.

    Attributes:
        model: the compressed model.
        info: JSON-safe facts for hfcompress.json and the card (measured sparsity, ranks, losses...).
        hold: an ``AfterStepHook`` kept for every later step (None when the step leaves nothing to keep).
        save: a writer for this step's format when it needs state the adapter holds (e.g. GPTQModel's own
            wrapper); None means ``adapter.save``.
        load: what hfcompress.json's ``load`` section says beyond the defaults (e.g. the GGUF file's name).
    """

    model: Any
    info: dict[str, Any] = field(default_factory=dict)
    hold: AfterStepHook | None = None
    save: Callable[[Any, Path], None] | None = None
    load: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# Adapters

_ADAPTERS: list["CompressionAdapter"] = []
# Import name -> distribution name, where they differ.
_DIST_NAMES = {"auto_gptq": "auto-gptq", "awq": "autoawq", "torch_pruning": "torch-pruning",
               "compressed_tensors": "compressed-tensors", "llama_cpp": "llama-cpp-python"}


class CompressionAdapter:
    """Base class of backend adapters. Subclasses set the class attributes and implement ``compress``.

    Attributes:
        name: the backend's name, as users pass it in ``backend=``.
        methods: config kinds served (``"gptq"``, ``"prune"``, ...).
        required_packages: import names that must be installed.
        extra: the pip extra that installs them (named in the error message).
        needs_gpu: whether a CUDA device is required.
        save_format: what ``save`` writes (``"safetensors"``, ``"compressed-tensors"``, ``"gptq"``, ...).
        load_requires: pip packages a user needs to load the saved folder in plain transformers.
        priority: lower runs first when ``backend="auto"``.
        compresses_layer_by_layer: whether ``compress`` works on a model whose weights wait on disk (``max_memory``):
            the backend brings one decoder layer into memory at a time.
    """

    name: ClassVar[str] = ""
    methods: ClassVar[tuple[str, ...]] = ()
    required_packages: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    needs_gpu: ClassVar[bool] = False
    save_format: ClassVar[str] = "safetensors"
    load_requires: ClassVar[tuple[str, ...]] = ()
    priority: ClassVar[int] = 100
    #: Whether the saved folder gets the tokenizer's files (a GGUF file carries its own tokenizer).
    writes_tokenizer: ClassVar[bool] = True
    compresses_layer_by_layer: ClassVar[bool] = False

    # -- environment -------------------------------------------------------------------------------
    def unavailable_reason(self) -> str | None:
        """None when this backend can run here, else a short reason with what to install."""
        missing = [p for p in self.required_packages if importlib.util.find_spec(p) is None]
        if missing:
            extra = f"pip install 'hfcompress[{self.extra}]'" if self.extra else f"pip install {' '.join(missing)}"
            return f"backend {self.name!r} needs {', '.join(missing)}: {extra}"
        if self.needs_gpu:
            import torch

            if not torch.cuda.is_available():
                return f"backend {self.name!r} needs a CUDA GPU and none is visible"
        return None

    def available(self) -> bool:
        """Whether the backend's packages are installed and its hardware is present."""
        return self.unavailable_reason() is None

    def supports(self, config: CompressionConfig) -> bool:
        """Whether this adapter can run this particular config (e.g. one pruning method but not another)."""
        return config.kind in self.methods

    def versions(self) -> dict[str, str]:
        """Installed versions of the backend's distributions, recorded in hfcompress.json and results."""
        out = {}
        for package in self.required_packages:
            dist = _DIST_NAMES.get(package, package)
            try:
                out[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                pass
        return out

    # -- work --------------------------------------------------------------------------------------
    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, context: StepContext) -> StepResult:
        """Apply ``config`` to ``model`` (in place where the backend does) and return a ``StepResult``."""
        raise NotImplementedError

    def save(self, model: Any, out_dir: Path) -> None:
        """Write the model's weights and config.json into ``out_dir`` (tokenizer and cards are written by the caller).

        transformers' own ``save_pretrained`` (the class method): an earlier llm-compressor step leaves the
        instance's ``save_pretrained`` wrapped with its compressed save, which a dense model does not need.
        """
        type(model).save_pretrained(model, out_dir, safe_serialization=True)

    def expect(self, config: CompressionConfig, *types: type) -> None:
        """One-line error when ``config`` is not one this adapter translates (instead of an ``assert``)."""
        if not isinstance(config, types):
            raise HFCompressError(f"backend {self.name!r} ({type(self).__name__}) cannot run {config.describe()}")


class PlainSave(CompressionAdapter):
    """What saves a model no adapter touched (the base re-saved, a reloaded variant): transformers' own format."""

    name = "transformers"


def register_adapter(cls: type[CompressionAdapter]) -> type[CompressionAdapter]:
    """Class decorator that registers an adapter under its ``name``; a duplicate (name, method) is an error."""
    if not cls.name or not cls.methods:
        raise ValueError(f"{cls.__name__} must set name and methods")
    for other in _ADAPTERS:
        if type(other).__qualname__ == cls.__qualname__ and type(other).__module__ == cls.__module__:
            return cls  # re-import of the same module
        if other.name == cls.name and set(other.methods) & set(cls.methods):
            raise ValueError(f"backend {cls.name!r} already has an adapter for {sorted(set(other.methods) & set(cls.methods))}")
    _ADAPTERS.append(cls())
    return cls


def list_adapters() -> list[CompressionAdapter]:
    """Every registered adapter, in the order ``backend="auto"`` tries them."""
    return sorted(_ADAPTERS, key=lambda a: (a.priority, a.name))


def get_adapter(config: CompressionConfig, backend: str = "auto") -> CompressionAdapter:
    """The adapter that will run ``config``: the named backend, or the first available one for ``"auto"``.

    Raises a one-line error naming what to install when nothing can run it.
    """
    adapters = list_adapters()
    candidates = [a for a in adapters if a.supports(config)]
    if not candidates:
        raise HFCompressError(f"no backend implements {config.describe()}")
    if backend and backend != "auto":
        named = [a for a in candidates if a.name == backend]
        if not named:
            known = sorted({a.name for a in adapters})
            if backend not in known:
                raise HFCompressError(f"unknown backend {backend!r}; known backends: {', '.join(known)}")
            raise HFCompressError(
                f"backend {backend!r} does not implement {config.describe()}; use one of {', '.join(sorted({a.name for a in candidates}))}"
            )
        reason = named[0].unavailable_reason()
        if reason:
            raise BackendUnavailableError(reason)
        return named[0]
    reasons = []
    for adapter in candidates:
        reason = adapter.unavailable_reason()
        if reason is None:
            return adapter
        reasons.append(reason)
    raise BackendUnavailableError(f"no installed backend can run {config.kind}: " + "; ".join(reasons))


def resolve_adapters(recipe: Sequence[CompressionConfig], backend: str = "auto") -> list[CompressionAdapter]:
    """One adapter per recipe step. A named ``backend`` runs the steps it implements; the others use ``"auto"``.

    So ``backend="gptqmodel"`` with ``[PruneConfig(method="magnitude"), GPTQConfig()]`` prunes with the
    torch adapter and quantizes with GPTQModel; a backend that implements none of the steps is an error.
    """
    if not backend or backend == "auto" or not recipe:
        return [get_adapter(step, "auto") for step in recipe]
    serves = [any(a.name == backend and a.supports(step) for a in list_adapters()) for step in recipe]
    if not any(serves):
        get_adapter(recipe[0], backend)  # raises the clear error: unknown backend, or not implementing this method
    return [get_adapter(step, backend if named else "auto") for step, named in zip(recipe, serves)]


# ---------------------------------------------------------------------------------------------------------
# Presentation


def percent(value: Any) -> str:
    """``0.5`` -> ``'50%'`` (``'?'`` when not a number)."""
    try:
        return f"{float(value) * 100:.0f}%"
    except (TypeError, ValueError):
        return "?"


class MethodPresentation:
    """How one kind of step presents itself to people: its family, labels, card sentence, tags and limits.

    Every method reads steps as plain dicts (``{"kind": ..., **options}``), as recorded in hfcompress.json, so
    a card or Space can render variants made by another version. Subclasses override what differs.

    Attributes:
        kind: the config kind.
        family: the family shown in the Space's filter and the trade-off table (``"quantization"``...).
        quantizes: whether the step stores weights as integers with scales (the card's relation is then
            ``quantized``, and zeros in its weights are rounding, not pruning).
        cli_names: ``--method`` names that build this kind, with the options each one fixes.
    """

    family: ClassVar[str] = "other"
    quantizes: ClassVar[bool] = False
    #: Whether the step zeroes weights on purpose (the variant's sparsity is then the method's, not rounding's).
    sparsifies: ClassVar[bool] = False
    #: Whether the step trains (its steps x batch x sequence length count as trained tokens in the trade-off table).
    trains: ClassVar[bool] = False
    #: Hub ``base_model_relation`` a step of this kind gives a variant (quantized beats finetune when mixed).
    relation: ClassVar[str] = "finetune"
    #: What the card's "Limitations" says once for a recipe holding this kind.
    limit_text: ClassVar[str | None] = None

    def __init__(self, kind: str, cli_names: dict[str, dict[str, Any]] | None = None) -> None:
        self.kind = kind
        self.cli_names = dict(cli_names or {kind: {}})

    def label(self, step: dict[str, Any]) -> str:
        """A short label for tables and plots, e.g. ``GPTQ 4-bit g64``."""
        return str(step.get("kind", self.kind))

    def sentence(self, step: dict[str, Any]) -> str:
        """The sentence the card writes about this step (what was done, with its settings)."""
        options = ", ".join(f"{k}={v}" for k, v in step.items() if k != "kind")
        return f"{step.get('kind', self.kind)}({options})."

    def summary(self, step: dict[str, Any]) -> str:
        """A few words for lists of sibling variants and collections, e.g. ``GPTQ 4-bit``."""
        return self.label(step)

    def tags(self, step: dict[str, Any]) -> list[str]:
        """Hub tags this step gives the variant."""
        return [str(step.get("kind", self.kind)).replace("_", "-")]

    def limits(self, step: dict[str, Any], kinds: Sequence[str]) -> list[str]:
        """Honest limits the card states for a recipe holding this step (``kinds`` are all of its kinds)."""
        return [self.limit_text] if self.limit_text else []

    def example(self) -> CompressionConfig | None:
        """The smallest working config of this kind on a tiny test model (the registry-wide test runs it)."""
        return None

    def example_model(self) -> dict[str, Any]:
        """What the tiny test model for ``example()`` needs (``hfcompress.testing.build_tiny_model`` options)."""
        return {}


_PRESENTATIONS: dict[str, MethodPresentation] = {}
_FAMILIES: list[str] = []


def register_method(presentation: MethodPresentation, *, config: type[CompressionConfig],
                    adapters: Iterable[type[CompressionAdapter]] = ()) -> None:
    """Wire one method: its config class (already registered by kind), its presentation and its adapters.

    Example:
        >>> from hfcompress.methods.registry import registered_kinds
        >>> "prune" in registered_kinds()
        True
    """
    if config.kind != presentation.kind:
        raise ValueError(f"presentation {presentation.kind!r} registered with config kind {config.kind!r}")
    existing = _PRESENTATIONS.get(presentation.kind)
    if existing is not None and type(existing).__qualname__ != type(presentation).__qualname__:
        raise ValueError(f"method {presentation.kind!r} is registered twice")
    _PRESENTATIONS[presentation.kind] = presentation
    if presentation.family not in _FAMILIES:
        _FAMILIES.append(presentation.family)
    for adapter in adapters:
        register_adapter(adapter)


def presentation_for(kind: str | None) -> MethodPresentation:
    """The presentation of ``kind``; an unknown kind gets the generic one (family ``other``), never an error."""
    return _PRESENTATIONS.get(str(kind)) or MethodPresentation(str(kind))


def registered_kinds() -> list[str]:
    """Kinds of every registered method, in registration order."""
    return list(_PRESENTATIONS)


def families() -> tuple[str, ...]:
    """Method families in registration order (the Space's filter and colours follow it)."""
    return tuple(_FAMILIES)


def step_families(recipe: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """Families of a recipe's steps, in registration order (``("base",)`` for an empty recipe).

    Example:
        >>> step_families([{"kind": "prune"}, {"kind": "gptq"}])
        ('quantization', 'pruning')
    """
    found = {presentation_for(step.get("kind")).family for step in recipe}
    if not found:
        return ("base",)
    return tuple(f for f in (*_FAMILIES, "other") if f in found)


def recipe_label(recipe: Sequence[dict[str, Any]]) -> str:
    """A recipe's short label, e.g. ``Wanda 50% + GPTQ 4-bit g64`` (``none`` when empty)."""
    return " + ".join(presentation_for(step.get("kind")).label(step) for step in recipe) or "none"


def recipe_quantizes(recipe: Sequence[dict[str, Any]]) -> bool:
    """Whether any step of the recipe stores quantized weights."""
    return any(presentation_for(step.get("kind")).quantizes for step in recipe)


def recipe_sparsifies(recipe: Sequence[dict[str, Any]]) -> bool:
    """Whether any step of the recipe zeroes weights on purpose (pruning)."""
    return any(presentation_for(step.get("kind")).sparsifies for step in recipe)


def cli_method(name: str) -> tuple[str, dict[str, Any]] | None:
    """``(kind, fixed options)`` of a ``--method`` name, or None when no method calls itself that."""
    for kind, presentation in _PRESENTATIONS.items():
        if name in presentation.cli_names:
            return kind, dict(presentation.cli_names[name])
    return None


def cli_method_names() -> list[str]:
    """Every ``--method`` name, in registration order."""
    return [name for p in _PRESENTATIONS.values() for name in p.cli_names]
