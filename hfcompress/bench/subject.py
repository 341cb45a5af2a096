"""What bench measures: a model and what is known of it (``Subject``), loaded from a folder as users load it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..artifacts import MANIFEST_NAME, read_manifest
from ..errors import HFCompressError
from ..loading import ModelSource, load_model, load_tokenizer
from .memory import PeakMemory


@dataclass
class Subject:
    """A model to measure and what is known of it (what a saved variant's manifest says).

    Attributes:
        model, tokenizer: the model as it will be measured.
        source: where its base model came from (reloaded to measure the base).
        recipe: the recipe as ``[{kind, ...}]`` dicts (empty for a base model).
        manifest: the hfcompress.json content, when known.
        folder: the saved folder (for size on disk), None for a model only in memory.
        save: writes the model into a folder in its real format (size of an in-memory model); optional.
        load_peak: memory measured while loading it, when it was loaded here.
    """

    model: Any
    tokenizer: Any
    source: ModelSource
    recipe: list[dict[str, Any]] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None
    save: Callable[[Path], Path] | None = None
    load_peak: PeakMemory | None = None

    @property
    def seed(self) -> int:
        return int(self.manifest.get("seed") or 0)

    @property
    def calibration(self) -> dict[str, Any] | None:
        return self.manifest.get("calibration")

    @property
    def save_format(self) -> str:
        return self.manifest.get("format") or "safetensors"

    @property
    def gguf_file(self) -> Path | None:
        """The GGUF file this variant is (measured with llama.cpp), or None for a transformers checkpoint."""
        name = (self.manifest.get("load") or {}).get("gguf_file")
        return self.folder / name if name and self.folder is not None and (self.folder / name).is_file() else None

    @property
    def compress_seconds(self) -> float | None:
        steps = self.manifest.get("steps") or []
        if steps and all(isinstance(s.get("seconds"), (int, float)) for s in steps):
            return float(sum(s["seconds"] for s in steps))
        return None


def load_subject(where: str | os.PathLike) -> Subject:
    """Load a saved variant folder (or any model folder or Hub id) to be measured, as users load it.

    A folder of ours brings its manifest (recipe, base model, how it loads); any other model is measured as it is.

    Example:
        >>> import tempfile
        >>> from hfcompress.testing import build_tiny_model
        >>> load_subject(build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")).recipe
        []
    """
    folder = Path(where).expanduser()
    manifest = read_manifest(folder) if (folder / MANIFEST_NAME).is_file() else {}
    if folder.exists() and not folder.is_dir():
        raise HFCompressError(f"{str(folder)!r} is a file; pass a saved variant folder or a model id")
    if folder.is_dir() and not (folder / "config.json").is_file() and not manifest:
        raise HFCompressError(f"{str(folder)!r} is not a model folder (no config.json); pass a saved variant or a model id")
    trust = bool((manifest.get("load") or {}).get("trust_remote_code", False))
    gguf_name = (manifest.get("load") or {}).get("gguf_file")
    if gguf_name and (folder / gguf_name).is_file():
        # llama.cpp runs the file itself; here only a tokenizer is needed: the base's (the same ids, and quick to
        # load), else the file's own (transformers rebuilds it from the GGUF vocabulary, which takes a while).
        own = ModelSource("gguf", str(folder / gguf_name), path=str(folder), gguf_file=gguf_name)
        source = ModelSource.from_dict(manifest.get("base_model")) or own
        try:
            tokenizer = load_tokenizer(source)
        except HFCompressError:
            tokenizer = load_tokenizer(own)
        recipe = [dict(step) for step in manifest.get("recipe") or [] if isinstance(step, dict)]
        return Subject(None, tokenizer, source, recipe, manifest, folder=folder)
    with PeakMemory() as peak:
        loaded = load_model(str(folder) if folder.exists() else str(where), trust_remote_code=trust)
    source = ModelSource.from_dict(manifest.get("base_model")) or loaded.source
    recipe = [dict(step) for step in manifest.get("recipe") or [] if isinstance(step, dict)]
    return Subject(loaded.model, loaded.tokenizer, source, recipe, manifest,
                   folder=folder if folder.is_dir() else None, load_peak=peak)
