"""Adapters and the registry that picks one for each recipe step.

An adapter is small (as transformers' ``HfQuantizer`` is): it declares which config kinds it serves,
which packages it needs and whether it needs a GPU; ``compress`` translates our config into the
backend's and calls the backend; ``save`` writes the format the backend produces. The registry
checks the environment before any work starts and fails with one line naming the pip extra.

Example:
    >>> from hfcompress.methods.registry import register_adapter, CompressionAdapter
    >>> @register_adapter                                        # doctest: +SKIP
    ... class MyAdapter(CompressionAdapter):
    ...     name = "mybackend"
    ...     methods = ("rtn",)
    ...     def compress(self, model, tokenizer, config, calibration):
    ...         return model
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any, ClassVar

from ..config import CompressionConfig
from ..errors import BackendUnavailableError, HFCompressError

# Several adapter classes may share a backend name (e.g. llm-compressor's quantization and sparsity
# adapters live in separate files); each (name, method) pair must be unique.
_ADAPTERS: list["CompressionAdapter"] = []


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

    Example:
        >>> adapter = get_adapter(GPTQConfig(), backend="auto")        # doctest: +SKIP
        >>> adapter.name
        'llmcompressor'
    """

    name: ClassVar[str] = ""
    methods: ClassVar[tuple[str, ...]] = ()
    required_packages: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    needs_gpu: ClassVar[bool] = False
    save_format: ClassVar[str] = "safetensors"
    load_requires: ClassVar[tuple[str, ...]] = ()
    priority: ClassVar[int] = 100

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
    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, calibration: Any) -> Any:
        """Apply ``config`` to ``model`` (in place where the backend does) and return the model.

        ``calibration`` is a ``hfcompress.data.CalibrationData`` (or None for data-free steps).
        """
        raise NotImplementedError

    def save(self, model: Any, out_dir: Path) -> None:
        """Write the model's weights and config.json into ``out_dir`` (tokenizer and cards are written by the caller).

        The saved folder must load with ``transformers.AutoModelForCausalLM.from_pretrained``.
        """
        model.save_pretrained(out_dir, safe_serialization=True)


# Import name -> distribution name, where they differ.
_DIST_NAMES = {"auto_gptq": "auto-gptq", "awq": "autoawq", "torch_pruning": "torch-pruning", "compressed_tensors": "compressed-tensors"}


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
    _import_builtin_adapters()
    return sorted(_ADAPTERS, key=lambda a: (a.priority, a.name))


def get_adapter(config: CompressionConfig, backend: str = "auto") -> CompressionAdapter:
    """The adapter that will run ``config``: the named backend, or the first available one for ``"auto"``.

    Raises a one-line error naming what to install when nothing can run it.

    Example:
        >>> get_adapter(RTNConfig()).name                      # doctest: +SKIP
        'llmcompressor'
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


def resolve_adapters(recipe: list[CompressionConfig], backend: str = "auto") -> list[CompressionAdapter]:
    """One adapter per recipe step. A named ``backend`` runs the steps it implements; the others use ``"auto"``.

    So ``backend="gptqmodel"`` with ``[PruneConfig(method="magnitude"), GPTQConfig()]`` prunes with the
    torch adapter and quantizes with GPTQModel; a backend that implements none of the steps is an error.

    Example:
        >>> [a.name for a in resolve_adapters([RTNConfig()])]          # doctest: +SKIP
        ['llmcompressor']
    """
    if not backend or backend == "auto" or not recipe:
        return [get_adapter(step, "auto") for step in recipe]
    serves = [any(a.name == backend and a.supports(step) for a in list_adapters()) for step in recipe]
    if not any(serves):
        get_adapter(recipe[0], backend)  # raises the clear error: unknown backend, or not implementing this method
    return [get_adapter(step, backend if named else "auto") for step, named in zip(recipe, serves)]


def _import_builtin_adapters() -> None:
    # Importing the modules runs their @register_adapter lines; each module imports its backend lazily,
    # so listing adapters never needs the backends installed.
    from .. import methods  # noqa: F401
