"""Distillation losses on next-token distributions: forward KL, reverse KL and generalized JSD.

Our own torch code: transformers has no distillation loss, and trl's (``GKDTrainer.generalized_jsd_loss``)
lives inside a trainer that also does on-policy generation, which this step does not need.

Example:
    >>> import torch
    >>> from hfcompress.methods.distill.losses import distillation_loss
    >>> s, t = torch.randn(1, 5, 11), torch.randn(1, 5, 11)
    >>> labels = torch.randint(0, 11, (1, 5))
    >>> total, parts = distillation_loss(s, t, labels, alpha=0.5, temperature=2.0)
    >>> sorted(parts)
    ['ce', 'kd']
"""

from __future__ import annotations

from typing import Any

LOSSES = ("forward_kl", "reverse_kl", "jsd")


def divergence(student_logits: Any, teacher_logits: Any, *, loss: str = "forward_kl", temperature: float = 1.0,
               beta: float = 0.5) -> Any:
    """Per-position divergence between softened teacher and student distributions, shape ``logits.shape[:-1]``.

    ``forward_kl`` = KL(teacher || student) (mass-covering, the classic Hinton loss), ``reverse_kl`` =
    KL(student || teacher) (mode-seeking), ``jsd`` = generalized Jensen-Shannon with weight ``beta`` on the
    teacher (as in GKD, Agarwal et al. 2024): beta * KL(t || m) + (1 - beta) * KL(s || m), m = beta t + (1 - beta) s.

    Example:
        >>> import torch
        >>> x = torch.randn(2, 3, 7)
        >>> float(divergence(x, x).abs().max()) < 1e-6
        True
    """
    import math

    import torch
    import torch.nn.functional as F

    s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    t = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    if loss == "forward_kl":
        return (t.exp() * (t - s)).sum(-1)
    if loss == "reverse_kl":
        return (s.exp() * (s - t)).sum(-1)
    if loss == "jsd":
        if not 0.0 < beta < 1.0:
            # The limits are plain KLs; use them by name rather than a degenerate mixture.
            raise ValueError("beta must be strictly between 0 and 1; use loss='forward_kl' or 'reverse_kl' for the limits")
        m = torch.logsumexp(torch.stack([t + math.log(beta), s + math.log(1 - beta)]), dim=0)
        return beta * (t.exp() * (t - m)).sum(-1) + (1 - beta) * (s.exp() * (s - m)).sum(-1)
    raise ValueError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)}")


#: Token positions per chunk of the loss: the vocabulary-wide intermediates (log-softmaxes, probabilities) exist for
#: this many positions at a time, e.g. 256 x 262k x 4 bytes = 268 MB each for Gemma 3's vocabulary.
CHUNK_TOKENS = 256


def distillation_loss(student_logits: Any, teacher_logits: Any, labels: Any, *, alpha: float = 0.5,
                      temperature: float = 2.0, loss: str = "forward_kl", beta: float = 0.5,
                      chunk_tokens: int | None = CHUNK_TOKENS) -> tuple[Any, dict[str, float]]:
    """``alpha * CE(next token) + (1 - alpha) * T^2 * divergence`` over the positions whose label is not -100.

    ``labels`` holds the input ids (shifted here, as transformers' causal-LM loss does); -100 marks positions
    left out (padding, and prompts in task-specific mode). The T^2 factor keeps the soft-target gradients on
    the same scale as the hard-target ones when T changes (Hinton et al. 2015).

    The loss is computed over chunks of about ``chunk_tokens`` positions (along the sequence), each chunk
    checkpointed: its float32 log-softmaxes of teacher and student are recomputed in backward instead of kept,
    so memory beyond the logits themselves grows with ``chunk_tokens x vocabulary``, not ``batch x sequence x
    vocabulary`` several times over. ``chunk_tokens=None`` computes it in one piece (same value and gradients).

    Returns the scalar loss (for backward) and the float values of both parts, for logs.

    Example:
        >>> import torch
        >>> x = torch.randn(1, 4, 9)
        >>> total, parts = distillation_loss(x, x, torch.tensor([[1, 2, 3, 4]]), alpha=0.0)
        >>> round(parts["kd"], 6)
        0.0
        >>> s = torch.randn(2, 9, 11, requires_grad=True)
        >>> t, labels = torch.randn(2, 9, 11), torch.randint(0, 11, (2, 9))
        >>> a, _ = distillation_loss(s, t, labels, chunk_tokens=4)
        >>> b, _ = distillation_loss(s, t, labels, chunk_tokens=None)
        >>> abs(float(a - b)) < 1e-6
        True
    """
    import torch
    from torch.utils.checkpoint import checkpoint

    if chunk_tokens is not None and (not isinstance(chunk_tokens, int) or chunk_tokens < 1):
        raise ValueError(f"chunk_tokens={chunk_tokens!r} must be a positive integer or None")
    target = labels[:, 1:]
    count = target.ne(-100).sum().clamp(min=1)
    batch, positions = target.shape
    step = positions if chunk_tokens is None else max(1, chunk_tokens // max(batch, 1))
    ce = student_logits.new_zeros((), dtype=torch.float32)
    kd = student_logits.new_zeros((), dtype=torch.float32)
    train = torch.is_grad_enabled() and student_logits.requires_grad
    for start in range(0, positions, step):
        # Views of the logits (no copy); the chunk's float32 work is freed before the next chunk.
        stop = min(start + step, positions)  # logits at position i predict the label at i + 1: the last one predicts none
        args = (student_logits[:, start:stop], teacher_logits[:, start:stop], target[:, start:stop])
        options = dict(alpha=alpha, temperature=temperature, loss=loss, beta=beta)
        if train and step < positions:
            part_ce, part_kd = checkpoint(_chunk_sums, *args, use_reentrant=False, **options)
        else:
            part_ce, part_kd = _chunk_sums(*args, **options)
        ce = ce + part_ce
        kd = kd + part_kd
    ce, kd = ce / count, kd / count
    total = alpha * ce + (1.0 - alpha) * temperature**2 * kd
    return total, {"ce": float(ce.detach()), "kd": float(kd.detach())}


def _chunk_sums(student: Any, teacher: Any, target: Any, *, alpha: float, temperature: float, loss: str,
                beta: float) -> tuple[Any, Any]:
    # Sums (not means) of the cross-entropy and the divergence over one chunk's labelled positions.
    import torch.nn.functional as F

    vocab = student.shape[-1]
    flat = target.reshape(-1)
    student = student.reshape(-1, vocab)
    ce = F.cross_entropy(student.float(), flat, ignore_index=-100, reduction="sum")
    if alpha >= 1.0:
        return ce, ce.new_zeros(())
    keep = flat.ne(-100)
    kd = divergence(student[keep], teacher.reshape(-1, vocab)[keep], loss=loss, temperature=temperature, beta=beta).sum()
    return ce, kd
