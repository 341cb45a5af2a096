"""The base model's next-token log-probabilities on the held-out text, kept on disk to measure KL divergence.

KL(base || variant) at every scored position, as llama.cpp's perplexity tool reports it (mean and 99th
percentile), needs the base's whole distribution there: it is written once, as float16 in a memory-mapped file
(tokens x vocabulary), and read back window by window while each variant is scored.

Example:
    >>> import tempfile, torch
    >>> store = LogProbFile.create(Path(tempfile.mkdtemp()) / "base.npy", rows=3, vocab=5)
    >>> logp = torch.log_softmax(torch.randn(3, 5), dim=-1)
    >>> store.write(0, logp)
    >>> kl = kl_divergence(store.read(0, 3), logp)
    >>> float(kl.abs().max()) < 1e-2        # a model against itself, up to float16 rounding
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class LogProbFile:
    """Float16 log-probabilities, ``rows`` positions x ``vocab`` tokens, in one ``.npy`` file."""

    def __init__(self, path: Path, array: Any) -> None:
        self.path, self.array = Path(path), array

    @classmethod
    def create(cls, path: str | Path, *, rows: int, vocab: int) -> "LogProbFile":
        import numpy as np

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path, np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(rows, vocab)))

    @classmethod
    def open(cls, path: str | Path) -> "LogProbFile":
        import numpy as np

        return cls(Path(path), np.load(path, mmap_mode="r"))

    @property
    def rows(self) -> int:
        return int(self.array.shape[0])

    @property
    def vocab(self) -> int:
        return int(self.array.shape[1])

    def write(self, start: int, logp: Any) -> None:
        self.array[start:start + logp.shape[0]] = logp.detach().to("cpu").half().numpy()

    def read(self, start: int, count: int) -> Any:
        import torch

        return torch.from_numpy(self.array[start:start + count].astype("float32"))

    def flush(self) -> None:
        if hasattr(self.array, "flush"):
            self.array.flush()


def kl_divergence(reference_logp: Any, logp: Any) -> Any:
    """KL(reference || model) per position, in nats, from log-probabilities of both."""
    return (reference_logp.exp() * (reference_logp - logp)).sum(-1).clamp_min(0.0)
