"""The base of every method config: registration by ``kind``, field type checks, ``to_dict``/``from_dict``, shared checks.

One dataclass per compression method (as peft has one config per tuner); each lives in its family's folder
under ``hfcompress/methods/`` and registers itself with ``@register_config("kind")``. A config validates
itself where it is built, so a bad value fails at once with one clear line. Recipe and grid YAML live in
``hfcompress.recipe`` and ``hfcompress.grid``.

Example:
    >>> from hfcompress import GPTQConfig, CompressionConfig
    >>> CompressionConfig.from_dict({"kind": "gptq", "bits": 4, "group_size": 64}) == GPTQConfig(bits=4, group_size=64)
    True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

from .errors import HFCompressError

_CONFIG_REGISTRY: dict[str, type["CompressionConfig"]] = {}


def register_config(kind: str):
    """Class decorator that makes a config reachable by its ``kind`` string (in YAML, CLI and hfcompress.json).

    Example:
        >>> @register_config("doc_example")
        ... @dataclass
        ... class ExampleConfig(CompressionConfig):
        ...     strength: float = option("How strong.", default=0.5)
        >>> CompressionConfig.from_dict({"kind": "doc_example", "strength": 0.2})
        ExampleConfig(strength=0.2)
    """

    def wrap(cls: type[CompressionConfig]) -> type[CompressionConfig]:
        if kind in _CONFIG_REGISTRY and _CONFIG_REGISTRY[kind].__qualname__ != cls.__qualname__:
            raise ValueError(f"config kind {kind!r} is registered twice")
        cls.kind = kind
        _CONFIG_REGISTRY[kind] = cls
        return cls

    return wrap


def config_kinds() -> list[str]:
    """The kinds of compression step that configs exist for, e.g. ``['awq', 'gptq', ...]``."""
    return sorted(k for k in _CONFIG_REGISTRY if not k.startswith("doc_"))


def config_class(kind: str) -> type["CompressionConfig"]:
    """The config class registered for ``kind`` (one-line error naming the known kinds otherwise)."""
    target = _CONFIG_REGISTRY.get(kind)
    if target is None:
        raise HFCompressError(f"unknown compression method {kind!r}; known methods: {', '.join(config_kinds())}")
    return target


def option(text: str, **kwargs: Any) -> Any:
    """A dataclass field with help text (as peft's ``metadata={"help": ...}``); the text documents the option."""
    return field(metadata={"help": text}, **kwargs)


_TYPE_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


@dataclass
class CompressionConfig:
    """Base of every method config: validation, ``to_dict``/``from_dict`` and the ``kind`` string.

    Subclasses override ``validate()`` (checks that need only the config) and ``validate_for_model()``
    (checks that need the model's shapes, run before any work starts), and set ``must_be_last`` when the
    step writes a format nothing else can edit (quantization).

    Example:
        >>> from hfcompress import RTNConfig
        >>> RTNConfig(bits=4).to_dict()["kind"]
        'rtn'
    """

    kind: ClassVar[str] = ""
    # A step whose output nothing can change afterwards (quantized weights carry scales); and why, for the error.
    must_be_last: ClassVar[bool] = False
    last_reason: ClassVar[str] = "quantizes"
    # A step that accepts a model whose weights an earlier must-be-last step produced (it re-reads them itself).
    follows_quantization: ClassVar[bool] = False
    # Peak memory of the step in units of the model's weights (the pre-flight memory check reads it).
    memory_factor: ClassVar[float] = 1.5

    def __post_init__(self) -> None:
        self._check_field_types()
        self.validate()

    def _check_field_types(self) -> None:
        # YAML and the CLI hand over strings and numbers as written; a wrong type fails here with the field's
        # name instead of deep inside a backend. A single name where a list of names is expected (``ignore:
        # lm_head``) is taken as that one name, not iterated letter by letter. NaN and infinity are never
        # a setting: a NaN temperature would train a model whose every weight is NaN.
        for f in dataclasses.fields(self):
            value, hint = getattr(self, f.name), str(f.type).replace(" ", "")
            if isinstance(value, float) and not math.isfinite(value):
                raise HFCompressError(f"{type(self).__name__}.{f.name}={value!r} must be a finite number")
            if hint == "list[str]":
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                    raise HFCompressError(f"{f.name}={value!r} must be a list of layer names, e.g. ['lm_head']")
                setattr(self, f.name, list(value))
                continue
            optional = hint.startswith(("Union[", "Optional[")) and hint.endswith(",None]") or hint.endswith("|None")
            if optional:
                hint = hint.removeprefix("Union[").removeprefix("Optional[").removesuffix(",None]").removesuffix("|None")
            allowed = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}.get(hint)
            if allowed is None or value is None and optional:
                continue
            if not isinstance(value, allowed) or (isinstance(value, bool) and hint != "bool"):
                raise HFCompressError(f"{type(self).__name__}.{f.name}={value!r} must be {_TYPE_WORDS[hint]}")

    def validate(self) -> None:
        """Raise HFCompressError for values that can never work, whatever the model."""

    def validate_for_model(self, model: Any) -> None:
        """Raise HFCompressError for values that cannot work on this model (layer widths, head counts)."""

    @property
    def needs_calibration(self) -> bool:
        """Whether this step reads calibration text (data-free methods return False)."""
        return False

    def to_dict(self) -> dict[str, Any]:
        """A plain dict with ``kind`` first; JSON- and YAML-safe (a config held in a field, such as a gradual
        pruning's ``finetune``, is written as its own dict, which ``from_dict`` of the holder reads back)."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, CompressionConfig):
                value = value.to_dict()
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def expand(self) -> list["CompressionConfig"]:
        """The steps this config runs as: itself, or several steps of its own (a gradual pruning's stages).

        The recipe keeps the config as written (saved, shown on the card, re-run by ``reproduce``); the run
        records one step per expanded config. Override to run as more than one step.
        """
        return [self]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CompressionConfig":
        """Build the right config from a dict holding ``kind`` (or call on a subclass without it)."""
        if not isinstance(data, dict):
            raise HFCompressError(f"a recipe step must be a mapping of options, not {type(data).__name__}")
        data = dict(data)
        kind = data.pop("kind", None) or cls.kind
        if not kind:
            raise HFCompressError(f"a recipe step needs a 'kind' (one of {', '.join(config_kinds())})")
        target = config_class(kind)
        names = {f.name for f in dataclasses.fields(target)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise HFCompressError(
                f"{target.__name__} has no option {', '.join(map(repr, unknown))}; valid options: {', '.join(sorted(names))}"
            )
        return target(**data)

    def describe(self) -> str:
        """One short line of the options that differ from the defaults, e.g. ``gptq(bits=4, group_size=64)``."""
        defaults = type(self)()
        changed = [
            # A config held in a field (a gradual pruning's finetune) is described the same short way.
            f"{f.name}={value.describe() if isinstance(value, CompressionConfig) else repr(value)}"
            for f in dataclasses.fields(self)
            if (value := getattr(self, f.name)) != getattr(defaults, f.name)
        ]
        return f"{self.kind}({', '.join(changed)})"


def check_recipe_order(recipe: Sequence[CompressionConfig]) -> None:
    """Refuse recipes whose steps cannot follow each other, and an empty recipe where one is being run.

    A quantization step must come last: pruning, structured pruning, low-rank factoring or training
    would change weights that already carry quantization scales (and the saved format would drop or
    break them). Prune, then quantize; not the other way round. A step that reads quantized weights
    itself (``follows_quantization``) is the exception.

    Example:
        >>> from hfcompress import GPTQConfig, PruneConfig
        >>> check_recipe_order([PruneConfig(pattern="2:4"), GPTQConfig()])   # fine: quantize last
        >>> check_recipe_order([GPTQConfig(), PruneConfig()])
        Traceback (most recent call last):
        hfcompress.errors.HFCompressError: recipe step 1 (gptq) quantizes, so nothing can follow it, but step 2 is prune; put quantization last (e.g. [prune, gptq])
    """
    for i, step in enumerate(recipe[:-1]):
        later = recipe[i + 1]
        if step.must_be_last and not later.follows_quantization:
            raise HFCompressError(
                f"recipe step {i + 1} ({step.kind}) {step.last_reason}, so nothing can follow it, but step {i + 2} is "
                f"{later.kind}; put quantization last (e.g. [{later.kind}, {step.kind}])"
            )


# --------------------------------------------------------------------------------------------------------
# Checks shared by several families


def check_bits(bits: int, allowed: Sequence[int], method: str) -> None:
    """One-line error when ``bits`` is not one of ``allowed``."""
    if bits not in allowed:
        raise HFCompressError(f"{method} does not support bits={bits}; use one of {', '.join(map(str, allowed))}")


def check_group_size(group_size: Any) -> None:
    """``group_size`` must be a positive integer, None/-1 (per channel) or 'auto'."""
    if group_size in (None, "auto"):
        return
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size <= 0 and group_size != -1:
        raise HFCompressError(
            f"group_size={group_size!r} is not valid; use a positive integer such as 64 or 128, "
            "None (-1) for one scale per output channel, or 'auto'"
        )


def check_fraction(name: str, value: float, low: float = 0.0, high: float = 1.0) -> None:
    """``value`` must lie strictly between ``low`` and ``high``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (low < value < high):
        raise HFCompressError(f"{name}={value!r} is out of range; use a number strictly between {low} and {high}")


def check_positive_ints(config: Any, *names: str) -> None:
    """Each named field of ``config`` must be a positive integer."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise HFCompressError(f"{name}={value!r} must be a positive integer")
