"""Unstructured and N:M weight pruning: magnitude (our torch code), Wanda and SparseGPT (llm-compressor).

* ``magnitude`` needs no data and no backend: zeroing the smallest weights is a few lines of torch, so it is
  our own code (adapter name ``"torch"``).
* ``wanda`` and ``sparsegpt`` run llm-compressor's ``WandaPruningModifier`` / ``SparseGPTModifier`` through
  ``run_oneshot`` (adapter name ``"llmcompressor"``).

Every pruned layer remembers its mask, so a later step that rewrites weights (llm-compressor's GPTQ refills
pruned slots while it compensates rounding error: a 2:4 model fell from 50% to 48.3% sparsity) gets the
mask re-applied by ``restore_sparsity_masks`` (called by ``CompressedModel`` after every step). Zero is a
point of every integer quantization grid (symmetric, or asymmetric with an integer zero point), so the
re-zeroed weights stay exactly representable.

Storage: compressed-tensors 0.19 dropped its sparse compressors (``sparse-24-bitmask``, ``sparse-bitmask``;
llm-compressor says "Sparse compression is no longer supported by compressed-tensors"), so pruned weights
are saved dense, with zeros, in plain safetensors; the step info says so.

Example:
    >>> import hfcompress as hfc
    >>> cm = hfc.CompressedModel.from_pretrained(None, recipe=hfc.PruneConfig(method="wanda", sparsity=0.5))  # doctest: +SKIP
    >>> cm.steps[0].info["sparsity"]                                                                      # doctest: +SKIP
    0.5
"""

from __future__ import annotations

import re
from typing import Any

from ..config import CompressionConfig, PruneConfig, target_linear_layers
from .llmcompressor import run_oneshot
from .registry import CompressionAdapter, register_adapter

_MASK_ATTR = "_hfcompress_sparsity_mask"

DENSE_STORAGE_NOTE = (
    "saved dense (zeros stored): compressed-tensors 0.19 has no sparse storage format "
    "(its sparse-24-bitmask and bitmask compressors were removed), so the file is not smaller"
)


# ---------------------------------------------------------------------------------------------------------
# Measuring


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


# ---------------------------------------------------------------------------------------------------------
# Masks kept across steps


def _remember_masks(layers: dict[str, Any]) -> None:
    for layer in layers.values():
        # A plain attribute (not a buffer): never saved, and dropped with the module if a later step replaces it.
        setattr(layer, _MASK_ATTR, layer.weight.detach() == 0)


def restore_sparsity_masks(model: Any) -> dict[str, Any] | None:
    """Zero again every weight a pruning step removed and a later step refilled; None if nothing was pruned.

    Returns ``{"layers": k, "refilled_weights_zeroed": n}`` for the step info. Layers whose shape changed
    since (structured pruning) lose their mask.

    Example:
        >>> restore_sparsity_masks(model)            # doctest: +SKIP
        {'layers': 210, 'refilled_weights_zeroed': 1843}
    """
    import torch

    layers = refilled = 0
    for module in model.modules():
        mask = getattr(module, _MASK_ATTR, None)
        if mask is None:
            continue
        weight = getattr(module, "weight", None)
        if weight is None or weight.shape != mask.shape:
            delattr(module, _MASK_ATTR)
            continue
        layers += 1
        with torch.no_grad():
            mask = mask.to(weight.device)
            refilled += int((weight[mask] != 0).sum())
            weight.masked_fill_(mask, 0)
    if not layers:
        return None
    return {"layers": layers, "refilled_weights_zeroed": refilled}


# ---------------------------------------------------------------------------------------------------------
# Magnitude (our code: no library call needed to zero the smallest weights)


def magnitude_mask(weight: Any, sparsity: float, nm: tuple[int, int] | None = None) -> Any:
    """Boolean mask of the weights to zero: the smallest ``|w|`` of each output row (or of each N:M group).

    Per row (as Wanda does) rather than per layer: every output channel keeps the same share of its inputs,
    which measured better on SmolLM2 than one threshold for the whole matrix (see benchmarks/pruning_quality.py).

    Example:
        >>> import torch
        >>> magnitude_mask(torch.tensor([[1.0, -3.0, 0.5, 2.0]]), 0.5).tolist()
        [[False, True, False, True]]
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


# ---------------------------------------------------------------------------------------------------------
# Adapters


class _PruneAdapterBase(CompressionAdapter):
    methods = ("prune",)
    save_format = "safetensors"
    pruning_methods: tuple[str, ...] = ()

    def supports(self, config: CompressionConfig) -> bool:
        return isinstance(config, PruneConfig) and config.method in self.pruning_methods

    def _info(self, model: Any, config: PruneConfig) -> dict[str, Any]:
        info = {"method": config.method, "pattern": config.pattern, "target_sparsity": round(config.sparsity, 6)}
        info.update(sparsity_report(model, config))
        info["storage"] = DENSE_STORAGE_NOTE
        return info


@register_adapter
class TorchMagnitudePruning(_PruneAdapterBase):
    """Data-free magnitude pruning (per output row, or per N:M group) in plain torch."""

    name = "torch"
    pruning_methods = ("magnitude",)
    required_packages = ("torch",)
    priority = 50

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, calibration: Any) -> Any:
        import torch
        from tqdm.auto import tqdm

        assert isinstance(config, PruneConfig)
        layers = target_linear_layers(model, config.ignore)
        nm = config.nm if config.pattern != "unstructured" else None
        with torch.no_grad():
            for layer in tqdm(layers.values(), desc="magnitude pruning", unit="layer", disable=_quiet()):
                layer.weight.masked_fill_(magnitude_mask(layer.weight, config.sparsity, nm), 0)
        _remember_masks(layers)
        return model, self._info(model, config)


@register_adapter
class LLMCompressorPruning(_PruneAdapterBase):
    """Wanda and SparseGPT through llm-compressor's modifiers (CPU works, 2:4 too); saves dense safetensors."""

    name = "llmcompressor"
    pruning_methods = ("wanda", "sparsegpt")
    required_packages = ("llmcompressor", "compressed_tensors")
    priority = 10

    def modifiers(self, model: Any, config: PruneConfig) -> list[Any]:
        """The llm-compressor modifier equivalent to ``config``."""
        targets = target_linear_layers(model, config.ignore)
        # llm-compressor names a target Linear "<name>." (a trailing dot): match ours with an anchored regex.
        ignore = [f"re:^{re.escape(name)}\\.?$" for name in target_linear_layers(model, ()) if name not in targets]
        # Our "N:M" keeps N of every M weights (NVIDIA's 2:4); llm-compressor's mask_structure "P:M" prunes P.
        mask_structure = "0:0"
        if config.pattern != "unstructured":
            n, m = config.nm
            mask_structure = f"{m - n}:{m}"
        common = dict(sparsity=config.sparsity, mask_structure=mask_structure, targets=["Linear"], ignore=ignore)
        if config.method == "wanda":
            from llmcompressor.modifiers.pruning.wanda import WandaPruningModifier

            return [WandaPruningModifier(**common)]
        from llmcompressor.modifiers.pruning.sparsegpt import SparseGPTModifier

        return [SparseGPTModifier(**common, block_size=config.block_size, dampening_frac=config.dampening_frac)]

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, calibration: Any) -> Any:
        assert isinstance(config, PruneConfig)
        run_oneshot(model, tokenizer, self.modifiers(model, config), calibration)
        _remember_masks(target_linear_layers(model, config.ignore))
        return model, self._info(model, config)

    def save(self, model: Any, out_dir: Any) -> None:
        # Dense weights with zeros need no compressed-tensors config: save what plain transformers reads.
        _plain_save(model, out_dir)


def _plain_save(model: Any, out_dir: Any) -> None:
    # oneshot wraps model.save_pretrained with its compressed save; the class method is transformers' own.
    type(model).save_pretrained(model, out_dir, safe_serialization=True)


def _quiet() -> bool:
    import os

    return os.environ.get("HFCOMPRESS_QUIET", "0") not in ("0", "", "false")
