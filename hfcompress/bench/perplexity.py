"""Sliding-window perplexity, as in the transformers perplexity guide (each token scored once, with context).

Example:
    >>> from hfcompress.bench.perplexity import perplexity
    >>> ppl = perplexity(model, ids, context=512, stride=256)        # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass
class WindowScores:
    """What one sliding-window pass over a text measured.

    Attributes:
        nll: summed negative log-likelihood of the scored tokens, in nats.
        count: number of scored tokens (every token after the first, once).
        predictions: the model's greedy next-token choice at every scored position (1-D LongTensor, CPU),
            used to measure how often a compressed model agrees with its base.
        kl: KL(reference || model) at every scored position (1-D float tensor, nats), when a reference was given.
    """

    nll: float
    count: int
    predictions: Any
    kl: Any = None

    @property
    def perplexity(self) -> float:
        """exp(mean negative log-likelihood per scored token)."""
        return math.exp(self.nll / self.count)


def perplexity(model: Any, input_ids: Any, *, context: int = 512, stride: int = 256, progress: bool = False) -> float:
    """Perplexity of ``model`` on a 1-D token tensor with a sliding window.

    Each window holds up to ``context`` tokens; it advances by ``stride`` and only the tokens not scored by
    the previous window count, so every token after the first is scored exactly once, with at least
    ``context - stride`` tokens of left context once the window is full.

    Example:
        >>> import torch
        >>> from hfcompress.testing import tiny_model
        >>> model, tok = tiny_model("llama")
        >>> ids = torch.tensor(tok("the quick brown fox")["input_ids"])
        >>> 1 < perplexity(model, ids, context=8, stride=4) < 1000   # a random model: near the vocabulary size
        True
    """
    nll, count = negative_log_likelihood(model, input_ids, context=context, stride=stride, progress=progress)
    return math.exp(nll / count)


def negative_log_likelihood(model: Any, input_ids: Any, *, context: int = 512, stride: int = 256, progress: bool = False) -> tuple[float, int]:
    """(summed negative log-likelihood in nats, number of scored tokens) for the sliding-window scheme.

    Example:
        >>> import torch
        >>> from hfcompress.testing import tiny_model
        >>> model, tok = tiny_model("llama")
        >>> ids = torch.tensor(tok("the quick brown fox jumps over the lazy dog")["input_ids"])
        >>> nll, n = negative_log_likelihood(model, ids, context=16, stride=8)
        >>> n == len(ids) - 1
        True
    """
    scores = score_windows(model, input_ids, context=context, stride=stride, progress=progress)
    return scores.nll, scores.count


def score_windows(model: Any, input_ids: Any, *, context: int = 512, stride: int = 256, progress: bool = False,
                  record: Any = None, reference: Any = None) -> WindowScores:
    """One sliding-window pass: summed NLL, scored-token count and the greedy prediction at each scored token.

    ``model`` is a transformers model or a bench engine (anything with ``logits(window)``). ``record`` (a
    ``LogProbFile``) receives the log-probabilities at every scored position; with ``reference`` (the base's
    ``LogProbFile``) the KL divergence to it is measured at each of them.

    Example:
        >>> import torch
        >>> from hfcompress.testing import tiny_model
        >>> model, tok = tiny_model("llama")
        >>> ids = torch.tensor(tok("the quick brown fox jumps over the lazy dog")["input_ids"])
        >>> s = score_windows(model, ids, context=16, stride=8)
        >>> s.count, s.predictions.shape == (len(ids) - 1,)
        (42, True)
    """
    import torch
    from tqdm.auto import tqdm

    from .reference import kl_divergence

    if input_ids.dim() != 1:
        input_ids = input_ids.reshape(-1)
    if stride <= 0 or context <= 0 or stride > context:
        raise ValueError(f"need 0 < stride <= context, got stride={stride}, context={context}")
    n = input_ids.numel()
    if n < 2:
        raise ValueError("perplexity needs at least 2 tokens")
    logits_of = _logits_function(model)
    total, counted, prev_end = 0.0, 0, 0
    predictions, kls = [], []
    starts = list(range(0, n - 1, stride))
    with torch.inference_mode():
        for begin in tqdm(starts, desc="perplexity", unit="window", disable=not progress, leave=False):
            end = min(begin + context, n)
            window = input_ids[begin:end]
            logits = logits_of(window)[:-1].float()
            targets = window[1:].to(logits.device)
            # Score only tokens past what the previous window already scored.
            first_new = max(prev_end - begin - 1, 0)
            logp = torch.log_softmax(logits[first_new:], dim=-1)
            total += float(-logp.gather(1, targets[first_new:, None]).sum())
            rows = int(targets[first_new:].numel())
            if record is not None:
                record.write(counted, logp)
            if reference is not None:
                kls.append(kl_divergence(reference.read(counted, rows).to(logp.device), logp).cpu())
            counted += rows
            predictions.append(logp.argmax(dim=-1).cpu())
            prev_end = end
            if end == n:
                break
    return WindowScores(total, counted, torch.cat(predictions), torch.cat(kls) if kls else None)


def _logits_function(model: Any) -> Any:
    if callable(getattr(model, "logits", None)):
        return model.logits

    def logits(window: Any) -> Any:
        return model(window.to(next(model.parameters()).device).unsqueeze(0)).logits[0]

    return logits
