"""Prefill and decode speed: time to first token, prefill tokens/s, decode tokens/s at batch 1 and a larger batch.

Each number is the median of ``runs`` timed runs after ``warmup`` untimed ones, with the spread
(interquartile range for 4+ runs, else max - min) so a reader sees how noisy the machine was.
The loop is plain greedy decoding with the KV cache (what ``generate`` does, without its per-step
bookkeeping), so prefill and decode are timed separately.

Example:
    >>> import torch
    >>> from hfcompress.testing import tiny_model
    >>> model, tok = tiny_model("llama")
    >>> speed = measure_speed(model, torch.arange(3, 60), prompt_tokens=16, new_tokens=4, batch_sizes=(1,), runs=2)
    >>> speed["decode_tokens_per_s"]["unit"], speed["decode_tokens_per_s"]["runs"]
    ('tokens/s', 2)
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Sequence


def summarize(samples: Sequence[float]) -> dict[str, Any]:
    """Median and spread of timed samples: ``{"value", "spread", "spread_kind", "min", "max", "runs"}``.

    Example:
        >>> summarize([1.0, 2.0, 3.0])["value"], summarize([1.0, 2.0, 3.0])["spread_kind"]
        (2.0, 'range')
    """
    values = sorted(samples)
    if len(values) >= 4:
        q = statistics.quantiles(values, n=4, method="inclusive")
        spread, kind = q[2] - q[0], "iqr"
    else:
        spread, kind = values[-1] - values[0], "range"
    return {
        "value": statistics.median(values),
        "spread": spread,
        "spread_kind": kind,
        "min": values[0],
        "max": values[-1],
        "runs": len(values),
    }


def _prompt_batch(text_ids: Any, batch: int, length: int) -> Any:

    ids = text_ids.reshape(-1)
    need = batch * length
    if ids.numel() < need:
        ids = ids.repeat(need // max(ids.numel(), 1) + 1)
    return ids[:need].reshape(batch, length).clone()


def _one_run(model: Any, prompt: Any, new_tokens: int, sync: Any) -> tuple[float, float]:
    import torch

    with torch.inference_mode():
        sync()
        start = time.perf_counter()
        out = model(prompt, use_cache=True)
        next_ids = out.logits[:, -1].argmax(dim=-1, keepdim=True)
        sync()
        prefill = time.perf_counter() - start
        cache = out.past_key_values
        start = time.perf_counter()
        for _ in range(new_tokens):
            out = model(next_ids, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            next_ids = out.logits[:, -1].argmax(dim=-1, keepdim=True)
        sync()
        decode = time.perf_counter() - start
    return prefill, decode


def speed_samples(
    model: Any,
    text_ids: Any,
    *,
    prompt_tokens: int = 128,
    new_tokens: int = 32,
    batch_sizes: Sequence[int] = (1, 8),
    runs: int = 5,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """The timed samples behind ``measure_speed``: metric name -> one value per run (for interleaving and spreads)."""
    import torch

    if runs < 1 or warmup < 0 or prompt_tokens < 1 or new_tokens < 1:
        raise ValueError("runs, prompt_tokens and new_tokens must be positive and warmup >= 0")
    device = next(model.parameters()).device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    samples: dict[str, list[float]] = {}
    for batch in batch_sizes:
        prompt = _prompt_batch(text_ids, batch, prompt_tokens).to(device)
        for _ in range(warmup):
            _one_run(model, prompt, new_tokens, sync)
        suffix = "" if batch == 1 else f"_batch{batch}"
        for _ in range(runs):
            prefill, decode = _one_run(model, prompt, new_tokens, sync)
            samples.setdefault(f"prefill_tokens_per_s{suffix}", []).append(batch * prompt_tokens / prefill)
            samples.setdefault(f"decode_tokens_per_s{suffix}", []).append(batch * new_tokens / decode)
            if batch == 1:
                samples.setdefault("time_to_first_token", []).append(prefill * 1000)
    return samples


def speed_metrics(samples: dict[str, list[float]], **settings: Any) -> dict[str, dict[str, Any]]:
    """Median and spread of each metric's samples with its unit, direction and the settings it was measured with.

    Example:
        >>> m = speed_metrics({"decode_tokens_per_s_batch8": [80.0, 90.0], "time_to_first_token": [12.0]})
        >>> m["decode_tokens_per_s_batch8"]["batch_size"], m["time_to_first_token"]["unit"]
        (8, 'ms')
    """
    out: dict[str, dict[str, Any]] = {}
    for name, values in samples.items():
        batch = int(name.rsplit("_batch", 1)[1]) if "_batch" in name else 1
        unit, higher = ("ms", False) if name == "time_to_first_token" else ("tokens/s", True)
        out[name] = {**summarize(values), "unit": unit, "higher_is_better": higher, "batch_size": batch, **settings}
    return out


def measure_speed(
    model: Any,
    text_ids: Any,
    *,
    prompt_tokens: int = 128,
    new_tokens: int = 32,
    batch_sizes: Sequence[int] = (1, 8),
    runs: int = 5,
    warmup: int = 1,
) -> dict[str, dict[str, Any]]:
    """Time prefill and decode; returns metric name -> measurement (value, unit, spread, runs, settings).

    Metrics: ``time_to_first_token`` (ms, batch 1), ``prefill_tokens_per_s`` (batch 1), ``decode_tokens_per_s``
    (batch 1) and ``decode_tokens_per_s_batch{B}`` / ``prefill_tokens_per_s_batch{B}`` for each larger batch; a
    batch's tokens/s count every sequence of the batch.

    Example:
        >>> measure_speed(model, ids, runs=3)["time_to_first_token"]["unit"]     # doctest: +SKIP
        'ms'
    """
    samples = speed_samples(model, text_ids, prompt_tokens=prompt_tokens, new_tokens=new_tokens, batch_sizes=batch_sizes,
                            runs=runs, warmup=warmup)
    return speed_metrics(samples, prompt_tokens=prompt_tokens, new_tokens=new_tokens, warmup=warmup)
