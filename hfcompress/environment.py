"""What a result needs to be repeatable: library versions and the hardware it ran on.

Example:
    >>> from hfcompress.environment import environment_info
    >>> sorted(environment_info())
    ['hardware', 'versions']
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from functools import lru_cache
from typing import Any, Iterable

_CORE_DISTRIBUTIONS = ("hfcompress", "torch", "transformers", "huggingface_hub", "accelerate", "safetensors", "tokenizers")
_BACKEND_DISTRIBUTIONS = (
    "llmcompressor",
    "compressed-tensors",
    "gptqmodel",
    "optimum",
    "auto-gptq",
    "autoawq",
    "torchao",
    "torch-pruning",
    "trl",
    "lm-eval",
    "datasets",
)


def show_progress() -> bool:
    """Whether progress bars are shown: yes unless ``HFCOMPRESS_QUIET`` is set (tests, scripts, CI logs).

    Example:
        >>> import os
        >>> os.environ["HFCOMPRESS_QUIET"] = "1"; show_progress()
        False
    """
    return os.environ.get("HFCOMPRESS_QUIET", "0").lower() in ("0", "", "false", "no")


def library_versions(extra: Iterable[str] = ()) -> dict[str, str]:
    """Installed versions of the core libraries and of any backend present (missing ones are left out).

    Example:
        >>> "torch" in library_versions()
        True
    """
    out = {}
    for dist in (*_CORE_DISTRIBUTIONS, *_BACKEND_DISTRIBUTIONS, *extra):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


@lru_cache(maxsize=1)
def hardware_info() -> dict[str, Any]:
    """CPU model, core count, memory and GPU (if any) of this machine.

    Example:
        >>> hardware_info()["cpu_count"] >= 1
        True
    """
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gb": _memory_gb(),
        "gpu": None,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1), "count": torch.cuda.device_count()}
    return info


def environment_info() -> dict[str, Any]:
    """``{"versions": ..., "hardware": ...}`` for hfcompress.json and results.json."""
    return {"versions": library_versions(), "hardware": hardware_info()}


def hardware_summary() -> str:
    """One line such as ``'2 x Intel Xeon (CPU), 23.4 GB RAM'`` for cards and tables."""
    hw = hardware_info()
    if hw.get("gpu"):
        return f"{hw['gpu']['name']} ({hw['gpu']['memory_gb']} GB)"
    return f"{hw['cpu_count']} x {hw['cpu']} (CPU), {hw['memory_gb']} GB RAM"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None
