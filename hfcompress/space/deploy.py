"""Deploying the comparison app to a Hub Space, wired to a collection or to bundled results (never weights).

Example:
    >>> (template_dir() / "app.py").is_file()
    True
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..artifacts import MANIFEST_NAME, VARIANT_FILES
from ..errors import HFCompressError
from ..publish.hub import api_for, hub_errors, public_text, resolve_token, variant_repo_id
from .variants import BUNDLE_DIR, SPACE_CONFIG_NAME, VariantSet, find_variants, looks_like_collection

logger = logging.getLogger(__name__)


def template_dir() -> Path:
    """The folder holding the Space's app.py, requirements.txt and README.md.

    ``spaces/compare`` in the repository; the package reaches it as ``hfcompress/space_template`` (a link in a
    checkout, real files in an installed wheel), so ``push-space`` works after a plain ``pip install``.

    Example:
        >>> (template_dir() / "app.py").is_file()
        True
    """
    folder = Path(__file__).resolve().parent.parent / "space_template"
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
        if not looks_like_collection(str(collection)):
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
