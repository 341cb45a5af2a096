"""Expert pruning of mixture-of-experts decoders: drop the experts a router uses least, with its rows to match.

Our own torch code: no maintained library drops experts from a transformers MoE model and keeps it loadable
(REAP and similar papers ship research scripts for a few model classes). transformers 5 stores a layer's experts
as 3-D tensors (``experts.gate_up_proj`` ``E x 2I x H``, ``experts.down_proj`` ``E x H x I``) beside the router's
``gate.weight`` (``E x H``); keeping experts is an ``index_select`` on the first dimension of all three. The router
then chooses among the experts left (its softmax runs over fewer logits; top-k weights are renormalised as before).
Mixtral, Qwen2-MoE (its shared expert is kept), Qwen3-MoE and OLMoE share this layout; a dense layer of a model
that mixes them (Qwen3-MoE's ``mlp_only_layers``) is left alone. ``config.json`` gets the new
``num_local_experts`` / ``num_experts``, so the folder loads in plain transformers.

With ``merge=True`` a removed expert is not discarded but folded into the kept expert whose router row is most
alike (cosine), as a usage-weighted average of their weights (M-SMoE / HC-SMoE style: Li et al. 2024, Chen et al.
2024): the kept expert keeps its router row and answers for the tokens both were routed; usage is how often each
was picked on calibration data (uniform when the importance is data-free).

Importance, per layer (every MoE layer loses the same number: the config holds one count):
    * ``activation`` (default, REAP-style): the mean over the tokens routed to an expert of
      ``router weight x ||expert output||``, on calibration data: what the expert adds to the layer's output.
    * ``frequency``: how often the router puts the expert in its top-k on calibration data.
    * ``magnitude`` (data-free): the L2 norm of the expert's weights.

Example:
    >>> from hfcompress.testing import tiny_model
    >>> [len(moe_blocks(tiny_model(arch)[0])) for arch in ("mixtral", "qwen3_moe", "llama")]
    [2, 2, 0]
"""

from __future__ import annotations

from typing import Any

from ...errors import HFCompressError
from ..activations import run_calibration
from ..layers import architecture_name, decoder_layers, moe_blocks

EXPERT_COUNT_NAMES = ("num_local_experts", "num_experts")


def expert_counts(model: Any) -> tuple[int, int]:
    """``(experts per MoE layer, experts each token uses)``; a one-line error for a model without MoE layers."""
    blocks = moe_blocks(model)
    if not blocks:
        raise HFCompressError(
            f"{architecture_name(model)} has no mixture-of-experts layers (router + 3-D experts); target='experts' "
            "works on Mixtral, Qwen2-MoE, Qwen3-MoE and OLMoE models; use target='neurons' for a dense model"
        )
    top_k = getattr(blocks[0].gate, "top_k", None) or model.config.num_experts_per_tok
    return int(blocks[0].gate.weight.shape[0]), int(top_k)


def check_expert_removal(total: int, top_k: int, remove: int, config: Any) -> None:
    """One-line errors for removing every expert, or leaving fewer than the router picks per token."""
    if remove >= total or total - remove < top_k:
        raise HFCompressError(
            f"cannot remove {remove} of the {total} experts per layer: each token is routed to {top_k}, so at least "
            f"{top_k} must stay; use count <= {total - top_k}" + (f" or ratio <= {(total - top_k) / total:.2f}" if config.count is None else "")
        )


def expert_statistics(model: Any, importance: str, calibration: Any) -> tuple[list[Any], list[Any] | None]:
    """``(scores, usage)`` per MoE layer: one score per expert (higher = keep; see the module docstring for the three
    rules) and how often the router picked each expert on calibration data (``None`` for the data-free ``magnitude``)."""
    import torch

    blocks = moe_blocks(model)
    if importance == "magnitude":
        return [(b.experts.gate_up_proj.detach().float().pow(2).sum((1, 2)) + b.experts.down_proj.detach().float().pow(2).sum((1, 2))).sqrt()
                for b in blocks], None
    sums = [torch.zeros(b.gate.weight.shape[0], dtype=torch.float64) for b in blocks]
    counts = [torch.zeros(b.gate.weight.shape[0], dtype=torch.float64) for b in blocks]
    routed: dict[int, Any] = {}

    def gate_hook(index: int):
        def fn(_module: Any, _args: tuple, output: Any) -> None:
            routed[index] = (output[1].detach(), output[2].detach())  # (weights, indices), each tokens x top_k

        return fn

    def experts_hook(index: int, experts: Any):
        def fn(_module: Any, args: tuple, _output: Any) -> None:
            weights, chosen = routed.pop(index)
            hidden = args[0].detach()
            counts[index] += torch.bincount(chosen.reshape(-1).cpu(), minlength=counts[index].numel()).double()
            if importance != "activation":
                return
            for e in chosen.unique().tolist():
                token, slot = torch.where(chosen == e)
                gate, up = torch.nn.functional.linear(hidden[token], experts.gate_up_proj[e]).chunk(2, dim=-1)
                out = torch.nn.functional.linear(experts.act_fn(gate) * up, experts.down_proj[e])
                sums[index][e] += float((weights[token, slot].float() * out.float().norm(dim=-1)).sum())

        return fn

    handles = []
    for i, block in enumerate(blocks):
        handles.append(block.gate.register_forward_hook(gate_hook(i)))
        handles.append(block.experts.register_forward_hook(experts_hook(i, block.experts)))
    try:
        with torch.no_grad():
            run_calibration(model, calibration)
    finally:
        for h in handles:
            h.remove()
    if importance == "frequency":
        return counts, counts
    # An expert no calibration token reached scores 0 (REAP's mean over its tokens is undefined there).
    return [s / c.clamp_min(1) for s, c in zip(sums, counts)], counts


def merge_targets(router: Any, keep: list[int], drop: list[int]) -> dict[int, int]:
    """For each dropped expert, the kept expert whose router row is most alike (cosine similarity).

    Example:
        >>> import torch
        >>> router = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
        >>> merge_targets(router, keep=[0, 1], drop=[2, 3])
        {2: 0, 3: 1}
    """
    import torch

    rows = torch.nn.functional.normalize(router.detach().float(), dim=-1)
    similarity = rows[drop] @ rows[keep].T
    return {d: keep[int(similarity[i].argmax())] for i, d in enumerate(drop)}


def _merge_into_kept(block: Any, keep: list[int], drop: list[int], usage: Any | None) -> dict[str, list[int]]:
    """Fold every dropped expert into its most alike kept one: the usage-weighted mean of their weights."""
    import torch

    targets = merge_targets(block.gate.weight, keep, drop)
    # +1: an expert no calibration token picked still counts a little, so a group never divides by zero.
    weight = (usage.double() + 1.0) if usage is not None else torch.ones(block.gate.weight.shape[0], dtype=torch.float64)
    merged: dict[str, list[int]] = {}
    with torch.no_grad():
        for k in keep:
            group = [k] + [d for d in drop if targets[d] == k]
            if len(group) == 1:
                continue
            share = (weight[group] / weight[group].sum()).float()
            for tensor in (block.experts.gate_up_proj, block.experts.down_proj):
                mean = (tensor[group].float() * share.to(tensor.device)[:, None, None]).sum(0)
                tensor[k] = mean.to(tensor.dtype)
            merged[str(k)] = group[1:]
    return merged


def prune_experts(model: Any, remove: int, scores: list[Any], *, merge: bool = False,
                  usage: list[Any] | None = None) -> dict[str, Any]:
    """Keep the ``total - remove`` best-scored experts of every MoE layer (router rows too); update config.

    With ``merge``, each removed expert is first folded into its most alike kept expert (``merge_targets``),
    weighted by ``usage`` (how often the router picked each, per layer)."""
    import torch

    removed: dict[str, list[int]] = {}
    merged: dict[str, dict[str, list[int]]] = {}
    layer_index = {id(getattr(layer, "mlp", None)): i for i, layer in enumerate(decoder_layers(model))}
    keep_n = None
    for position, (block, score) in enumerate(zip(moe_blocks(model), scores)):
        total = block.gate.weight.shape[0]
        keep_n = total - remove
        # Ties (unused experts) go by index, so the choice is deterministic.
        order = sorted(range(total), key=lambda e: (-float(score[e]), e))
        keep = torch.tensor(sorted(order[:keep_n]), dtype=torch.long)
        layer = str(layer_index[id(block)])
        removed[layer] = sorted(set(range(total)) - set(keep.tolist()))
        if merge:
            merged[layer] = _merge_into_kept(block, keep.tolist(), removed[layer], usage[position] if usage is not None else None)
        with torch.no_grad():
            for owner, name in ((block.gate, "weight"), (block.experts, "gate_up_proj"), (block.experts, "down_proj")):
                old = getattr(owner, name)
                setattr(owner, name, torch.nn.Parameter(old.index_select(0, keep.to(old.device)).contiguous(), requires_grad=old.requires_grad))
            bias = getattr(block.gate, "bias", None)
            if isinstance(bias, torch.Tensor) and bias.shape[:1] == (total,):
                block.gate.bias = torch.nn.Parameter(bias.index_select(0, keep.to(bias.device)).contiguous())
        for owner in (block, block.gate, block.experts):
            if hasattr(owner, "num_experts"):
                owner.num_experts = keep_n
    cfg = model.config
    for name in EXPERT_COUNT_NAMES:
        if hasattr(cfg, name):
            setattr(cfg, name, keep_n)
    if hasattr(model, "num_experts"):  # the load-balancing loss of the causal-LM head
        model.num_experts = keep_n
    info: dict[str, Any] = {"removed_experts_per_layer": removed, "experts_per_layer": keep_n,
                            "num_experts_per_tok": int(getattr(cfg, "num_experts_per_tok", 0) or 0)}
    if merge:
        # Kept expert (its index before removal) -> the removed experts folded into it, per layer.
        info["merged_experts_per_layer"] = merged
    return info
