"""Low-rank factorization: each chosen Linear ``W (out x in)`` becomes two, ``B (out x r) @ A (r x in)``, by truncated SVD.

Our own torch code (``torch.linalg.svd``): no maintained library factors a transformers model's layers and
keeps it loadable. ``A = sqrt(S) Vh`` and ``B = U sqrt(S)`` split the singular values evenly between the
factors. A layer is left alone when ``r * (in + out) >= in * out`` (the factors would not be smaller).

The factored model is saved with ``hfcompress/modeling_lowrank.py`` beside the weights and ``auto_map`` in
config.json, so it loads with ``AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)``
(hfcompress.json records ``load.trust_remote_code: true``); plain transformers has no two-factor layer.

Example:
    >>> import hfcompress as hfc
    >>> cm = hfc.CompressedModel.from_pretrained(None, recipe=hfc.LowRankConfig(energy=0.9))   # doctest: +SKIP
    >>> cm.steps[0].info["parameters_removed"] > 0                                             # doctest: +SKIP
    True
"""

from __future__ import annotations

import math
import os
from typing import Any

from ..config import CompressionConfig, LowRankConfig, _name_matches
from ..errors import HFCompressError
from .registry import CompressionAdapter, register_adapter
from .structured import forget_config_source


def low_rank_targets(model: Any, config: LowRankConfig) -> dict[str, Any]:
    """The Linear layers ``config.targets`` names (suffixes, exact names or ``re:`` patterns), lm_head never.

    Example:
        >>> sorted(low_rank_targets(model, LowRankConfig(targets=["mlp.up_proj"])))[:1]      # doctest: +SKIP
        ['model.layers.0.mlp.up_proj']
    """
    import torch

    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and not name.endswith("lm_head")
        and any(_name_matches(name, t) for t in config.targets)
    }


def check_low_rank_targets(model: Any, config: LowRankConfig) -> None:
    """Fail before any work when no layer matches or an integer rank exceeds a layer's full rank."""
    layers = low_rank_targets(model, config)
    if not layers:
        raise HFCompressError(f"LowRankConfig.targets {config.targets} match no Linear layer of this model; use suffixes such as 'mlp.up_proj'")
    if isinstance(config.rank, int):
        for name, layer in layers.items():
            full = min(layer.in_features, layer.out_features)
            if config.rank > full:
                raise HFCompressError(
                    f"rank={config.rank} is larger than the full rank {full} of {name} ({layer.out_features}x{layer.in_features}); "
                    f"use rank <= {full} or a fraction such as rank=0.25"
                )


def choose_rank(singular_values: Any, config: LowRankConfig, in_features: int, out_features: int) -> int:
    """The rank kept for one layer: the config's rank (integer or fraction of full rank) or the energy rule.

    Energy: the smallest r with ``sum(S[:r]^2) >= energy * sum(S^2)``.

    Example:
        >>> import torch
        >>> choose_rank(torch.tensor([3.0, 1.0, 0.1]), LowRankConfig(energy=0.9), 3, 3)
        1
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


@register_adapter
class TorchLowRank(CompressionAdapter):
    """SVD factorization of chosen Linear layers into two; saves safetensors + modeling_lowrank.py (trust_remote_code)."""

    name = "torch"
    methods = ("low_rank",)
    required_packages = ("torch",)
    priority = 50

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, calibration: Any) -> Any:
        import torch
        from tqdm.auto import tqdm

        from .. import modeling_lowrank

        assert isinstance(config, LowRankConfig)
        check_low_rank_targets(model, config)
        before = sum(p.numel() for p in model.parameters())
        ranks: dict[str, int] = {}
        skipped: dict[str, int] = {}
        layers = low_rank_targets(model, config)
        scales = _input_scales(model, list(layers.values()), calibration) if config.activation_aware else None
        for index, (name, layer) in enumerate(tqdm(layers.items(), desc="low-rank SVD", unit="layer", disable=_quiet())):
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
        after = sum(p.numel() for p in model.parameters())
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
        return model, info

    def save(self, model: Any, out_dir: Any) -> None:
        # transformers' own save_pretrained: an earlier llm-compressor step (Wanda, SparseGPT) leaves the instance's
        # save_pretrained wrapped with its compressed save, which this dense, reshaped model does not need.
        type(model).save_pretrained(model, out_dir, safe_serialization=True)


def _input_scales(model: Any, layers: list[Any], calibration: Any) -> list[Any]:
    """Per input channel RMS of each layer over the calibration data, floored so no channel divides by ~0."""
    from .structured import input_channel_energy

    scales = []
    for energy in input_channel_energy(model, layers, calibration):
        rms = energy.sqrt()
        scales.append(rms.clamp_min(max(float(rms.mean()) * 1e-3, 1e-8)))
    return scales


def _quiet() -> bool:
    return os.environ.get("HFCOMPRESS_QUIET", "0") not in ("0", "", "false")
