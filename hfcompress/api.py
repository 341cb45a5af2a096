"""``CompressedModel``: load a model, run a recipe through the adapters, evaluate, save and push.

Thin delegations: the steps are the methods' (``hfcompress.methods``), measuring is bench's, the card and the
Hub are publish's, the folder contract is ``hfcompress.artifacts``'.

Example:
    >>> import tempfile
    >>> import hfcompress as hfc
    >>> from hfcompress.testing import build_tiny_model
    >>> folder = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    >>> cm = hfc.CompressedModel.from_pretrained(folder, recipe=hfc.PruneConfig(method="magnitude", sparsity=0.5))
    >>> cm.steps[0].info["sparsity"]
    0.5
    >>> out = cm.save_pretrained(folder.parent / "tiny-magnitude50")
    >>> hfc.CompressedModel.from_pretrained(out).recipe == cm.recipe
    True
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import numbers
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ._version import __version__
from .artifacts import MANIFEST_NAME, MANIFEST_VERSION, RECIPE_NAME, RESULTS_NAME, read_manifest, read_results_json
from .atomic import atomic_directory, fault_point, write_errors, write_json_atomic
from .bench import EvalSettings, Subject, evaluate as bench_evaluate
from .config import CompressionConfig, check_recipe_order
from .data import CalibrationData, load_calibration
from .environment import environment_info, show_progress
from .errors import HFCompressError
from .loading import HUB_ID, ModelSource, find_adapter, load_model
from .loading import resolve_source
from .methods.layers import count_parameters
from .methods.registry import AfterStepHook, CompressionAdapter, PlainSave, StepContext, StepResult, resolve_adapters
from .publish import push_folder, write_model_card
from .recipe import as_recipe, expand_recipe, recipe_to_dicts, recipe_to_yaml

logger = logging.getLogger("hfcompress")


@dataclass
class StepRecord:
    """What one recipe step did: the config, the backend that ran it, how long, and what it reported."""

    config: CompressionConfig
    backend: str
    backend_versions: dict[str, str]
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    parameters_before: int | None = None
    parameters_after: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict for hfcompress.json."""
        return {
            "kind": self.config.kind,
            "config": self.config.to_dict(),
            "backend": self.backend,
            "backend_versions": self.backend_versions,
            "seconds": round(self.seconds, 3),
            "parameters_before": self.parameters_before,
            "parameters_after": self.parameters_after,
            "info": self.info,
        }


class CompressedModel:
    """A compressed (or base) causal LM with its tokenizer, recipe, provenance and results.

    Build one with ``CompressedModel.from_pretrained``; ``model`` is a plain transformers model.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        source: ModelSource,
        recipe: Sequence[CompressionConfig] = (),
        steps: Sequence[StepRecord] = (),
        calibration: dict[str, Any] | None = None,
        seed: int = 0,
        manifest: dict[str, Any] | None = None,
        results: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.recipe = list(recipe)
        self.steps = list(steps)
        self.calibration = calibration
        self.seed = seed
        self.results = results
        self._adapter: CompressionAdapter = PlainSave()
        self._save: Callable[[Any, Path], None] | None = None
        self._holds: list[AfterStepHook] = []
        self._load: dict[str, Any] = {}
        self._loaded_manifest = manifest
        self._folder: Path | None = None  # the saved folder this variant was loaded from

    # ------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike | None = None,
        recipe: Any = None,
        calibration: Any = "default",
        backend: str = "auto",
        *,
        revision: str | None = None,
        num_samples: int = 128,
        seq_len: int = 512,
        seed: int = 0,
        dtype: Any = "auto",
        device_map: Any = None,
        trust_remote_code: bool = False,
        base_model: str | None = None,
        max_memory: dict[Any, Any] | None = None,
        offload_folder: str | os.PathLike | None = None,
    ) -> "CompressedModel":
        """Load ``model`` and apply ``recipe``; or reload a saved variant when ``model`` is one and no recipe is given.

        Args:
            model: a Hub id, a local folder, a ``.gguf`` file, or None for the embedded SmolLM2-135M-Instruct.
            recipe: one config, a list of configs applied in order, dicts, or a recipe YAML path.
            calibration: ``"default"`` (offline English text), a list of strings, a text file, or a datasets id.
            backend: ``"auto"`` (first available) or an adapter name such as ``"llmcompressor"``.
            num_samples, seq_len: calibration samples and their length in tokens.
            seed: seeds calibration sampling and every backend that takes a seed.
            base_model: the Hub id of the base when ``model`` is a local folder whose origin hfcompress cannot infer
                (it is recorded in hfcompress.json and is the card's ``base_model``). When ``model`` is a PEFT adapter
                (adapter_config.json), the base to load under it instead of the one its config names: a Hub id or a
                local folder.
            max_memory, offload_folder: compress a model larger than memory layer by layer: at most ``max_memory``
                (transformers' form, e.g. ``{"cpu": "4GiB"}``) of the weights stay in memory, the rest wait in
                ``offload_folder`` (default: a temp folder under hfcompress's cache) and llm-compressor's sequential
                pipeline brings one decoder layer in at a time. For the llm-compressor methods (RTN, GPTQ, AWQ,
                Wanda, SparseGPT); the others need the whole model in memory and refuse it.
        """
        steps = as_recipe(recipe)
        base_is_folder = isinstance(base_model, (str, os.PathLike)) and Path(os.fspath(base_model)).expanduser().is_dir()
        if base_model is not None and not (base_is_folder or (isinstance(base_model, str) and HUB_ID.match(base_model))):
            raise HFCompressError(f"base_model={base_model!r} is not a Hub model id; pass one such as 'HuggingFaceTB/SmolLM2-135M'")
        if base_is_folder and model is not None and (Path(os.fspath(model)).expanduser().is_dir() and find_adapter(model) is None):
            raise HFCompressError(f"base_model={os.fspath(base_model)!r} is a folder, which only an adapter's base can be; "
                                  "for a model folder pass the Hub id it came from, such as 'HuggingFaceTB/SmolLM2-135M'")
        if not steps and model is not None and (Path(os.fspath(model)).expanduser() / MANIFEST_NAME).is_file():
            if base_is_folder:
                raise HFCompressError(f"base_model={os.fspath(base_model)!r} must be the Hub id of the variant's base, not a folder")
            return cls._load_variant(Path(os.fspath(model)).expanduser(), dtype=dtype, device_map=device_map, base_model=base_model)
        if not steps and recipe is not None:
            raise HFCompressError("the recipe holds no steps, so there is nothing to compress: add a step such as "
                                  "hfc.RTNConfig(bits=8), or pass recipe=None to load the model as it is")
        for name, value in (("num_samples", num_samples), ("seq_len", seq_len)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                raise HFCompressError(f"{name}={value!r} must be a positive whole number, e.g. {name}={128 if name == 'num_samples' else 512}")
        if not (calibration is None or isinstance(calibration, (str, os.PathLike, list, tuple))):
            raise HFCompressError(f"calibration must be 'default', a text file path, a datasets id or a list of strings, "
                                  f"not {type(calibration).__name__} (decode bytes first: calibration=[data.decode()])")

        # The steps that run: a config may expand into several (a gradual pruning's stages and their fine-tuning),
        # each checked, run and recorded as a step of its own; the recipe stays as written (saved, reproduced).
        runs = expand_recipe(steps)
        check_recipe_order(runs)
        _seed_everything(seed)
        # Resolve every adapter first, so a missing backend fails before minutes of loading and work.
        adapters = resolve_adapters(runs, backend)
        offloaded = max_memory is not None or offload_folder is not None
        if offloaded:
            _check_layer_by_layer(runs, adapters)
        else:
            _check_fits_in_memory(model, runs, dtype=dtype, device_map=device_map)
        loaded = load_model(model, revision=revision, dtype=dtype, device_map=device_map, trust_remote_code=trust_remote_code,
                            adapter_base=base_model, max_memory=max_memory, offload_folder=offload_folder)
        quantized = (getattr(loaded.model.config, "quantization_config", None) or {})
        quantized = quantized.get("quant_method") if isinstance(quantized, dict) else getattr(quantized, "quant_method", None)
        if quantized and steps and not steps[0].follows_quantization:
            raise HFCompressError(
                f"{loaded.source.model_id!r} is already quantized ({getattr(quantized, 'value', quantized)}); "
                f"{steps[0].kind} needs full-precision weights: "
                "compress its base model instead (its hfcompress.json names it), or re-export it with a GGUF step"
            )
        for step in runs:
            step.validate_for_model(loaded.model)
        if base_model is not None and not base_is_folder:
            loaded.source.hub_id = base_model
        elif base_is_folder and loaded.source.adapter is None:
            raise HFCompressError(f"base_model={os.fspath(base_model)!r} is a folder, which only an adapter's base can be; "
                                  "pass the Hub id the model came from, such as 'HuggingFaceTB/SmolLM2-135M'")

        calib: CalibrationData | None = None
        if any(step.needs_calibration for step in runs):
            calib = load_calibration(calibration, loaded.tokenizer, num_samples=num_samples, seq_len=seq_len, seed=seed)
            logger.info("calibration: %s, %d samples x %d tokens", calib.description, len(calib.input_ids), seq_len)

        cm = cls(loaded.model, loaded.tokenizer, source=loaded.source, recipe=steps,
                 calibration=calib.summary() if calib else None, seed=seed)
        cm._run(runs, adapters, calib)
        return cm

    def _run(self, steps: list[CompressionConfig], adapters: list[CompressionAdapter], calib: CalibrationData | None) -> None:
        from tqdm.auto import tqdm

        progress = show_progress()
        bar = tqdm(list(zip(steps, adapters)), desc="compress", unit="step", disable=not steps or not progress)
        for step, adapter in bar:
            bar.set_postfix_str(f"{step.describe()} via {adapter.name}")
            logger.info("step %s via %s", step.describe(), adapter.name)
            started = time.perf_counter()
            parameters_before = count_parameters(self.model)
            # Earlier steps may have changed the shapes (structured pruning, low rank): check this step against
            # the model it will really see, so a conflict is one clear line rather than a backend's trace.
            step.validate_for_model(self.model)
            context = StepContext(calibration=calib, source=self.source, holds=list(self._holds), progress=progress,
                                  save_model=self._save or self._adapter.save)
            result = adapter.compress(self.model, self.tokenizer, step, context)
            if not isinstance(result, StepResult):
                raise HFCompressError(f"adapter {adapter.name!r} returned {type(result).__name__} for {step.kind}, not a StepResult")
            self.model = result.model
            info = dict(result.info)
            # What earlier steps left (a pruning mask) is put back after this one, and the step says so.
            for hold in self._holds:
                report = hold.restore(self.model)
                if report:
                    info[hold.info_key] = report
            if result.hold is not None:
                self._holds.append(result.hold)
            # Parameters before and after each step: the card's step table shows what each step removed.
            self.steps.append(StepRecord(step, adapter.name, adapter.versions(), time.perf_counter() - started, info,
                                         parameters_before, count_parameters(self.model)))
            self._adapter, self._save, self._load = adapter, result.save, dict(result.load)
            logger.info("step %s done in %.1f s", step.kind, self.steps[-1].seconds)

    @classmethod
    def _load_variant(cls, folder: Path, *, dtype: Any, device_map: Any, base_model: str | None = None) -> "CompressedModel":
        manifest = read_manifest(folder)
        if base_model is not None:  # the user names the Hub id of the variant's (local) base: recorded from now on
            manifest = {**manifest, "base_model": {**(manifest.get("base_model") or {}), "hub_id": base_model}}
        trust = bool((manifest.get("load") or {}).get("trust_remote_code", False))
        loaded = load_model(folder, dtype=dtype, device_map=device_map, trust_remote_code=trust)
        source = ModelSource.from_dict(manifest.get("base_model")) or loaded.source
        try:
            results = read_results_json(folder)
        except HFCompressError as err:
            # Results are derived data: the variant still loads, and `hfcompress bench` rewrites them.
            logger.warning("%s (the variant loads without its results)", err)
            results = None
        cm = cls(loaded.model, loaded.tokenizer, source=source, recipe=as_recipe(manifest.get("recipe") or []),
                 calibration=manifest.get("calibration"), seed=manifest.get("seed", 0), manifest=manifest, results=results)
        cm._folder = folder
        return cm

    # ------------------------------------------------------------------------------------------------
    @property
    def save_format(self) -> str:
        """The on-disk format ``save_pretrained`` writes (e.g. ``compressed-tensors``, ``safetensors``)."""
        if self.steps:
            return self._adapter.save_format
        if self._loaded_manifest:
            return self._loaded_manifest.get("format", "safetensors")
        return "safetensors"

    def manifest(self) -> dict[str, Any]:
        """The content of hfcompress.json: base model, recipe, steps, backends, calibration, seed, versions."""
        if self._loaded_manifest is not None and not self.steps:
            return self._loaded_manifest
        return {
            "manifest_version": MANIFEST_VERSION,
            "hfcompress_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "base_model": self.source.to_dict(),
            "recipe": recipe_to_dicts(self.recipe),
            "steps": [s.to_dict() for s in self.steps],
            "format": self.save_format,
            "calibration": self.calibration,
            "seed": self.seed,
            "load": {
                "library": "transformers",
                "auto_class": "AutoModelForCausalLM",
                "requires": sorted(self._adapter.load_requires) if self.steps else [],
                "trust_remote_code": bool(getattr(self.model.config, "auto_map", None)),
                **self._load,
            },
            **environment_info(),
        }

    def _subject(self, folder: Path | None = None) -> Subject:
        return Subject(self.model, self.tokenizer, self.source, recipe_to_dicts(self.recipe), self.manifest(), folder=folder,
                       save=lambda target: self.save_pretrained(target, card=False))

    def evaluate(self, settings: EvalSettings | None = None, *, base: Any = True, base_cache: dict[str, Any] | None = None,
                 name: str | None = None, reproduce: str | None = None, reload: bool = True, progress: bool | None = None,
                 **setting_overrides: Any) -> Any:
        """Benchmark this model against its base (quality, speed, memory, size); see ``hfcompress.bench.evaluate``.

        The variant is saved to a temp folder and reloaded first, so it is measured as users will load it: in
        memory, RTN and AWQ may still round inside every forward. ``reload=False`` measures the in-memory model
        (no second copy in memory) and says so in ``settings.measured``; a GGUF variant is always measured from its
        file, with llama.cpp. Settings are an ``EvalSettings`` or its
        fields as keywords (``max_tokens=2048``). The result is kept in ``self.results`` and written as
        results.json by ``save_pretrained``.
        """
        settings = (settings or EvalSettings()).replace(**setting_overrides) if setting_overrides else (settings or EvalSettings())
        progress = show_progress() if progress is None else progress
        if isinstance(base, CompressedModel):
            base = base._subject(base._folder)
        options = dict(base=base, base_cache=base_cache, reproduce=reproduce, progress=progress)
        if self._folder is not None and not self.steps:
            # Loaded from its saved folder and unchanged since: it already is the model as saved.
            result = bench_evaluate(self._subject(self._folder), settings, name=name or self._folder.name, **options)
        elif (reload or self.save_format == "gguf") and self.recipe:
            with tempfile.TemporaryDirectory(prefix="hfcompress-eval-") as tmp:
                folder = self.save_pretrained(Path(tmp) / "variant", card=False)
                # The reloaded copy is measured while this one waits on disk: one model in memory, not two.
                with _weights_on_disk(self.model, Path(tmp) / "resident.pt"):
                    result = bench_evaluate(folder, settings, name=name or _default_name(self), **options)
        else:
            result = bench_evaluate(self._subject(), settings, name=name, **options)
        self.results = result.to_dict()
        return result

    def save_pretrained(self, save_directory: str | os.PathLike, *, overwrite: bool = False, card: bool = True) -> Path:
        """Write weights, tokenizer, hfcompress.json, recipe.yaml, results.json (if evaluated) and README.md.

        The folder loads with plain ``transformers.AutoModelForCausalLM.from_pretrained``. It is written to a
        temp folder and renamed into place; a non-empty existing folder is refused unless ``overwrite=True``.
        """
        # The model read in (a folder, a GGUF file) is never written over, even with overwrite=True.
        inputs = [(self.source.path, "the input model"), (self.source.gguf_file, "the input GGUF file"),
                  (self.source.adapter.path if self.source.adapter else None, "the input adapter")]
        target = Path(save_directory).expanduser()  # atomic_directory checks it (check_output_dir) before writing
        manifest = self.manifest()
        with write_errors(target), atomic_directory(target, overwrite=overwrite, inputs=inputs) as tmp:
            (self._save or self._adapter.save)(self.model, tmp)
            fault_point("save:after-weights")
            if self._adapter.writes_tokenizer or not self.steps:
                self.tokenizer.save_pretrained(tmp)
            write_json_atomic(tmp / MANIFEST_NAME, manifest)
            (tmp / RECIPE_NAME).write_text(recipe_to_yaml(self.recipe), encoding="utf-8")
            if self.results is not None:
                write_json_atomic(tmp / RESULTS_NAME, self.results)
            if card:
                write_model_card(tmp, manifest=manifest, results=self.results)
        logger.info("saved %s (%s)", target, self.save_format)
        return target

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool = False,
        token: str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        commit_message: str | None = None,
        local_dir: str | os.PathLike | None = None,
        base_model: str | None = None,
    ) -> Any:
        """Save (to ``local_dir`` or a temp folder) and upload the variant to ``repo_id`` in one commit.

        ``base_model``: the Hub id of the base when it was a local folder (recorded in the pushed hfcompress.json
        and the card's metadata).
        """
        options = dict(private=private, token=token, revision=revision, create_pr=create_pr, commit_message=commit_message,
                       base_model=base_model)
        if local_dir is None:
            with tempfile.TemporaryDirectory(prefix="hfcompress-push-") as tmp:
                return push_folder(self.save_pretrained(Path(tmp) / repo_id.split("/")[-1]), repo_id, **options)
        folder = Path(local_dir)
        if not (folder / MANIFEST_NAME).is_file():
            folder = self.save_pretrained(folder)
        return push_folder(folder, repo_id, **options)

    def __repr__(self) -> str:
        recipe = " -> ".join(step.describe() for step in self.recipe) or "no compression"
        return f"CompressedModel({self.source.model_id!r}, {recipe}, format={self.save_format!r})"


def _default_name(cm: CompressedModel) -> str:
    base = str(cm.source.model_id).rstrip("/").split("/")[-1]
    return f"{base}-{'-'.join(step.kind for step in cm.recipe) or 'base'}"


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def _weights_on_disk(model: Any, file: Path) -> Iterator[None]:
    """Hold ``model``'s parameters and buffers in ``file`` instead of memory while the block runs; put them back after.

    The tensors stay the same objects (only their storage moves), so the model, its tied weights and anything
    holding its parameters see the same values afterwards.

    Example:
        >>> import tempfile, torch
        >>> layer = torch.nn.Linear(4, 4)
        >>> before = layer.weight.detach().clone()
        >>> with _weights_on_disk(layer, Path(tempfile.mkdtemp()) / "w.pt"):
        ...     layer.weight.numel()
        0
        >>> torch.equal(layer.weight, before)
        True
    """
    import torch

    tensors: dict[int, Any] = {}
    for module in model.modules():
        for tensor in [*module._parameters.values(), *module._buffers.values()]:
            if tensor is not None:
                tensors.setdefault(id(tensor), tensor)
    torch.save({str(key): tensor.data for key, tensor in tensors.items()}, file)
    for tensor in tensors.values():
        tensor.data = torch.empty(0, dtype=tensor.dtype, device=tensor.device)
    try:
        yield
    finally:
        saved = torch.load(file, weights_only=True)
        for key, tensor in tensors.items():
            tensor.data = saved[str(key)]
        file.unlink(missing_ok=True)


# Peak memory of a run in units of the model's weights as loaded: each config's ``memory_factor`` (the model, plus
# the backend's work: per-layer Hessians and activations of a sequential pipeline, the packed copy a compressed
# save writes; for training, the student's gradients and two Adam moments next to the teacher).
_DTYPE_BYTES = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2, "float64": 8}


def _checkpoint_parameters(folder: Path) -> int | None:
    """Parameters stored in a folder's safetensors files, read from their headers (no weights are loaded)."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with safe_open(str(file), framework="pt") as reader:
            for key in reader.keys():
                count = 1
                for dim in reader.get_slice(key).get_shape():
                    count *= dim
                total += count
    return total


def _check_layer_by_layer(steps: Sequence[CompressionConfig], adapters: Sequence[CompressionAdapter]) -> None:
    """Refuse, before loading, a step that cannot work on a model whose weights wait on disk (``max_memory``)."""
    for step, adapter in zip(steps, adapters):
        if not adapter.compresses_layer_by_layer:
            raise HFCompressError(
                f"{step.kind} via {adapter.name} needs the whole model in memory, so it cannot run with max_memory/"
                "offload_folder (layer by layer: RTN, GPTQ, AWQ, Wanda and SparseGPT via llm-compressor); drop "
                "max_memory, or run this step on a machine that holds the model")


def _check_fits_in_memory(model: Any, steps: Sequence[CompressionConfig], *, dtype: Any = "auto",
                          device_map: Any = None) -> int | None:
    """Refuse, in one line and before loading, a CPU run whose estimated peak exceeds the available memory.

    The estimate is parameters x bytes per parameter as loaded (float32 on a CPU unless ``dtype`` says otherwise)
    x the largest step's memory factor. Set ``HFCOMPRESS_SKIP_MEMORY_CHECK=1`` to run anyway (an offloading
    ``device_map`` also skips it). Returns the estimate in bytes, or None when it could not be made (a Hub model not
    downloaded yet, a GGUF file).

    Example:
        >>> import tempfile
        >>> from hfcompress import RTNConfig
        >>> from hfcompress.testing import build_tiny_model
        >>> folder = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
        >>> _check_fits_in_memory(str(folder), [RTNConfig(bits=8)]) < 10**7
        True
    """
    import psutil
    import torch

    if os.environ.get("HFCOMPRESS_SKIP_MEMORY_CHECK", "0").lower() not in ("0", "", "false", "no") or device_map is not None:
        return None
    if torch.cuda.is_available():
        return None  # the weights go to the GPU: its memory, not the host's, is what a run needs
    try:
        source = resolve_source(model)
    except HFCompressError:
        return None  # load_model gives the clear error about the source itself
    folder = Path(source.path) if source.kind == "folder" and source.path else None
    params = _checkpoint_parameters(folder) if folder is not None else None
    if not params:
        return None
    name = str(dtype).replace("torch.", "")
    bytes_per = _DTYPE_BYTES.get(name, 4)
    factor = max((step.memory_factor for step in steps),
                 default=1.0)
    need = int(params * bytes_per * factor)
    available = psutil.virtual_memory().available
    if need > available:
        kinds = ", ".join(sorted({step.kind for step in steps})) or "loading"
        raise HFCompressError(
            f"{source.model_id}: this run needs about {need / 1e9:.1f} GB of memory ({params / 1e9:.2f} B parameters x "
            f"{bytes_per} bytes x {factor:g} for {kinds}) but {available / 1e9:.1f} GB is available; free memory, use a "
            "larger machine, or set HFCOMPRESS_SKIP_MEMORY_CHECK=1 to try anyway"
        )
    return need
