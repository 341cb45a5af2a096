"""Finding the variants to compare: a runs folder, one variant folder, a deployed Space's bundle, or a Hub collection.

Data flows one way: a *source* -> ``find_variants`` -> ``VariantSet`` -> table / plots / pages -> the app.
Unreadable variants never crash the page: they are listed in ``VariantSet.problems`` with what to do.

Example:
    >>> import tempfile
    >>> vs = find_variants(tempfile.mkdtemp())
    >>> vs.variants, vs.problems[0].endswith("run `hfcompress grid` or `hfcompress compress --evaluate` first")
    ([], True)
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifacts import CARD_NAME, MANIFEST_NAME, RECIPE_NAME, RESULTS_NAME, VARIANT_FILES, is_variant_folder, read_json_object, read_manifest
from ..bench.results import validation_errors
from ..errors import HFCompressError, one_line
from ..methods.registry import recipe_label, step_families
from ..recipe import step_dict

logger = logging.getLogger(__name__)

SPACE_CONFIG_NAME = "space_config.json"
BUNDLE_DIR = "results"
SOURCE_ENV = "HFCOMPRESS_SPACE_SOURCE"
BASE_FAMILY = "base"


def hub_error_line(err: BaseException) -> str:
    """A Hub client error as one line: the first line of its message, its HTTP status, never a token."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    first = re.sub(r"hf_[A-Za-z0-9]{8,}", "hf_***", first)
    status = getattr(getattr(err, "response", None), "status_code", None)
    return f"HTTP {status}: {first[:200]}" if status else first[:200]


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
        return [step_dict(s) for s in steps if isinstance(s, dict)]

    @property
    def families(self) -> tuple[str, ...]:
        """Method families of the recipe steps (as the methods name them); ``('base',)`` for an empty recipe."""
        return step_families(self.recipe)

    @property
    def method(self) -> str:
        """A short human label of the recipe, e.g. ``GPTQ 4-bit g64`` or ``Wanda 50% + GPTQ 4-bit``."""
        return recipe_label(self.recipe)

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
    def gguf_file(self) -> str | None:
        """The GGUF file's name when this variant is one (llama.cpp runs it), else None."""
        name = ((self.manifest or {}).get("load") or {}).get("gguf_file")
        return str(name) if name else None

    @property
    def engine(self) -> str:
        """The engine its figures were measured on (transformers, llama.cpp)."""
        return ((self.results or {}).get("settings") or {}).get("engine") or ("llama.cpp" if self.gguf_file else "transformers")

    @property
    def has_weights(self) -> bool:
        """True when a model can be loaded for generation (a local folder with its weights, or a Hub repo)."""
        if self.repo_id:
            return True
        if self.folder is None:
            return False
        return (self.folder / "config.json").is_file() or bool(self.gguf_file and (self.folder / self.gguf_file).is_file())

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
    """
    path = Path(folder) / RESULTS_NAME
    data = read_json_object(path, "results")
    if not isinstance(data.get("metrics"), dict):
        raise HFCompressError(f"{path}: has no 'metrics' object; re-run `hfcompress bench` to rewrite it")
    errors = validation_errors(data)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise HFCompressError(f"{path}: does not match the results schema: {errors[0][:200]}{more}")
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
    if looks_like_collection(text):
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
        return VariantSet(str(app_dir), [], [f"{app_dir / SPACE_CONFIG_NAME}: unreadable ({one_line(err)})"])
    if config.get("collection"):
        return _find_in_collection(str(config["collection"]))
    return _find_in_dir(app_dir / str(config.get("results") or BUNDLE_DIR))


def _find_in_dir(folder: Path) -> VariantSet:
    found = VariantSet(str(folder))
    if is_variant_folder(folder):
        candidates = [folder]
    else:
        candidates = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    for sub in candidates:
        if not is_variant_folder(sub):
            continue
        try:
            found.variants.append(_read_variant_dir(sub))
        except HFCompressError as err:
            found.problems.append(str(err))
    if not found.variants and not found.problems and folder.is_dir():
        # `hfcompress grid` writes runs/<model>/<variant>: accept the parent when it holds exactly one runs folder.
        nested = [sub for sub in sorted(folder.iterdir()) if sub.is_dir() and not sub.name.startswith(".")
                  and any(is_variant_folder(v) for v in sub.iterdir() if v.is_dir())]
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


def _read_variant_dir(folder: Path) -> Variant:
    results = read_variant_results(folder)
    manifest = None
    if (folder / MANIFEST_NAME).is_file():
        try:
            manifest = read_manifest(folder)
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


def looks_like_collection(text: str) -> bool:
    return bool(_COLLECTION_RE.fullmatch(text))


def _find_in_collection(slug: str) -> VariantSet:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    found = VariantSet(slug)
    try:
        collection = HfApi().get_collection(slug)
    except Exception as err:  # network, 404, auth: one line in the page, never a crash
        found.problems.append(f"collection {slug}: could not be read ({hub_error_line(err)})")
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
            found.problems.append(f"{repo_id}: could not download its files ({hub_error_line(err)})")
            continue
        if files[RESULTS_NAME] is None:
            if files[MANIFEST_NAME] is not None:
                found.problems.append(f"{repo_id}: has no results.json; run `hfcompress bench` and push it again")
            continue  # e.g. the base model itself, or an unrelated model in the collection
        try:
            results = read_variant_results(files[RESULTS_NAME].parent)
            manifest = read_json_object(files[MANIFEST_NAME], "manifest") if files[MANIFEST_NAME] else None
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
