"""Measuring sparsity, and the mask a pruning step leaves for the steps after it.

Every pruned layer's mask is kept (``SparsityMask``, an after-step hook), so a later step that rewrites weights
(llm-compressor's GPTQ refills pruned slots while it compensates rounding error: a 2:4 model fell from 50% to
48.3% sparsity) gets the mask re-applied, and a later training step trains with it held. Zero is a point of every
integer quantization grid (symmetric, or asymmetric with an integer zero point), so the re-zeroed weights stay
exactly representable.

Example:
    >>> import torch
    >>> layer = torch.nn.Linear(4, 2)
    >>> with torch.no_grad():
    ...     layer.weight[:, :2] = 0
    >>> hook = SparsityMask.of({"layer": layer})
    >>> with torch.no_grad():
    ...     layer.weight += 1          # a later step refills the pruned weights
    >>> hook.restore(layer)["refilled_weights_zeroed"], int((layer.weight == 0).sum())
    (4, 4)
"""

from __future__ import annotations

from typing import Any, Callable

from ..layers import target_linear_layers
from ..registry import AfterStepHook
from .config import PruneConfig


def sparsity_report(model: Any, config: PruneConfig) -> dict[str, Any]:
    """Measured sparsity of the layers ``config`` prunes: overall, min/max and per layer (fractions of zeros).

    For N:M patterns it also counts the groups of M along the input dimension holding more than N non-zeros
    (``nm_violations``; 0 means the pattern holds everywhere).

    Example:
        >>> sparsity_report(model, PruneConfig(method="magnitude", sparsity=0.5))["sparsity"]   # doctest: +SKIP
        0.5
    """
    per_layer: dict[str, float] = {}
    zeros = total = violations = 0
    for name, layer in target_linear_layers(model, config.ignore).items():
        weight = layer.weight.detach()
        z = int((weight == 0).sum())
        per_layer[name] = round(z / weight.numel(), 6)
        zeros += z
        total += weight.numel()
        if config.pattern != "unstructured":
            violations += nm_violations(weight, *config.nm)
    report: dict[str, Any] = {
        "sparsity": round(zeros / max(total, 1), 6),
        "sparsity_min": min(per_layer.values(), default=0.0),
        "sparsity_max": max(per_layer.values(), default=0.0),
        "pruned_layers": len(per_layer),
        "pruned_weights": total,
        "zero_weights": zeros,
        "sparsity_per_layer": per_layer,
    }
    if config.pattern != "unstructured":
        report["nm_violations"] = violations
    return report


def nm_violations(weight: Any, n: int, m: int) -> int:
    """How many groups of ``m`` consecutive input weights (per output row) hold more than ``n`` non-zeros.

    Example:
        >>> import torch
        >>> nm_violations(torch.tensor([[1.0, 0.0, 2.0, 0.0]]), 2, 4)
        0
    """
    rows, cols = weight.shape
    groups = (weight.detach() != 0).reshape(rows, cols // m, m).sum(dim=-1)
    return int((groups > n).sum())


class SparsityMask(AfterStepHook):
    """The zeros of the layers a pruning step pruned, held for every later step.

    The modules themselves are kept (not their names): a later structured step renumbers layers, and a
    low-rank step replaces modules; a mask whose module left the model, or whose shape changed, is dropped.
    """

    info_key = "sparsity_mask_restored"

    def __init__(self, masks: list[tuple[Any, Any]]) -> None:
        self.masks = masks

    @classmethod
    def of(cls, layers: dict[str, Any]) -> "SparsityMask":
        """The mask of each layer's current zeros."""
        return cls([(layer, layer.weight.detach() == 0) for layer in layers.values()])

    def hand_over(self, successor: "SparsityMask") -> None:
        """Stop holding the modules ``successor`` holds: it was taken after this mask was restored, so its zeros
        include these (a later pruning stage's mask is a superset of the earlier stages')."""
        covered = {id(module) for module, _ in successor.masks}
        self.masks = [(module, mask) for module, mask in self.masks if id(module) not in covered]

    def _live(self, model: Any) -> list[tuple[Any, Any]]:
        present = {id(m) for m in model.modules()}
        self.masks = [(m, mask) for m, mask in self.masks
                      if id(m) in present and getattr(m, "weight", None) is not None and m.weight.shape == mask.shape]
        return self.masks

    @staticmethod
    def _stored_weight(module: Any) -> Any:
        # Under a weight parametrization (quantization-aware training's fake quantization) ``module.weight`` is
        # computed on every access; the trained, stored tensor is the parametrization's original.
        from torch.nn.utils import parametrize

        if parametrize.is_parametrized(module, "weight"):
            return module.parametrizations.weight.original
        return module.weight

    def restore(self, model: Any) -> dict[str, Any] | None:
        """Zero again every weight the pruning step removed and a later step refilled; None when no mask is left.

        Returns ``{"layers": k, "refilled_weights_zeroed": n}`` for the later step's info.
        """
        import torch

        live = self._live(model)
        if not live:
            return None
        refilled = 0
        with torch.no_grad():
            for module, mask in live:
                weight = self._stored_weight(module)
                mask = mask.to(weight.device)
                refilled += int((weight[mask] != 0).sum())
                weight.masked_fill_(mask, 0)
        return {"layers": len(live), "refilled_weights_zeroed": refilled}

    def hold_during_training(self, model: Any) -> Callable[[], None]:
        """Zero the masked weights' gradients while a trainer runs, so optimizer updates never refill them.

        With zero gradients Adam's moments stay zero at those positions, so the update there is zero too (weight
        decay aside; ``restore`` after each optimizer step covers that). Returns the function that removes the hooks.
        """
        handles = []
        for module, mask in self._live(model):
            weight = self._stored_weight(module)
            mask_on_device = mask.to(weight.device)
            handles.append(weight.register_hook(lambda grad, m=mask_on_device: grad.masked_fill(m, 0)))

        def release() -> None:
            for handle in handles:
                handle.remove()

        return release


def magnitude_mask(weight: Any, sparsity: float, nm: tuple[int, int] | None = None) -> Any:
    """Boolean mask of the weights to zero: the smallest ``|w|`` of each output row (or of each N:M group).

    Per row (as Wanda does) rather than per layer: every output channel keeps the same share of its inputs,
    which measured better on SmolLM2 than one threshold for the whole matrix (see benchmarks/pruning_quality.py).

    Example:
        >>> import torch
        >>> magnitude_mask(torch.tensor([[1.0, -3.0, 0.5, 2.0]]), 0.5).tolist()   # True = zeroed
        [[True, False, True, False]]
    """
    import torch

    score = weight.detach().abs().float()
    rows, cols = score.shape
    mask = torch.zeros_like(score, dtype=torch.bool)
    if nm is not None:
        n, m = nm
        groups = score.reshape(rows, cols // m, m)
        drop = torch.topk(groups, m - n, dim=-1, largest=False).indices
        return mask.reshape(rows, cols // m, m).scatter_(-1, drop, True).reshape(rows, cols)
    k = int(cols * sparsity)
    if k:
        mask.scatter_(1, torch.topk(score, k, dim=1, largest=False).indices, True)
    return mask


