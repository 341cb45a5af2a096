"""Publish variants to the Hugging Face Hub: one repo per variant, one commit per push, grids grouped in a collection.

Uploads go through huggingface_hub's ``upload_folder`` (weights through the Hub's LFS path). A push that fails
half-way changes nothing locally, and running it again completes it: the Hub keeps LFS objects that already
arrived and huggingface_hub drops files whose content the repo already has, so nothing is sent twice.
The token comes from ``token=``, ``HF_TOKEN`` or ``hf auth login``; it is never printed, logged or written.

Example:
    >>> from hfcompress.publish.hub import push_folder, push_grid
    >>> push_folder("out/SmolLM2-135M-Instruct-GPTQ-4bit", "me/SmolLM2-135M-Instruct-GPTQ-4bit")   # doctest: +SKIP
    >>> push_grid("runs/demo", "me")                                                             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .._version import __version__
from ..artifacts import MANIFEST_NAME, iter_variant_folders, read_manifest
from ..atomic import write_text_atomic
from ..errors import HFCompressError
from .card import saved_card_files
from .card_data import _HUB_ID, sibling_entry

logger = logging.getLogger(__name__)

NO_TOKEN_MESSAGE = "no Hugging Face token: run `hf auth login` or set HF_TOKEN"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
_DEFAULT_CARD_MARKER = "<!-- hfcompress:default-card -->"
# Our own temp files (atomic writes) never go to the Hub.
_IGNORE = [".*.tmp-*", "**/.*.tmp-*", ".*.old-*"]


@dataclass
class GridPush:
    """What ``push_grid`` did: ``repos`` maps each variant folder to its repo id, ``commits`` to its commit,
    and ``collection_slug``/``collection_url`` name the collection (None when collections were off)."""

    repos: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Any] = field(default_factory=dict)
    collection_slug: str | None = None
    collection_url: str | None = None


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    commit_message: str | None = None,
    template: str | os.PathLike | None = None,
    quantized_by: str | None = None,
    base_model: str | None = None,
) -> Any:
    """Create ``repo_id`` if needed and upload the variant in ``folder`` in one commit; returns the ``CommitInfo``.

    The card is rendered for the upload with the repo id in its load snippets when it is hfcompress's default card
    (or when ``template`` is given); a card of your own is uploaded as it is. ``revision`` names a branch
    (created from main if missing); ``create_pr=True`` opens a pull request instead of committing to main.
    ``base_model``: the Hub id of the base when the variant was made from a local folder (hfcompress.json records
    it and the card's metadata names it). The folder is written only once the push succeeded, with what was
    pushed (the card, the manifest): a failed push leaves it as it was.

    Example:
        >>> info = push_folder("out/v", "me/SmolLM2-135M-Instruct-RTN-int8", private=True)   # doctest: +SKIP
        >>> info.commit_url                                                                 # doctest: +SKIP
    """
    folder = _check_folder(folder)
    _check_repo_id(repo_id)
    if create_pr and revision not in (None, "main"):
        raise HFCompressError(f"create_pr opens a pull request against main; drop revision={revision!r} or create_pr")
    if base_model is not None and (not isinstance(base_model, str) or not _HUB_ID.match(base_model)):
        raise HFCompressError(f"base_model {base_model!r} is not a Hub model id; pass one such as 'HuggingFaceTB/SmolLM2-135M'")
    token = resolve_token(token)
    api = api_for(token)
    with hub_errors(token, repo_id, "login"):
        api.whoami()
    changed: dict[str, str | None] = {}
    if base_model is not None and (folder / MANIFEST_NAME).is_file():
        manifest = read_manifest(folder)
        manifest["base_model"] = {**(manifest.get("base_model") or {}), "hub_id": base_model}
        changed[MANIFEST_NAME] = json.dumps(manifest, indent=2, sort_keys=False, default=str) + "\n"
    if (folder / MANIFEST_NAME).is_file() and (template is not None or _has_default_card(folder)):
        changed.update(saved_card_files(folder, template=template, repo_id=repo_id, quantized_by=quantized_by,
                                        siblings=_card_siblings(folder), base_model=base_model))
    message = commit_message or _default_message(folder, repo_id)
    with hub_errors(token, repo_id, "creating the repo"):
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision not in (None, "main") and not create_pr:
        with hub_errors(token, repo_id, f"creating branch {revision}"):
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
    info = _upload(api, token, folder, repo_id, revision=revision, create_pr=create_pr, message=message, changed=changed)
    _write_changed(folder, changed)
    logger.info("pushed %s to %s (%s)", folder, repo_id, getattr(info, "oid", ""))
    return info


def push_grid(
    runs_dir: str | os.PathLike,
    namespace_or_prefix: str,
    *,
    private: bool = False,
    token: str | None = None,
    create_pr: bool = False,
    collection: bool = True,
    collection_title: str | None = None,
    template: str | os.PathLike | None = None,
    quantized_by: str | None = None,
) -> GridPush:
    """Publish every variant folder of a grid run (each holds hfcompress.json), one repo each, and group them in a
    collection named after the base model; each card links to its siblings.

    ``namespace_or_prefix``: ``"me"`` gives repos ``me/<base name>-<variant folder>``; ``"me/SmolLM2-"`` gives
    ``me/SmolLM2-<variant folder>``.

    Example:
        >>> out = push_grid("runs/demo", "me")                                   # doctest: +SKIP
        >>> out.collection_url                                                   # doctest: +SKIP
    """
    root = Path(runs_dir).expanduser()
    if not root.is_dir():
        raise HFCompressError(f"{str(root)!r} is not a folder; pass the runs directory of an 'hfcompress grid' run")
    folders = list(iter_variant_folders(root))
    if not folders:
        raise HFCompressError(f"{str(root)!r} holds no variant folders (subfolders with hfcompress.json)")
    manifests = {folder: read_manifest(folder) for folder in folders}
    repo_ids = {folder: variant_repo_id(folder, namespace_or_prefix, manifests[folder]) for folder in folders}
    if len(set(repo_ids.values())) != len(repo_ids):
        raise HFCompressError("two variants map to the same repo id; rename the variant folders")
    token = resolve_token(token)
    api = api_for(token)
    with hub_errors(token, namespace_or_prefix, "login"):
        api.whoami()

    siblings = [sibling_entry(folder, repo_ids[folder]) for folder in folders]
    out = GridPush()
    from tqdm.auto import tqdm

    for folder in tqdm(folders, desc="push", unit="variant", disable=_quiet()):
        repo_id = repo_ids[folder]
        mine = [s for s in siblings if s["repo_id"] != repo_id and _same_base(manifests, folder, repo_ids, s["repo_id"])]
        card = (saved_card_files(folder, template=template, repo_id=repo_id, siblings=mine, quantized_by=quantized_by)
                if template is not None or _has_default_card(folder) else {})
        out.repos[str(folder)] = repo_id
        out.commits[str(folder)] = _push_prepared(api, token, folder, repo_id, private=private, create_pr=create_pr, changed=card)
        _write_changed(folder, card)

    if collection:
        bases = sorted({_base_name(manifests[f]) for f in folders})
        for base in bases:
            members = [f for f in folders if _base_name(manifests[f]) == base]
            title = collection_title or f"{base} compressed variants"
            namespace = namespace_or_prefix.split("/")[0]
            slug = _update_collection(api, token, namespace, title[:60], base, members, repo_ids, siblings, private)
            out.collection_slug = slug
            out.collection_url = f"{api.endpoint}/collections/{slug}"
    return out


def variant_repo_id(folder: str | os.PathLike, namespace_or_prefix: str, manifest: dict[str, Any] | None = None) -> str:
    """The repo id a grid variant folder is published under (see ``push_grid``).

    Example:
        >>> variant_repo_id("runs/demo/gptq-4bit", "me", {"base_model": {"model_id": "HuggingFaceTB/SmolLM2-135M-Instruct"}})
        'me/SmolLM2-135M-Instruct-gptq-4bit'
    """
    name = Path(folder).name
    if "/" in namespace_or_prefix:
        repo_id = f"{namespace_or_prefix}{name}"
    else:
        base = _base_name(manifest or read_manifest(Path(folder)))
        repo_id = f"{namespace_or_prefix}/{name if name.startswith(base) else f'{base}-{name}'}"
    _check_repo_id(repo_id)
    return repo_id


# ---------------------------------------------------------------------------------------------------------
# Helpers


def _push_prepared(api: Any, token: str, folder: Path, repo_id: str, *, private: bool, create_pr: bool,
                   changed: dict[str, str | None]) -> Any:
    # push_grid already rendered the card (with siblings): upload it as rendered.
    with hub_errors(token, repo_id, "creating the repo"):
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    return _upload(api, token, folder, repo_id, revision=None, create_pr=create_pr, message=_default_message(folder, repo_id),
                   changed=changed)


def _write_changed(folder: Path, changed: dict[str, str | None]) -> None:
    # After a push went through: the folder gets what was pushed (the card naming the repo), so both agree.
    for rel, text in changed.items():
        if text is not None:
            write_text_atomic(folder / rel, text)
        elif (folder / rel).is_file():
            (folder / rel).unlink()


def _upload(api: Any, token: str, folder: Path, repo_id: str, *, revision: str | None, create_pr: bool, message: str,
            changed: dict[str, str | None] | None = None) -> Any:
    # One commit: the files as they are (weights through LFS), hfcompress.json and results.json with local paths
    # reduced to their last part, and files an earlier push of this variant wrote that it no longer has removed.
    # ``changed`` (relative path -> text, None = left out) is what this push renders anew: the folder is not touched.
    with hub_errors(token, repo_id, "uploading", resumable=True), _progress(), _publishable(folder, changed or {}) as view:
        return api.upload_folder(
            repo_id=repo_id, folder_path=str(view), repo_type="model", revision=revision, create_pr=create_pr,
            commit_message=message, commit_description=_commit_description(folder), ignore_patterns=list(_IGNORE),
            delete_patterns=list(MANAGED_FILES),
        )


# Files hfcompress writes into a variant: on a re-push, remote ones the folder no longer has are stale (old
# weight shards, results of an earlier benchmark) and are deleted. Anything else in the repo is left alone.
MANAGED_FILES = ("*.safetensors", "*.safetensors.index.json", "*.gguf", "results.json", "recipe.yaml",
                 ".eval_results/hfcompress*.yaml", "modeling_lowrank.py", "modeling_shared_layers.py")
# Written by hfcompress with local paths inside (base model folder, calibration file, reproduce command).
_PATH_BEARING = ("hfcompress.json", "results.json")
_LOCAL_PATH = re.compile(r"(?<![\w:/.~-])(~?/[^\s'\"]+)")


def public_text(text: str) -> str:
    """``text`` with each absolute local path reduced to its last part, as published to the Hub.

    Local folders name users and machines (``/home/alice/...``); the name is what a reader can use.

    Example:
        >>> public_text('"model_id": "/home/alice/models/tiny-llama", "url": "https://hf.co/x"')
        '"model_id": "tiny-llama", "url": "https://hf.co/x"'
    """
    return _LOCAL_PATH.sub(lambda m: Path(m.group(1).rstrip("/")).name or m.group(1), text)


@contextlib.contextmanager
def _publishable(folder: Path, changed: dict[str, str | None] | None = None) -> Iterator[Path]:
    # A temp view of the folder: links to its files (nothing is copied), path-bearing JSON files rewritten, and the
    # files this push renders anew (``changed``) written there instead of into the folder.
    changed = changed or {}
    with tempfile.TemporaryDirectory(prefix="hfcompress-publish-") as tmp:
        view = Path(tmp)
        files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        for rel in sorted(set(files) | set(changed)):
            text = changed.get(rel) if rel in changed else None
            if rel in changed and text is None:
                continue  # stale: the push leaves it out
            target = view / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if rel in _PATH_BEARING:
                target.write_text(public_text(text if text is not None else files[rel].read_text(encoding="utf-8")), encoding="utf-8")
            elif text is not None:
                target.write_text(text, encoding="utf-8")
            else:
                os.symlink(files[rel].resolve(), target)
        yield view


def _update_collection(api: Any, token: str, namespace: str, title: str, base: str, members: Sequence[Path],
                       repo_ids: dict[Path, str], siblings: Sequence[dict[str, Any]], private: bool) -> str:
    notes = {s["repo_id"]: (s["summary"] + (f"; {s['numbers']}" if s.get("numbers") else ""))[:500] for s in siblings}
    with hub_errors(token, namespace, "updating the collection"):
        slug = None
        for existing in api.list_collections(owner=namespace, limit=200):
            if existing.title == title:
                slug = existing.slug
                break
        if slug is None:
            created = api.create_collection(
                title, namespace=namespace, private=private, exists_ok=True,
                description=f"Compressed variants of {base} made with hfcompress, with measured numbers in each card.")
            slug = created.slug
        for folder in members:
            repo_id = repo_ids[folder]
            api.add_collection_item(slug, repo_id, "model", note=notes.get(repo_id), exists_ok=True)
    return slug


def _check_folder(folder: str | os.PathLike) -> Path:
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise HFCompressError(f"{str(path)!r} is not a folder; pass a variant folder saved by hfcompress")
    if not (path / "config.json").is_file() and not (path / "hfcompress.json").is_file():
        raise HFCompressError(f"{str(path)!r} holds no config.json or hfcompress.json; pass a saved model folder")
    return path


def _check_repo_id(repo_id: str) -> None:
    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id) or "--" in repo_id or ".." in repo_id:
        raise HFCompressError(
            f"repo id {repo_id!r} is not valid; use 'namespace/name' with letters, digits, '-', '_' or '.' (at most 96 each)")


def resolve_token(token: str | None) -> str:
    """``token``, else the one huggingface_hub finds (``HF_TOKEN``, ``hf auth login``); none is a clear error.

    Example:
        >>> resolve_token("hf_example")
        'hf_example'
    """
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise HFCompressError(NO_TOKEN_MESSAGE)
    return found


def api_for(token: str) -> Any:
    """An ``HfApi`` for ``token`` at the endpoint ``HF_ENDPOINT`` names now (not when huggingface_hub was imported).

    Example:
        >>> api_for("hf_example").endpoint                          # doctest: +SKIP
        'https://huggingface.co'
    """
    from huggingface_hub import HfApi

    # Read HF_ENDPOINT now, not at import: the user (or a test) may have set it after huggingface_hub loaded.
    endpoint = os.environ.get("HF_ENDPOINT", "").rstrip("/") or None
    return HfApi(endpoint=endpoint, token=token)


def _close_progress_bars() -> None:
    # An upload that failed leaves huggingface_hub's bar open mid-line: close it, so our one line starts a line.
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        try:
            bar.close()
        except Exception:  # a bar of another thread, half torn down: nothing of ours to lose
            pass


class hub_errors:
    """Turn huggingface_hub's multi-line errors into one HFCompressError line, with the token scrubbed.

    Example:
        >>> with hub_errors(token, "me/model", "uploading", resumable=True):   # doctest: +SKIP
        ...     api.upload_folder(...)
    """

    def __init__(self, token: str, target: str, action: str, resumable: bool = False) -> None:
        self.token, self.target, self.action, self.resumable = token, target, action, resumable

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, (HFCompressError, KeyboardInterrupt)) or not isinstance(exc, Exception):
            return False
        _close_progress_bars()
        raise HFCompressError(self._message(exc)) from None

    def _message(self, exc: Exception) -> str:
        from huggingface_hub.errors import HfHubHTTPError

        status = None
        detail = ""
        cause: BaseException | None = exc
        # upload errors arrive wrapped ("Error while uploading 'x' to the Hub." from an HTTP error).
        while cause is not None and not isinstance(cause, HfHubHTTPError):
            cause = cause.__cause__ or cause.__context__
        http = cause if isinstance(cause, HfHubHTTPError) else None
        if http is not None:
            response = getattr(http, "response", None)
            status = getattr(response, "status_code", None)
            detail = (getattr(http, "server_message", None) or str(http)).strip().splitlines()[0] if str(http) else ""
        if not detail or http is None:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if http is None and exc.__cause__ is not None and str(exc.__cause__).strip():
                detail += f" ({str(exc.__cause__).strip().splitlines()[0]})"
        request_url = str(getattr(getattr(getattr(http, "response", None), "request", None), "url", "") or "")
        on_api = "/api/" in request_url or request_url.endswith("/info/lfs/objects/batch")
        if status in (401, 403) and not on_api:
            status_hint = None  # a pre-signed storage URL refused (e.g. expired): not a token problem
        else:
            status_hint = status
        if status_hint == 401:
            hint = "the token was refused (invalid or expired): run `hf auth login` or set HF_TOKEN to a valid write token"
        elif status_hint == 403:
            hint = f"the token may not write to {self.target.split('/')[0]}: use a write token, or a namespace you own"
        elif status == 404 and self.action == "uploading":
            hint = "check the repo id and revision"
        elif self.resumable:
            hint = "the local folder is unchanged; run the same command again to finish: files already on the Hub are not sent again"
        else:
            hint = "check the repo id and your network, then run the command again"
        code = f"HTTP {status}: " if status else ""
        text = f"{self.action} {self.target} failed ({code}{detail}); {hint}"
        return text.replace(self.token, "***") if self.token else text


def _has_default_card(folder: Path) -> bool:
    readme = folder / "README.md"
    if not readme.is_file():
        return True  # no card at all: write ours
    try:
        return _DEFAULT_CARD_MARKER in readme.read_text(encoding="utf-8")
    except OSError:
        return False


def _card_siblings(folder: Path) -> list[dict[str, Any]] | None:
    # Keep the sibling links a grid push wrote: re-read them from the card's own "Other variants" section.
    readme = folder / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8")
    section = text.split("## Other variants of", 1)
    if len(section) < 2:
        return None
    out = []
    for match in re.finditer(r"^- \[([^\]]+)\]\([^)]*?/([^/)]+/[^/)]+)\): (.*?)(?: \(([^()\n]*)\))?$", section[1].split("\n## ", 1)[0], re.M):
        out.append({"name": match.group(1), "repo_id": match.group(2), "summary": match.group(3).strip(), "numbers": match.group(4) or ""})
    return out or None


def _base_name(manifest: dict[str, Any]) -> str:
    model_id = str((manifest.get("base_model") or {}).get("model_id") or "model")
    return re.sub(r"[^\w.-]", "-", Path(model_id).name.replace(".gguf", ""))[:60] or "model"


def _same_base(manifests: dict[Path, dict[str, Any]], folder: Path, repo_ids: dict[Path, str], other_repo: str) -> bool:
    other = next((f for f, r in repo_ids.items() if r == other_repo), None)
    return other is not None and _base_name(manifests[other]) == _base_name(manifests[folder])


def _default_message(folder: Path, repo_id: str) -> str:
    return f"Add {repo_id.split('/')[-1]} (hfcompress {__version__})"


def _commit_description(folder: Path) -> str:
    if not (folder / MANIFEST_NAME).is_file():
        return "Uploaded with hfcompress."
    manifest = read_manifest(folder)
    steps = ", ".join(step.get("kind", "?") for step in manifest.get("recipe") or []) or "no compression"
    base = (manifest.get("base_model") or {}).get("model_id")
    return f"Recipe: {steps}. Base model: {Path(str(base)).name if base else 'unknown'}. Format: {manifest.get('format')}."


def _progress() -> Any:
    # Upload bars come from huggingface_hub; HFCOMPRESS_QUIET (tests, scripts) silences them like ours.
    import contextlib

    if not _quiet() or os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") is not None:
        return contextlib.nullcontext()
    from huggingface_hub.utils import disable_progress_bars

    return disable_progress_bars()


def _quiet() -> bool:
    return os.environ.get("HFCOMPRESS_QUIET", "0") not in ("0", "", "false")
