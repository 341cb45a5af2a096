"""Cross-layer weight sharing (ALBERT-style): the decoder layers of a group use one set of weights.

Our own torch code: no maintained library ties a trained transformers model's layers (ALBERT shares all layers from
pretraining; MobileLLM and "relaxed recursive transformers" share blocks of a trained model and then train them, by
hand). For each group, every parameter but the norms (``modeling_shared_layers.shared_parameter_names``) becomes one
``nn.Parameter`` that all layers of the group hold: the group's mean (``init="mean"``) or its first layer's
(``"first"``). The layers then are the very same tensors in memory, so a later training step sees each shared tensor
once in ``model.parameters()`` (no duplicates in the optimizer) and autograd sums every layer's gradient into it.

Saving: the choice is a small modeling file over transformers' own tied-weights mechanism alone, because the latter
cannot be declared in a saved config: ``_tied_weights_keys`` is a class attribute in the model's code, and
transformers 5 applies it only when ``tie_word_embeddings`` is true. So the model's class becomes
``SharedLayers<Base>`` (``modeling_shared_layers.py``, which adds the layer ties to that very mechanism), config.json
gets ``shared_layer_groups`` and ``auto_map``; ``save_pretrained`` stores each shared tensor once and
``AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)`` re-ties the layers (hfcompress.json records
``load.trust_remote_code: true``).

Example:
    >>> import hfcompress as hfc
    >>> from hfcompress.methods.registry import StepContext
    >>> from hfcompress.testing import tiny_model
    >>> model, tok = tiny_model("llama", layers=4)
    >>> info = TorchShareLayers().compress(model, tok, hfc.ShareLayersConfig(every=2), StepContext(progress=False)).info
    >>> info["groups"], model.model.layers[0].mlp.up_proj.weight is model.model.layers[1].mlp.up_proj.weight
    ([[0, 1], [2, 3]], True)
"""

from __future__ import annotations

from typing import Any

from ...config import CompressionConfig
from ..layers import count_parameters, forget_config_source
from ..registry import AfterStepHook, CompressionAdapter, StepContext, StepResult
from . import modeling_shared_layers
from .config import ShareLayersConfig


def _group_weight(tensors: list[Any], init: str) -> Any:
    """The shared value of one parameter: the group's mean (computed in float32) or its first layer's tensor."""
    import torch

    if init == "first":
        return tensors[0]
    mean = torch.stack([t.detach().float() for t in tensors]).mean(0).to(tensors[0].dtype)
    return torch.nn.Parameter(mean, requires_grad=tensors[0].requires_grad)


def tied_tensor_count(model: Any) -> tuple[int, int]:
    """``(tied, untied)``: how many of the layer ties config.json declares are one tensor in memory, and how many not."""
    ties = modeling_shared_layers.layer_ties(model, getattr(model.config, modeling_shared_layers.GROUPS_FIELD, None) or [])
    tied = sum(model.get_parameter(target) is model.get_parameter(source) for target, source in ties.items())
    return tied, len(ties) - tied


class SharedLayersHold(AfterStepHook):
    """Keeps the layers of each group one tensor after later steps, where that costs nothing.

    A later step that replaces a shared Parameter with equal values in every layer (a data-free rewrite) is re-tied;
    one that leaves different values per layer (a calibrated rewrite of each layer) keeps them: those tensors are then
    stored per layer, and on reload transformers keeps them apart (it ties only equal tensors). Either is reported.
    """

    info_key = "shared_layers"

    def restore(self, model: Any) -> dict[str, Any] | None:
        import torch

        groups = getattr(getattr(model, "config", None), modeling_shared_layers.GROUPS_FIELD, None)
        if not groups:  # a later step handed on another model (a GGUF file's reader, a separate student)
            return None
        ties = modeling_shared_layers.layer_ties(model, groups)
        retied = 0
        for target, source in ties.items():
            target_param, source_param = model.get_parameter(target), model.get_parameter(source)
            if target_param is not source_param and target_param.shape == source_param.shape and torch.equal(target_param, source_param):
                parent, _, name = target.rpartition(".")
                setattr(model.get_submodule(parent), name, source_param)
                retied += 1
        tied, untied = tied_tensor_count(model)
        report: dict[str, Any] = {"tied_tensors": tied, "untied_tensors": untied}
        if retied:
            report["retied_tensors"] = retied
        return report


class TorchShareLayers(CompressionAdapter):
    """Ties the decoder layers of each group to one set of weights; saves them once with modeling_shared_layers.py."""

    name = "torch"
    methods = ("share_layers",)
    required_packages = ("torch",)
    priority = 50

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, context: StepContext) -> StepResult:
        import torch
        from tqdm.auto import tqdm

        self.expect(config, ShareLayersConfig)
        config.validate_for_model(model)
        _, layers = modeling_shared_layers.decoder_layers_with_prefix(model)
        groups = config.layer_groups(len(layers))
        before = count_parameters(model)
        with torch.no_grad():
            for group in tqdm(groups, desc="share layers", unit="group", disable=not context.progress):
                source = layers[group[0]]
                for name in modeling_shared_layers.shared_parameter_names(source):
                    shared = _group_weight([layers[i].get_parameter(name) for i in group], config.init)
                    parent, _, leaf = name.rpartition(".")
                    setattr(source.get_submodule(parent) if parent else source, leaf, shared)
        # Same object, class swapped for SharedLayers<Base>: its tied-weights mapping now names the layer ties, which
        # transformers' own tie_weights applies here (the other layers of a group get the first layer's Parameter),
        # save_pretrained honours (each shared tensor written once, modeling file and auto_map beside it) and
        # from_pretrained re-applies.
        setattr(model.config, modeling_shared_layers.GROUPS_FIELD, groups)
        model.__class__ = modeling_shared_layers.shared_layers_class(type(model))
        model.config.auto_map = {"AutoModelForCausalLM": f"modeling_shared_layers.{type(model).__name__}"}
        model.all_tied_weights_keys = model.get_expanded_tied_weights_keys(all_submodels=True)
        model.tie_weights(recompute_mapping=False)
        forget_config_source(model)
        after = count_parameters(model)
        tied, _ = tied_tensor_count(model)
        shared_layers = sum(len(g) for g in groups)
        info = {
            "groups": groups,
            "init": config.init,
            "layers": len(layers),
            "shared_layers": shared_layers,
            "unique_layers": len(layers) - shared_layers + len(groups),
            "tied_tensors": tied,
            "kept_per_layer": "norm weights (each layer keeps its own input and output scale)",
            "parameters_before": int(before),
            "parameters_after": int(after),
            "parameters_removed": int(before - after),
            "load": "AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True) (modeling_shared_layers.py in the folder)",
        }
        return StepResult(model, info, hold=SharedLayersHold())
