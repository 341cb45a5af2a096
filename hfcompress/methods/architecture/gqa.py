"""GQA conversion: merge the key/value heads of each group so a model ends with fewer of them (query heads kept).

Our own torch code: no maintained library converts a trained transformers model to fewer KV heads (the GQA paper's
"uptraining" recipe mean-pools heads by hand, and neither llm-compressor, torchao nor peft has a step for it).
The result is the same architecture with a smaller ``num_key_value_heads`` in config.json, so it loads in plain
transformers with no custom code.

New KV head ``g`` serves query heads ``Q_g`` (``heads / k`` consecutive ones); each of them used old KV head
``h(j)``. A merge builds one head from the old heads ``{h(j) : j in Q_g}``, each weighted by how many of the group's
query heads used it (when ``k`` divides the old count that is a plain merge of ``old / k`` heads).

* ``mean``: the k/v projection rows (and biases) of those heads averaged. Data-free.
* ``pca``: values: the group's stacked value vectors ``Y = [V_h]`` (``n * head_dim`` wide) are replaced by their
  top ``head_dim`` principal components ``U^T Y`` under the calibration inputs' second moment, and each query
  head's slice of ``o_proj`` is multiplied by its block of ``U`` (so ``o_proj`` reads ``U_h U^T Y ~ V_h``).
  Keys: rotary embeddings rotate each frequency pair ``(i, i + head_dim/2)`` as a complex number, so per frequency
  the heads' complex keys are replaced by their top complex principal component ``z = u^H [z_h]`` and each query
  head's pair is multiplied by ``conj(u_h)``, which commutes with the rotation: ``q . k_h ~ (conj(u_h) q) . z``.
  Both are weighted by what reads them: a value head's error by the Gram matrix of the o_proj columns of the query
  heads that read it, a key head's error per frequency by the energy of its queries (on SmolLM2-135M, 3 -> 1 KV
  heads, 8 calibration samples: ppl 130.5 unweighted, 115.0 weighted; benchmarks/results/gqa.json).
  Models with ``k_norm`` (Qwen3, Gemma 3 per head; OLMoE over all heads at once) normalise the keys, which a
  complex rescale of the query does not survive: their keys are mean-merged (before the norm; OLMoE's norm weight
  slices too) and only their values get the PCA merge.

Example:
    >>> import hfcompress as hfc
    >>> from hfcompress.methods.registry import StepContext
    >>> from hfcompress.testing import tiny_model
    >>> model, tok = tiny_model("qwen2")
    >>> result = TorchGQA().compress(model, tok, hfc.GQAConfig(num_key_value_heads=1, method="mean"), StepContext())
    >>> model.config.num_key_value_heads, model.model.layers[0].self_attn.k_proj.weight.shape
    (1, torch.Size([16, 64]))
"""

from __future__ import annotations

import math
from typing import Any

from ...config import CompressionConfig
from ..activations import input_mean
from ..layers import count_parameters, forget_config_source
from ..registry import CompressionAdapter, StepContext, StepResult
from .attention import attention_geometry, attention_modules, text_config
from .config import GQAConfig


def kv_groups(heads: int, kv: int, k: int) -> list[dict[int, int]]:
    """For each new KV head, the old KV heads its query heads used and how many of them used each.

    Example:
        >>> kv_groups(9, 3, 1)
        [{0: 3, 1: 3, 2: 3}]
        >>> kv_groups(12, 4, 3)      # 4 query heads per new group, 3 per old: old head 1 is split between groups
        [{0: 3, 1: 1}, {1: 2, 2: 2}, {2: 1, 3: 3}]
    """
    old_rep, new_rep = heads // kv, heads // k
    groups: list[dict[int, int]] = [{} for _ in range(k)]
    for j in range(heads):
        group = groups[j // new_rep]
        group[j // old_rep] = group.get(j // old_rep, 0) + 1
    return groups


def _input_moments(model: Any, modules: list[Any], calibration: Any) -> list[Any]:
    """``E[x x^T]`` of ``[x; 1]`` at each attention's k_proj input (float64), from one pass over the calibration data."""
    import torch

    def moments(x: Any) -> Any:
        x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)], 1)
        return (x.T @ x).double()  # one sample's product in float32 (fast), summed over samples in float64

    return input_mean(model, [m.k_proj for m in modules], calibration, moments)


def _augmented(linear: Any, heads: int, head_dim: int) -> Any:
    """``[W | b]`` of a projection as ``(heads, head_dim, in + 1)`` float64 (a zero bias column when it has none)."""
    import torch

    weight = linear.weight.detach().double()
    bias = linear.bias.detach().double() if linear.bias is not None else torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    return torch.cat([weight, bias[:, None]], 1).reshape(heads, head_dim, -1)


def _store(linear: Any, augmented: Any) -> None:
    """Write ``(rows, in + 1)`` float64 ``[W | b]`` back into ``linear`` (its dtype; shape may change)."""
    import torch

    rows = augmented.reshape(-1, augmented.shape[-1])
    dtype = linear.weight.dtype
    linear.weight = torch.nn.Parameter(rows[:, :-1].to(dtype).contiguous(), requires_grad=linear.weight.requires_grad)
    if linear.bias is not None:
        linear.bias = torch.nn.Parameter(rows[:, -1].to(dtype).contiguous(), requires_grad=linear.bias.requires_grad)
    linear.out_features = rows.shape[0]


def _mean(heads_aug: Any, group: dict[int, int]) -> Any:
    total = sum(group.values())
    return sum(heads_aug[h] * (w / total) for h, w in group.items())


def _pca_values(v_aug: Any, metric: dict[int, Any], moment: Any, head_dim: int) -> tuple[Any, dict[int, Any]]:
    """Merged value head and, per old head, the ``head_dim x head_dim`` map ``T_h`` with ``V_h ~ T_h V_merged``.

    ``metric[h]`` (``G_h``) weighs head ``h``'s error: the PCA runs on ``[G_h V_h]``, so ``sum_h ||G_h (V_h - T_h V)||^2``
    is what is minimised (``G_h^T G_h`` = the o_proj columns' Gram matrix of the query heads reading ``h``).
    """
    import torch

    order = sorted(metric)
    stacked = torch.cat([metric[h] @ v_aug[h] for h in order], 0)  # (n * d, in + 1)
    second = stacked @ moment @ stacked.T
    _, vectors = torch.linalg.eigh((second + second.T) / 2)
    top = vectors[:, -head_dim:].flip(1)  # (n * d, d), largest first
    maps = {h: torch.linalg.solve(metric[h], top[i * head_dim:(i + 1) * head_dim]) for i, h in enumerate(order)}
    return top.T @ stacked, maps


def _pca_keys(k_aug: Any, weights: dict[int, Any], moment: Any, head_dim: int) -> tuple[Any, dict[int, Any]]:
    """Merged key head and, per old head, the complex factor per rotary frequency its queries are multiplied by.

    ``weights[h]`` (one per frequency) weighs head ``h``'s key error: the energy of the queries that read it, so the
    frequencies the queries attend with are kept best.
    """
    import torch

    half = head_dim // 2
    order = sorted(weights)
    # (half, n, in + 1) complex: frequency f of head h is the pair (f, f + half) as one complex number.
    z = torch.stack([torch.complex(k_aug[h][:half], k_aug[h][half:]) * weights[h].sqrt()[:, None] for h in order], 1)
    moment_c = moment.to(z.dtype)
    second = z @ moment_c @ z.conj().transpose(1, 2)  # (half, n, n) Hermitian
    _, vectors = torch.linalg.eigh((second + second.conj().transpose(1, 2)) / 2)
    u = vectors[:, :, -1]  # (half, n): top component per frequency
    merged = (u.conj()[:, :, None] * z).sum(1)  # (half, in + 1)
    factors = {h: u[:, i].conj() / weights[h].sqrt() for i, h in enumerate(order)}
    return torch.cat([merged.real, merged.imag], 0), factors


def _query_energy(q_aug_head: Any, moment: Any) -> Any:
    """``E|q_f|^2`` per rotary frequency of one query head (pre-rotation; the rotation keeps it)."""
    import torch

    half = q_aug_head.shape[0] // 2
    z = torch.complex(q_aug_head[:half], q_aug_head[half:])
    return ((z @ moment.to(z.dtype)) * z.conj()).sum(-1).real.clamp_min(1e-12)


def _output_metric(o_weight: Any, queries: list[int], head_dim: int) -> Any:
    """``G = sqrt(sum_j W_o,j^T W_o,j)`` over the o_proj column blocks of ``queries`` (a small ridge keeps it invertible)."""
    import torch

    gram = sum(o_weight[:, j * head_dim:(j + 1) * head_dim].T @ o_weight[:, j * head_dim:(j + 1) * head_dim] for j in queries)
    gram = gram + torch.eye(head_dim, dtype=gram.dtype, device=gram.device) * (1e-6 * float(gram.diagonal().mean()) + 1e-12)
    values, vectors = torch.linalg.eigh(gram)
    return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T


def _scale_query(q_aug_head: Any, factor: Any) -> Any:
    """Multiply each rotary frequency pair of one query head's rows by a complex factor."""
    import torch

    half = q_aug_head.shape[0] // 2
    z = torch.complex(q_aug_head[:half], q_aug_head[half:]) * factor[:, None]
    return torch.cat([z.real, z.imag], 0)


def convert_attention(attn: Any, *, heads: int, kv: int, k: int, head_dim: int, method: str, moment: Any = None,
                      rotary: bool = True, aware: bool = True) -> dict[str, str]:
    """Merge one attention module's KV heads from ``kv`` to ``k`` in place; says how keys and values were merged."""
    import torch

    groups = kv_groups(heads, kv, k)
    new_rep, old_rep = heads // k, heads // kv
    k_aug, v_aug = _augmented(attn.k_proj, kv, head_dim), _augmented(attn.v_proj, kv, head_dim)
    key_method = method if rotary and not hasattr(attn, "k_norm") else "mean"
    value_method = method if not hasattr(attn, "v_norm") else "mean"
    new_k, new_v = [], []
    q_aug = _augmented(attn.q_proj, heads, head_dim) if key_method == "pca" else None
    o_weight = attn.o_proj.weight.detach().double().clone() if value_method == "pca" else None
    eye = torch.eye(head_dim, dtype=k_aug.dtype, device=k_aug.device)
    for g, group in enumerate(groups):
        queries = range(g * new_rep, (g + 1) * new_rep)
        readers = {h: [j for j in queries if j // old_rep == h] for h in group}
        if key_method == "pca":
            weights = ({h: sum(_query_energy(q_aug[j], moment) for j in readers[h]) for h in group} if aware else
                       {h: torch.full((head_dim // 2,), float(w), dtype=k_aug.dtype, device=k_aug.device) for h, w in group.items()})
            merged, factors = _pca_keys(k_aug, weights, moment, head_dim)
            for j in queries:
                q_aug[j] = _scale_query(q_aug[j], factors[j // old_rep])
            new_k.append(merged)
        else:
            new_k.append(_mean(k_aug, group))
        if value_method == "pca":
            metric = ({h: _output_metric(o_weight, readers[h], head_dim) for h in group} if aware else
                      {h: eye * math.sqrt(w) for h, w in group.items()})
            merged, maps = _pca_values(v_aug, metric, moment, head_dim)
            for j in queries:
                cols = slice(j * head_dim, (j + 1) * head_dim)
                o_weight[:, cols] = o_weight[:, cols] @ maps[j // old_rep]
            new_v.append(merged)
        else:
            new_v.append(_mean(v_aug, group))
    with torch.no_grad():
        _store(attn.k_proj, torch.stack(new_k))
        _store(attn.v_proj, torch.stack(new_v))
        if q_aug is not None:
            _store(attn.q_proj, q_aug)
        if o_weight is not None:
            attn.o_proj.weight.copy_(o_weight.to(attn.o_proj.weight.dtype))
    norm = getattr(attn, "k_norm", None)
    if norm is not None and getattr(norm, "weight", None) is not None and norm.weight.numel() == kv * head_dim:
        # OLMoE normalises all key heads at once: its k_norm weight has one slice per KV head, merged like the keys.
        weight = norm.weight.detach().double().reshape(kv, head_dim)
        merged_norm = torch.stack([_mean(weight, group) for group in groups]).reshape(-1)
        norm.weight = torch.nn.Parameter(merged_norm.to(norm.weight.dtype), requires_grad=norm.weight.requires_grad)
    attn.num_key_value_groups = new_rep
    if hasattr(attn, "num_key_value_heads"):
        attn.num_key_value_heads = k
    return {"keys": key_method, "values": value_method}


class TorchGQA(CompressionAdapter):
    """Merges KV heads in plain torch; the result is the same transformers architecture with fewer KV heads."""

    name = "torch"
    methods = ("gqa",)
    required_packages = ("torch",)
    priority = 50

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, context: StepContext) -> StepResult:
        from tqdm.auto import tqdm

        self.expect(config, GQAConfig)
        config.validate_for_model(model)
        cfg = text_config(model)
        heads, kv, head_dim = attention_geometry(model)
        k = config.num_key_value_heads
        modules = attention_modules(model)
        before = count_parameters(model)
        moments = _input_moments(model, modules, context.calibration) if config.method == "pca" else [None] * len(modules)
        rotary = float(getattr(cfg, "partial_rotary_factor", 1.0) or 1.0) == 1.0 and head_dim % 2 == 0
        how: dict[str, str] = {}
        for attn, moment in tqdm(list(zip(modules, moments)), desc="merge KV heads", unit="layer", disable=not context.progress):
            how = convert_attention(attn, heads=heads, kv=kv, k=k, head_dim=head_dim, method=config.method,
                                    moment=moment.to(attn.k_proj.weight.device) if moment is not None else None, rotary=rotary)
        cfg.head_dim = head_dim  # written out: no longer derivable when heads change elsewhere
        cfg.num_key_value_heads = k
        forget_config_source(model)
        after = count_parameters(model)
        info = {
            "num_key_value_heads_before": kv,
            "num_key_value_heads": k,
            "num_attention_heads": heads,
            "kv_cache_ratio": k / kv,
            "keys_merged_by": how.get("keys"),
            "values_merged_by": how.get("values"),
            "parameters_before": before,
            "parameters_after": after,
            "parameters_removed": before - after,
        }
        if how.get("keys") != config.method:
            info["note"] = ("keys merged by mean: this model normalises each key head (k_norm) or rotates only part of it, "
                            "which the per-frequency PCA merge does not survive")
        return StepResult(model, info)
