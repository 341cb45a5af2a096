"""llm-compressor adapter: RTN, GPTQ and AWQ through its modifiers; saves compressed-tensors.

compressed-tensors checkpoints load in plain transformers (with ``compressed-tensors`` installed) and in vLLM.
The adapter only translates our configs into llm-compressor modifiers and calls ``oneshot``.

Example:
    >>> import hfcompress as hfc
    >>> cm = hfc.CompressedModel.from_pretrained(None, recipe=hfc.RTNConfig(bits=8), backend="llmcompressor")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import logging
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ..config import OBSERVERS, AWQConfig, CompressionConfig, GPTQConfig, RTNConfig, resolve_group_size
from .registry import CompressionAdapter, register_adapter

logger = logging.getLogger(__name__)


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


@contextlib.contextmanager
def _config_folder(model: Any) -> Iterator[None]:
    # oneshot re-reads config.json from model.config.name_or_path; a model built or loaded without a
    # plain folder (GGUF, in memory) gets a temp folder holding its config for the duration.
    name = getattr(model.config, "name_or_path", "") or ""
    if name and (Path(name) / "config.json").is_file():
        yield
        return
    with tempfile.TemporaryDirectory(prefix="hfcompress-config-") as tmp:
        model.config.save_pretrained(tmp)
        model.config.name_or_path = tmp
        try:
            yield
        finally:
            model.config.name_or_path = name


@contextlib.contextmanager
def _no_pinning_without_accelerator() -> Iterator[None]:
    # llm-compressor 0.14's AWQModifier pins cached activations with ``IntermediatesCache.pin_memory`` for
    # faster host-to-device copies, unconditionally; on CPU-only torch pinning raises "Cannot access
    # accelerator device". Pinning buys nothing without an accelerator, so only then, and only while our
    # oneshot runs, that one method becomes a no-op (restored afterwards; nothing else is patched).
    import torch

    if torch.accelerator.is_available():
        yield
        return
    from llmcompressor.pipelines.cache import IntermediatesCache

    original = IntermediatesCache.__dict__["pin_memory"]
    IntermediatesCache.pin_memory = lambda self, batch_index, input_names=None: None
    try:
        yield
    finally:
        IntermediatesCache.pin_memory = original


def run_oneshot(model: Any, tokenizer: Any, modifiers: list[Any], calibration: Any | None) -> Any:
    """Run llm-compressor's ``oneshot`` with our calibration samples (or none) and return the model.

    Shared by every llm-compressor adapter (quantization and sparsity).

    Example:
        >>> from llmcompressor.modifiers.quantization import QuantizationModifier       # doctest: +SKIP
        >>> run_oneshot(model, tok, [QuantizationModifier(config_groups=weight_scheme(8, None, False))], None)  # doctest: +SKIP
    """
    from llmcompressor import oneshot

    kwargs: dict[str, Any] = {}
    if calibration is not None:
        kwargs.update(
            dataset=calibration.to_dataset(),
            num_calibration_samples=len(calibration.input_ids),
            max_seq_length=calibration.seq_len,
            shuffle_calibration_samples=False,
        )
    with _config_folder(model), _no_pinning_without_accelerator():
        oneshot(model=model, tokenizer=tokenizer, recipe=modifiers, **kwargs)
    return model


def save_compressed(model: Any, out_dir: Path) -> None:
    """Save in compressed-tensors format from a copy: llm-compressor compresses the saved model in place,
    which would leave the in-memory model unusable for evaluation afterwards.

    Example:
        >>> save_compressed(model, Path("out/tiny-W4"))          # doctest: +SKIP
    """
    from llmcompressor.transformers.compression.compressed_tensors_utils import modify_save_pretrained

    clone = copy.deepcopy(model)
    # oneshot wrapped the original's save_pretrained in a closure over the original model; the deep copy
    # carries that wrapper, which would compress the original. Re-wrap on the clone itself.
    clone.__dict__.pop("save_pretrained", None)
    modify_save_pretrained(clone)
    clone.save_pretrained(out_dir, save_compressed=True, safe_serialization=True)


class _LLMCompressorBase(CompressionAdapter):
    name = "llmcompressor"
    required_packages = ("llmcompressor", "compressed_tensors")
    save_format = "compressed-tensors"
    load_requires = ("compressed-tensors",)
    priority = 10

    def save(self, model: Any, out_dir: Path) -> None:
        save_compressed(model, out_dir)


def _observer(config: CompressionConfig) -> dict[str, Any]:
    # Our observer names -> compressed-tensors' QuantizationArgs.observer ("minmax" = its default, left unset).
    # On SmolLM2-135M (W4 g64, 4,096 held-out tokens) GPTQ measured ppl/FP 1.295 with minmax, 1.210 with mse
    # and 1.190 with imatrix_mse; RTN 1.314 / 1.315 / 1.217 (benchmarks/results/observers.md).
    name = OBSERVERS.get(getattr(config, "observer", "minmax"))
    return {"observer": name} if name else {}


@register_adapter
class LLMCompressorQuantization(_LLMCompressorBase):
    """RTN, GPTQ and AWQ via llm-compressor's QuantizationModifier, GPTQModifier and AWQModifier."""

    methods = ("rtn", "gptq", "awq")

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, calibration: Any) -> Any:
        modifiers = self.modifiers(model, config)
        run_oneshot(model, tokenizer, modifiers, calibration if config.needs_calibration else None)
        return model, {"group_size": self._group_size(model, config)}

    def _group_size(self, model: Any, config: CompressionConfig) -> int | None:
        hint = config.effective_group_size_hint if isinstance(config, RTNConfig) else config.group_size
        return resolve_group_size(hint, model, config.ignore)

    def modifiers(self, model: Any, config: CompressionConfig) -> list[Any]:
        """The llm-compressor modifiers equivalent to ``config`` (what ``oneshot`` runs)."""
        group_size = self._group_size(model, config)
        if isinstance(config, RTNConfig):
            from llmcompressor.modifiers.quantization import QuantizationModifier

            return [
                QuantizationModifier(
                    config_groups=weight_scheme(config.bits, group_size, config.symmetric, **_observer(config)),
                    ignore=list(config.ignore),
                )
            ]
        if isinstance(config, GPTQConfig):
            from llmcompressor.modifiers.quantization import GPTQModifier

            return [
                GPTQModifier(
                    config_groups=weight_scheme(config.bits, group_size, config.symmetric, **_observer(config)),
                    ignore=list(config.ignore),
                    block_size=config.block_size,
                    dampening_frac=config.dampening_frac,
                    # Passed explicitly: left unset, GPTQModifier silently applies "static" ordering.
                    actorder=config.actorder,
                )
            ]
        if isinstance(config, AWQConfig):
            from llmcompressor.modifiers.quantization import QuantizationModifier
            from llmcompressor.modifiers.transform.awq import AWQModifier

            # AWQ is a transform (it rescales salient channels, with the mappings llm-compressor registers
            # per architecture, e.g. Llama's norm -> q/k/v, v -> o, norm -> gate/up, up -> down); the
            # QuantizationModifier after it sets the scheme AWQ's scale search simulates, and quantizes.
            return [
                AWQModifier(duo_scaling=config.duo_scaling, n_grid=config.grid_points),
                QuantizationModifier(
                    config_groups=weight_scheme(config.bits, group_size, config.symmetric), ignore=list(config.ignore)
                ),
            ]
        raise TypeError(f"{type(self).__name__} cannot run {config.kind}")
