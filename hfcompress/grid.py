"""Grids: run named recipes over one base model, save every variant with its results and card, compare them.

A grid resumes: a variant whose folder holds a valid results.json is finished and never redone; a variant
interrupted half-way left only a temp folder, which ``atomic_directory`` removed. The base model is measured
once per grid (its numbers are cached in ``<output_dir>/.base-cache.json``). At the end one comparison is
written: ``comparison.md``, ``comparison.csv``, ``size_vs_perplexity.png`` and ``speed_vs_perplexity.png``.

Grid YAML::

    model: HuggingFaceTB/SmolLM2-135M      # optional; omitted = the embedded SmolLM2-135M-Instruct
    num_samples: 64                        # optional calibration settings, seed, backend
    evaluate: {max_tokens: 4096, speed_runs: 5}   # optional, passed to hfcompress.bench.evaluate
    variants:
      rtn-int8: [{rtn: {bits: 8}}]
      gptq-4bit: [{gptq: {bits: 4, group_size: 64}}]
      awq-4bit: {recipe: [{awq: {group_size: 64}}], num_samples: 16}   # per-variant calibration settings

Example:
    >>> import tempfile
    >>> import hfcompress as hfc
    >>> from hfcompress.testing import build_tiny_model
    >>> tiny = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    >>> grid = {"variants": {"magnitude-50": [hfc.PruneConfig(method="magnitude", sparsity=0.5)]},
    ...         "evaluate": {"eval_data": [["a held-out sentence to score. " * 20]], "max_tokens": 128, "context": 64,
    ...                      "stride": 32, "speed": False, "generations": False}}
    >>> out = hfc.run_grid(grid, tiny, tiny.parent / "runs", progress=False)
    >>> out.computed, round(out.results[0]["metrics"]["sparsity"]["value"], 2)
    (['magnitude-50'], 0.5)
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .api import CompressedModel
from .artifacts import MANIFEST_NAME, read_manifest, saved_recipe
from .atomic import atomic_directory, write_json_atomic, write_text_atomic
from .bench import EvalSettings, evaluate
from .bench.report import comparison_markdown, comparison_rows, write_comparison
from .bench.results import read_results, write_results
from .errors import HFCompressError, one_line
from .loading import resolve_source
from .methods.registry import resolve_adapters
from .publish import write_model_card
from .recipe import as_recipe, compact_steps, recipe_to_dicts

logger = logging.getLogger("hfcompress")

BASE_CACHE_NAME = ".base-cache.json"
BASE_REFERENCE_DIR = ".base-reference"  # the base's log-probabilities (KL) and its F16 GGUF, kept for every variant
GRID_FILE_NAME = "grid.yaml"
_SETTING_KEYS = ("model", "calibration", "num_samples", "seq_len", "seed", "backend", "evaluate")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class GridVariant:
    """One named recipe of a grid, with optional calibration settings of its own."""

    name: str
    recipe: list[Any]
    num_samples: int | None = None
    seq_len: int | None = None

    def to_yaml_dict(self) -> Any:
        """The YAML form (``[steps]`` or ``{recipe: [steps], num_samples: N}``)."""
        steps = compact_steps(recipe_to_dicts(self.recipe))
        if self.num_samples is None and self.seq_len is None:
            return steps
        out: dict[str, Any] = {"recipe": steps}
        if self.num_samples is not None:
            out["num_samples"] = self.num_samples
        if self.seq_len is not None:
            out["seq_len"] = self.seq_len
        return out


@dataclass
class GridResult:
    """What a grid run produced.

    Attributes:
        output_dir: the runs folder.
        results: results.json dicts of every finished variant (this run's and earlier ones'), in grid order.
        computed: names compressed and measured in this run.
        resumed: names found finished and left alone.
        skipped: name -> reason (e.g. "not available: backend ... needs ...").
        failed: name -> one-line error.
        files: comparison.md / comparison.csv / plots.
        seconds: wall time of this run.
    """

    output_dir: Path
    results: list[dict[str, Any]] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    def record(self, outcome: "VariantOutcome") -> None:
        """File one variant's outcome under computed, resumed, skipped or failed."""
        if outcome.status == "computed":
            self.computed.append(outcome.name)
        elif outcome.status == "resumed":
            self.resumed.append(outcome.name)
        elif outcome.status == "skipped":
            self.skipped[outcome.name] = outcome.message
        else:
            self.failed[outcome.name] = outcome.message

    def finish(self, names: list[str], started: float) -> "GridResult":
        """Read the finished variants' results (in grid order) and write the one comparison of them."""
        for name in names:
            data = read_results(self.output_dir / name)
            if data is not None:
                self.results.append({**data, "_folder": str(self.output_dir / name)})
        if self.results:
            self.files = write_comparison(self.results, self.output_dir, notes=[n[2:] for n in self.notes() if n])
        self.seconds = time.perf_counter() - started
        return self

    def table(self) -> str:
        """The comparison table (Markdown), base first, followed by what was skipped or failed."""
        return comparison_markdown(comparison_rows(self.results), extra=self.notes())

    def notes(self) -> list[str]:
        """Lines about skipped and failed variants."""
        lines = [f"- {name}: skipped: {why}" for name, why in self.skipped.items()]
        lines += [f"- {name}: failed: {why}" for name, why in self.failed.items()]
        return ([""] + lines) if lines else []


def parse_grid(grid: Any) -> tuple[dict[str, GridVariant], dict[str, Any]]:
    """Read a grid (YAML path, YAML text with ``variants:``, or dict) into variants and settings.

    Example:
        >>> variants, settings = parse_grid({"variants": {"rtn-int8": [{"rtn": {"bits": 8}}]}, "num_samples": 32})
        >>> list(variants), settings["num_samples"]
        (['rtn-int8'], 32)
    """
    where = "grid"
    if isinstance(grid, (str, os.PathLike)):
        path = Path(grid).expanduser()
        if path.is_file():
            where = str(path)
            grid = path.read_text(encoding="utf-8")
        elif isinstance(grid, str) and "\n" in grid:
            pass
        else:
            raise HFCompressError(f"grid file {str(grid)!r} not found")
        try:
            grid = yaml.safe_load(grid)
        except yaml.YAMLError as err:
            raise HFCompressError(f"{where}: the grid YAML could not be parsed: {str(err).splitlines()[0]}") from None
    if not isinstance(grid, Mapping) or not grid:
        raise HFCompressError(f"{where}: a grid needs a 'variants:' mapping of name -> list of steps")
    if "variants" in grid or "recipes" in grid:
        raw = grid.get("variants", grid.get("recipes"))
        settings = {k: v for k, v in grid.items() if k not in ("variants", "recipes")}
    else:
        raw, settings = grid, {}
    unknown = sorted(set(settings) - set(_SETTING_KEYS))
    if unknown:
        raise HFCompressError(f"{where}: unknown grid setting {', '.join(map(repr, unknown))}; valid: {', '.join(_SETTING_KEYS)}, variants")
    if not isinstance(raw, Mapping) or not raw:
        raise HFCompressError(f"{where}: 'variants:' must map names to lists of steps, e.g. rtn-int8: [{{rtn: {{bits: 8}}}}]")
    variants: dict[str, GridVariant] = {}
    for name, value in raw.items():
        name = str(name)
        if not _NAME.fullmatch(name):
            raise HFCompressError(f"{where}: variant name {name!r} must use letters, digits, '.', '_' or '-'")
        extra: dict[str, Any] = {}
        if isinstance(value, Mapping) and "recipe" in value:
            extra = {k: value[k] for k in ("num_samples", "seq_len") if value.get(k) is not None}
            bad = sorted(set(value) - {"recipe", "num_samples", "seq_len"})
            if bad:
                raise HFCompressError(f"{where}: variant {name!r} has unknown key(s) {', '.join(bad)}; use recipe, num_samples, seq_len")
            value = value["recipe"]
        recipe = as_recipe(value)
        if not recipe:
            raise HFCompressError(f"{where}: variant {name!r} has no steps")
        variants[name] = GridVariant(name, recipe, **extra)
    return variants, dict(settings)


def grid_yaml(variants: Mapping[str, GridVariant], settings: Mapping[str, Any]) -> str:
    """YAML text of a grid with its settings (what ``run_grid`` writes to ``<output_dir>/grid.yaml``)."""
    data = {k: v for k, v in settings.items() if v is not None}
    data["variants"] = {name: v.to_yaml_dict() for name, v in variants.items()}
    return yaml.safe_dump(data, sort_keys=False)


def load_grid(path: str | Path) -> dict[str, list[Any]]:
    """Read the named recipes of a grid YAML: ``variants: {name: [steps...], ...}`` (``recipes:`` is accepted too).

    A variant may also be ``{recipe: [steps], num_samples: N, seq_len: L}``; this returns its recipe only.
    Use ``parse_grid`` for the grid's and the variants' calibration settings, which ``run_grid`` and
    ``hfcompress grid`` read from the same file.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "grid.yaml"
        >>> _ = path.write_text("variants:\\n  rtn-int8: [{rtn: {bits: 8}}]\\n")
        >>> list(load_grid(path))
        ['rtn-int8']
    """
    variants, _ = parse_grid(Path(path))
    return {name: list(variant.recipe) for name, variant in variants.items()}


def grid_to_yaml(grid: Mapping[str, Any]) -> str:
    """YAML text for a grid of named recipes (the inverse of ``load_grid``).

    Example:
        >>> from hfcompress import RTNConfig
        >>> print(grid_to_yaml({"rtn-int8": [RTNConfig(bits=8)]}).splitlines()[0])
        variants:
    """
    return grid_yaml({name: GridVariant(name, list(recipe)) for name, recipe in grid.items()}, {})


def _default_output_dir(model: Any) -> Path:
    source = resolve_source(model)
    return Path("runs") / str(source.model_id).rstrip("/").split("/")[-1]


def _load_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


@dataclass
class GridPlan:
    """Everything one variant of a grid needs, whichever process computes it (this one, or a Ray worker).

    Attributes:
        output_dir: the runs folder; ``grid_file`` the effective grid saved in it.
        model: the base model (Hub id, folder or None for the embedded default).
        calibration, num_samples, seq_len, seed, backend: the run's settings (a variant's own sizes win).
        evaluate: how each variant is measured.
    """

    output_dir: Path
    grid_file: Path
    model: Any
    calibration: Any
    num_samples: int
    seq_len: int
    seed: int
    backend: str
    evaluate: EvalSettings
    progress: bool = True

    @property
    def base_cache_path(self) -> Path:
        return self.output_dir / BASE_CACHE_NAME


@dataclass
class VariantOutcome:
    """What became of one variant: ``status`` is computed, resumed, skipped or failed; ``message`` says why."""

    name: str
    status: str
    message: str = ""
    seconds: float = 0.0


def plan_grid(grid: Any, base_model: Any = None, output_dir: str | os.PathLike | None = None, *, calibration: Any = None,
              num_samples: int | None = None, seq_len: int | None = None, seed: int | None = None, backend: str | None = None,
              evaluate_kwargs: Mapping[str, Any] | None = None, only: list[str] | None = None,
              progress: bool = True) -> tuple[GridPlan, dict[str, GridVariant], dict[str, GridVariant]]:
    """Check a grid and its settings before any work, prepare the runs folder and save the effective grid in it.

    Returns the plan, the variants to run now and every variant the runs folder holds a recipe for.
    """
    variants, settings = parse_grid(grid)
    if only:
        missing = [n for n in only if n not in variants]
        if missing:
            raise HFCompressError(f"no variant named {', '.join(map(repr, missing))} in the grid; names: {', '.join(variants)}")
        variants = {n: v for n, v in variants.items() if n in only}
    model = base_model if base_model is not None else settings.get("model")
    model = os.fspath(model) if isinstance(model, os.PathLike) else model
    if settings.get("evaluate") is not None and not isinstance(settings.get("evaluate"), Mapping):
        raise HFCompressError("the grid's 'evaluate:' must be a mapping of settings, e.g. evaluate: {max_tokens: 2048}")
    eval_kw = {**(settings.get("evaluate") or {}), **(evaluate_kwargs or {})}
    run = {
        "calibration": calibration if calibration is not None else settings.get("calibration", "default"),
        "num_samples": num_samples if num_samples is not None else settings.get("num_samples", 128),
        "seq_len": seq_len if seq_len is not None else settings.get("seq_len", 512),
        "seed": seed if seed is not None else settings.get("seed", 0),
        "backend": backend if backend is not None else settings.get("backend", "auto"),
    }
    out = Path(output_dir).expanduser() if output_dir is not None else _default_output_dir(model)
    # An unknown evaluation key fails now, not after each variant's compression.
    plan = GridPlan(output_dir=out, grid_file=out / GRID_FILE_NAME, model=model, evaluate=EvalSettings.from_dict(eval_kw),
                    progress=progress, **run)
    if out.exists() and not out.is_dir():
        raise HFCompressError(f"{str(out)!r} exists and is a file; choose a folder for the grid")
    for name in variants:
        target = out / name
        if target.is_dir() and any(target.iterdir()) and read_results(target) is None and not (target / MANIFEST_NAME).is_file():
            raise HFCompressError(f"{str(target)!r} holds files that are not an hfcompress variant; move them or choose another output_dir")
    out.mkdir(parents=True, exist_ok=True)

    # The effective grid is saved beside the variants: results point at it to be reproduced.
    saved_settings = {"model": model, **run, "evaluate": dict(eval_kw) or None}
    if isinstance(saved_settings["calibration"], (list, tuple)):
        saved_settings["calibration"] = "list"  # texts given in Python are not written out
    all_variants = dict(variants)
    if plan.grid_file.is_file():
        try:
            previous, _ = parse_grid(plan.grid_file)
            all_variants = {**previous, **variants}
        except HFCompressError:
            pass
    write_text_atomic(plan.grid_file, grid_yaml(all_variants, saved_settings))
    return plan, variants, all_variants


def run_variant(plan: GridPlan, variant: GridVariant, base_cache: dict[str, Any], *,
                status: Any = lambda text: None) -> VariantOutcome:
    """Compress, save, measure and card one variant into ``plan.output_dir/<name>``, or say why not.

    A variant whose folder already holds results for the same recipe is kept (resumed); one whose backend is
    not installed is skipped; any failure is caught and reported, so a grid goes on. ``status`` receives the
    stage being worked on.
    """
    name, target = variant.name, plan.output_dir / variant.name
    if read_results(target) is not None:
        if saved_recipe(target) == recipe_to_dicts(variant.recipe):
            return VariantOutcome(name, "resumed", "finished earlier, kept")
        # The grid file now asks for another recipe under this name: the old numbers would be a lie.
        status("its recipe changed since it was computed; computing it again")
    started = time.perf_counter()
    try:
        resolve_adapters(variant.recipe, plan.backend)
    except HFCompressError as err:
        return VariantOutcome(name, "skipped", f"not available: {err}")
    cm = None
    try:
        status("compress")
        cm = CompressedModel.from_pretrained(
            plan.model, recipe=variant.recipe, calibration=plan.calibration, backend=plan.backend,
            num_samples=variant.num_samples or plan.num_samples, seq_len=variant.seq_len or plan.seq_len, seed=plan.seed,
        )
        reproduce = f"hfcompress grid {shlex.quote(str(plan.grid_file))} -o {shlex.quote(str(plan.output_dir))}-redo --only {shlex.quote(name)}"
        # Save into a temp folder that becomes <out>/<name> only once results and card are in it.
        with atomic_directory(target, overwrite=target.exists()) as tmp:
            status("save")
            cm.save_pretrained(tmp, overwrite=True, card=False)
            # Measure what users will load, not the in-memory model (RTN and AWQ still round inside forward
            # there); reloading also gives the variant's peak memory while loading.
            cm = None
            gc.collect()
            status("evaluate")
            results = evaluate(tmp, plan.evaluate, name=name, base_cache=base_cache, reproduce=reproduce,
                               progress=plan.progress, reference_dir=plan.output_dir / BASE_REFERENCE_DIR).to_dict()
            write_results(tmp, results)
            write_json_atomic(plan.base_cache_path, base_cache)
            _write_card(tmp, results)
        ppl = results["metrics"].get("perplexity", {})
        seconds = time.perf_counter() - started
        return VariantOutcome(name, "computed", f"done in {seconds:.0f} s; perplexity {ppl.get('value', float('nan')):.2f} "
                                                f"(base {ppl.get('base') or float('nan'):.2f})", seconds)
    except KeyboardInterrupt:
        raise
    except Exception as err:  # one broken variant must not stop the grid; the reason is reported
        logger.debug("variant %s failed", name, exc_info=True)
        return VariantOutcome(name, "failed", one_line(err), time.perf_counter() - started)
    finally:
        cm = None
        gc.collect()


def run_grid(
    grid: Any,
    base_model: Any = None,
    output_dir: str | os.PathLike | None = None,
    *,
    calibration: Any = None,
    num_samples: int | None = None,
    seq_len: int | None = None,
    seed: int | None = None,
    backend: str | None = None,
    evaluate_kwargs: Mapping[str, Any] | None = None,
    only: list[str] | None = None,
    progress: bool = True,
) -> GridResult:
    """Run every named recipe of ``grid`` over one base model; save, measure and compare the variants.

    Finished variants (a valid results.json in ``output_dir/<name>``) are kept and not redone, so an
    interrupted grid resumes where it stopped. A variant whose backend is not installed is skipped with the
    reason; one that fails is reported and the grid goes on.

    Args:
        grid: a grid YAML path, or a dict ``{"variants": {name: recipe}, ...settings}`` or ``{name: recipe}``.
        base_model: Hub id, folder, or None (the grid's ``model:``, else the embedded SmolLM2-135M-Instruct).
        output_dir: where variants go (default ``runs/<base model name>``).
        calibration, num_samples, seq_len, seed, backend: override the grid's settings (defaults: "default",
            128, 512, 0, "auto"); a variant's own ``num_samples``/``seq_len`` win over both.
        evaluate_kwargs: ``EvalSettings`` fields (e.g. ``{"max_tokens": 2048}``), over the grid's ``evaluate:``.
        only: run only these variant names.
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    plan, variants, all_variants = plan_grid(
        grid, base_model, output_dir, calibration=calibration, num_samples=num_samples, seq_len=seq_len, seed=seed,
        backend=backend, evaluate_kwargs=evaluate_kwargs, only=only, progress=progress)
    cache = _load_cache(plan.base_cache_path)
    result = GridResult(output_dir=plan.output_dir)
    bar = tqdm(list(variants.values()), desc="grid", unit="variant", disable=not progress)
    say = bar.write if progress else logger.info
    for variant in bar:
        outcome = run_variant(plan, variant, cache, status=lambda text, name=variant.name: bar.set_postfix_str(f"{name}: {text}"))
        result.record(outcome)
        if outcome.status != "resumed":
            say(f"{outcome.name}: {outcome.message}" if outcome.status == "computed" else f"{outcome.name}: {outcome.status}: {outcome.message}")
    return result.finish(list(variants) if not only else list(all_variants), started)


def _write_card(folder: Path, results: dict[str, Any]) -> None:
    try:
        manifest = read_manifest(folder)
        write_model_card(folder, manifest=manifest, results=results)
    except Exception as err:  # the card is derived data: keep the measured variant, say what went wrong
        logger.warning("model card for %s could not be written: %s", folder.name, one_line(err))
