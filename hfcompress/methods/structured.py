"""Structured pruning: remove whole attention heads (KV groups), MLP neurons or decoder layers. Shapes shrink.

The result is a smaller model of the *same* architecture: ``config.json`` gets the new
``num_attention_heads``/``num_key_value_heads`` (with ``head_dim`` written out), ``intermediate_size`` or
``num_hidden_layers`` (and ``layer_types``), so it loads in plain ``AutoModelForCausalLM`` with no custom code.
transformers' Llama-style configs hold one size for all layers, so every layer loses the same number of
heads/neurons (chosen per layer by importance); per-layer sizes would need custom modeling code.

Our own torch code (index_select on a few Linear layers), not torch-pruning: torch-pruning 1.6.1 traces a
Llama and removes MLP neurons correctly, but only when every attention module and norm is pinned in
``ignored_layers`` (else it also prunes the hidden size through the RMSNorm weights), its importances are
weight- or gradient-based (no activation statistics without writing a custom importance class), and its
attention-head pruning hung for > 8 minutes. Slicing the known Llama projections is shorter and exact.

Importance:
    * ``magnitude`` (data-free): L2 norm of each unit's weights (heads: its q/k/v rows and o_proj columns;
      neurons: gate/up rows and down_proj column; layers: o_proj and down_proj, what a layer writes into the
      residual stream).
    * ``activation`` (calibration data): Wanda-style ``||W_out[:, c]|| * sqrt(E[x_c^2])`` summed over a unit's
      channels, x being the input of o_proj (heads) or down_proj (neurons); for layers the block influence
      ``1 - cos(h_in, h_out)`` of ShortGPT (layers that change the hidden state least go first).

Example:
    >>> import hfcompress as hfc
    >>> cm = hfc.CompressedModel.from_pretrained(None, recipe=hfc.StructuredPruneConfig(target="neurons", ratio=0.25))  # doctest: +SKIP
    >>> cm.model.config.intermediate_size                                                                             # doctest: +SKIP
    1152
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from ..config import CompressionConfig, StructuredPruneConfig
from ..errors import HFCompressError
from .registry import CompressionAdapter, register_adapter

logger = logging.getLogger(__name__)


@dataclass
class RemovalPlan:
    """How many units one structured step removes: ``remove`` of ``total`` (per layer for heads/neurons)."""

    unit: str
    total: int
    remove: int

    @property
    def keep(self) -> int:
        return self.total - self.remove


def _decoder_layers(model: Any) -> Any:
    layers = getattr(getattr(model, "model", None), "layers", None)
    ok = layers is not None and len(layers) > 0 and all(
        hasattr(layer, "self_attn") and hasattr(layer, "mlp") for layer in layers
    )
    if ok:
        attn, mlp = layers[0].self_attn, layers[0].mlp
        ok = all(hasattr(attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")) and all(
            hasattr(mlp, n) for n in ("gate_proj", "up_proj", "down_proj")
        )
    if not ok:
        arch = ",".join(getattr(model.config, "architectures", None) or [type(model).__name__])
        raise HFCompressError(
            f"structured pruning supports Llama-style decoders (q/k/v/o_proj attention, gate/up/down_proj MLP); "
            f"{arch} is not one; use PruneConfig or LowRankConfig instead"
        )
    return layers


def _head_geometry(model: Any) -> tuple[int, int, int]:
    cfg = model.config
    heads = cfg.num_attention_heads
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return heads, kv, head_dim


def plan_removal(model: Any, config: StructuredPruneConfig) -> RemovalPlan:
    """Check ``config`` against the model and return how many units go; raises a one-line error if impossible.

    Example:
        >>> plan_removal(smollm2, StructuredPruneConfig(target="layers", count=4))     # doctest: +SKIP
        RemovalPlan(unit='decoder layers', total=30, remove=4)
    """
    layers = _decoder_layers(model)
    if config.target == "heads":
        _, kv, _ = _head_geometry(model)
        unit, total = "KV groups (a key/value head with its query heads) per layer", kv
    elif config.target == "neurons":
        unit, total = "MLP neurons per layer", layers[0].mlp.gate_proj.out_features
    else:
        unit, total = "decoder layers", len(layers)
    remove = config.count if config.count is not None else round(total * config.ratio)
    if remove >= total:
        raise HFCompressError(
            f"cannot remove {remove} {config.target} of the {total} {unit} this model has; at least one must stay: "
            f"use count <= {total - 1} or a smaller ratio"
        )
    if remove <= 0:
        raise HFCompressError(
            f"ratio={config.ratio} removes none of the {total} {unit}; use a larger ratio or count=1"
        )
    return RemovalPlan(unit, total, remove)


# ---------------------------------------------------------------------------------------------------------
# Importance


def input_channel_energy(model: Any, modules: list[Any], calibration: Any) -> list[Any]:
    """Mean squared input per channel, E[x_c^2], of each module over the calibration samples (one forward pass each).

    Example:
        >>> energy = input_channel_energy(model, [model.model.layers[0].mlp.down_proj], calibration)   # doctest: +SKIP
        >>> energy[0].shape
        torch.Size([1536])
    """
    import torch
    from tqdm.auto import tqdm

    sums = [None] * len(modules)
    counts = [0] * len(modules)

    def hook(index: int):
        def fn(_module: Any, args: tuple) -> None:
            x = args[0].detach().float().reshape(-1, args[0].shape[-1])
            sums[index] = (x.pow(2).sum(0) if sums[index] is None else sums[index] + x.pow(2).sum(0))
            counts[index] += x.shape[0]

        return fn

    handles = [m.register_forward_pre_hook(hook(i)) for i, m in enumerate(modules)]
    try:
        _run_calibration(model, calibration, tqdm)
    finally:
        for h in handles:
            h.remove()
    return [s / max(c, 1) for s, c in zip(sums, counts)]


def _run_calibration(model: Any, calibration: Any, tqdm: Any) -> None:
    import torch

    if calibration is None or not calibration.input_ids:
        raise HFCompressError("activation statistics need calibration data; pass calibration= (or use a data-free option)")
    device = next(model.parameters()).device
    with torch.no_grad():
        for ids in tqdm(calibration.input_ids, desc="importance", unit="sample", disable=_quiet()):
            model(ids.reshape(1, -1).to(device), use_cache=False)


def _head_scores(model: Any, config: StructuredPruneConfig, calibration: Any) -> list[Any]:
    import torch

    layers = _decoder_layers(model)
    heads, kv, head_dim = _head_geometry(model)
    rep = heads // kv
    energy = input_channel_energy(model, [l.self_attn.o_proj for l in layers], calibration) if config.importance == "activation" else None
    scores = []
    for i, layer in enumerate(layers):
        attn = layer.self_attn
        o_cols = attn.o_proj.weight.detach().float().pow(2).sum(0)  # per input channel of o_proj
        if energy is not None:
            per_channel = o_cols.sqrt() * energy[i].sqrt()
            scores.append(per_channel.reshape(kv, rep * head_dim).sum(-1))
            continue
        q = attn.q_proj.weight.detach().float().pow(2).sum(1).reshape(kv, rep * head_dim).sum(-1)
        k = attn.k_proj.weight.detach().float().pow(2).sum(1).reshape(kv, head_dim).sum(-1)
        v = attn.v_proj.weight.detach().float().pow(2).sum(1).reshape(kv, head_dim).sum(-1)
        o = o_cols.reshape(kv, rep * head_dim).sum(-1)
        scores.append(torch.sqrt(q + k + v + o))
    return scores


def _neuron_scores(model: Any, config: StructuredPruneConfig, calibration: Any) -> list[Any]:
    layers = _decoder_layers(model)
    energy = input_channel_energy(model, [l.mlp.down_proj for l in layers], calibration) if config.importance == "activation" else None
    scores = []
    for i, layer in enumerate(layers):
        mlp = layer.mlp
        down = mlp.down_proj.weight.detach().float().pow(2).sum(0)
        if energy is not None:
            scores.append(down.sqrt() * energy[i].sqrt())
        else:
            gate = mlp.gate_proj.weight.detach().float().pow(2).sum(1)
            up = mlp.up_proj.weight.detach().float().pow(2).sum(1)
            scores.append((gate + up + down).sqrt())
    return scores


def _layer_scores(model: Any, config: StructuredPruneConfig, calibration: Any) -> list[float]:
    import torch
    from tqdm.auto import tqdm

    layers = _decoder_layers(model)
    if config.importance == "magnitude":
        return [
            float(torch.sqrt(l.self_attn.o_proj.weight.detach().float().pow(2).sum() + l.mlp.down_proj.weight.detach().float().pow(2).sum()))
            for l in layers
        ]
    influence = [0.0] * len(layers)
    tokens = [0] * len(layers)

    def hook(index: int):
        def fn(_module: Any, args: tuple, kwargs: dict, output: Any) -> None:
            h_in = (args[0] if args else kwargs["hidden_states"]).detach().float()
            h_out = (output[0] if isinstance(output, tuple) else output).detach().float()
            cos = torch.nn.functional.cosine_similarity(h_in.reshape(-1, h_in.shape[-1]), h_out.reshape(-1, h_out.shape[-1]), dim=-1)
            influence[index] += float((1 - cos).sum())
            tokens[index] += cos.numel()

        return fn

    handles = [l.register_forward_hook(hook(i), with_kwargs=True) for i, l in enumerate(layers)]
    try:
        _run_calibration(model, calibration, tqdm)
    finally:
        for h in handles:
            h.remove()
    return [b / max(t, 1) for b, t in zip(influence, tokens)]


# ---------------------------------------------------------------------------------------------------------
# Surgery


def _slice_linear(linear: Any, index: Any, dim: int) -> None:
    """Keep ``index`` along the output (dim 0) or input (dim 1) side of a Linear, in place."""
    import torch

    with torch.no_grad():
        linear.weight = torch.nn.Parameter(linear.weight.index_select(dim, index.to(linear.weight.device)).contiguous())
        if dim == 0:
            if linear.bias is not None:
                linear.bias = torch.nn.Parameter(linear.bias.index_select(0, index.to(linear.bias.device)).contiguous())
            linear.out_features = linear.weight.shape[0]
        else:
            linear.in_features = linear.weight.shape[1]


def _prune_heads(model: Any, plan: RemovalPlan, scores: list[Any]) -> dict[str, Any]:
    import torch

    layers = _decoder_layers(model)
    heads, kv, head_dim = _head_geometry(model)
    rep = heads // kv
    removed = {}
    for i, layer in enumerate(layers):
        keep = torch.sort(torch.topk(scores[i], plan.keep).indices).values
        removed[str(i)] = sorted(set(range(kv)) - set(keep.tolist()))
        kv_rows = (keep[:, None] * head_dim + torch.arange(head_dim)).reshape(-1)
        q_rows = (keep[:, None] * rep * head_dim + torch.arange(rep * head_dim)).reshape(-1)
        attn = layer.self_attn
        _slice_linear(attn.q_proj, q_rows, 0)
        _slice_linear(attn.k_proj, kv_rows, 0)
        _slice_linear(attn.v_proj, kv_rows, 0)
        _slice_linear(attn.o_proj, q_rows, 1)
        for name, value in (("num_heads", plan.keep * rep), ("num_key_value_heads", plan.keep)):
            if hasattr(attn, name):
                setattr(attn, name, value)
    cfg = model.config
    cfg.head_dim = head_dim  # no longer hidden_size // num_attention_heads
    cfg.num_attention_heads = plan.keep * rep
    cfg.num_key_value_heads = plan.keep
    return {"removed_kv_groups_per_layer": removed, "query_heads_per_kv_group": rep,
            "num_attention_heads": cfg.num_attention_heads, "num_key_value_heads": cfg.num_key_value_heads}


def _prune_neurons(model: Any, plan: RemovalPlan, scores: list[Any]) -> dict[str, Any]:
    import torch

    for i, layer in enumerate(_decoder_layers(model)):
        keep = torch.sort(torch.topk(scores[i], plan.keep).indices).values
        mlp = layer.mlp
        _slice_linear(mlp.gate_proj, keep, 0)
        _slice_linear(mlp.up_proj, keep, 0)
        _slice_linear(mlp.down_proj, keep, 1)
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = plan.keep
    model.config.intermediate_size = plan.keep
    return {"intermediate_size": plan.keep}


def _prune_layers(model: Any, plan: RemovalPlan, scores: list[float]) -> dict[str, Any]:
    import torch

    layers = _decoder_layers(model)
    order = sorted(range(len(layers)), key=lambda i: scores[i])
    drop = sorted(order[: plan.remove])
    kept = [i for i in range(len(layers)) if i not in drop]
    model.model.layers = torch.nn.ModuleList([layers[i] for i in kept])
    # The KV cache is indexed by layer_idx: renumber what is left, or generation reads the wrong cache slot.
    for new_index, layer in enumerate(model.model.layers):
        if hasattr(layer, "layer_idx"):
            layer.layer_idx = new_index
        if hasattr(layer.self_attn, "layer_idx"):
            layer.self_attn.layer_idx = new_index
    cfg = model.config
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = [cfg.layer_types[i] for i in kept]
    cfg.num_hidden_layers = len(kept)
    return {"removed_layers": drop, "num_hidden_layers": len(kept)}


def forget_config_source(model: Any) -> None:
    """Detach the model's config from the folder it was read from, once its shapes changed.

    llm-compressor re-reads ``config.json`` from ``config.name_or_path`` when it runs and when it saves
    (``resave_config`` overwrites the saved config.json with that file): a later GPTQ step would otherwise
    write the *original* sizes next to the pruned weights. With no source folder it keeps our config.
    """
    model.config.name_or_path = ""
    if hasattr(model, "name_or_path"):
        model.name_or_path = ""


def _count_parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


@register_adapter
class TorchStructuredPruning(CompressionAdapter):
    """Removes heads, neurons or layers in plain torch; the result is a plain transformers model (safetensors)."""

    name = "torch"
    methods = ("structured_prune",)
    required_packages = ("torch",)
    priority = 50

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, calibration: Any) -> Any:
        assert isinstance(config, StructuredPruneConfig)
        plan = plan_removal(model, config)
        before = _count_parameters(model)
        scorer, surgeon = {
            "heads": (_head_scores, _prune_heads),
            "neurons": (_neuron_scores, _prune_neurons),
            "layers": (_layer_scores, _prune_layers),
        }[config.target]
        scores = scorer(model, config, calibration)
        details = surgeon(model, plan, scores)
        forget_config_source(model)
        after = _count_parameters(model)
        info = {
            "target": config.target,
            "importance": config.importance,
            "unit": plan.unit,
            "removed": plan.remove,
            "of": plan.total,
            "ratio_removed": round(plan.remove / plan.total, 6),
            "parameters_before": before,
            "parameters_after": after,
            "parameters_removed": before - after,
            **details,
        }
        if config.target != "layers":
            info["note"] = "every layer loses the same number of units (transformers configs hold one size for all layers)"
        logger.info("structured pruning removed %d parameters (%.1f%%)", before - after, 100 * (before - after) / before)
        return model, info

    def save(self, model: Any, out_dir: Any) -> None:
        # transformers' own save_pretrained: an earlier llm-compressor step (Wanda, SparseGPT) leaves the instance's
        # save_pretrained wrapped with its compressed save, which this dense, reshaped model does not need.
        type(model).save_pretrained(model, out_dir, safe_serialization=True)


def _quiet() -> bool:
    return os.environ.get("HFCOMPRESS_QUIET", "0") not in ("0", "", "false")
