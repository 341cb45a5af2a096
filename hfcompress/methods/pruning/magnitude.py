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

    def result(self, model: Any, config: PruneConfig) -> StepResult:
        """The step's result: measured sparsity, the storage note, and the mask kept for later steps."""
        layers = target_linear_layers(model, config.ignore)
        info = {"method": config.method, "pattern": config.pattern, "target_sparsity": round(config.sparsity, 6)}
        info.update(sparsity_report(model, config))
        info["storage"] = DENSE_STORAGE_NOTE
        return StepResult(model, info, hold=SparsityMask.of(layers))


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
        return self.result(model, config)
