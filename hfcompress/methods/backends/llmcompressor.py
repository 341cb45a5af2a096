"""llm-compressor glue shared by the families that use it (quantization, pruning): ``oneshot`` and the compressed save.

The adapters translate our configs into llm-compressor modifiers; this module runs them on our calibration
samples and saves compressed-tensors checkpoints (which load in plain transformers with ``compressed-tensors``
installed, and in vLLM).

Example:
    >>> from hfcompress.testing import tiny_model
    >>> from llmcompressor.modifiers.pruning.wanda import WandaPruningModifier
    >>> from loguru import logger; logger.disable("llmcompressor")   # its log lines (the CLI keeps them off screen too)
    >>> model, tok = tiny_model("llama")
    >>> _ = run_oneshot(model, tok, [WandaPruningModifier(sparsity=0.5, targets=["Linear"], ignore=["lm_head"])],
    ...                 calibration_from_texts(tok, ["hello world " * 20]))
    >>> float((model.model.layers[0].mlp.up_proj.weight == 0).float().mean())
    0.5
"""

from __future__ import annotations

import contextlib
import copy
import logging
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ...data import load_calibration
from ..registry import CompressionAdapter

logger = logging.getLogger(__name__)


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

    """
    from llmcompressor.transformers.compression.compressed_tensors_utils import modify_save_pretrained

    clone = copy.deepcopy(model)
    # oneshot wrapped the original's save_pretrained in a closure over the original model; the deep copy
    # carries that wrapper, which would compress the original. Re-wrap on the clone itself.
    clone.__dict__.pop("save_pretrained", None)
    modify_save_pretrained(clone)
    clone.save_pretrained(out_dir, save_compressed=True, safe_serialization=True)


class LLMCompressorAdapter(CompressionAdapter):
    """Base of the llm-compressor adapters: the backend's name, packages and priority."""

    name = "llmcompressor"
    required_packages = ("llmcompressor", "compressed_tensors")
    priority = 10


def calibration_from_texts(tokenizer: Any, texts: list[str], seq_len: int = 64) -> Any:
    """A small ``CalibrationData`` from a few texts (examples and tests)."""
    return load_calibration(texts, tokenizer, num_samples=4, seq_len=seq_len)
