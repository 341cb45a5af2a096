"""RTN, GPTQ and AWQ through llm-compressor's QuantizationModifier, GPTQModifier and AWQModifier; saves compressed-tensors.

The adapter only translates our configs into llm-compressor modifiers; ``run_oneshot`` runs them.

Example:
    >>> from hfcompress import RTNConfig
    >>> from hfcompress.testing import tiny_model
    >>> model, _ = tiny_model("llama")
    >>> [type(m).__name__ for m in LLMCompressorQuantization().modifiers(model, RTNConfig(bits=4))]
    ['QuantizationModifier']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config import CompressionConfig
from ..backends.llmcompressor import LLMCompressorAdapter, run_oneshot, save_compressed
from ..registry import StepContext, StepResult
from .config import OBSERVERS, AWQConfig, GPTQConfig, QuantizationConfig, RTNConfig


def weight_scheme(bits: int, group_size: int | None, symmetric: bool, **extra: Any) -> dict[str, Any]:
    """compressed-tensors ``config_groups`` for integer weight-only quantization of every Linear layer.

    Written out explicitly (not a preset such as W4A16) because the presets fix group 128, which does
    not divide the layers of many small models.

    Example:
        >>> weight_scheme(4, 64, False)["group_0"]["weights"]["strategy"]
        'group'
    """
    weights: dict[str, Any] = {"num_bits": bits, "type": "int", "symmetric": symmetric, **extra}
    if group_size:
        weights.update(strategy="group", group_size=group_size)
    else:
        weights.update(strategy="channel")
    return {"group_0": {"targets": ["Linear"], "weights": weights}}


def observer_args(config: CompressionConfig) -> dict[str, Any]:
    """The ``weights`` arguments that pick ``config.observer`` (empty for min-max, compressed-tensors' default)."""
    # Our observer names -> compressed-tensors' QuantizationArgs.observer ("minmax" = its default, left unset).
    # On SmolLM2-135M (W4 g64, 4,096 held-out tokens) GPTQ measured ppl/FP 1.295 with minmax, 1.210 with mse
    # and 1.190 with imatrix_mse; RTN 1.314 / 1.315 / 1.217 (benchmarks/results/observers.md).
    name = OBSERVERS.get(getattr(config, "observer", "minmax"))
    return {"observer": name} if name else {}


class LLMCompressorQuantization(LLMCompressorAdapter):
    """RTN, GPTQ and AWQ via llm-compressor; saves compressed-tensors (plain transformers and vLLM load it)."""

    methods = ("rtn", "gptq", "awq")
    save_format = "compressed-tensors"
    load_requires = ("compressed-tensors",)

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, context: StepContext) -> StepResult:
        self.expect(config, RTNConfig, GPTQConfig, AWQConfig)
        modifiers = self.modifiers(model, config)
        run_oneshot(model, tokenizer, modifiers, context.calibration if config.needs_calibration else None)
        return StepResult(model, {"group_size": config.resolved_group_size(model)})

    def save(self, model: Any, out_dir: Path) -> None:
        save_compressed(model, out_dir)

    def modifiers(self, model: Any, config: QuantizationConfig) -> list[Any]:
        """The llm-compressor modifiers equivalent to ``config`` (what ``oneshot`` runs)."""
        group_size = config.resolved_group_size(model)
        if isinstance(config, RTNConfig):
            from llmcompressor.modifiers.quantization import QuantizationModifier

            return [
                QuantizationModifier(
                    config_groups=weight_scheme(config.bits, group_size, config.symmetric, **observer_args(config)),
                    ignore=list(config.ignore),
                )
            ]
        if isinstance(config, GPTQConfig):
            from llmcompressor.modifiers.quantization import GPTQModifier

            return [
                GPTQModifier(
                    config_groups=weight_scheme(config.bits, group_size, config.symmetric, **observer_args(config)),
                    ignore=list(config.ignore),
                    block_size=config.block_size,
                    dampening_frac=config.dampening_frac,
                    # Passed explicitly: left unset, GPTQModifier silently applies "static" ordering.
                    actorder=config.actorder,
                )
            ]
        from llmcompressor.modifiers.quantization import QuantizationModifier
        from llmcompressor.modifiers.transform.awq import AWQModifier

        # AWQ is a transform (it rescales salient channels, with the mappings llm-compressor registers
        # per architecture, e.g. Llama's norm -> q/k/v, v -> o, norm -> gate/up, up -> down); the
        # QuantizationModifier after it sets the scheme AWQ's scale search simulates, and quantizes.
        return [
            AWQModifier(duo_scaling=config.duo_scaling, n_grid=config.grid_points),
            QuantizationModifier(config_groups=weight_scheme(config.bits, group_size, config.symmetric), ignore=list(config.ignore)),
        ]
