"""Peak memory of a stage (loading, generating): CUDA allocator peak on a GPU, resident set size on the CPU.

On Linux the kernel's high-water mark (VmHWM) is reset through ``/proc/self/clear_refs`` before the stage,
so the peak is exact and costs nothing; elsewhere a thread samples the RSS every few milliseconds.

Example:
    >>> from hfcompress.bench.memory import PeakMemory
    >>> with PeakMemory() as peak:
    ...     block = bytearray(50_000_000)
    >>> peak.device, peak.rise_mb >= 0
    ('cpu', True)
"""

from __future__ import annotations

import threading
from typing import Any

MB = 1e6


def rss_bytes() -> int:
    """Resident set size of this process in bytes."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def _read_hwm() -> int | None:
    try:
        with open("/proc/self/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def model_bytes(model: Any) -> int:
    """Bytes held by the model's parameters and buffers (tied tensors once).

    Example:
        >>> model_bytes(model) / 1e6                  # doctest: +SKIP
        538.1
    """
    seen: set[int] = set()
    total = 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        total += tensor.numel() * tensor.element_size()
    return total


class PeakMemory:
    """Context manager measuring the peak memory of the code inside it.

    Attributes after exit: ``device`` ("cuda" or "cpu"), ``peak_bytes`` (absolute peak: CUDA allocated or
    process RSS), ``rise_bytes`` (peak minus what was in use at entry) and the same in MB.
    """

    def __init__(self, device: str | None = None) -> None:
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.peak_bytes = 0
        self.rise_bytes = 0
        self._start = 0
        self._sampler: threading.Thread | None = None
        self._stop = threading.Event()
        self._sampled = 0

    def __enter__(self) -> "PeakMemory":
        import gc

        gc.collect()
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
            return self
        self._start = rss_bytes()
        if not _reset_hwm() or _read_hwm() is None:
            self._sampled = self._start
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self._sampled = max(self._sampled, rss_bytes())

    def __exit__(self, *exc: Any) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()
            self.peak_bytes = int(torch.cuda.max_memory_allocated())
        elif self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            self.peak_bytes = max(self._sampled, rss_bytes())
        else:
            self.peak_bytes = int(_read_hwm() or rss_bytes())
        self.rise_bytes = max(self.peak_bytes - self._start, 0)

    @property
    def peak_mb(self) -> float:
        """Absolute peak in MB (10^6 bytes)."""
        return self.peak_bytes / MB

    @property
    def rise_mb(self) -> float:
        """Peak above the level at entry, in MB."""
        return self.rise_bytes / MB
