"""Structured pruning: remove whole attention heads (KV groups), MLP neurons, decoder layers or MoE experts. Shapes shrink.

Experts are removed in ``experts.py`` (the router's rows with them).

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
    >>> from hfcompress.methods.registry import StepContext
    >>> from hfcompress.testing import tiny_model
    >>> model, tok = tiny_model("mistral")
    >>> step = hfc.StructuredPruneConfig(target="neurons", ratio=0.25, importance="magnitude")
    >>> TorchStructuredPruning().compress(model, tok, step, StepContext()).model.config.intermediate_size
    96
"""

from __future__ import annotations

import logging
from typing import Any

from ...config import CompressionConfig
from ..activations import input_channel_energy, run_calibration
from ..layers import count_parameters, forget_config_source
from ..registry import CompressionAdapter, StepContext, StepResult
from .config import StructuredPruneConfig
from .experts import expert_statistics, prune_experts
from .plan import RemovalPlan, head_geometry, llama_style_layers, plan_removal

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------
# Importance


def _head_scores(model: Any, config: StructuredPruneConfig, calibration: Any) -> list[Any]:
    import torch

    layers = llama_style_layers(model)
    heads, kv, head_dim = head_geometry(model)
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
    layers = llama_style_layers(model)
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

    layers = llama_style_layers(model)
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
        run_calibration(model, calibration)
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

    layers = llama_style_layers(model)
    heads, kv, head_dim = head_geometry(model)
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

    for i, layer in enumerate(llama_style_layers(model)):
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

    layers = llama_style_layers(model)
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


def _expert_scores(model: Any, config: StructuredPruneConfig, calibration: Any) -> tuple[list[Any], list[Any] | None, bool]:
    # The surgeon needs the usage too when removed experts are merged rather than dropped.
    scores, usage = expert_statistics(model, config.importance, calibration)
    return scores, usage, config.merge


def _prune_experts(model: Any, plan: RemovalPlan, statistics: tuple[list[Any], list[Any] | None, bool]) -> dict[str, Any]:
    scores, usage, merge = statistics
    return prune_experts(model, plan.remove, scores, merge=merge, usage=usage)


class TorchStructuredPruning(CompressionAdapter):
    """Removes heads, neurons or layers in plain torch; the result is a plain transformers model (safetensors)."""

    name = "torch"
    methods = ("structured_prune",)
    required_packages = ("torch",)
    priority = 50

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, context: StepContext) -> StepResult:
        self.expect(config, StructuredPruneConfig)
        calibration = context.calibration
        plan = plan_removal(model, config)
        before = count_parameters(model)
        scorer, surgeon = {
            "heads": (_head_scores, _prune_heads),
            "neurons": (_neuron_scores, _prune_neurons),
            "layers": (_layer_scores, _prune_layers),
            "experts": (_expert_scores, _prune_experts),
        }[config.target]
        scores = scorer(model, config, calibration)
        details = surgeon(model, plan, scores)
        forget_config_source(model)
        after = count_parameters(model)
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
        if config.target in ("heads", "neurons"):
            info["note"] = "every layer loses the same number of units (transformers configs hold one size for all layers)"
        logger.info("structured pruning removed %d parameters (%.1f%%)", before - after, 100 * (before - after) / before)
        return StepResult(model, info)
