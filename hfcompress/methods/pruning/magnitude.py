"""Data-free magnitude pruning (per output row, or per N:M group): our own torch code, as zeroing the smallest
weights needs no library.

Example:
    >>> from hfcompress import PruneConfig
    >>> from hfcompress.methods.registry import StepContext
    >>> from hfcompress.testing import tiny_model
    >>> model, tok = tiny_model("qwen2")
    >>> result = TorchMagnitudePruning().compress(model, tok, PruneConfig(method="magnitude", sparsity=0.5), StepContext())
    >>> result.info["sparsity"]
    0.5
"""

from __future__ import annotations

from typing import Any

from ...config import CompressionConfig
from ..layers import target_linear_layers
from ..registry import CompressionAdapter, StepContext, StepResult
from .config import PruneConfig
from .masks import SparsityMask, magnitude_mask, sparsity_report

DENSE_STORAGE_NOTE = (
    "saved dense (zeros stored): compressed-tensors 0.19 has no sparse storage format "
    "(its sparse-24-bitmask and bitmask compressors were removed), so the file is not smaller"
)


class PruneAdapter(CompressionAdapter):
    """Shared by the pruning adapters: which pruning methods each runs, and the measured report it returns."""

    methods = ("prune",)
    save_format = "safetensors"
    pruning_methods: tuple[str, ...] = ()

    def supports(self, config: CompressionConfig) -> bool:
        return isinstance(config, PruneConfig) and config.method in self.pruning_methods

    def result(self, model: Any, config: PruneConfig, context: StepContext) -> StepResult:
        """The step's result: measured sparsity, the storage note, and the mask kept for later steps.

        When earlier steps pruned the model (a gradual pruning's earlier stages), their zeros are put back before
        anything is measured: pruning an already-pruned model never revives a weight, so the masks are nested. Wanda
        and magnitude pick the zeros first anyway (their score is 0); SparseGPT's error compensation updates weights
        it has not pruned yet, earlier zeros included, and would refill some. The new mask then holds the earlier
        ones, which stop holding the layers it covers, so a model pruned in k stages keeps one mask, not k.
        """
        layers = target_linear_layers(model, config.ignore)
        earlier = [hold for hold in context.holds if isinstance(hold, SparsityMask)]
        revived = 0
        for hold in earlier:
            report = hold.restore(model)
            revived += (report or {}).get("refilled_weights_zeroed", 0)
        info = {"method": config.method, "pattern": config.pattern, "target_sparsity": round(config.sparsity, 6)}
        info.update(sparsity_report(model, config))
        if earlier:
            info["earlier_zeros_revived_and_zeroed"] = revived
        info["storage"] = DENSE_STORAGE_NOTE
        mask = SparsityMask.of(layers)
        for hold in earlier:
            hold.hand_over(mask)
        return StepResult(model, info, hold=mask)


class TorchMagnitudePruning(PruneAdapter):
    """Data-free magnitude pruning in plain torch."""

    name = "torch"
    pruning_methods = ("magnitude",)
    required_packages = ("torch",)
    priority = 50

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, context: StepContext) -> StepResult:
        import torch
        from tqdm.auto import tqdm

        self.expect(config, PruneConfig)
        layers = target_linear_layers(model, config.ignore)
        nm = config.nm if config.pattern != "unstructured" else None
        with torch.no_grad():
            for layer in tqdm(layers.values(), desc="magnitude pruning", unit="layer", disable=not context.progress):
                layer.weight.masked_fill_(magnitude_mask(layer.weight, config.sparsity, nm), 0)
        return self.result(model, config, context)
