"""The variant folder contract: what a saved variant holds, how its files are read, how a runs folder is walked.

A variant folder (written by ``CompressedModel.save_pretrained`` or a grid) holds the weights and tokenizer
plus four files of ours: ``hfcompress.json`` (the manifest: base model, recipe, steps, versions), ``recipe.yaml``,
``results.json`` (measurements, when benchmarked) and ``README.md`` (the card). A *runs folder* holds one
variant folder per sub-folder; hidden sub-folders (``.name.tmp-*``) are unfinished work and never variants.
Everything here reads plain data: the api, grid, card, hub, Space and bench all read variants through it.

Example:
    >>> import tempfile
    >>> runs = Path(tempfile.mkdtemp())
    >>> (runs / "rtn-int8").mkdir()
    >>> _ = (runs / "rtn-int8" / MANIFEST_NAME).write_text('{"recipe": [{"kind": "rtn", "bits": 8}]}')
    >>> [p.name for p in iter_variant_folders(runs)], saved_recipe(runs / "rtn-int8")
    (['rtn-int8'], [{'kind': 'rtn', 'bits': 8}])
"""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any, Iterator, Sequence

from .errors import HFCompressError

MANIFEST_NAME = "hfcompress.json"
RESULTS_NAME = "results.json"
RECIPE_NAME = "recipe.yaml"
CARD_NAME = "README.md"
# The files of ours in a variant folder (what a Space bundles: never weights).
VARIANT_FILES = (RESULTS_NAME, MANIFEST_NAME, CARD_NAME, RECIPE_NAME)
MANIFEST_VERSION = 1


def read_json_object(path: str | os.PathLike, what: str = "data") -> dict[str, Any]:
    """The JSON object in ``path``; a one-line ``HFCompressError`` says what is wrong (missing, not JSON, not an object).

    Example:
        >>> import tempfile
        >>> bad = Path(tempfile.mkdtemp()) / "results.json"
        >>> _ = bad.write_text("[1, 2]")
        >>> read_json_object(bad, "results")
        Traceback (most recent call last):
        hfcompress.errors.HFCompressError: ...results.json: expected a JSON object of results, found list
    """
    path = Path(path)
    if not path.is_file():
        raise HFCompressError(f"{path.parent}: no {path.name}; run `hfcompress bench` on the variant to measure it"
                              if path.name == RESULTS_NAME else f"{path}: not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        fix = "re-run `hfcompress bench` to rewrite it" if path.name == RESULTS_NAME else "restore it or re-save the variant"
        raise HFCompressError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); {fix}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise HFCompressError(f"{path}: could not be read ({' '.join(str(err).split())[:200]})") from None
    if not isinstance(data, dict):
        raise HFCompressError(f"{path}: expected a JSON object of {what}, found {type(data).__name__}")
    return data


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The hfcompress.json of a variant folder, checked to be a JSON object (one-line error otherwise)."""
    return read_json_object(Path(folder) / MANIFEST_NAME, "manifest")


def read_results_json(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The results.json of ``folder`` as a dict, None when there is none (errors as ``read_json_object``).

    The schema check is ``hfcompress.bench.results.validate_results``; this only reads.
    """
    path = Path(folder) / RESULTS_NAME
    return read_json_object(path, "results") if path.is_file() else None


def is_variant_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a variant of ours (a manifest or results), not being a temp folder of unfinished work."""
    folder = Path(folder)
    return not folder.name.startswith(".") and ((folder / MANIFEST_NAME).exists() or (folder / RESULTS_NAME).exists())


def iter_variant_folders(runs_dir: str | os.PathLike) -> Iterator[Path]:
    """Variant folders inside a runs folder, sorted by name; hidden (temp) folders are skipped.

    ``runs_dir`` itself is yielded when it is a variant folder.
    """
    root = Path(runs_dir).expanduser()
    if is_variant_folder(root):
        yield root
        return
    if not root.is_dir():
        return
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if is_variant_folder(sub):
            yield sub


def saved_recipe(folder: str | os.PathLike) -> list[dict[str, Any]] | None:
    """The recipe recorded in a variant folder's manifest, or None when it cannot be read."""
    try:
        recipe = read_manifest(folder).get("recipe")
    except HFCompressError:
        return None
    return recipe if isinstance(recipe, list) else None


def _input_of(base: dict[str, Any]) -> dict[str, Any]:
    # A base with a PEFT adapter merged at load was given as the adapter (it names its base): commands name the adapter.
    adapter = base.get("adapter")
    return adapter if isinstance(adapter, dict) and adapter.get("model_id") else base


def model_argument(base: dict[str, Any], *, public: bool = True) -> str:
    """How a command line names the base model recorded in a manifest (empty for the embedded default).

    ``public`` (cards): a local path names a machine and a user, so only the folder name is kept.

    Example:
        >>> model_argument({"kind": "hub", "model_id": "HuggingFaceTB/SmolLM2-135M"})
        'HuggingFaceTB/SmolLM2-135M'
        >>> model_argument({"kind": "folder", "model_id": "/home/alice/models/tiny"})
        'path/to/tiny'
        >>> model_argument({"kind": "hub", "model_id": "org/base", "adapter": {"kind": "hub", "model_id": "me/lora"}})
        'me/lora'
    """
    base = _input_of(base)
    kind = base.get("kind")
    if kind == "embedded" or not base.get("model_id"):
        return ""
    if public and kind == "folder" and base.get("hub_id"):
        return str(base["hub_id"])  # a local copy of a Hub model: readers start from the Hub id
    if kind == "hub" or not public:
        if kind == "gguf" and base.get("path") and base.get("gguf_file"):
            return str(Path(str(base["path"])) / str(base["gguf_file"]))
        return str(base.get("path") if kind == "folder" and base.get("path") else base["model_id"])
    return f"path/to/{Path(str(base['model_id'])).name}"


def compress_command(base: dict[str, Any], output: str, *, recipe_file: str = RECIPE_NAME, seed: int | None = None,
                     calibration: dict[str, Any] | None = None, evaluate: bool = False, public: bool = True) -> str:
    """The ``hfcompress compress`` command that redoes a variant from its recipe file.

    Example:
        >>> compress_command({"kind": "hub", "model_id": "org/m", "revision": "abc"}, "out", seed=0)
        'hfcompress compress org/m --revision abc --recipe recipe.yaml -o out --seed 0'
    """
    parts = ["hfcompress", "compress"]
    model = model_argument(base, public=public)
    base = _input_of(base)
    if model:
        parts.append(shlex.quote(model))
        if (base.get("kind") == "hub" or model == base.get("hub_id")) and base.get("revision"):
            parts += ["--revision", shlex.quote(str(base["revision"]))]
    parts += ["--recipe", shlex.quote(recipe_file), "-o", shlex.quote(output)]
    if seed is not None:
        parts += ["--seed", str(seed)]
    if calibration:
        parts += ["--num-samples", str(calibration.get("num_samples", 128)), "--seq-len", str(calibration.get("seq_len", 512))]
        if calibration.get("source") not in (None, "default", "list"):
            parts += ["--calibration", shlex.quote(str(calibration["source"]))]
    if evaluate:
        parts.append("--evaluate")
    return " ".join(parts)


def bench_command(folder: str, settings: dict[str, Any], eval_data: Sequence[Any] = ("default",)) -> str:
    """The ``hfcompress bench`` command that measures a variant folder again with the same settings.

    Example:
        >>> bench_command("out", {"max_tokens": 2048, "context": 512, "stride": 256, "speed": False})
        'hfcompress bench out --max-tokens 2048 --context 512 --stride 256 --no-speed'
    """
    parts = [f"hfcompress bench {shlex.quote(folder)}", f"--max-tokens {settings['max_tokens']}",
             f"--context {settings['context']}", f"--stride {settings['stride']}"]
    if [str(d) for d in eval_data] != ["default"]:
        parts.append("--eval-data " + shlex.quote(",".join(str(d) for d in eval_data)))
    if not settings.get("speed", True):
        parts.append("--no-speed")
    tasks = settings.get("tasks", ["last_word", "cloze"])
    if list(tasks) != ["last_word", "cloze"]:
        parts.append("--offline-tasks " + shlex.quote(",".join(tasks) or "none"))
        if settings.get("task_items", 100) != 100:
            parts.append(f"--task-items {settings['task_items']}")
    if settings.get("lm_eval_tasks"):
        parts.append("--tasks " + ",".join(settings["lm_eval_tasks"]))
        if settings.get("lm_eval_limit"):
            parts.append(f"--limit {settings['lm_eval_limit']}")
    return " ".join(parts)
