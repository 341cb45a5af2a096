"""Model cards for saved variants: data (manifest + results) -> Jinja template -> README.md.

The card is rendered through huggingface_hub's ``ModelCard.from_template`` with a ``ModelCardData`` holding the
metadata the Hub reads (``base_model``, ``base_model_relation``, ``license``, ``tags``, ``datasets``,
``model-index``...), from ``hfcompress/templates/modelcard.md.j2`` or a template of the user's. The body says
what was done, the numbers against the base with units and hardware, how to load and reproduce the variant,
the library versions and what got worse. Where the installed huggingface_hub knows the newer
``.eval_results/*.yaml`` format, results on real Hub benchmark datasets are written there too.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> manifest = {"base_model": {"kind": "hub", "model_id": "org/base"}, "recipe": [{"kind": "prune", "method": "wanda",
    ...             "sparsity": 0.5, "pattern": "unstructured"}], "format": "safetensors"}
    >>> write_model_card(folder, manifest=manifest).name
    'README.md'
    >>> "base_model_relation: finetune" in (folder / "README.md").read_text()
    True
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..artifacts import CARD_NAME, MANIFEST_NAME, read_manifest, read_results_json
from ..atomic import write_text_atomic
from ..errors import HFCompressError
from .card_data import _HUB_ID, BASE_MODEL_RELATIONS, _as_list, card_context, card_metadata, eval_result_entries

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
DEFAULT_TEMPLATE = TEMPLATE_DIR / "modelcard.md.j2"
EVAL_RESULTS_FILE = "hfcompress.yaml"  # inside the .eval_results/ folder
# ---------------------------------------------------------------------------------------------------------
# Public API


def write_model_card(
    folder: str | os.PathLike,
    *,
    manifest: dict[str, Any],
    results: dict[str, Any] | None = None,
    template: str | os.PathLike | None = None,
    siblings: Sequence[dict[str, Any]] | None = None,
    repo_id: str | None = None,
    quantized_by: str | None = None,
    base_model: str | None = None,
) -> Path:
    """Render the card of the variant in ``folder`` and write README.md (and ``.eval_results/``) atomically.

    Args:
        folder: the variant folder (its README.md is replaced).
        manifest: the hfcompress.json dict. results: the results.json dict, or None when not benchmarked.
        template: a Jinja template path of your own (default: ``hfcompress/templates/modelcard.md.j2``).
        siblings: other variants of the same base: ``[{"repo_id": ..., "name": ..., "summary": ...}]``.
        repo_id: where the variant is (or will be) published; used in the load snippets.
        quantized_by: who made it (default: ``$HFCOMPRESS_QUANTIZED_BY``; never taken from a token).
        base_model: Hub id of the base when the manifest only knows a local path.

    Example:
        >>> write_model_card("out/v", manifest=json.load(open("out/v/hfcompress.json")))   # doctest: +SKIP
    """
    files = card_files(manifest, results, template=template, siblings=siblings, repo_id=repo_id, quantized_by=quantized_by,
                       base_model=base_model, folder_name=_variant_name(Path(folder)))
    return write_card_files(folder, files)


def _variant_name(folder: Path) -> str:
    # save_pretrained renders into a temp folder ".<name>.tmp-XXXX" beside the target: name the target.
    name_match = re.fullmatch(r"\.(.+)\.tmp-[^.]+", folder.name)
    return name_match.group(1) if name_match else folder.name


EVAL_RESULTS_PATH = f".eval_results/{EVAL_RESULTS_FILE}"


def card_files(manifest: dict[str, Any], results: dict[str, Any] | None = None, **options: Any) -> dict[str, str | None]:
    """The card's files, rendered in memory: ``{"README.md": text, ".eval_results/hfcompress.yaml": text or None}``
    (None: the folder must not have that file). ``options`` are ``build_model_card``'s.

    Example:
        >>> files = card_files({"base_model": {"kind": "hub", "model_id": "org/base"}, "recipe": [{"kind": "rtn", "bits": 8}]})
        >>> sorted(files), files[EVAL_RESULTS_PATH]
        (['.eval_results/hfcompress.yaml', 'README.md'], None)
    """
    card = build_model_card(manifest, results, **options)
    entries = eval_result_entries(results)
    evals = None
    if entries:
        from huggingface_hub import eval_result_entries_to_yaml

        evals = yaml.safe_dump(eval_result_entries_to_yaml(entries), sort_keys=False)
    return {CARD_NAME: str(card), EVAL_RESULTS_PATH: evals}


def write_card_files(folder: str | os.PathLike, files: dict[str, str | None]) -> Path:
    """Write what ``card_files`` rendered into ``folder`` atomically (a None removes a stale file); returns README.md."""
    folder = Path(folder)
    for rel, text in files.items():
        path = folder / rel
        if text is not None:
            write_text_atomic(path, text)
        elif path.is_file():
            path.unlink()  # stale from an earlier card of this folder
    return folder / CARD_NAME


def saved_card_files(folder: str | os.PathLike, *, template: str | os.PathLike | None = None, **kwargs: Any) -> dict[str, str | None]:
    """The card files of a saved variant rendered again from its hfcompress.json and results.json, in memory.

    What the user told an earlier card (``base_model`` of a local base, ``quantized_by``) is kept unless given anew.
    """
    folder = Path(folder).expanduser()
    if not (folder / MANIFEST_NAME).is_file():
        raise HFCompressError(f"{str(folder)!r} holds no hfcompress.json; pass a folder saved by hfcompress (save_pretrained / compress)")
    manifest = read_manifest(folder)
    results = read_results_json(folder)
    previous = _card_metadata(folder / CARD_NAME)
    for key in ("base_model", "quantized_by"):
        if kwargs.get(key) is None and isinstance(previous.get(key), str):
            kwargs[key] = previous[key]
    kwargs.setdefault("folder_name", _variant_name(folder))
    return card_files(manifest, results, template=template, **kwargs)


def rewrite_model_card(folder: str | os.PathLike, *, template: str | os.PathLike | None = None, **kwargs: Any) -> Path:
    """Re-render README.md of a saved variant from its hfcompress.json and results.json (``hfcompress card DIR``)."""
    return write_card_files(Path(folder).expanduser(), saved_card_files(folder, template=template, **kwargs))


def _card_metadata(readme: Path) -> dict[str, Any]:
    from huggingface_hub import ModelCard

    if not readme.is_file():
        return {}
    try:
        return ModelCard.load(readme, ignore_metadata_errors=True).data.to_dict()
    except Exception:  # an unreadable card is simply re-rendered from the manifest
        return {}


def build_model_card(
    manifest: dict[str, Any],
    results: dict[str, Any] | None = None,
    *,
    template: str | os.PathLike | None = None,
    siblings: Sequence[dict[str, Any]] | None = None,
    repo_id: str | None = None,
    quantized_by: str | None = None,
    base_model: str | None = None,
    folder_name: str | None = None,
) -> Any:
    """The ``huggingface_hub.ModelCard`` of a variant (not written anywhere); checked as the Hub would check it.

    Example:
        >>> card = build_model_card({"base_model": {"kind": "hub", "model_id": "org/base"},
        ...                          "recipe": [{"kind": "gptq", "bits": 4, "group_size": 64}]})
        >>> card.data.base_model_relation, card.data.base_model
        ('quantized', 'org/base')
    """
    from huggingface_hub import ModelCard

    template_path = Path(template).expanduser() if template is not None else DEFAULT_TEMPLATE
    if not template_path.is_file():
        raise HFCompressError(f"card template {str(template_path)!r} not found; pass an existing Jinja (.md.j2) file")
    context = card_context(manifest, results, siblings=siblings, repo_id=repo_id, quantized_by=quantized_by,
                           base_model=base_model, folder_name=folder_name)
    data = card_metadata(context)
    try:
        card = ModelCard.from_template(data, template_path=str(template_path), **context)
    except Exception as err:  # jinja2 errors: name the template and the line
        line = f" (line {err.lineno})" if getattr(err, "lineno", None) else ""
        raise HFCompressError(f"card template {template_path.name} failed to render{line}: {err}") from None
    problems = validate_card_text(str(card), required=data.to_dict())
    if problems:
        raise HFCompressError(f"the rendered card is not valid Hub metadata ({template_path.name}): {problems[0]}")
    return card


def validate_card_text(text: str, *, required: dict[str, Any] | None = None) -> list[str]:
    """Check a README.md as the Hub would, locally (``ModelCard.validate`` needs the network): the YAML parses,
    huggingface_hub reads it back (``ModelCard`` / ``model_index_to_eval_results``), ``base_model_relation`` is one
    the Hub accepts, and every key of ``required`` is present with that value. Returns the problems found.

    Example:
        >>> validate_card_text("---\\nlibrary_name: transformers\\n---\\n# Hi\\n")
        []
    """
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, re.DOTALL)
    if not match:
        return ["no YAML metadata block (--- ... ---) at the top of the card"]
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as err:
        return [f"metadata YAML does not parse: {str(err).splitlines()[0]}"]
    if not isinstance(meta, dict):
        return ["metadata is not a YAML mapping"]
    problems = []
    try:
        ModelCard(text, ignore_metadata_errors=False)
    except Exception as err:
        return [f"huggingface_hub cannot read the metadata back: {err}"]
    if "model-index" in meta:
        try:
            model_index_to_eval_results(meta["model-index"])
        except Exception as err:
            problems.append(f"model-index does not parse: {err}")
    relation = meta.get("base_model_relation")
    if relation is not None and relation not in BASE_MODEL_RELATIONS:
        problems.append(f"base_model_relation {relation!r} is not one of {', '.join(BASE_MODEL_RELATIONS)}")
    if relation is not None and not meta.get("base_model"):
        problems.append("base_model_relation is set but base_model is missing")
    for key in ("tags", "datasets"):
        value = meta.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            problems.append(f"{key} must be a list of strings")
    for base in _as_list(meta.get("base_model")):
        if not _HUB_ID.match(str(base)):
            problems.append(f"base_model {base!r} is not a Hub model id (owner/name)")
    for key, value in (required or {}).items():
        if key == "model-index":
            if "model-index" not in meta:
                problems.append("model-index is missing")
            continue
        if meta.get(key) != value:
            problems.append(f"metadata {key!r} is {meta.get(key)!r}, expected {value!r} (did the template drop {{{{ card_data }}}}?)")
    return problems
