"""Activation statistics over calibration data, shared by the families that rank units or channels by them.

Our own torch code (forward hooks): llm-compressor collects such statistics only inside its modifiers.
"""

from __future__ import annotations

from typing import Any, Callable

from ..environment import show_progress
from ..errors import HFCompressError


def input_channel_energy(model: Any, modules: list[Any], calibration: Any) -> list[Any]:
    """Mean squared input per channel, E[x_c^2], of each module over the calibration samples (one forward pass each).

    Example:
        >>> from hfcompress.data import load_calibration
        >>> from hfcompress.testing import TINY_TEXTS, tiny_model
        >>> model, tok = tiny_model("llama")
        >>> calibration = load_calibration(list(TINY_TEXTS), tok, num_samples=2, seq_len=32)
        >>> input_channel_energy(model, [model.model.layers[0].mlp.down_proj], calibration)[0].shape
        torch.Size([128])
    """
    return input_mean(model, modules, calibration, lambda x: x.pow(2).sum(0))


def input_mean(model: Any, modules: list[Any], calibration: Any, statistic: Callable[[Any], Any]) -> list[Any]:
    """Per module, the mean over input rows of ``statistic``: it receives one sample's inputs as ``(rows, width)``
    float32 and returns their sum (e.g. ``x.pow(2).sum(0)``); one forward pass per calibration sample."""
    sums: list[Any] = [None] * len(modules)
    counts = [0] * len(modules)

    def hook(index: int):
        def fn(_module: Any, args: tuple) -> None:
            x = args[0].detach().float().reshape(-1, args[0].shape[-1])
            total = statistic(x)
            sums[index] = total if sums[index] is None else sums[index] + total
            counts[index] += x.shape[0]

        return fn

    handles = [m.register_forward_pre_hook(hook(i)) for i, m in enumerate(modules)]
    try:
        run_calibration(model, calibration)
    finally:
        for h in handles:
            h.remove()
    return [s / max(c, 1) for s, c in zip(sums, counts)]


def run_calibration(model: Any, calibration: Any, *, progress: bool | None = None) -> None:
    """One forward pass of ``model`` over every calibration sample (hooks set by the caller collect statistics)."""
    import torch
    from tqdm.auto import tqdm

    if calibration is None or not calibration.input_ids:
        raise HFCompressError("activation statistics need calibration data; pass calibration= (or use a data-free option)")
    device = next(model.parameters()).device
    with torch.no_grad():
        for ids in tqdm(calibration.input_ids, desc="importance", unit="sample", disable=not (show_progress() if progress is None else progress)):
            model(ids.reshape(1, -1).to(device), use_cache=False)


