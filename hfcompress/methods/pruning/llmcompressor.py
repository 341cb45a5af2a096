"""Wanda and SparseGPT through llm-compressor's modifiers (CPU works, N:M too); saves dense safetensors.

Storage: compressed-tensors 0.19 dropped its sparse compressors (``sparse-24-bitmask``, ``sparse-bitmask``;
llm-compressor says "Sparse compression is no longer supported by compressed-tensors"), so pruned weights are
saved dense, with zeros, in plain safetensors; the step info says so.

Example:
    >>> from hfcompress import PruneConfig
    >>> from hfcompress.testing import tiny_model
    >>> model, _ = tiny_model("llama")
    >>> [type(m).__name__ for m in LLMCompressorPruning().modifiers(model, PruneConfig(method="sparsegpt", pattern="2:4"))]
    ['SparseGPTModifier']
"""

from __future__ import annotations

import re
from typing import Any

from ...config import CompressionConfig
from ..backends.llmcompressor import LLMCompressorAdapter, run_oneshot
from ..layers import target_linear_layers
from ..registry import StepContext, StepResult
from .config import PruneConfig
from .magnitude import PruneAdapter
from .masks import SparsityMask


class LLMCompressorPruning(PruneAdapter, LLMCompressorAdapter):
    """Wanda and SparseGPT via llm-compressor."""

    pruning_methods = ("wanda", "sparsegpt")

    def modifiers(self, model: Any, config: PruneConfig, *, pruned_before: bool = False) -> list[Any]:
        """The llm-compressor modifier equivalent to ``config``.

        ``pruned_before``: the model holds an earlier step's zeros (a gradual pruning's later stage). SparseGPT then
        extends that mask (``preserve_sparsity_mask``) instead of choosing afresh: its error compensation leaves the
        earlier zeros out, where it would otherwise move them and have them zeroed again afterwards, uncompensated.
        Wanda needs nothing: a zero weight scores 0, so it is pruned again first.
        """
        targets = target_linear_layers(model, config.ignore)
        # llm-compressor names a target Linear "<name>." (a trailing dot): match ours with an anchored regex.
        ignore = [f"re:^{re.escape(name)}\\.?$" for name in target_linear_layers(model, ()) if name not in targets]
        # Our "N:M" keeps N of every M weights (NVIDIA's 2:4); llm-compressor's mask_structure "P:M" prunes P.
        mask_structure = "0:0"
        if config.pattern != "unstructured":
            n, m = config.nm
            mask_structure = f"{m - n}:{m}"
        common = dict(sparsity=config.sparsity, mask_structure=mask_structure, targets=["Linear"], ignore=ignore)
        if config.method == "wanda":
            from llmcompressor.modifiers.pruning.wanda import WandaPruningModifier

            return [WandaPruningModifier(**common)]
        from llmcompressor.modifiers.pruning.sparsegpt import SparseGPTModifier

        return [SparseGPTModifier(**common, block_size=config.block_size, dampening_frac=config.dampening_frac,
                                  preserve_sparsity_mask=pruned_before)]

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, context: StepContext) -> StepResult:
        self.expect(config, PruneConfig)
        pruned_before = any(isinstance(hold, SparsityMask) for hold in context.holds)
        run_oneshot(model, tokenizer, self.modifiers(model, config, pruned_before=pruned_before), context.calibration)
        return self.result(model, config, context)
