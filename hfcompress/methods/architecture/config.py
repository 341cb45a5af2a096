"""The configs of architecture compression: fewer key/value heads (GQA conversion).

Example:
    >>> from hfcompress.methods.architecture import GQAConfig
    >>> GQAConfig(num_key_value_heads=1).method
    'pca'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from ...config import CompressionConfig, option, register_config
from ...errors import HFCompressError
from ..layers import architecture_name, decoder_layers
from .attention import attention_geometry
from .modeling_shared_layers import shared_parameter_names

GQA_METHODS = ("mean", "pca")


@register_config("gqa")
@dataclass
class GQAConfig(CompressionConfig):
    """Merge each group's key/value heads so the model ends with ``num_key_value_heads`` of them (query heads kept).

    The KV cache shrinks by ``old / new`` KV heads; the weights shrink only by the removed k/v projection rows.
    ``method="pca"`` (default) merges each group onto its principal components on calibration data (keys per
    rotary frequency) and refits the query and output projections to match; ``"mean"`` averages the heads and
    needs no data. Measured on SmolLM2-135M, 3 -> 1 KV heads (benchmarks/results/gqa.json): perplexity x1010 of the
    base with the mean merge, x7.1 with the PCA merge (32 calibration samples); a merged model needs distillation.

    Example:
        >>> from hfcompress import GQAConfig
        >>> GQAConfig(num_key_value_heads=1, method="mean").needs_calibration
        False
    """

    num_key_value_heads: int = option("KV heads the model ends with; must divide the number of query heads.", default=1)
    method: str = option(
        "'pca': each group's keys (per rotary frequency) and values are replaced by their principal components on "
        "calibration data, and the query and output projections are refit to them; 'mean': average the heads' "
        "projections (data-free).",
        default="pca",
    )

    def validate(self) -> None:
        if isinstance(self.num_key_value_heads, bool) or self.num_key_value_heads < 1:
            raise HFCompressError(f"num_key_value_heads={self.num_key_value_heads!r} must be a positive integer, e.g. 1")
        if self.method not in GQA_METHODS:
            raise HFCompressError(f"unknown GQA merge method {self.method!r}; use one of {', '.join(GQA_METHODS)}")

    def validate_for_model(self, model: Any) -> None:
        heads, kv, _ = attention_geometry(model)
        k = self.num_key_value_heads
        if kv == 1:
            raise HFCompressError("this model already has a single KV head (multi-query attention); there is nothing to merge")
        if k >= kv:
            raise HFCompressError(f"num_key_value_heads={k} does not reduce this model's {kv} KV heads; use a number below {kv}")
        if heads % k:
            working = [d for d in range(1, kv) if heads % d == 0]
            raise HFCompressError(
                f"num_key_value_heads={k} does not divide the {heads} query heads; use one of {', '.join(map(str, working))}"
            )

    @property
    def needs_calibration(self) -> bool:
        return self.method == "pca"


SHARE_INITS = ("mean", "first")


def _layer_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@register_config("share_layers")
@dataclass
class ShareLayersConfig(CompressionConfig):
    """ALBERT-style cross-layer weight sharing: groups of decoder layers use one set of attention and MLP weights.

    Each group keeps one copy of its layers' projections (the norms stay per layer): ``every=2`` halves the decoder's
    unique parameters and its file size. Nothing gets faster: every layer still runs, so the compute per token and
    the KV cache are those of the base. The shared weights start as the group's mean (``init="mean"``) or its first
    layer's (``"first"``); either way the model needs distillation afterwards (``[ShareLayersConfig(), DistillConfig()]``
    trains the shared tensors once, with every layer's gradient). Measured on SmolLM2-135M, every=2
    (benchmarks/results/share_layers.json): 134.5 -> 81.4 M unique parameters and 538 -> 326 MB (x0.605; the
    embeddings are not shared), perplexity x9.1e6 of the base with the mean, x3.1e8 with the first layer's, x223 and
    x326 after 30 short distillation steps: a shared model needs a real training run. Saved with ``modeling_shared_layers.py``, it loads
    with ``AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)``.

    Example:
        >>> from hfcompress import ShareLayersConfig
        >>> ShareLayersConfig().every, ShareLayersConfig(groups=[[0, 1], [2, 3, 4]]).layer_groups(6)
        (2, [[0, 1], [2, 3, 4]])
        >>> ShareLayersConfig(every=2).layer_groups(5)   # a last layer left alone keeps its own weights
        [[0, 1], [2, 3]]
    """

    every: Union[int, None] = option(
        "Share each run of this many consecutive decoder layers: 2 gives groups [[0, 1], [2, 3], ...] (a remainder of "
        "one layer keeps its own weights). Default 2 when groups is not given.", default=None)
    groups: Union[list, None] = option(
        "Explicit groups of decoder layer indices, e.g. [[0, 1], [2, 3, 4]]; layers in no group keep their own weights.",
        default=None)
    init: str = option("'mean': the shared weights are the average of the group's layers; 'first': those of the group's "
                       "first (lowest-numbered) layer.", default="mean")

    def __post_init__(self) -> None:
        if self.every is None and self.groups is None:
            self.every = 2
        super().__post_init__()

    def validate(self) -> None:
        if self.every is not None and self.groups is not None:
            raise HFCompressError("ShareLayersConfig takes every= or groups=, not both; pass one of them")
        if self.every is not None and self.every < 2:
            raise HFCompressError(f"every={self.every} shares nothing; use every=2 or more (layers per group)")
        if self.init not in SHARE_INITS:
            raise HFCompressError(f"unknown init {self.init!r} for shared layers; use one of {', '.join(SHARE_INITS)}")
        if self.groups is None:
            return
        if not isinstance(self.groups, (list, tuple)) or not self.groups or not all(
                isinstance(g, (list, tuple)) and all(_layer_index(i) for i in g) for g in self.groups):
            raise HFCompressError(f"groups={self.groups!r} must be a list of lists of layer indices, e.g. [[0, 1], [2, 3]]")
        self.groups = [list(g) for g in self.groups]
        seen: set[int] = set()
        for group in self.groups:
            if len(group) < 2:
                raise HFCompressError(f"group {group} holds one layer, which shares nothing; give each group two or more layers")
            for index in group:
                if index in seen:
                    raise HFCompressError(f"layer {index} is named twice in groups={self.groups}; a layer belongs to one group at most")
                seen.add(index)

    def layer_groups(self, num_layers: int) -> list[list[int]]:
        """The groups of layer indices this config shares in a model of ``num_layers`` decoder layers (each sorted)."""
        if self.groups is not None:
            return [sorted(g) for g in self.groups]
        every = int(self.every or 2)
        runs = [list(range(start, min(start + every, num_layers))) for start in range(0, num_layers, every)]
        return [run for run in runs if len(run) > 1]

    def validate_for_model(self, model: Any) -> None:
        layers = decoder_layers(model)
        if layers is None or not len(layers) or not all(hasattr(layer, "self_attn") and hasattr(layer, "mlp") for layer in layers):
            raise HFCompressError(f"{architecture_name(model)} has no standard decoder layout (model.layers, each with "
                                  "self_attn and mlp); layer sharing supports Llama, Qwen2/3, Mistral, Gemma 3 and their MoE kin")
        if getattr(model.config, "auto_map", None):
            raise HFCompressError(f"{architecture_name(model)} already runs custom modeling code (auto_map: low-rank factors or "
                                  "shared layers); put ShareLayersConfig first in the recipe, once")
        count = len(layers)
        if self.every is not None and self.every > count:
            raise HFCompressError(f"every={self.every} is more than this model's {count} decoder layers; use 2 to {count}")
        for group in self.layer_groups(count):
            outside = [i for i in group if i >= count]
            if outside:
                raise HFCompressError(f"layer {outside[0]} in group {group} does not exist: this model has {count} decoder "
                                      f"layers, numbered 0 to {count - 1}")
            first = dict(layers[group[0]].named_parameters())
            names = shared_parameter_names(layers[group[0]])
            for index in group[1:]:
                other = dict(layers[index].named_parameters())
                differs = next((n for n in names if n not in other or other[n].shape != first[n].shape), None)
                if differs is not None or set(shared_parameter_names(layers[index])) != set(names):
                    raise HFCompressError(
                        f"layers {group[0]} and {index} differ at {differs or 'their parameter names'} (an earlier step "
                        "changed one of them, or the model mixes layer kinds); group layers of the same shape")
