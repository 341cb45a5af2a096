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


def distillation_loss(student_logits: Any, teacher_logits: Any, labels: Any, *, alpha: float = 0.5,
                      temperature: float = 2.0, loss: str = "forward_kl", beta: float = 0.5) -> tuple[Any, dict[str, float]]:
    """``alpha * CE(next token) + (1 - alpha) * T^2 * divergence`` over the positions whose label is not -100.

    ``labels`` holds the input ids (shifted here, as transformers' causal-LM loss does); -100 marks positions
    left out (padding, and prompts in task-specific mode). The T^2 factor keeps the soft-target gradients on
    the same scale as the hard-target ones when T changes (Hinton et al. 2015).

    Returns the scalar loss (for backward) and the float values of both parts, for logs.

    Example:
        >>> import torch
        >>> x = torch.randn(1, 4, 9)
        >>> total, parts = distillation_loss(x, x, torch.tensor([[1, 2, 3, 4]]), alpha=0.0)
        >>> round(parts["kd"], 6)
        0.0
    """
    import torch.nn.functional as F

    s = student_logits[:, :-1]
    t = teacher_logits[:, :-1]
    target = labels[:, 1:]
    mask = target.ne(-100)
    count = mask.sum().clamp(min=1)
    ce = F.cross_entropy(s.reshape(-1, s.shape[-1]).float(), target.reshape(-1), ignore_index=-100, reduction="sum") / count
    if alpha >= 1.0:
        kd = ce.new_zeros(())
    else:
        kd = (divergence(s[mask], t[mask], loss=loss, temperature=temperature, beta=beta)).sum() / count
    total = alpha * ce + (1.0 - alpha) * temperature**2 * kd
    return total, {"ce": float(ce.detach()), "kd": float(kd.detach())}
