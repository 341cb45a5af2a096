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

    # Every expert of a MoE model sees every calibration token (the routed output goes on), so Wanda and SparseGPT
    # score a rarely routed expert on real activations: llm-compressor's default today, set so a new default cannot
    # leave such experts pruned on almost no data.
    kwargs: dict[str, Any] = {"moe_calibrate_all_experts": True}
    if calibration is not None:
        kwargs.update(
            dataset=calibration.to_dataset(),
            num_calibration_samples=len(calibration.input_ids),
            max_seq_length=calibration.seq_len,
            shuffle_calibration_samples=False,
        )
    with _config_folder(model), _no_pinning_without_accelerator():
        oneshot(model=model, tokenizer=tokenizer, recipe=modifiers, **kwargs)
    _repack_experts(model)
    return model


def _repack_experts(model: Any) -> None:
    """Put a MoE model's experts back in transformers' fused 3-D layout after oneshot.

    oneshot turns fused experts into one Linear per expert so it can calibrate and quantize them; saved that way,
    transformers does not recognise the keys and initializes the experts at random on reload. llm-compressor's own
    ``repack_moe`` restores the fused modules (with their quantization parameters stacked)."""
    from llmcompressor.modeling.moe.linearize import get_linearized_moes, repack_moe

    if get_linearized_moes(model):
        repack_moe(model)


def save_compressed(model: Any, out_dir: Path) -> None:
    """Save in compressed-tensors format with llm-compressor's own save, without copying the model.

    That save compresses the quantized modules in place (packed weights replace the full-precision ones). Each
    quantized module's own tensors are held by reference before it and put back after, so the in-memory
    model is unchanged and usable afterwards; the extra memory is the packed weights, not a second model.
    """
    from compressed_tensors.quantization.utils import is_module_quantized
    from llmcompressor.transformers.compression.compressed_tensors_utils import modify_save_pretrained

    held = []
    for module in model.modules():
        if is_module_quantized(module):
            scheme = getattr(module, "quantization_scheme", None)
            held.append((module, dict(module._parameters), dict(module._buffers), getattr(module, "quantization_status", None),
                         getattr(scheme, "format", None)))
    tied = model.config.get_text_config(decoder=True).tie_word_embeddings if hasattr(model.config, "get_text_config") else None
    try:
        # oneshot may have wrapped save_pretrained on another (copied) instance: wrap it on this model itself.
        model.__dict__.pop("save_pretrained", None)
        modify_save_pretrained(model)
        # Shards of at most 5 GB (transformers 5 writes 50 GB ones): a model offloaded to disk is gathered one shard
        # at a time, so the shard, not the model, must fit in memory.
        model.save_pretrained(out_dir, save_compressed=True, safe_serialization=True, max_shard_size="5GB")
    finally:
        for module, parameters, buffers, status, fmt in held:
            module._parameters.clear()
            module._parameters.update(parameters)
            module._buffers.clear()
            module._buffers.update(buffers)
            module.quantization_status = status
            if fmt is not None or getattr(module, "quantization_scheme", None) is not None:
                module.quantization_scheme.format = fmt
        hook = model.__dict__.get("ct_decompress_hook") or getattr(model, "ct_decompress_hook", None)
        if hook is not None:  # the save left a hook that would decompress on the next forward: nothing to decompress
            hook.remove()
            delattr(model, "ct_decompress_hook")
        if tied is not None:
            model.config.get_text_config(decoder=True).tie_word_embeddings = tied


class LLMCompressorAdapter(CompressionAdapter):
    """Base of the llm-compressor adapters: the backend's name, packages and priority."""

    name = "llmcompressor"
    required_packages = ("llmcompressor", "compressed_tensors")
    priority = 10
    # oneshot's sequential pipeline onloads one decoder layer at a time from compressed-tensors' offload.
    compresses_layer_by_layer = True


def calibration_from_texts(tokenizer: Any, texts: list[str], seq_len: int = 64) -> Any:
    """A small ``CalibrationData`` from a few texts (examples and tests)."""
    return load_calibration(texts, tokenizer, num_samples=4, seq_len=seq_len)
