"""Low-rank factorization: each chosen Linear ``W (out x in)`` becomes two, ``B (out x r) @ A (r x in)``, by truncated SVD.

Our own torch code (``torch.linalg.svd``): no maintained library factors a transformers model's layers and
keeps it loadable. ``A = sqrt(S) Vh`` and ``B = U sqrt(S)`` split the singular values evenly between the
factors. A layer is left alone when ``r * (in + out) >= in * out`` (the factors would not be smaller).

The factored model is saved with ``modeling_lowrank.py`` (this folder's) beside the weights and ``auto_map`` in
config.json, so it loads with ``AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)``
(hfcompress.json records ``load.trust_remote_code: true``); plain transformers has no two-factor layer.

Example:
    >>> import hfcompress as hfc
    >>> from hfcompress.methods.registry import StepContext
    >>> from hfcompress.testing import tiny_model
    >>> model, tok = tiny_model("qwen3")
    >>> step = hfc.LowRankConfig(rank=8, activation_aware=False)
    >>> TorchLowRank().compress(model, tok, step, StepContext()).info["parameters_removed"] > 0
    True
"""

from __future__ import annotations

import math
from typing import Any

from ...config import CompressionConfig
from ..activations import input_channel_energy
from ..layers import count_parameters, forget_config_source
from ..registry import CompressionAdapter, StepContext, StepResult
from . import modeling_lowrank
from .config import LowRankConfig, low_rank_targets


def choose_rank(singular_values: Any, config: LowRankConfig, in_features: int, out_features: int) -> int:
    """The rank kept for one layer: the config's rank (integer or fraction of full rank) or the energy rule.

    Energy: the smallest r with ``sum(S[:r]^2) >= energy * sum(S^2)``.

    Example:
        >>> import torch
        >>> choose_rank(torch.tensor([3.0, 1.0, 0.1]), LowRankConfig(energy=0.9), 3, 3)   # 9 / 10.01 < 0.9
        2
    """
    import torch

    full = min(in_features, out_features)
    if isinstance(config.rank, int):
        return min(config.rank, full)
    if config.rank is not None:
        return max(1, math.ceil(config.rank * full))
    energy = singular_values.double().pow(2)
    cumulative = torch.cumsum(energy, 0) / energy.sum()
    return min(full, int((cumulative < config.energy - 1e-12).sum()) + 1)


class TorchLowRank(CompressionAdapter):
    """SVD factorization of chosen Linear layers into two; saves safetensors + modeling_lowrank.py (trust_remote_code)."""

    name = "torch"
    methods = ("low_rank",)
    required_packages = ("torch",)
    priority = 50

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, context: StepContext) -> StepResult:
        import torch
        from tqdm.auto import tqdm

        self.expect(config, LowRankConfig)
        config.validate_for_model(model)
        calibration = context.calibration
        before = count_parameters(model)
        ranks: dict[str, int] = {}
        skipped: dict[str, int] = {}
        layers = low_rank_targets(model, config)
        scales = _input_scales(model, list(layers.values()), calibration) if config.activation_aware else None
        for index, (name, layer) in enumerate(tqdm(layers.items(), desc="low-rank SVD", unit="layer", disable=not context.progress)):
            weight = layer.weight.detach()
            # ASVD-style: factor W diag(s) (s = input RMS per channel), then fold 1/s back into the first factor.
            scale = scales[index] if scales is not None else torch.ones(layer.in_features, device=weight.device)
            u, s, vh = torch.linalg.svd(weight.float() * scale[None, :], full_matrices=False)
            rank = choose_rank(s, config, layer.in_features, layer.out_features)
            if rank * (layer.in_features + layer.out_features) >= layer.in_features * layer.out_features:
                skipped[name] = rank
                continue
            root = s[:rank].sqrt()
            modeling_lowrank.replace_with_low_rank(model, {name: rank})
            new = model.get_submodule(name)
            with torch.no_grad():
                new.first.weight.copy_((root[:, None] * vh[:rank] / scale[None, :]).to(weight.dtype))
                new.second.weight.copy_((u[:, :rank] * root[None, :]).to(weight.dtype))
                if layer.bias is not None:
                    new.second.bias.copy_(layer.bias.detach())
            ranks[name] = rank
        after = count_parameters(model)
        if ranks:
            existing = dict(getattr(model.config, "low_rank_layers", None) or {})
            model.config.low_rank_layers = {**existing, **ranks}
            if not isinstance(model, modeling_lowrank.LowRankMixin):
                # Same object, class swapped for LowRank<Base>: save_pretrained then copies modeling_lowrank.py
                # into the folder and writes auto_map (transformers' custom_object_save).
                model.__class__ = modeling_lowrank.low_rank_class(type(model))
            cls_name = type(model).__name__
            model.config.auto_map = {"AutoModelForCausalLM": f"modeling_lowrank.{cls_name}"}
            forget_config_source(model)
        info = {
            "factored_layers": len(ranks),
            "skipped_layers": len(skipped),
            "ranks": ranks,
            "skipped_ranks": skipped,
            "activation_aware": config.activation_aware,
            "skip_rule": "a layer stays dense when rank * (in + out) >= in * out (the factors would not be smaller)",
            "parameters_before": int(before),
            "parameters_after": int(after),
            "parameters_removed": int(before - after),
            "load": "AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True) (modeling_lowrank.py in the folder)"
            if ranks else "plain transformers (no layer was factored)",
        }
        return StepResult(model, info)


def _input_scales(model: Any, layers: list[Any], calibration: Any) -> list[Any]:
    """Per input channel RMS of each layer over the calibration data, floored so no channel divides by ~0."""
    scales = []
    for energy in input_channel_energy(model, layers, calibration):
        rms = energy.sqrt()
        scales.append(rms.clamp_min(max(float(rms.mean()) * 1e-3, 1e-8)))
    return scales
