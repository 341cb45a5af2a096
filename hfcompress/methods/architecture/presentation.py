"""How architecture compression presents itself (GQA conversion, cross-layer weight sharing).

Example:
    >>> GQAPresentation().label({"kind": "gqa", "num_key_value_heads": 1, "method": "pca"})
    'GQA 1 KV head (PCA)'
    >>> ShareLayersPresentation().label({"kind": "share_layers", "every": 2, "groups": None, "init": "mean"})
    'Shared layers every 2 (mean)'
"""

from __future__ import annotations

from typing import Any, Sequence

from ..registry import MethodPresentation
from .config import GQAConfig, ShareLayersConfig

_MERGES = {
    "mean": "averaging the projections of the heads it replaces",
    "pca": ("projecting the heads it replaces onto their principal components on calibration data (keys per rotary "
            "frequency), with the query and output projections refit to match"),
}


class GQAPresentation(MethodPresentation):
    """Fewer key/value heads: the KV cache shrinks; query heads and the MLPs are untouched."""

    family = "architecture"

    def __init__(self, kind: str = "gqa") -> None:
        super().__init__(kind, {"gqa": {}})

    def label(self, step: dict[str, Any]) -> str:
        k = step.get("num_key_value_heads")
        return f"GQA {k} KV head{'' if k == 1 else 's'} ({str(step.get('method', '?')).upper() if step.get('method') == 'pca' else step.get('method')})"

    def summary(self, step: dict[str, Any]) -> str:
        return f"GQA conversion to {step.get('num_key_value_heads')} KV heads"

    def sentence(self, step: dict[str, Any]) -> str:
        return (f"GQA conversion: the key/value heads were merged into {step.get('num_key_value_heads')} per layer by "
                f"{_MERGES.get(str(step.get('method')), str(step.get('method')))}; config.json's num_key_value_heads "
                "says so and the query heads are kept.")

    def tags(self, step: dict[str, Any]) -> list[str]:
        return ["gqa", "kv-cache-compression"]

    def limits(self, step: dict[str, Any], kinds: Sequence[str]) -> list[str]:
        return [("GQA conversion shrinks the KV cache (kv_cache_bytes_per_token) and the key/value projections, not "
                 "the rest of the weights; nothing got faster at short contexts (the query heads and MLPs do the same "
                 "work), a saving in speed shows only where reading the KV cache dominates, at long contexts or large "
                 "batches. Merged heads lose quality that a short distillation run recovers only in part.")]

    def example(self) -> GQAConfig:
        return GQAConfig(num_key_value_heads=1)


_INITS = {"mean": "the average of the group's layers", "first": "those of the group's first layer"}


def _groups_phrase(step: dict[str, Any]) -> str:
    if step.get("groups"):
        return "groups " + ", ".join("[" + ", ".join(map(str, g)) + "]" for g in step["groups"])
    return f"every {step.get('every') or 2} consecutive layers"


class ShareLayersPresentation(MethodPresentation):
    """Cross-layer weight sharing: fewer unique parameters and a smaller file; the same compute and KV cache."""

    family = "architecture"

    def __init__(self, kind: str = "share_layers") -> None:
        super().__init__(kind, {"share-layers": {}, "share_layers": {}, "share-layers-first": {"init": "first"}})

    def label(self, step: dict[str, Any]) -> str:
        which = f"{len(step['groups'])} groups" if step.get("groups") else f"every {step.get('every') or 2}"
        return f"Shared layers {which} ({step.get('init', 'mean')})"

    def summary(self, step: dict[str, Any]) -> str:
        return "cross-layer weight sharing"

    def sentence(self, step: dict[str, Any]) -> str:
        return (f"Cross-layer weight sharing (ALBERT-style): {_groups_phrase(step)} share one set of attention and MLP "
                f"weights, initialised as {_INITS.get(str(step.get('init')), str(step.get('init')))}; each layer keeps its "
                "own norms. config.json's shared_layer_groups lists the groups, and modeling_shared_layers.py ties them "
                "again on load (trust_remote_code=True).")

    def tags(self, step: dict[str, Any]) -> list[str]:
        return ["layer-sharing", "weight-sharing"]

    def limits(self, step: dict[str, Any], kinds: Sequence[str]) -> list[str]:
        limits = [
            ("Layer sharing makes the model smaller in unique parameters and in file size (each shared tensor is stored "
             "once), not faster: every layer still runs, so the compute per token, the activations and the KV cache are "
             "those of the base, and memory in use drops only by the weights no longer held twice."),
            ("It loads only with trust_remote_code=True (modeling_shared_layers.py in the folder re-ties the layers): "
             "transformers lets a model's code, not its config.json, declare tied weights, so a plain Llama or Qwen config "
             "cannot say that layers share them. Without trust_remote_code, transformers builds the plain architecture and "
             "the layers left out of the file start random; vLLM and other engines that read the config alone do not "
             "load it. A GGUF step after it gives every layer its own copy (llama.cpp has no tied layers), so the "
             "file is as large as the base's."),
        ]
        if "distill" not in kinds and "qat" not in kinds:
            limits.append("The shared weights were not trained after sharing: quality drops a lot; run distillation "
                          "after it (a recipe of [ShareLayersConfig, DistillConfig]) to train the shared tensors.")
        return limits

    def example(self) -> ShareLayersConfig:
        return ShareLayersConfig(every=2)
