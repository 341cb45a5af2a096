"""Benchmark saved variants (what ``hfcompress bench DIR_OR_ID...`` runs) and update their results.json.

Example:
    >>> from hfcompress.bench.saved import bench_saved
    >>> result, written = bench_saved("out/SmolLM2-135M-GPTQ-4bit", max_tokens=2048)     # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import HFCompressError
from .memory import PeakMemory
from .results import BenchmarkResult, write_results


def bench_saved(where: str | os.PathLike, *, base: Any = None, update: bool = True, **evaluate_kwargs: Any) -> tuple[BenchmarkResult, Path | None]:
    """Load a saved variant folder (or any model id/folder) and benchmark it against its base.

    A folder written by hfcompress (it holds hfcompress.json) gets its results.json replaced atomically and its
    card refreshed when ``update``; any other model (a Hub id, a plain folder) is measured without a base unless
    ``base`` names one, and nothing is written. Returns (result, path written or None).

    Example:
        >>> res, path = bench_saved("runs/demo/rtn-int8", max_tokens=2048)          # doctest: +SKIP
        >>> path.name
        'results.json'
    """
    from ..api import CompressedModel
    from .benchmark import evaluate

    folder = Path(where).expanduser()
    ours = (folder / "hfcompress.json").is_file()
    if not ours and folder.exists() and not (folder / "config.json").is_file():
        raise HFCompressError(f"{str(folder)!r} is not a model folder (no config.json); pass a saved variant or a model id")
    with PeakMemory() as load_peak:
        cm = CompressedModel.from_pretrained(str(folder) if folder.exists() else str(where))
    if base is None:
        base = True if ours else False
    result = evaluate(cm, base=base, saved_dir=folder if folder.is_dir() else None,
                      name=folder.name if folder.exists() else str(where).split("/")[-1], **evaluate_kwargs)
    load = result.metrics
    load["load_peak_memory"] = {"value": load_peak.peak_mb if load_peak.device == "cuda" else load_peak.rise_mb, "unit": "MB",
                                "higher_is_better": False, "device": load_peak.device, "note": "rise of process memory while loading"}
    written = None
    if ours and update:
        data = result.to_dict()
        written = write_results(folder, data)
        try:
            from ..card import write_model_card

            manifest = json.loads((folder / "hfcompress.json").read_text(encoding="utf-8"))
            write_model_card(folder, manifest=manifest, results=data)
        except Exception as err:  # the card is derived data; the measured results are already safe
            import logging

            logging.getLogger(__name__).warning("card of %s not refreshed: %s", folder, " ".join(str(err).split())[:200])
    return result, written
