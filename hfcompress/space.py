"""The comparison Space: every variant of one base model in a table, two plots, side-by-side generation.

Data flows one way: a *source* (a runs folder of saved variants, one variant folder, the ``results/`` bundled in
a deployed Space, or a Hub collection) -> ``find_variants`` -> ``VariantSet`` -> table / plots / pages ->
``build_app`` (Gradio). ``push_space`` deploys ``spaces/compare/`` to a Hub Space wired to a collection or to
bundled results (results.json, hfcompress.json, README.md, recipe.yaml of each variant; never weights).

Example:
    >>> from hfcompress.space import find_variants, variant_table
    >>> vs = find_variants("runs/smollm2-grid")                  # doctest: +SKIP
    >>> variant_table(vs).iloc[0]["variant"]                       # the base model comes first  # doctest: +SKIP
    'SmolLM2-135M-Instruct (base)'
    >>> build_app("runs/smollm2-grid").launch()                    # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import statistics
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .config import QUANTIZATION_KINDS
from .errors import HFCompressError

logger = logging.getLogger(__name__)

RESULTS_NAME = "results.json"
MANIFEST_NAME = "hfcompress.json"
CARD_NAME = "README.md"
RECIPE_NAME = "recipe.yaml"
VARIANT_FILES = (RESULTS_NAME, MANIFEST_NAME, CARD_NAME, RECIPE_NAME)
SPACE_CONFIG_NAME = "space_config.json"
BUNDLE_DIR = "results"
SOURCE_ENV = "HFCOMPRESS_SPACE_SOURCE"
MEMORY_ENV = "HFCOMPRESS_SPACE_MEMORY_MB"
DEFAULT_MEMORY_MB = 4096
MAX_SLOTS = 4  # side-by-side output columns

# Recipe step kind -> method family (the table's filter). A recipe with several steps belongs to each family.
FAMILIES: dict[str, str] = {
    "rtn": "quantization",
    "gptq": "quantization",
    "awq": "quantization",
    "prune": "pruning",
    "structured_prune": "structured",
    "low_rank": "low-rank",
    "distill": "distillation",
}
FAMILY_ORDER = ("quantization", "pruning", "structured", "low-rank", "distillation")
BASE_FAMILY = "base"

# Table columns: (value header, metric name in results.json, ratio header).
_METRIC_COLUMNS = (
    ("size (MB)", "size_on_disk", "size ×"),
    ("params (M)", "parameters", "params ×"),
    ("perplexity", "perplexity", "ppl ×"),
    ("decode tok/s", "decode_tokens_per_s", "speed ×"),
    ("memory (MB)", "peak_memory", "memory ×"),
)
TABLE_COLUMNS = ("variant", "method", "family", "bits", "sparsity") + tuple(
    name for header, _, ratio in _METRIC_COLUMNS for name in (header, ratio)
)


# ----------------------------------------------------------------------------------------------------------
# Variants and where they come from


@dataclass
class Variant:
    """One compressed variant: its results, manifest, card and recipe, and where its weights are.

    Attributes:
        name: folder or repo name, unique within a ``VariantSet``.
        results: the parsed results.json (see the results schema), or None when it has none.
        manifest: the parsed hfcompress.json, or None.
        card: README.md text (with its YAML header), or None.
        recipe_yaml: recipe.yaml text, or None.
        folder: local folder holding these files (and the weights when ``config.json`` is there).
        repo_id: Hub model repo to load the weights from (collection mode).

    Example:
        >>> Variant("tiny-rtn8", {"variant": {"recipe": [{"kind": "rtn", "bits": 8}]}}).families
        ('quantization',)
    """

    name: str
    results: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    card: str | None = None
    recipe_yaml: str | None = None
    folder: Path | None = None
    repo_id: str | None = None

    @property
    def recipe(self) -> list[dict[str, Any]]:
        """The recipe as ``[{kind, ...options}]`` (from results.json, else hfcompress.json)."""
        steps = ((self.results or {}).get("variant") or {}).get("recipe")
        if not steps:
            steps = (self.manifest or {}).get("recipe") or []
        return [_step_dict(s) for s in steps if isinstance(s, dict)]

    @property
    def families(self) -> tuple[str, ...]:
        """Method families of the recipe steps, in ``FAMILY_ORDER``; ``('base',)`` for an empty recipe."""
        found = {FAMILIES.get(step.get("kind", ""), "other") for step in self.recipe}
        if not found:
            return (BASE_FAMILY,)
        return tuple(f for f in (*FAMILY_ORDER, "other") if f in found)

    @property
    def method(self) -> str:
        """A short human label of the recipe, e.g. ``GPTQ 4-bit g64`` or ``Wanda 50% + GPTQ 4-bit``."""
        return " + ".join(_describe_step(step) for step in self.recipe) or "none"

    def metric(self, name: str) -> dict[str, Any]:
        """The measurement ``metrics[name]`` of results.json, or ``{}`` when it is missing or malformed."""
        value = ((self.results or {}).get("metrics") or {}).get(name)
        return value if isinstance(value, dict) else {}

    @property
    def base_model(self) -> dict[str, Any]:
        """``{model_id, revision, kind, path?}`` of the base model this variant was made from."""
        base = (self.results or {}).get("base_model") or (self.manifest or {}).get("base_model") or {}
        return base if isinstance(base, dict) else {}

    @property
    def has_weights(self) -> bool:
        """True when a model can be loaded for generation (a local folder with config.json, or a Hub repo)."""
        return bool(self.repo_id) or bool(self.folder and (self.folder / "config.json").is_file())

    @property
    def load_id(self) -> str:
        """What ``from_pretrained`` takes for this variant: the Hub repo id, else the local folder."""
        return self.repo_id or (str(self.folder) if self.folder else self.name)


@dataclass
class VariantSet:
    """All variants found in one source, plus the problems met while reading it (shown in the page).

    Example:
        >>> vs = VariantSet("runs/empty", [], ["runs/empty: no variant folders with results.json"])
        >>> vs.base_name
        'base model'
    """

    source: str
    variants: list[Variant] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def base(self) -> dict[str, Any]:
        """The base model every variant was compared with (the most common one when they disagree)."""
        bases = [v.base_model for v in self.variants if v.base_model.get("model_id")]
        if not bases:
            return {}
        ids = [b["model_id"] for b in bases]
        common = max(set(ids), key=ids.count)
        return next(b for b in bases if b["model_id"] == common)

    @property
    def base_name(self) -> str:
        """Short display name of the base model (last part of its id)."""
        model_id = self.base.get("model_id")
        return str(model_id).rstrip("/").split("/")[-1] if model_id else "base model"

    def get(self, name: str) -> Variant:
        """The variant called ``name`` (one-line error naming the known ones otherwise)."""
        for variant in self.variants:
            if variant.name == name:
                return variant
        known = ", ".join(v.name for v in self.variants) or "none"
        raise HFCompressError(f"unknown variant {name!r}; known variants: {known}")


def read_variant_results(folder: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``folder/results.json``; a one-line ``HFCompressError`` says why it cannot be used.

    Unlike ``hfcompress.bench.load_results`` (which skips bad files with a log warning), this keeps the reason,
    so the page can tell the user which variant was left out and what to do. The schema check is the
    benchmark module's (``validation_errors``) so both read the same contract.

    Example:
        >>> read_variant_results("runs/grid/gptq-4bit")["metrics"]["perplexity"]["value"]   # doctest: +SKIP
        13.1
    """
    path = Path(folder) / RESULTS_NAME
    data = _read_json_object(path, "results")
    try:
        from .bench.results import validation_errors
    except ImportError:  # the benchmark module is optional for reading; the metrics check above still holds
        return data
    errors = validation_errors(data)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise HFCompressError(f"{path}: does not match the results schema: {errors[0][:200]}{more}")
    return data


def _read_json_object(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise HFCompressError(f"{path.parent}: no {path.name}; run `hfcompress bench` on the variant to measure it")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise HFCompressError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); re-run `hfcompress bench` to rewrite it"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise HFCompressError(f"{path}: could not be read ({_one_line(err)})") from None
    if not isinstance(data, dict):
        raise HFCompressError(f"{path}: expected a JSON object of {what}, found {type(data).__name__}")
    if what == "results" and not isinstance(data.get("metrics"), dict):
        raise HFCompressError(f"{path}: has no 'metrics' object; re-run `hfcompress bench` to rewrite it")
    return data


def find_variants(source: str | os.PathLike | None) -> VariantSet:
    """Find every variant in ``source``: a runs folder (one sub-folder per variant), one variant folder,
    a deployed Space folder (``space_config.json`` / ``results/``), or a Hub collection id.

    Never raises for bad data: unreadable variants are skipped and listed in ``VariantSet.problems``.

    Example:
        >>> vs = find_variants("runs/smollm2-grid")                    # doctest: +SKIP
        >>> [v.name for v in vs.variants], vs.problems                  # doctest: +SKIP
        (['gptq-4bit', 'wanda-50'], ['runs/smollm2-grid/broken/results.json: not valid JSON (...)'])
    """
    if source is None or str(source).strip() == "":
        return VariantSet("", [], ["no source given: pass a runs folder or a Hub collection id (hfcompress space runs/)"])
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.is_dir():
        config = path / SPACE_CONFIG_NAME
        if config.is_file():
            return _find_in_space_dir(path)
        return _find_in_dir(path)
    if path.exists():
        return VariantSet(text, [], [f"{text}: is a file; pass the folder that holds the variant folders"])
    if _looks_like_collection(text):
        return _find_in_collection(text)
    return VariantSet(text, [], [f"{text}: no such folder, and not a Hub collection id (owner/title-0123456789abcdef0123)"])


def space_source(app_dir: str | os.PathLike) -> str:
    """What a deployed Space reads: ``$HFCOMPRESS_SPACE_SOURCE``, else its ``space_config.json``, else ``results/``.

    Example:
        >>> space_source("spaces/compare")                       # doctest: +SKIP
        'spaces/compare/results'
    """
    if os.environ.get(SOURCE_ENV):
        return os.environ[SOURCE_ENV]
    app_dir = Path(app_dir)
    if (app_dir / SPACE_CONFIG_NAME).is_file():
        return str(app_dir)
    return str(app_dir / BUNDLE_DIR)


def _find_in_space_dir(app_dir: Path) -> VariantSet:
    try:
        config = json.loads((app_dir / SPACE_CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        return VariantSet(str(app_dir), [], [f"{app_dir / SPACE_CONFIG_NAME}: unreadable ({_one_line(err)})"])
    if config.get("collection"):
        return _find_in_collection(str(config["collection"]))
    return _find_in_dir(app_dir / str(config.get("results") or BUNDLE_DIR))


def _find_in_dir(folder: Path) -> VariantSet:
    found = VariantSet(str(folder))
    if _is_variant_dir(folder):
        candidates = [folder]
    else:
        candidates = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    for sub in candidates:
        if not _is_variant_dir(sub):
            continue
        try:
            found.variants.append(_read_variant_dir(sub))
        except HFCompressError as err:
            found.problems.append(str(err))
    if not found.variants and not found.problems and folder.is_dir():
        # `hfcompress grid` writes runs/<model>/<variant>: accept the parent when it holds exactly one runs folder.
        nested = [sub for sub in sorted(folder.iterdir()) if sub.is_dir() and not sub.name.startswith(".")
                  and any(_is_variant_dir(v) for v in sub.iterdir() if v.is_dir())]
        if len(nested) == 1:
            return _find_in_dir(nested[0])
        if nested:
            found.problems.append(f"{folder}: holds several runs folders ({', '.join(n.name for n in nested)}); pass one of them")
            return found
    if not found.variants and not found.problems:
        found.problems.append(
            f"{folder}: no variant folders with results.json found; run `hfcompress grid` or `hfcompress compress --evaluate` first"
        )
    return found


def _is_variant_dir(folder: Path) -> bool:
    return (folder / RESULTS_NAME).exists() or (folder / MANIFEST_NAME).exists()


def _read_variant_dir(folder: Path) -> Variant:
    results = read_variant_results(folder)
    manifest = None
    if (folder / MANIFEST_NAME).is_file():
        try:
            manifest = _read_json_object(folder / MANIFEST_NAME, "manifest")
        except HFCompressError as err:
            logger.warning("%s", err)  # the results alone still fill the table
    # The folder name, not results' variant.name: folders are unique in a runs dir, recorded names need not be.
    return Variant(
        name=folder.name,
        results=results,
        manifest=manifest,
        card=_read_text(folder / CARD_NAME),
        recipe_yaml=_read_text(folder / RECIPE_NAME),
        folder=folder.resolve(),
        repo_id=_manifest_repo(manifest),
    )


def _manifest_repo(manifest: dict[str, Any] | None) -> str | None:
    # A variant pushed to the Hub may record its repo; bundled results then still load weights from there.
    hub = (manifest or {}).get("hub") or {}
    repo = hub.get("repo_id") if isinstance(hub, dict) else None
    return str(repo) if repo else None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        return None


_COLLECTION_RE = re.compile(r"[\w.-]+/[\w.-]*-[0-9a-f]{12,}")


def _looks_like_collection(text: str) -> bool:
    return bool(_COLLECTION_RE.fullmatch(text))


def _find_in_collection(slug: str) -> VariantSet:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    found = VariantSet(slug)
    try:
        collection = HfApi().get_collection(slug)
    except Exception as err:  # network, 404, auth: one line in the page, never a crash
        found.problems.append(f"collection {slug}: could not be read ({_hub_error_line(err)})")
        return found
    models = [item for item in collection.items if getattr(item, "item_type", None) == "model"]
    for item in models:
        repo_id = item.item_id
        files: dict[str, Path | None] = {}
        try:
            for filename in VARIANT_FILES:
                try:
                    files[filename] = Path(hf_hub_download(repo_id, filename))
                except EntryNotFoundError:
                    files[filename] = None
        except Exception as err:
            found.problems.append(f"{repo_id}: could not download its files ({_hub_error_line(err)})")
            continue
        if files[RESULTS_NAME] is None:
            if files[MANIFEST_NAME] is not None:
                found.problems.append(f"{repo_id}: has no results.json; run `hfcompress bench` and push it again")
            continue  # e.g. the base model itself, or an unrelated model in the collection
        try:
            results = read_variant_results(files[RESULTS_NAME].parent)
            manifest = _read_json_object(files[MANIFEST_NAME], "manifest") if files[MANIFEST_NAME] else None
        except HFCompressError as err:
            found.problems.append(f"{repo_id}: {err}")
            continue
        found.variants.append(
            Variant(
                name=repo_id.split("/")[-1],
                results=results,
                manifest=manifest,
                card=_read_text(files[CARD_NAME]) if files[CARD_NAME] else None,
                recipe_yaml=_read_text(files[RECIPE_NAME]) if files[RECIPE_NAME] else None,
                repo_id=repo_id,
            )
        )
    if not found.variants and not found.problems:
        found.problems.append(f"collection {slug}: holds no model repos with results.json")
    return found


# ----------------------------------------------------------------------------------------------------------
# Table, Pareto front, plots


def _step_dict(step: dict[str, Any]) -> dict[str, Any]:
    # recipe.yaml's compact spelling {"gptq": {...}} and the manifest's {"kind": "gptq", ...} both occur.
    if "kind" not in step and len(step) == 1:
        (kind, options), = step.items()
        return {"kind": kind, **(options or {})}
    return dict(step)


def _describe_step(step: dict[str, Any]) -> str:
    kind = step.get("kind", "?")
    if kind in QUANTIZATION_KINDS:
        group = step.get("group_size")
        group_text = "" if group in (None, "auto") else f" g{group}"
        return f"{kind.upper()} {step.get('bits', '?')}-bit{group_text}"
    if kind == "prune":
        pattern = step.get("pattern", "unstructured")
        amount = pattern if pattern not in (None, "unstructured") else f"{_pct(step.get('sparsity'))}"
        return f"{str(step.get('method', 'prune')).capitalize()} {amount}"
    if kind == "structured_prune":
        return f"−{_pct(step.get('ratio'))} {step.get('target', 'units')}"
    if kind == "low_rank":
        if step.get("rank") is not None:
            return f"SVD rank {step['rank']}"
        return f"SVD {_pct(step.get('energy'))} energy"
    if kind == "distill":
        return f"distill {step.get('steps', '?')} steps"
    return str(kind)


def _pct(value: Any) -> str:
    try:
        return f"{float(value) * 100:.0f}%"
    except (TypeError, ValueError):
        return "?"


def _to_display(metric: str, value: Any, unit: str | None) -> float | None:
    """Convert a measurement to the table's unit (MB, millions of parameters)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(float(value)):
        return None
    value = float(value)
    unit = (unit or "").lower()
    if metric in ("size_on_disk", "peak_memory"):
        scale = {"b": 1e-6, "bytes": 1e-6, "kb": 1e-3, "mb": 1.0, "gb": 1e3, "mib": 1.048576, "gib": 1073.741824}
        return value * scale.get(unit, 1.0)
    if metric == "parameters":
        return value / 1e6
    return value


def _ratio(entry: dict[str, Any]) -> float | None:
    ratio = entry.get("ratio")
    if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and math.isfinite(ratio):
        return float(ratio)
    value, base = entry.get("value"), entry.get("base")
    if isinstance(value, (int, float)) and isinstance(base, (int, float)) and base:
        return float(value) / float(base)
    return None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


_DIGITS = {"size_on_disk": 1, "parameters": 2, "perplexity": 2, "decode_tokens_per_s": 1, "peak_memory": 1}


def table_rows(variants: VariantSet) -> list[dict[str, Any]]:
    """One dict per row (base model first), keyed by ``TABLE_COLUMNS``; missing measurements are None.

    The base row takes each metric's ``base`` value (the median over variants, since each variant's run
    measured the base again); a variant's ratio is the one measured in its own run.

    Example:
        >>> table_rows(find_variants("runs/grid"))[0]["family"]   # doctest: +SKIP
        'base'
    """
    base: dict[str, Any] = {
        "variant": f"{variants.base_name} (base)",
        "method": "none",
        "family": BASE_FAMILY,
        "bits": _median_base(variants, "bits_per_weight_linear") or _median_base(variants, "bits_per_weight"),
        "sparsity": _round(_median_base(variants, "sparsity"), 3),
    }
    rows = [base]
    for header, metric, ratio_header in _METRIC_COLUMNS:
        unit = next((v.metric(metric).get("unit") for v in variants.variants if v.metric(metric)), None)
        base[header] = _round(_to_display(metric, _median_base(variants, metric), unit), _DIGITS[metric])
        base[ratio_header] = 1.0 if base[header] is not None else None
    if base["bits"] is not None:
        base["bits"] = round(base["bits"], 2)
    for variant in variants.variants:
        # Bits of the Linear weights (what "4-bit" means); the whole-model figure also counts embeddings.
        bits = variant.metric("bits_per_weight_linear").get("value")
        if bits is None:
            bits = variant.metric("bits_per_weight").get("value")
        if bits is None:
            bits = next((s.get("bits") for s in variant.recipe if s.get("bits") is not None), None)
        sparsity = variant.metric("sparsity").get("value")
        row: dict[str, Any] = {
            "variant": variant.name,
            "method": variant.method,
            "family": ", ".join(variant.families),
            "bits": round(float(bits), 2) if isinstance(bits, (int, float)) else None,
            "sparsity": round(float(sparsity), 3) if isinstance(sparsity, (int, float)) else None,
        }
        for header, metric, ratio_header in _METRIC_COLUMNS:
            entry = variant.metric(metric)
            row[header] = _round(_to_display(metric, entry.get("value"), entry.get("unit")), _DIGITS[metric])
            row[ratio_header] = _round(_ratio(entry), 3)
        rows.append(row)
    return rows


def _median_base(variants: VariantSet, metric: str) -> float | None:
    values = [v.metric(metric).get("base") for v in variants.variants]
    values = [float(x) for x in values if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)]
    return statistics.median(values) if values else None


def variant_table(variants: VariantSet, families: Sequence[str] | None = None, sort_by: str | None = None,
                  descending: bool = False) -> Any:
    """The comparison table as a pandas DataFrame: base model first, then the variants of ``families``.

    ``sort_by`` names a column; the base row stays on top and missing values sort last.

    Example:
        >>> variant_table(vs, families=["quantization"], sort_by="perplexity")   # doctest: +SKIP
    """
    import pandas as pd

    rows = table_rows(variants)
    base, rest = rows[0], rows[1:]
    if families is not None:
        wanted = set(families)
        rest = [r for r in rest if wanted & set(r["family"].split(", "))]
    if sort_by:
        if sort_by not in TABLE_COLUMNS:
            raise HFCompressError(f"cannot sort by {sort_by!r}; use one of {', '.join(TABLE_COLUMNS)}")
        present = [r for r in rest if r[sort_by] is not None]
        missing = [r for r in rest if r[sort_by] is None]
        present.sort(key=lambda r: r[sort_by], reverse=descending)
        rest = present + missing
    return pd.DataFrame([base, *rest], columns=list(TABLE_COLUMNS))


# Which way each ratio column is good: True = a higher ratio is better.
_HIGHER_IS_BETTER = {"size ×": False, "params ×": False, "ppl ×": False, "speed ×": True, "memory ×": False}


def styled_table(table: Any) -> Any:
    """``table`` (from ``variant_table``) as a pandas Styler: units kept in headers, ratios as ``0.42×``
    in green when better than the base and red when worse (by more than 2%), the base row in bold.

    Example:
        >>> gr.Dataframe(styled_table(variant_table(vs)))          # doctest: +SKIP
    """
    def ratio_color(column: str) -> Callable[[Any], str]:
        def color(value: Any) -> str:
            if not _finite(value) or abs(value - 1) <= 0.02:
                return ""
            better = (value > 1) == _HIGHER_IS_BETTER[column]
            return "color: #15803d; font-weight: 600" if better else "color: #b91c1c"
        return color

    formats: dict[str, Any] = {c: "{:.2f}×" for c in _HIGHER_IS_BETTER}
    formats.update({"bits": "{:g}", "sparsity": "{:.0%}", "size (MB)": "{:,.1f}", "params (M)": "{:,.2f}",
                    "perplexity": "{:,.2f}", "decode tok/s": "{:,.1f}", "memory (MB)": "{:,.1f}"})
    styler = table.style.format({k: v for k, v in formats.items() if k in table.columns}, na_rep="–")
    for column in _HIGHER_IS_BETTER:
        if column in table.columns:
            styler = styler.map(ratio_color(column), subset=[column])
    if len(table):
        styler = styler.apply(lambda row: ["font-weight: 700" if row["family"] == BASE_FAMILY else "" for _ in row], axis=1)
    return styler


def pareto_front(points: Sequence[tuple[float, float]], *, minimize_x: bool = True) -> list[int]:
    """Indices of the points no other point beats on both axes (y is always minimized), ordered along x.

    Example:
        >>> pareto_front([(100, 10.0), (50, 12.0), (60, 13.0), (25, 20.0)])
        [3, 1, 0]
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0] if minimize_x else -points[i][0], points[i][1]))
    front, best_y = [], math.inf
    for i in order:
        if points[i][1] < best_y:
            front.append(i)
            best_y = points[i][1]
    return front if minimize_x else front[::-1]


_FAMILY_COLORS = {
    BASE_FAMILY: "#111827",
    "quantization": "#f59e0b",
    "pruning": "#3b82f6",
    "structured": "#10b981",
    "low-rank": "#8b5cf6",
    "distillation": "#ef4444",
    "other": "#6b7280",
}


def tradeoff_figure(table: Any, x: str, y: str = "perplexity", *, minimize_x: bool = True, title: str = "") -> Any:
    """A plotly scatter of ``table`` (from ``variant_table``) with the Pareto front drawn; hover names the variant.

    Example:
        >>> fig = tradeoff_figure(variant_table(vs), "size (MB)", title="Size vs perplexity")   # doctest: +SKIP
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    rows = [r for r in table.to_dict("records") if _finite(r.get(x)) and _finite(r.get(y))]
    if not rows:
        fig.add_annotation(text=f"no variant has both {x} and {y} measured", showarrow=False, font={"size": 15})
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    front = pareto_front([(r[x], r[y]) for r in rows], minimize_x=minimize_x)
    on_front = set(front)
    by_family: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        family = row["family"].split(", ")[0]
        by_family.setdefault(family, []).append(i)
    if len(front) > 1:
        fig.add_trace(go.Scatter(
            x=[rows[i][x] for i in front], y=[rows[i][y] for i in front], mode="lines",
            line={"shape": "hv" if minimize_x else "vh", "dash": "dot", "color": "#9ca3af", "width": 2},
            name="Pareto front", hoverinfo="skip",
        ))
    for family in [BASE_FAMILY, *FAMILY_ORDER, "other"]:
        idx = by_family.get(family)
        if not idx:
            continue
        fig.add_trace(go.Scatter(
            x=[rows[i][x] for i in idx], y=[rows[i][y] for i in idx], mode="markers+text",
            # Names printed only for the Pareto-optimal points (the ones worth choosing); hover names every point.
            name=family, text=[_short(rows[i]["variant"]) if i in on_front else "" for i in idx], textposition="top center",
            cliponaxis=False,
            textfont={"size": 11, "color": "#374151"},
            marker={
                "size": [16 if i in on_front else 11 for i in idx],
                "color": _FAMILY_COLORS.get(family, "#6b7280"),
                "symbol": "star" if family == BASE_FAMILY else "circle",
                "line": {"width": [2.5 if i in on_front else 0 for i in idx], "color": "#111827"},
            },
            customdata=[[rows[i]["variant"], rows[i]["method"], "yes" if i in on_front else "no"] for i in idx],
            hovertemplate=(f"<b>%{{customdata[0]}}</b><br>%{{customdata[1]}}<br>{x}: %{{x}}<br>{y}: %{{y}}"
                           "<br>on the Pareto front: %{customdata[2]}<extra></extra>"),
        ))
    ys = [rows[i][y] for i in range(len(rows))]
    log_y = bool(ys) and min(ys) > 0 and max(ys) / min(ys) > 20
    fig.update_layout(
        title={"text": title, "x": 0.02}, template="plotly_white", height=430, margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"orientation": "h", "y": -0.18}, hoverlabel={"bgcolor": "white"},
    )
    fig.update_xaxes(title=x)
    fig.update_yaxes(title=f"{y} (lower is better{', log scale' if log_y else ''})", type="log" if log_y else "linear")
    return fig


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _short(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


# ----------------------------------------------------------------------------------------------------------
# Variant page


def strip_yaml_header(card: str) -> str:
    """The card's Markdown body without its ``---`` YAML metadata block.

    Example:
        >>> strip_yaml_header("---\\nlicense: mit\\n---\\n# Title\\n")
        '# Title\\n'
    """
    match = re.match(r"\A---\s*\n.*?\n---\s*\n", card, flags=re.S)
    return card[match.end():].lstrip("\n") if match else card


def load_snippet(variant: Variant) -> str:
    """Python that loads ``variant`` with plain transformers (what a user copies).

    Example:
        >>> print(load_snippet(Variant("x", repo_id="me/x")).splitlines()[-1])
        model = AutoModelForCausalLM.from_pretrained("me/x")
    """
    requires = [r for r in ((variant.manifest or {}).get("load") or {}).get("requires", []) if r != "transformers"]
    trust = bool(((variant.manifest or {}).get("load") or {}).get("trust_remote_code"))
    where = variant.repo_id or (str(variant.folder) if variant.folder else variant.name)
    extra = ", trust_remote_code=True" if trust else ""
    lines = [f"# pip install transformers {' '.join(requires)}".rstrip()]
    lines += [
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{where}")',
        f'model = AutoModelForCausalLM.from_pretrained("{where}"{extra})',
    ]
    return "\n".join(lines)


def variant_page(variants: VariantSet, name: str) -> tuple[str, str, str, str]:
    """(card Markdown without YAML, recipe YAML, load snippet, measurements Markdown) of one variant.

    Example:
        >>> card, recipe, snippet, numbers = variant_page(vs, "gptq-4bit")   # doctest: +SKIP
    """
    if not name:
        return "Choose a variant above.", "", "", ""
    base_label = f"{variants.base_name} (base)"
    if name == base_label:
        base = variants.base
        body = (f"# {variants.base_name}\n\nThe uncompressed base model every variant is compared with"
                f" (`{base.get('model_id', '?')}`, loaded as {base.get('kind', '?')}).")
        snippet = ("from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                   f'model = AutoModelForCausalLM.from_pretrained("{base.get("model_id", "?")}")')
        return body, "# no compression", snippet, ""
    variant = variants.get(name)
    card = strip_yaml_header(variant.card) if variant.card else f"# {variant.name}\n\n*This variant has no README.md card.*"
    recipe = variant.recipe_yaml or _recipe_yaml(variant.recipe)
    return card, recipe, load_snippet(variant), _measurements_markdown(variant)


def _recipe_yaml(recipe: list[dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump([{s["kind"]: {k: v for k, v in s.items() if k != "kind"}} for s in recipe], sort_keys=False)


def _measurements_markdown(variant: Variant) -> str:
    metrics = (variant.results or {}).get("metrics") or {}
    if not metrics:
        return "*No measurements.*"
    lines = ["| metric | variant | base | ratio |", "|---|---:|---:|---:|"]
    for name, entry in metrics.items():
        if not isinstance(entry, dict):
            continue
        unit = entry.get("unit") or ""
        unit = "" if unit in ("count", "ppl", "fraction", "score") else f" {unit}"
        ratio = _ratio(entry)
        lines.append(f"| {name} | {_fmt(entry.get('value'))}{unit} | {_fmt(entry.get('base'))}{unit if entry.get('base') is not None else ''} "
                     f"| {'' if ratio is None else f'{ratio:.3g}×'} |")
    env = ((variant.results or {}).get("environment") or {}).get("hardware") or {}
    if env:
        lines.append("")
        lines.append("Measured on: " + ", ".join(f"{k}: {v}" for k, v in list(env.items())[:4]))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


# ----------------------------------------------------------------------------------------------------------
# Lazy model loading within a memory budget, and streamed generation


class ModelCache:
    """Loaded models kept in least-recently-used order within a memory budget (estimated bytes).

    A model is loaded on first use; before loading, the least recently used models are dropped until the new
    one's estimate fits; after loading, its real size (parameters + buffers) replaces the estimate. The model
    just requested is never dropped, even when it alone exceeds the budget.

    Example:
        >>> cache = ModelCache(budget_mb=2048)
        >>> cache.budget_bytes
        2147483648
    """

    def __init__(self, budget_mb: float = DEFAULT_MEMORY_MB) -> None:
        self.budget_bytes = int(budget_mb * 1024 * 1024)
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._lock = threading.RLock()

    @property
    def used_bytes(self) -> int:
        """Bytes of all models held now."""
        return sum(size for _, size in self._items.values())

    def keys(self) -> list[str]:
        """Keys held, least recently used first."""
        return list(self._items)

    def get(self, key: str, load: Callable[[], Any], estimate_bytes: int = 0) -> Any:
        """The value for ``key``, calling ``load()`` (after making room for ``estimate_bytes``) when absent."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            self._evict(self.budget_bytes - estimate_bytes)
            value = load()
            self._items[key] = (value, _model_bytes(value) or estimate_bytes)
            self._evict(self.budget_bytes, keep=key)
            return value

    def _evict(self, limit: int, keep: str | None = None) -> None:
        dropped = False
        while self._items and self.used_bytes > limit:
            oldest = next(iter(self._items))
            if oldest == keep:
                break
            self._items.pop(oldest)
            dropped = True
            logger.info("dropped %s from the model cache (budget %d MB)", oldest, self.budget_bytes // 2**20)
        if dropped:
            import gc

            gc.collect()  # free the dropped model's tensors now, before the next one loads


def _model_bytes(value: Any) -> int:
    model = getattr(value, "model", value)
    total = 0
    for getter in ("parameters", "buffers"):
        for tensor in getattr(model, getter, lambda: [])():
            total += tensor.numel() * tensor.element_size()
    return total


def _estimate_bytes(variant: Variant | None) -> int:
    # On CPU a model loads in float32: weights files of half or packed precision grow, so estimate 4 bytes/param.
    if variant is not None:
        params = variant.metric("parameters").get("value")
        if isinstance(params, (int, float)):
            return int(params * 4)
        if variant.folder is not None:
            return sum(p.stat().st_size for p in variant.folder.glob("*.safetensors")) * 2
    return 0


@dataclass
class GenerationStats:
    """Live numbers of one streamed generation: tokens so far and their rate."""

    tokens: int = 0
    started: float = 0.0
    first_token: float | None = None
    last_token: float | None = None
    load_seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float | None:
        """Decode rate after the first token (prefill excluded), or None before two tokens."""
        if self.tokens < 2 or self.first_token is None or self.last_token is None or self.last_token <= self.first_token:
            return None
        return (self.tokens - 1) / (self.last_token - self.first_token)

    def describe(self) -> str:
        """E.g. ``32 tokens · 41.3 tokens/s · first token 85 ms``."""
        parts = [f"{self.tokens} tokens"]
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.1f} tokens/s")
        if self.first_token is not None:
            parts.append(f"first token {1000 * (self.first_token - self.started):.0f} ms")
        if self.load_seconds >= 0.05:
            parts.append(f"loaded in {self.load_seconds:.1f} s")
        return " · ".join(parts)


class Generator:
    """Loads variants (and the base model) lazily through a ``ModelCache`` and streams their outputs.

    Example:
        >>> gen = Generator(find_variants("runs/grid"), budget_mb=4096)            # doctest: +SKIP
        >>> for outputs in gen.side_by_side("Paris is", ["gptq-4bit", gen.base_label]):   # doctest: +SKIP
        ...     pass
    """

    def __init__(self, variants: VariantSet, budget_mb: float | None = None) -> None:
        self.variants = variants
        if budget_mb is None:
            budget_mb = float(os.environ.get(MEMORY_ENV, DEFAULT_MEMORY_MB))
        self.cache = ModelCache(budget_mb)
        # One generation at a time: parallel runs on a shared CPU would make every tokens/s number wrong.
        self._run_lock = threading.Lock()

    @property
    def base_label(self) -> str:
        """The base model's name in choices and the table."""
        return f"{self.variants.base_name} (base)"

    def choices(self) -> list[str]:
        """Names that can generate: the base model (when it can be loaded here) and variants with weights."""
        names = [self.base_label] if self._base_loadable() else []
        return names + [v.name for v in self.variants.variants if v.has_weights]

    def _base_loadable(self) -> bool:
        base = self.variants.base
        kind = base.get("kind")
        if kind == "embedded" or kind == "hub":
            return True
        return self._base_folder() is not None

    def _base_folder(self) -> str | None:
        # A folder base records its path as model_id (results.json) or path (hfcompress.json).
        base = self.variants.base
        for key in ("path", "model_id"):
            if base.get(key) and Path(str(base[key])).is_dir():
                return str(base[key])
        return None

    def load(self, name: str) -> Any:
        """The ``LoadedModel`` (model + tokenizer) of ``name``, from the cache or loaded now."""
        from .loading import load_model

        if name == self.base_label:
            base = self.variants.base
            kind = base.get("kind")
            if kind == "embedded":
                # The embedded GGUF package cannot be pip-installed on a Space (it needs --no-deps): there the base
                # loads from its upstream Hub repo instead, which the embedded weights were converted from.
                import importlib.util

                from .loading import EMBEDDED_PACKAGE

                embedded_here = importlib.util.find_spec(EMBEDDED_PACKAGE) is not None
                target = None if embedded_here else base.get("model_id")
                revision = None
            elif kind == "hub":
                target, revision = base.get("model_id"), base.get("revision")
            else:
                target, revision = self._base_folder(), None
                if target is None:
                    raise HFCompressError(f"the base model folder {base.get('model_id')!r} is not on this machine")
            estimate = _median_base(self.variants, "parameters")
            return self.cache.get(name, lambda: load_model(target, revision=revision), int((estimate or 0) * 4))
        variant = self.variants.get(name)
        if not variant.has_weights:
            raise HFCompressError(f"{name}: no weights here (only its results were bundled); load it from its Hub repo")
        trust = bool(((variant.manifest or {}).get("load") or {}).get("trust_remote_code"))
        return self.cache.get(name, lambda: load_model(variant.load_id, trust_remote_code=trust), _estimate_bytes(variant))

    def stream(self, name: str, prompt: str, *, max_new_tokens: int = 64, sample: bool = False, temperature: float = 0.7,
               top_p: float = 0.95, seed: int = 0, chat_template: bool = True) -> Iterator[tuple[str, GenerationStats]]:
        """Yield ``(text so far, stats)`` while ``name`` generates a continuation of ``prompt``.

        Greedy by default; with ``sample=True`` the torch seed is reset to ``seed`` before generating, so every
        variant draws from the same random stream and a rerun repeats the output.
        """
        import torch
        from transformers import TextIteratorStreamer, set_seed

        stats = GenerationStats(started=time.perf_counter())
        loaded = self.load(name)
        stats.load_seconds = time.perf_counter() - stats.started
        model, tokenizer = loaded.model, loaded.tokenizer
        if chat_template and getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
            inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        else:
            inputs = tokenizer(prompt, return_tensors="pt")
        inputs = {k: v.to(model.device) for k, v in inputs.items()}

        class _CountingStreamer(TextIteratorStreamer):
            def put(self, value: Any) -> None:
                if not (self.skip_prompt and self.next_tokens_are_prompt):
                    now = time.perf_counter()
                    stats.first_token = stats.first_token or now
                    stats.last_token = now
                    stats.tokens += int(value.numel())
                super().put(value)

        streamer = _CountingStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        kwargs: dict[str, Any] = dict(inputs, max_new_tokens=int(max_new_tokens), streamer=streamer,
                                      pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        if sample:
            kwargs.update(do_sample=True, temperature=float(temperature), top_p=float(top_p))
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    set_seed(int(seed))
                    model.generate(**kwargs)
            except BaseException as err:  # reported in this variant's column, not as a crash of the page
                errors.append(err)
                streamer.end()

        stats.started = time.perf_counter()
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        text = ""
        for chunk in streamer:
            text += chunk
            yield text, stats
        thread.join()
        if errors:
            raise HFCompressError(f"{name}: generation failed ({_one_line(errors[0])})")
        yield text, stats

    def side_by_side(self, prompt: str, names: Sequence[str], **options: Any) -> Iterator[list[tuple[str, str]]]:
        """Yield, per chosen variant, ``(status line, output text)`` while they generate one after another.

        They run in turn, not at once, so each one's tokens/s is measured on an otherwise idle CPU/GPU.
        """
        names = [n for n in names if n][:MAX_SLOTS]
        if not prompt or not prompt.strip():
            raise HFCompressError("the prompt is empty; type a prompt first")
        if not names:
            raise HFCompressError("choose at least one variant to generate with")
        slots = [["waiting…", ""] for _ in names]
        yield [tuple(s) for s in slots]
        with self._run_lock:
            for i, name in enumerate(names):
                slots[i][0] = "loading…" if name not in self.cache.keys() else "generating…"
                yield [tuple(s) for s in slots]
                try:
                    for text, stats in self.stream(name, prompt, **options):
                        slots[i] = [f"generating… {stats.describe()}", text]
                        yield [tuple(s) for s in slots]
                    slots[i][0] = f"done · {stats.describe()}"
                except HFCompressError as err:
                    slots[i] = [f"error: {err}", slots[i][1]]
                except Exception as err:  # a backend failing to load a format: say so, keep the other columns
                    slots[i] = [f"error: {name}: {_one_line(err)}", slots[i][1]]
                yield [tuple(s) for s in slots]


# ----------------------------------------------------------------------------------------------------------
# The Gradio app

_CSS = """
.gradio-container {max-width: 1400px !important; margin: auto;}
#hfc-header h1 {margin-bottom: 0.1em;}
#hfc-header p {color: var(--body-text-color-subdued); margin-top: 0;}
#hfc-problems {border-left: 4px solid #f59e0b; background: #fffbeb; padding: 0.4em 1em; border-radius: 6px;}
#hfc-problems, #hfc-problems * {color: #78350f !important;}
.hfc-slot-status {font-size: 0.9em; color: var(--body-text-color-subdued); min-height: 1.6em;}
.hfc-slot-name h3 {margin: 0;}
#hfc-table table, #hfc-table td, #hfc-table th {font-family: var(--font) !important; font-size: 0.92em;}
#hfc-table {--font-mono: var(--font);}
"""


def app_theme() -> Any:
    """The Gradio theme of the Space (pass it to ``launch``, as Gradio 6 takes themes there)."""
    import gradio as gr

    return gr.themes.Soft(primary_hue="orange", secondary_hue="amber", neutral_hue="slate")


def _header_markdown(variants: VariantSet) -> str:
    n = len(variants.variants)
    if not n:
        return (f"# Compare compressed variants\nNothing to compare yet in `{variants.source or 'no source'}`: "
                "see the message below, then read the results again from the About tab.")
    base = variants.base.get("model_id") or "an unknown base model"
    hardware = ""
    for v in variants.variants:
        hw = ((v.results or {}).get("environment") or {}).get("hardware") or {}
        if hw:
            hardware = " · measured on " + ", ".join(str(x) for x in (hw.get("cpu") or hw.get("device"), hw.get("gpu")) if x)
            break
    return (f"# Compressed variants of {variants.base_name}\n"
            f"{n} variant{'s' if n != 1 else ''} of `{base}` compared with the base model · source: `{variants.source or 'none'}`"
            f"{hardware.rstrip(' ·, ')}")


def _problems_markdown(variants: VariantSet) -> str:
    if not variants.problems:
        return ""
    count = f"{len(variants.problems)} problem{'s' if len(variants.problems) != 1 else ''}"
    left_out = "(these variants are left out)" if variants.variants else "(no variant could be shown)"
    lines = [f"**{count} while reading the results** {left_out}:"]
    lines += [f"- {p}" for p in variants.problems]
    return "\n".join(lines)


_ABOUT = """
### What the columns mean
- **size (MB)**: weights on disk; **params (M)**: parameters in millions (pruned zeros still count unless shapes shrank).
- **perplexity**: on held-out text (lower is better); **decode tok/s**: generation speed at batch 1; **memory (MB)**: peak memory while generating.
- **×** columns: the variant divided by the base model, measured in the same run on the same machine.
- **bits**: average bits per weight of the Linear layers (scales and zero points included); **sparsity**: fraction of weights that are zero.

The **Pareto front** links the variants that no other variant beats on both axes at once: pick along it.

Side-by-side generation runs the chosen variants one after another with the same prompt and settings
(greedy, or sampling from the same seed), so their outputs and speeds are comparable. Models load on first use
and are kept in memory within a budget; the least recently used are dropped first.
"""


def build_app(source: str | os.PathLike | VariantSet | None, *, memory_mb: float | None = None, title: str | None = None) -> Any:
    """Build the comparison app (a ``gradio.Blocks``) for every variant in ``source``.

    Endpoints (``api_name``): ``/table`` (filter + sort), ``/variant`` (variant page), ``/generate``
    (side-by-side, streamed), ``/reload`` (read the source again).

    Example:
        >>> demo = build_app("runs/smollm2-grid")                               # doctest: +SKIP
        >>> launch(demo, server_name="127.0.0.1", server_port=7860)            # doctest: +SKIP
    """
    import gradio as gr

    state: dict[str, Any] = {}

    def refresh() -> None:
        variants = source if isinstance(source, VariantSet) else find_variants(source)
        state["variants"] = variants
        state["generator"] = Generator(variants, memory_mb)

    refresh()
    variants: VariantSet = state["variants"]
    present = _present_families(variants)

    def table_and_plots(families: list[str], sort_by: str, descending: bool) -> tuple[Any, Any, Any]:
        vs = state["variants"]
        table = variant_table(vs, families=families, sort_by=sort_by or None, descending=bool(descending))
        size_fig = tradeoff_figure(table, "size (MB)", title="Size on disk vs perplexity")
        speed_fig = tradeoff_figure(table, "decode tok/s", minimize_x=False, title="Decode speed vs perplexity")
        return styled_table(table), size_fig, speed_fig

    def page(name: str) -> tuple[str, str, str, str]:
        try:
            return variant_page(state["variants"], name)
        except HFCompressError as err:
            return f"**{err}**", "", "", ""

    def generate(prompt: str, names: list[str], max_new_tokens: float, sample: bool, temperature: float, top_p: float,
                 seed: float, chat: bool) -> Iterator[list[Any]]:
        names = list(names or [])[:MAX_SLOTS]
        options = dict(max_new_tokens=int(max_new_tokens), sample=bool(sample), temperature=float(temperature),
                       top_p=float(top_p), seed=int(seed), chat_template=bool(chat))
        try:
            for slots in state["generator"].side_by_side(prompt, names, **options):
                yield _slot_updates(names, slots)
        except HFCompressError as err:
            raise gr.Error(str(err), print_exception=False) from None

    def reload() -> list[Any]:
        refresh()
        vs = state["variants"]
        now_present = _present_families(vs)
        table, size_fig, speed_fig = table_and_plots(now_present, "", False)
        names = [f"{vs.base_name} (base)"] + [v.name for v in vs.variants]
        gen_choices = state["generator"].choices()
        return [_header_markdown(vs), gr.update(value=_problems_markdown(vs), visible=bool(vs.problems)), table, size_fig,
                speed_fig, gr.update(choices=names), gr.update(choices=gen_choices, value=gen_choices[:2]),
                gr.update(choices=now_present, value=now_present), gr.update(value="")]

    initial_table, initial_size, initial_speed = table_and_plots(present, "", False)
    gen_choices = state["generator"].choices()
    page_choices = [f"{variants.base_name} (base)"] + [v.name for v in variants.variants]
    first_page = variants.variants[0].name if variants.variants else page_choices[0]

    with gr.Blocks(title=title or f"Compare {variants.base_name} variants", analytics_enabled=False) as demo:
        header = gr.Markdown(_header_markdown(variants), elem_id="hfc-header")
        problems = gr.Markdown(_problems_markdown(variants), visible=bool(variants.problems), elem_id="hfc-problems")
        with gr.Tabs():
            with gr.Tab("Leaderboard", id="leaderboard"):
                with gr.Row(equal_height=True):
                    families = gr.CheckboxGroup(present, value=present, label="Method family", scale=3)
                    sort_by = gr.Dropdown([("as found", ""), *[(c, c) for c in TABLE_COLUMNS]], value="",
                                          label="Sort by (the base model stays first)", scale=2)
                    descending = gr.Checkbox(False, label="Descending", scale=1)
                table = gr.Dataframe(initial_table, label="All variants (× = ratio to the base model)", interactive=False,
                                     wrap=True, pinned_columns=1, show_search="search", elem_id="hfc-table",
                                     column_widths=["12%", "11%", "9%", "4%", "5.5%", *["5.85%"] * 10],
                                     buttons=["fullscreen", "copy"], max_height=520)
                with gr.Row():
                    size_plot = gr.Plot(initial_size, label="Size vs perplexity", show_label=False, elem_id="hfc-size-plot")
                    speed_plot = gr.Plot(initial_speed, label="Speed vs perplexity", show_label=False, elem_id="hfc-speed-plot")
            with gr.Tab("Side by side", id="generate"):
                with gr.Row():
                    with gr.Column(scale=3):
                        prompt = gr.Textbox("Explain in two sentences why smaller language models are useful.",
                                            label="Prompt", lines=3, elem_id="hfc-prompt")
                        chosen = gr.Dropdown(gen_choices, value=gen_choices[:2], multiselect=True, max_choices=MAX_SLOTS,
                                             label=f"Variants (up to {MAX_SLOTS}; they run one after another)",
                                             elem_id="hfc-chosen")
                    with gr.Column(scale=2):
                        with gr.Accordion("Generation settings", open=False):
                            max_new = gr.Slider(8, 512, value=64, step=8, label="Max new tokens")
                            sample = gr.Checkbox(False, label="Sample (otherwise greedy)")
                            temperature = gr.Slider(0.1, 1.5, value=0.7, step=0.05, label="Temperature")
                            top_p = gr.Slider(0.1, 1.0, value=0.95, step=0.05, label="Top-p")
                            seed = gr.Number(0, precision=0, label="Seed (same for every variant)")
                            chat = gr.Checkbox(True, label="Use the chat template when the tokenizer has one")
                        run = gr.Button("Generate side by side", variant="primary", elem_id="hfc-run")
                slot_components: list[Any] = []
                initial = gen_choices[:2]
                with gr.Row(equal_height=True):
                    for i in range(MAX_SLOTS):
                        with gr.Column(visible=i < len(initial), min_width=240, variant="panel") as column:
                            name_md = gr.Markdown(f"### {initial[i]}" if i < len(initial) else "",
                                                  elem_classes=["hfc-slot-name"])
                            status = gr.Markdown("", elem_classes=["hfc-slot-status"], elem_id=f"hfc-status-{i}")
                            output = gr.Textbox("", lines=12, max_lines=30, show_label=False, interactive=False,
                                                elem_id=f"hfc-output-{i}")
                        slot_components += [column, name_md, status, output]
                if not gen_choices:
                    gr.Markdown("*No model can generate here: the results were bundled without weights and their base "
                                "model is unknown.*")
            with gr.Tab("Variant", id="variant"):
                pick = gr.Dropdown(page_choices, value=first_page, label="Variant", elem_id="hfc-pick")
                first = page(first_page)
                with gr.Row():
                    with gr.Column(scale=3):
                        card = gr.Markdown(first[0], elem_id="hfc-card")
                    with gr.Column(scale=2):
                        recipe = gr.Code(first[1], language="yaml", label="Recipe (recipe.yaml)", interactive=False,
                                         wrap_lines=True)
                        snippet = gr.Code(first[2], language="python", label="How to load it", interactive=False,
                                          wrap_lines=True)
                        numbers = gr.Markdown(first[3])
            with gr.Tab("About", id="about"):
                gr.Markdown(_ABOUT)
                reload_button = gr.Button("Read the results again", elem_id="hfc-reload")

        filters = [families, sort_by, descending]
        gr.on([c.change for c in filters], table_and_plots, filters, [table, size_plot, speed_plot], api_name="table")
        pick.change(page, pick, [card, recipe, snippet, numbers], api_name="variant")
        chosen.change(lambda names: _slot_updates(list(names or []), [("", "")] * len(names or [])), chosen,
                      slot_components, api_name=False, show_progress="hidden")
        run.click(generate, [prompt, chosen, max_new, sample, temperature, top_p, seed, chat], slot_components,
                  api_name="generate", concurrency_limit=1, show_progress="hidden")
        reload_button.click(reload, None, [header, problems, table, size_plot, speed_plot, pick, chosen, families, sort_by],
                            api_name="reload")
    demo.hfc_variants = lambda: state["variants"]  # for tests and callers that want to inspect what was read
    return demo


def _present_families(variants: VariantSet) -> list[str]:
    # The filter offers the families that occur ("other" for a method this version does not know).
    found = [f for f in (*FAMILY_ORDER, "other") if any(f in v.families for v in variants.variants)]
    return found or list(FAMILY_ORDER)


def _slot_updates(names: list[str], slots: Sequence[tuple[str, str]]) -> list[Any]:
    import gradio as gr

    updates: list[Any] = []
    for i in range(MAX_SLOTS):
        if i < len(names):
            status, text = slots[i] if i < len(slots) else ("", "")
            updates += [gr.update(visible=True), f"### {names[i]}", status, text]
        else:
            updates += [gr.update(visible=False), "", "", ""]
    return updates


def launch(demo: Any, **kwargs: Any) -> Any:
    """``demo.launch(**kwargs)`` with the Space's theme and CSS (Gradio 6 takes them at launch).

    Example:
        >>> launch(build_app("runs/grid"), server_name="127.0.0.1", server_port=7860)   # doctest: +SKIP
    """
    kwargs.setdefault("theme", app_theme())
    kwargs.setdefault("css", _CSS)
    return demo.launch(**kwargs)


def serve(source: str | os.PathLike | None, *, host: str = "127.0.0.1", port: int | None = None,
          memory_mb: float | None = None, share: bool = False) -> None:
    """Build the app for ``source`` and serve it until interrupted (``hfcompress space``).

    Example:
        >>> serve("runs/smollm2-grid", port=7860)        # doctest: +SKIP
    """
    if source is None:
        source = "runs"
    launch(build_app(source, memory_mb=memory_mb), server_name=host, server_port=port, share=share)


# ----------------------------------------------------------------------------------------------------------
# Deploying to a Hub Space


def template_dir() -> Path:
    """The folder holding the Space's app.py, requirements.txt and README.md.

    ``spaces/compare`` in the repository; the package reaches it as ``hfcompress/space_template`` (a link in a
    checkout, real files in an installed wheel), so ``push-space`` works after a plain ``pip install``.

    Example:
        >>> (template_dir() / "app.py").is_file()
        True
    """
    folder = Path(__file__).resolve().parent / "space_template"
    if not (folder / "app.py").is_file():
        raise HFCompressError(f"the Space template (app.py) is missing from {folder}; reinstall hfcompress")
    return folder


def build_space_folder(target: str | os.PathLike, *, results: str | os.PathLike | None = None,
                       collection: str | None = None, title: str | None = None,
                       requirement: str | None = None, variants_on: str | None = None) -> tuple[Path, VariantSet]:
    """Write the Space repo's files into ``target`` (an empty or new folder) and return it with what was bundled.

    With ``results``: copies results.json, hfcompress.json, README.md and recipe.yaml of each readable variant
    (never weights) into ``results/<variant>/``, local paths reduced to names. ``variants_on`` is the namespace
    (or prefix) the variants were published under with ``push-grid``: the Space then loads their weights from
    those repos for side-by-side generation. With ``collection``: the app reads the collection at start.

    Example:
        >>> folder, vs = build_space_folder("/tmp/space", results="runs/grid")   # doctest: +SKIP
        >>> sorted(p.name for p in folder.iterdir())                            # doctest: +SKIP
        ['README.md', 'app.py', 'requirements.txt', 'results', 'space_config.json']
    """
    from huggingface_hub import SpaceCard

    if (results is None) == (collection is None):
        raise HFCompressError("pass exactly one of --results RUNS_DIR or --collection COLLECTION_ID")
    if results is not None:
        variants = find_variants(results)
        if not variants.variants:
            problems = "; ".join(variants.problems) or "no variants"
            raise HFCompressError(f"nothing to deploy from {results}: {problems}")
        config: dict[str, Any] = {"results": BUNDLE_DIR}
    else:
        if not _looks_like_collection(str(collection)):
            raise HFCompressError(f"{collection!r} is not a Hub collection id; it looks like owner/title-0123456789abcdef0123")
        variants = find_variants(collection)
        config = {"collection": collection}

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    templates = template_dir()
    shutil.copyfile(templates / "app.py", target / "app.py")
    reqs = (templates / "requirements.txt").read_text(encoding="utf-8")
    if requirement:
        reqs = re.sub(r"(?m)^hfcompress\S*$", requirement, reqs)
    (target / "requirements.txt").write_text(reqs, encoding="utf-8")
    if results is not None:
        from .hub import public_text, variant_repo_id

        for variant in variants.variants:
            out = target / BUNDLE_DIR / variant.name
            out.mkdir(parents=True, exist_ok=True)
            for filename in VARIANT_FILES:
                if variant.folder is not None and (variant.folder / filename).is_file():
                    text = public_text((variant.folder / filename).read_text(encoding="utf-8"))
                    if filename == MANIFEST_NAME and variants_on:
                        manifest = json.loads(text)
                        variant.repo_id = variant_repo_id(variant.folder, variants_on, manifest)
                        text = json.dumps({**manifest, "hub": {"repo_id": variant.repo_id}}, indent=2) + "\n"
                    (out / filename).write_text(text, encoding="utf-8")
    (target / SPACE_CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")

    import gradio

    card = SpaceCard((templates / "README.md").read_text(encoding="utf-8"))
    card.data.title = title or f"Compare {variants.base_name} variants"
    card.data.sdk_version = gradio.__version__
    models = [m for m in [variants.base.get("model_id") if variants.base.get("kind") == "hub" else None,
                          *(v.repo_id for v in variants.variants)] if m]
    if models:
        card.data.models = models
    card.save(target / "README.md")
    return target, variants


def push_space(repo_id: str, *, results: str | os.PathLike | None = None, collection: str | None = None,
               private: bool = False, token: str | None = None, title: str | None = None, requirement: str | None = None,
               commit_message: str | None = None, variants_on: str | None = None) -> str:
    """Create (or update) the Gradio Space ``repo_id`` with the comparison app, wired to results or a collection.

    Returns the Space's URL. Uses ``HfApi.create_repo(repo_type="space", space_sdk="gradio")`` + ``upload_folder``.

    Example:
        >>> push_space("me/compare-smollm2", results="runs/smollm2-grid")      # doctest: +SKIP
        'https://huggingface.co/spaces/me/compare-smollm2'
    """
    from .hub import api_for, hub_errors, resolve_token

    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id or ""):
        raise HFCompressError(f"{repo_id!r} is not a Space id; use owner/name, e.g. me/compare-smollm2")
    token = resolve_token(token)
    with tempfile.TemporaryDirectory(prefix="hfcompress-space-") as tmp:
        folder, variants = build_space_folder(Path(tmp) / "space", results=results, collection=collection, title=title,
                                              requirement=requirement, variants_on=variants_on)
        for problem in variants.problems:
            logger.warning("left out: %s", problem)
        api = api_for(token)
        with hub_errors(token, repo_id, "pushing the Space"):
            url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
            api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="space",
                              commit_message=commit_message or f"Comparison Space for {variants.base_name} (hfcompress)")
    return str(url)


# ----------------------------------------------------------------------------------------------------------


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return (text[:240] + "…") if len(text) > 240 else (text or type(err).__name__)


def _hub_error_line(err: BaseException) -> str:
    # HfHubHTTPError messages span lines (URL, request id); keep the first, and never a token.
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    first = re.sub(r"hf_[A-Za-z0-9]{8,}", "hf_***", first)
    status = getattr(getattr(err, "response", None), "status_code", None)
    return f"HTTP {status}: {first[:200]}" if status else first[:200]
