"""Modeling code for checkpoints whose decoder layers share weights (hfcompress ShareLayersConfig); copied into every such folder.

Plain transformers configs cannot say "layer 1 uses layer 0's weights": a model class declares its tied parameters in
code (``_tied_weights_keys``), and transformers 5 only applies that mapping when ``config.tie_word_embeddings`` is
true, so a saved Llama or Qwen config has no field that ties extra parameters. This file is that code.
``config.json`` carries ``auto_map`` -> ``modeling_shared_layers.SharedLayers<Base>`` and ``shared_layer_groups``
(e.g. ``[[0, 1], [2, 3]]``); the class is the original architecture's class (e.g. ``LlamaForCausalLM``) that adds
the layer ties to transformers' own tied-weights mapping. So transformers itself does the rest, as it does for tied
embeddings: ``save_pretrained`` writes each shared tensor once (under the group's first layer), and
``from_pretrained(folder, trust_remote_code=True)`` loads it there and ties the other layers of the group to it.
This file imports only torch and transformers (no hfcompress needed to load).

What is shared: every parameter of a decoder layer except its norms (attention and MLP or expert projections, their
biases, routers). Norm weights stay per layer: they are ``hidden_size`` numbers each (under 0.1% of a layer), and
each layer keeps its own input and output scale, which the layers of a group need to differ at all, and which a
distillation run can then adjust per layer at no cost in size.

Example:
    >>> from transformers import AutoModelForCausalLM
    >>> model = AutoModelForCausalLM.from_pretrained("out/SmolLM2-shared", trust_remote_code=True)   # doctest: +SKIP
"""

from __future__ import annotations

import re
from typing import Any

import torch
import transformers

_CLASSES: dict[str, type] = {}
GROUPS_FIELD = "shared_layer_groups"


def is_norm_parameter(name: str) -> bool:
    """Whether a parameter (named relative to its decoder layer) belongs to a norm, which stays per layer.

    Example:
        >>> is_norm_parameter("input_layernorm.weight"), is_norm_parameter("self_attn.k_norm.weight")
        (True, True)
        >>> is_norm_parameter("mlp.down_proj.weight")
        False
    """
    return any(part.endswith("norm") for part in name.split(".")[:-1])


def shared_parameter_names(layer: torch.nn.Module) -> list[str]:
    """The names (relative to the layer) of a decoder layer's parameters that a group shares: all but the norms."""
    return [name for name, _ in layer.named_parameters() if not is_norm_parameter(name)]


def decoder_layers_with_prefix(model: torch.nn.Module) -> tuple[str, Any]:
    """``("model.layers", ModuleList)``: where a causal LM keeps its decoder layers, as parameter names spell it."""
    prefix = getattr(model, "base_model_prefix", "model") or "model"
    layers = getattr(getattr(model, prefix, None), "layers", None)
    if layers is None:
        raise AttributeError(f"{type(model).__name__} has no {prefix}.layers")
    return f"{prefix}.layers", layers


def layer_ties(model: torch.nn.Module, groups: list[list[int]]) -> dict[str, str]:
    """``{target: source}`` full parameter names: every layer of a group points at the group's first (lowest) layer."""
    if not groups:
        return {}
    prefix, layers = decoder_layers_with_prefix(model)
    ties: dict[str, str] = {}
    for group in groups:
        source, *targets = sorted(int(i) for i in group)
        for name in shared_parameter_names(layers[source]):
            for target in targets:
                ties[f"{prefix}.{target}.{name}"] = f"{prefix}.{source}.{name}"
    return ties


class SharedLayersMixin:
    """Mixed in before a transformers model class: its decoder layers in ``config.shared_layer_groups`` share weights."""

    def _shared_layer_ties(self) -> dict[str, str]:
        groups = getattr(self.config, GROUPS_FIELD, None) or []
        try:
            return layer_ties(self, groups)  # type: ignore[arg-type]
        except AttributeError:  # asked before the layers exist (inside the base __init__)
            return {}

    @property
    def _tied_weights_keys(self) -> dict[str, str]:  # type: ignore[override]
        # save_pretrained reads the keys as regular expressions to know which names of a shared tensor to leave out of
        # the file: escaped and anchored, so layer 1's names never match layer 11's.
        exact = {f"^{re.escape(t)}$": f"^{re.escape(s)}$" for t, s in self._shared_layer_ties().items()}
        return {**(super()._tied_weights_keys or {}), **exact}  # type: ignore[misc]

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict[str, str]:
        # transformers applies a class's mapping only when tie_word_embeddings is true; the layer ties hold regardless.
        # post_init stores the result as all_tied_weights_keys, which __init__ (init_weights) and from_pretrained tie.
        ties = super().get_expanded_tied_weights_keys(all_submodels=all_submodels)  # type: ignore[misc]
        return {**ties, **self._shared_layer_ties()}


def shared_layers_class(base: type) -> type:
    """``SharedLayers<Base>``: ``base`` (e.g. ``LlamaForCausalLM``) with tied decoder layers; saved models point at it."""
    name = f"SharedLayers{base.__name__}"
    if name not in _CLASSES:
        _CLASSES[name] = type(name, (SharedLayersMixin, base), {"__module__": __name__, "_auto_class": "AutoModelForCausalLM"})
    return _CLASSES[name]


def __getattr__(name: str) -> type:
    # auto_map names e.g. "modeling_shared_layers.SharedLayersLlamaForCausalLM"; transformers looks it up with getattr.
    if name.startswith("SharedLayers") and hasattr(transformers, name[len("SharedLayers"):]):
        return shared_layers_class(getattr(transformers, name[len("SharedLayers"):]))
    raise AttributeError(name)
