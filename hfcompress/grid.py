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

import dataclasses
import gc
import json
import logging
import os
import re
import shlex
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from .api import CompressedModel
from .artifacts import MANIFEST_NAME, read_manifest, saved_recipe
from .atomic import atomic_directory, write_json_atomic, write_text_atomic
from .bench import EvalSettings, evaluate
from .bench.report import comparison_markdown, comparison_rows, write_comparison
from .bench.results import read_results, write_results
from .errors import HFCompressError, one_line
from .loading import resolve_source
from .methods.registry import list_adapters, resolve_adapters
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
    if settings.get("evaluate") is not None:
        # An unknown or bad evaluation key fails here, before any variant is compressed, not after each one.
        if not isinstance(settings["evaluate"], Mapping):
            raise HFCompressError(f"{where}: 'evaluate:' must be a mapping of settings, e.g. evaluate: {{max_tokens: 2048}}")
        try:
            EvalSettings.from_dict(dict(settings["evaluate"]))
        except HFCompressError as err:
            raise HFCompressError(f"{where}: evaluate: {err}") from None
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


EXECUTORS = ("local", "ray")


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
    executor: str = "local",
    address: str | None = None,
    cpus_per_variant: float = 1,
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
        executor: ``"local"`` (one variant after another in this process, the default) or ``"ray"`` (each variant
            a Ray task; needs ``pip install 'hfcompress[ray]'``). Both write the same folders and comparison.
        address: with ``executor="ray"``, the cluster to use (``"auto"``, ``"ray://head:10001"``, ``"head:6379"``);
            None starts a local Ray for the run and stops it afterwards (a Ray already initialized in this process
            is used as it is).
        cpus_per_variant: Ray CPUs each variant's task asks for (its torch threads); a variant whose backend needs
            a GPU also asks for one.

    Example (the Ray executor, when ``ray`` is installed)::

        hfc.run_grid("grid.yaml", output_dir="/shared/runs/smollm2", executor="ray", address="auto")
    """
    from tqdm.auto import tqdm

    if executor not in EXECUTORS:
        raise HFCompressError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    if address is not None and executor != "ray":
        raise HFCompressError("address= names a Ray cluster; pass executor='ray' with it (or drop address)")
    if not (isinstance(cpus_per_variant, (int, float)) and not isinstance(cpus_per_variant, bool) and cpus_per_variant > 0):
        raise HFCompressError(f"cpus_per_variant={cpus_per_variant!r} must be a positive number, e.g. 1 or 4")
    ray = _import_ray() if executor == "ray" else None  # a missing ray fails before the runs folder is touched
    started = time.perf_counter()
    plan, variants, all_variants = plan_grid(
        grid, base_model, output_dir, calibration=calibration, num_samples=num_samples, seq_len=seq_len, seed=seed,
        backend=backend, evaluate_kwargs=evaluate_kwargs, only=only, progress=progress)
    cache = _load_cache(plan.base_cache_path)
    result = GridResult(output_dir=plan.output_dir)
    bar = tqdm(total=len(variants), desc="grid", unit="variant", disable=not progress)
    say = bar.write if progress else logger.info

    def report(outcome: VariantOutcome) -> None:
        result.record(outcome)
        bar.update(1)
        if outcome.status != "resumed":
            say(f"{outcome.name}: {outcome.message}" if outcome.status == "computed" else f"{outcome.name}: {outcome.status}: {outcome.message}")

    try:
        if ray is not None:
            _run_on_ray(ray, plan, list(variants.values()), cache, report, address=address, cpus=cpus_per_variant,
                        status=bar.set_postfix_str)
        else:
            for variant in variants.values():
                report(run_variant(plan, variant, cache, status=lambda text, name=variant.name: bar.set_postfix_str(f"{name}: {text}")))
    finally:
        bar.close()
    return result.finish(list(variants) if not only else list(all_variants), started)


# ---------------------------------------------------------------------------------------------------------
# The Ray executor: each variant is one Ray task running ``run_variant``; this process schedules and collects.

_GATHER_MARK = ".hfcompress-driver-"  # a file only the driver's runs folder holds: a worker that cannot see it gathers


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise HFCompressError("the Ray executor needs ray: pip install 'hfcompress[ray]'") from None
    return ray


def _finished(plan: GridPlan, variant: GridVariant) -> bool:
    target = plan.output_dir / variant.name
    return read_results(target) is not None and saved_recipe(target) == recipe_to_dicts(variant.recipe)


def _variant_needs(variant: GridVariant, backend: str) -> tuple[int, str]:
    """How many GPUs a variant's task asks for, and the engine that measures it (whose base numbers it shares).

    Read from the adapters that will run it; where none is available here (a GPU-only backend on a CPU head
    node), from the adapters that could.
    """
    try:
        adapters = resolve_adapters(variant.recipe, backend)
    except HFCompressError:
        adapters = []
        for step in variant.recipe:
            candidates = [a for a in list_adapters() if a.supports(step) and backend in (None, "", "auto", a.name)]
            gpu_only = [a for a in candidates if a.needs_gpu]
            if candidates:
                adapters.append(gpu_only[0] if len(gpu_only) == len(candidates) else candidates[-1])
    gpus = 1 if any(a.needs_gpu for a in adapters) else 0
    engine = "llama.cpp" if adapters and adapters[-1].save_format == "gguf" else "transformers"
    return gpus, engine


def _cached_engines(cache: Mapping[str, Any]) -> set[str]:
    engines = set()
    for key in cache:
        try:
            engines.add(json.loads(key).get("engine"))
        except (ValueError, AttributeError):
            pass
    return engines


def _absolute(value: Any) -> Any:
    # Workers do not share this process's working directory: local paths travel as absolute ones.
    if isinstance(value, (str, os.PathLike)) and str(value) and Path(value).expanduser().exists():
        return str(Path(value).expanduser().resolve())
    return value


def _remote_plan(plan: GridPlan) -> GridPlan:
    eval_data = plan.evaluate.eval_data
    eval_data = [_absolute(d) for d in eval_data] if isinstance(eval_data, list) else _absolute(eval_data)
    return dataclasses.replace(
        plan, output_dir=plan.output_dir.resolve(), grid_file=plan.grid_file.resolve(), model=_absolute(plan.model),
        calibration=_absolute(plan.calibration), evaluate=plan.evaluate.replace(eval_data=eval_data), progress=False)


def _ray_task(plan: GridPlan, variant: GridVariant, base_cache: dict[str, Any], mark: str) -> tuple[VariantOutcome, dict[str, Any], bytes | None]:
    """What one Ray worker does: run the variant; when the driver's runs folder is not visible here (no shared
    storage), send the finished folder back as a tar archive."""
    outcome = run_variant(plan, variant, base_cache)
    archive = None
    if outcome.status == "computed" and not (plan.output_dir / mark).exists():
        archive = _pack(plan.output_dir / variant.name)
    return outcome, base_cache, archive


def _pack(folder: Path) -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=".")
    return buffer.getvalue()


def _unpack(archive: bytes, output_dir: Path, name: str) -> None:
    import io
    import tarfile

    with atomic_directory(output_dir / name, overwrite=True) as tmp, tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        tar.extractall(tmp, filter="data")


def _run_on_ray(ray: Any, plan: GridPlan, variants: list[GridVariant], cache: dict[str, Any],
                report: Callable[[VariantOutcome], None], *, address: str | None, cpus: float,
                status: Callable[[str], None]) -> None:
    """Run the variants as Ray tasks and report each outcome as it finishes.

    The base model is measured once per engine: the first variant of each engine runs first, the others start
    once its base numbers (and log-probabilities for KL, in the runs folder) are there, unless an earlier run
    left them in ``.base-cache.json``.
    """
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except Exception as err:  # an unreachable address, a cluster of another Ray version
            where = f"the Ray cluster at {address!r}" if address else "a local Ray"
            raise HFCompressError(f"could not start or reach {where}: {one_line(err)}") from None
    mark = plan.output_dir / f"{_GATHER_MARK}{uuid.uuid4().hex}"
    mark.touch()
    remote_plan = _remote_plan(plan)
    task = ray.remote(max_retries=0)(_ray_task)  # a variant that crashed a worker (memory) is reported, not rerun
    waiting: dict[str, list[GridVariant]] = {}
    running: dict[Any, tuple[GridVariant, str, bool]] = {}  # ref -> (variant, engine, measures the base)
    have_base = _cached_engines(cache)

    def submit(variant: GridVariant, engine: str) -> None:
        gpus, _ = _variant_needs(variant, plan.backend)
        ref = task.options(num_cpus=cpus, num_gpus=gpus, name=f"hfcompress-{variant.name}").remote(
            remote_plan, variant, dict(cache), mark.name)
        running[ref] = (variant, engine, engine not in have_base)

    try:
        for variant in variants:
            if _finished(plan, variant):
                report(VariantOutcome(variant.name, "resumed", "finished earlier, kept"))
                continue
            _, engine = _variant_needs(variant, plan.backend)
            leading = any(e == engine and first for _, e, first in running.values())
            if engine in have_base or not leading:
                submit(variant, engine)
            else:
                waiting.setdefault(engine, []).append(variant)
        while running:
            status(f"{len(running)} running, {sum(map(len, waiting.values()))} waiting: "
                   + ", ".join(v.name for v, _, _ in running.values()))
            done, _ = ray.wait(list(running), num_returns=1)
            variant, engine, first = running.pop(done[0])
            try:
                outcome, task_cache, archive = ray.get(done[0])
                cache.update(task_cache)
                write_json_atomic(plan.base_cache_path, cache)
                if archive is not None:
                    _unpack(archive, plan.output_dir, variant.name)
            except Exception as err:  # the worker died (out of memory, node lost): this variant failed, the others go on
                outcome = VariantOutcome(variant.name, "failed", f"its Ray task died: {one_line(err)}")
            report(outcome)
            if first:
                if engine in _cached_engines(cache):
                    have_base.add(engine)
                queue = waiting.pop(engine, [])
                if engine in have_base:
                    for follower in queue:
                        submit(follower, engine)
                elif queue:  # the base was not measured (the variant failed first): the next one measures it
                    submit(queue[0], engine)
                    waiting[engine] = queue[1:]
    except BaseException:
        for ref in running:
            ray.cancel(ref, force=True)
        raise
    finally:
        mark.unlink(missing_ok=True)
        if started_here:
            ray.shutdown()


def _write_card(folder: Path, results: dict[str, Any]) -> None:
    try:
        manifest = read_manifest(folder)
        write_model_card(folder, manifest=manifest, results=results)
    except Exception as err:  # the card is derived data: keep the measured variant, say what went wrong
        logger.warning("model card for %s could not be written: %s", folder.name, one_line(err))
