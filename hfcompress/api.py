"""``CompressedModel``: load a model, run a recipe through the adapters, evaluate, save and push.

Example:
    >>> import hfcompress as hfc
    >>> cm = hfc.CompressedModel.from_pretrained(None, recipe=hfc.GPTQConfig(bits=4))   # doctest: +SKIP
    >>> cm.save_pretrained("out/SmolLM2-135M-Instruct-GPTQ-4bit")                       # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .atomic import atomic_directory, check_output_dir
from .config import CompressionConfig, as_recipe, check_recipe_order, recipe_to_dicts, recipe_to_yaml
from .data import CalibrationData, load_calibration
from .environment import environment_info
from .errors import HFCompressError
from .loading import ModelSource, load_model
from .methods.registry import CompressionAdapter, resolve_adapters

logger = logging.getLogger("hfcompress")

MANIFEST_NAME = "hfcompress.json"
RESULTS_NAME = "results.json"
RECIPE_NAME = "recipe.yaml"
MANIFEST_VERSION = 1


@dataclass
class StepRecord:
    """What one recipe step did: the config, the backend that ran it, how long, and what it reported."""

    config: CompressionConfig
    backend: str
    backend_versions: dict[str, str]
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict for hfcompress.json."""
        return {
            "kind": self.config.kind,
            "config": self.config.to_dict(),
            "backend": self.backend,
            "backend_versions": self.backend_versions,
            "seconds": round(self.seconds, 3),
            "info": self.info,
        }


class CompressedModel:
    """A compressed (or base) causal LM with its tokenizer, recipe, provenance and results.

    Build one with ``CompressedModel.from_pretrained``; ``model`` is a plain transformers model.

    Example:
        >>> import hfcompress as hfc
        >>> cm = hfc.CompressedModel.from_pretrained(None, recipe=hfc.RTNConfig(bits=8))   # doctest: +SKIP
        >>> cm.model.config.model_type                                                     # doctest: +SKIP
        'llama'
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
        saver: CompressionAdapter | None = None,
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
        self._saver = saver
        self._loaded_manifest = manifest

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
    ) -> "CompressedModel":
        """Load ``model`` and apply ``recipe``; or reload a saved variant when ``model`` is one and no recipe is given.

        Args:
            model: a Hub id, a local folder, a ``.gguf`` file, or None for the embedded SmolLM2-135M-Instruct.
            recipe: one config, a list of configs applied in order, dicts, or a recipe YAML path.
            calibration: ``"default"`` (offline English text), a list of strings, a text file, or a datasets id.
            backend: ``"auto"`` (first available) or an adapter name such as ``"llmcompressor"``.
            num_samples, seq_len: calibration samples and their length in tokens.
            seed: seeds calibration sampling and every backend that takes a seed.

        Example:
            >>> cm = CompressedModel.from_pretrained(                                     # doctest: +SKIP
            ...     "HuggingFaceTB/SmolLM2-135M", recipe=[hfc.GPTQConfig(bits=4, group_size=64)])
        """
        steps = as_recipe(recipe)
        if not steps and model is not None and (Path(os.fspath(model)).expanduser() / MANIFEST_NAME).is_file():
            return cls._load_variant(Path(os.fspath(model)).expanduser(), dtype=dtype, device_map=device_map)

        check_recipe_order(steps)
        _seed_everything(seed)
        # Resolve every adapter first, so a missing backend fails before minutes of loading and work.
        adapters = resolve_adapters(steps, backend)
        loaded = load_model(model, revision=revision, dtype=dtype, device_map=device_map, trust_remote_code=trust_remote_code)
        for step in steps:
            step.validate_for_model(loaded.model)

        calib: CalibrationData | None = None
        if any(step.needs_calibration for step in steps):
            calib = load_calibration(calibration, loaded.tokenizer, num_samples=num_samples, seq_len=seq_len, seed=seed)
            logger.info("calibration: %s, %d samples x %d tokens", calib.description, len(calib.input_ids), seq_len)

        cm = cls(
            loaded.model,
            loaded.tokenizer,
            source=loaded.source,
            recipe=steps,
            calibration=calib.summary() if calib else None,
            seed=seed,
        )
        cm._run(steps, adapters, calib)
        return cm

    def _run(self, steps: list[CompressionConfig], adapters: list[CompressionAdapter], calib: CalibrationData | None) -> None:
        from tqdm.auto import tqdm

        bar = tqdm(list(zip(steps, adapters)), desc="compress", unit="step", disable=not steps or _quiet())
        for step, adapter in bar:
            bar.set_postfix_str(f"{step.describe()} via {adapter.name}")
            logger.info("step %s via %s", step.describe(), adapter.name)
            started = time.perf_counter()
            # Earlier steps may have changed the shapes (structured pruning, low rank): check this step against
            # the model it will really see, so a conflict is one clear line rather than a backend's trace.
            step.validate_for_model(self.model)
            # Steps that need the unmodified base (distillation's default teacher) reload it from here.
            self.model.hfcompress_source = self.source
            result = adapter.compress(self.model, self.tokenizer, step, calib)
            model, info = result if isinstance(result, tuple) else (result, {})
            self.model = model
            # A pruning mask survives later steps (GPTQ refills pruned slots); re-zero and record it.
            from .methods.pruning import restore_sparsity_masks

            if step.kind != "prune" and (restored := restore_sparsity_masks(model)):
                info = {**dict(info or {}), "sparsity_mask_restored": restored}
            self.steps.append(StepRecord(step, adapter.name, adapter.versions(), time.perf_counter() - started, dict(info or {})))
            self._saver = adapter
            logger.info("step %s done in %.1f s", step.kind, self.steps[-1].seconds)

    @classmethod
    def _load_variant(cls, folder: Path, *, dtype: Any, device_map: Any) -> "CompressedModel":
        try:
            manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise HFCompressError(
                f"{str(folder / MANIFEST_NAME)!r} is not valid JSON ({err.msg}); restore it or load the folder with "
                "transformers.AutoModelForCausalLM directly"
            ) from None
        trust = bool(manifest.get("load", {}).get("trust_remote_code", False))
        loaded = load_model(folder, dtype=dtype, device_map=device_map, trust_remote_code=trust)
        base = manifest.get("base_model", {})
        source = ModelSource(**{k: base.get(k) for k in ModelSource.__dataclass_fields__ if k in base}) if base else loaded.source
        results = None
        if (folder / RESULTS_NAME).is_file():
            results = json.loads((folder / RESULTS_NAME).read_text(encoding="utf-8"))
        recipe = as_recipe(manifest.get("recipe", []))
        return cls(
            loaded.model,
            loaded.tokenizer,
            source=source,
            recipe=recipe,
            calibration=manifest.get("calibration"),
            seed=manifest.get("seed", 0),
            manifest=manifest,
            results=results,
        )

    # ------------------------------------------------------------------------------------------------
    @property
    def save_format(self) -> str:
        """The on-disk format ``save_pretrained`` writes (e.g. ``compressed-tensors``, ``safetensors``)."""
        if self._saver is not None:
            return self._saver.save_format
        if self._loaded_manifest:
            return self._loaded_manifest.get("format", "safetensors")
        return "safetensors"

    def manifest(self) -> dict[str, Any]:
        """The content of hfcompress.json: base model, recipe, steps, backends, calibration, seed, versions."""
        from . import __version__

        if self._loaded_manifest is not None and not self.steps:
            return self._loaded_manifest
        load_requires = sorted(self._saver.load_requires) if self._saver else []
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
                "requires": load_requires,
                "trust_remote_code": bool(getattr(self.model.config, "auto_map", None)),
            },
            **environment_info(),
        }

    def evaluate(self, **kwargs: Any) -> Any:
        """Benchmark this model against its base (quality, speed, memory, size); see ``hfcompress.bench.evaluate``.

        The variant is saved to a temp folder and reloaded first, so it is measured as users will load it
        (``reload=False`` measures the in-memory model).

        The result is kept in ``self.results`` and written as results.json by ``save_pretrained``.

        Example:
            >>> res = cm.evaluate(max_tokens=4096)          # doctest: +SKIP
        """
        from .bench import evaluate

        result = evaluate(self, **kwargs)
        self.results = result.to_dict() if hasattr(result, "to_dict") else result
        return result

    def save_pretrained(self, save_directory: str | os.PathLike, *, overwrite: bool = False, card: bool = True) -> Path:
        """Write weights, tokenizer, hfcompress.json, recipe.yaml, results.json (if evaluated) and README.md.

        The folder loads with plain ``transformers.AutoModelForCausalLM.from_pretrained``. It is written to a
        temp folder and renamed into place; a non-empty existing folder is refused unless ``overwrite=True``.

        Example:
            >>> cm.save_pretrained("out/SmolLM2-135M-GPTQ-4bit")             # doctest: +SKIP
        """
        target = check_output_dir(save_directory, overwrite)
        manifest = self.manifest()
        with atomic_directory(target, overwrite=overwrite) as tmp:
            saver = self._saver or CompressionAdapter()
            saver.save(self.model, tmp)
            self.tokenizer.save_pretrained(tmp)
            _write_json(tmp / MANIFEST_NAME, manifest)
            (tmp / RECIPE_NAME).write_text(recipe_to_yaml(self.recipe), encoding="utf-8")
            if self.results is not None:
                _write_json(tmp / RESULTS_NAME, self.results)
            if card:
                from .card import write_model_card

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
    ) -> Any:
        """Save (to ``local_dir`` or a temp folder) and upload the variant to ``repo_id`` in one commit.

        Example:
            >>> cm.push_to_hub("me/SmolLM2-135M-GPTQ-4bit")                   # doctest: +SKIP
        """
        from .hub import push_folder

        if local_dir is None:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="hfcompress-push-") as tmp:
                folder = self.save_pretrained(Path(tmp) / repo_id.split("/")[-1])
                return push_folder(folder, repo_id, private=private, token=token, revision=revision, create_pr=create_pr, commit_message=commit_message)
        folder = Path(local_dir)
        if not (folder / MANIFEST_NAME).is_file():
            folder = self.save_pretrained(folder)
        return push_folder(folder, repo_id, private=private, token=token, revision=revision, create_pr=create_pr, commit_message=commit_message)

    def __repr__(self) -> str:
        recipe = " -> ".join(step.describe() for step in self.recipe) or "no compression"
        return f"CompressedModel({self.source.model_id!r}, {recipe}, format={self.save_format!r})"


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _quiet() -> bool:
    return os.environ.get("HFCOMPRESS_QUIET", "0") not in ("0", "", "false")
