"""Quantization-aware training: llm-compressor sets the grid, transformers' Trainer trains on it, compressed-tensors saves it.

1. The grid: every target Linear gets the compressed-tensors scheme llm-compressor's ``QuantizationModifier``
   attaches (round-to-nearest min-max scales and integer zero points), unless an earlier PTQ step (GPTQ, AWQ,
   RTN) already left one; then training starts from that step's weights and scales.
2. The training: compressed-tensors' own no-grad fake quantization is switched off and our
   straight-through ``GroupFakeQuant`` parametrizes each weight on the same grid (``fakequant.py`` says why it
   is ours); distillation's ``Trainer`` (soft targets from the unquantized base by default, checkpoints,
   resume, evaluations) trains weights and scales.
3. The result: each weight is set to its fake-quantized value, and the trained scales replace the scheme's, so
   compressed-tensors' pack-quantized save stores exactly the integers the training used.

Example:
    >>> import hfcompress as hfc
    >>> cm = hfc.CompressedModel.from_pretrained(None, recipe=hfc.QATConfig(bits=4, group_size=64))   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from ...config import CompressionConfig
from ...errors import HFCompressError
from ...loading import cache_dir
from ..backends.llmcompressor import LLMCompressorAdapter, run_oneshot, save_compressed
from ..distill.adapter import load_teacher, read_training_data, training_rows
from ..distill.config import DistillConfig
from ..distill.data import model_fingerprint
from ..distill.models import check_same_tokenizer
from ..distill.trainer import train_student
from ..quantization.llmcompressor import observer_args, weight_scheme
from ..registry import StepContext, StepResult
from .config import QATConfig
from .fakequant import GroupFakeQuant, attach, detach, ternary_scales

logger = logging.getLogger(__name__)


class TorchQAT(LLMCompressorAdapter):
    """Fake-quantized training on compressed-tensors' grid; saves compressed-tensors (plain transformers loads it).

    Example:
        >>> from hfcompress.methods.registry import get_adapter
        >>> get_adapter(QATConfig()).save_format
        'compressed-tensors'
    """

    methods = ("qat",)
    required_packages = ("llmcompressor", "compressed_tensors", "transformers", "accelerate")
    save_format = "compressed-tensors"
    compresses_layer_by_layer = False  # training updates every layer at each step: the whole model in memory
    load_requires = ("compressed-tensors",)

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, context: StepContext) -> StepResult:
        self.expect(config, QATConfig)
        training = _distill_settings(config)
        plain = read_training_data(training)  # a missing data file fails before any work
        group_size = config.resolved_group_size(model)
        teacher, teacher_id = None, None
        if config.teacher is not None:
            teacher_id, loaded = load_teacher(model, training, context.source)
            check_same_tokenizer(loaded.tokenizer, tokenizer, teacher=f"teacher {teacher_id!r}", student="model being trained")
            teacher = loaded.model
        train_rows, eval_rows, data_info = training_rows(training, tokenizer, teacher, teacher_id or "", plain, context.calibration)

        grid = FakeQuantized.prepare(model, tokenizer, config, group_size, calibration=context.calibration)
        # llm-compressor wrapped save_pretrained to compress; Trainer's checkpoints must stay plain.
        compressed_save = model.__dict__.pop("save_pretrained", None)
        run_dir = _run_dir(config, model, teacher_id)
        try:
            info = train_student(model, teacher, tokenizer, train_rows, eval_rows, training, run_dir=run_dir,
                                 progress=context.progress, holds=context.holds)
        finally:
            codes = grid.finish()
            if compressed_save is not None:
                model.save_pretrained = compressed_save
        quantized, started_from = grid.layers, grid.started_from
        if not config.run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
        model.eval()
        del teacher
        low, high = config.code_range
        used = (min(c[0] for c in codes.values()), max(c[1] for c in codes.values())) if codes else (0, 0)
        if used[0] < low or used[1] > high:
            raise HFCompressError(f"quantization-aware training produced codes {used} outside {config.code_range}; please report this")
        info = {
            "bits": config.bits,
            "stored_bits": config.stored_bits,
            "group_size": group_size,
            "codes": {"range": list(config.code_range), "used": list(used)},
            "layers": len(quantized),
            "started_from": started_from,
            "teacher": teacher_id,
            "trained_tokens": config.steps * config.batch_size * config.seq_len,  # an upper bound: rows may be shorter
            "training_text": data_info.get("description"),
            "data": data_info,
            "run_dir": str(run_dir) if config.run_dir else None,
            **info,
        }
        return StepResult(model, info)

    def save(self, model: Any, out_dir: Path) -> None:
        save_compressed(model, out_dir)


def _distill_settings(config: QATConfig) -> DistillConfig:
    """The training settings as distillation's config (QAT trains with distillation's trainer)."""
    return DistillConfig(
        teacher=None if config.teacher in (None, "base") else config.teacher,
        alpha=config.alpha, temperature=config.temperature, steps=config.steps, learning_rate=config.learning_rate,
        batch_size=config.batch_size, seq_len=config.seq_len, data=config.data, warmup=config.warmup,
        eval_every=config.eval_every, eval_tokens=config.eval_tokens, save_every=config.save_every,
        run_dir=config.run_dir, resume=config.resume, seed=config.seed,
        # The embeddings (and a tied lm_head) stay in full precision, so they keep the base's values: training them
        # would cost the vocabulary-sized weight gradient, the largest single one in a small model.
        freeze_embeddings=True,
    )


def _quantized_linears(model: Any) -> dict[str, Any]:
    import torch

    return {name: m for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and getattr(getattr(m, "quantization_scheme", None), "weights", None) is not None}


def _attach_grid(model: Any, tokenizer: Any, config: QATConfig, group_size: int | None, calibration: Any = None) -> str:
    """Give every target Linear its compressed-tensors scheme; returns where the grid came from."""
    existing = _quantized_linears(model)
    if existing:
        args = next(iter(existing.values())).quantization_scheme.weights
        earlier = (args.num_bits, args.group_size if args.strategy == "group" else None, bool(args.symmetric))
        wanted = (config.stored_bits, group_size, config.is_symmetric)
        if earlier != wanted:
            raise HFCompressError(
                f"the earlier quantization step used {earlier[0]} bits, group {earlier[1]}, symmetric={earlier[2]}, but "
                f"QATConfig asks for {wanted[0]} bits, group {wanted[1]}, symmetric={wanted[2]}; give both the same grid"
            )
        if config.bits == "ternary":
            raise HFCompressError("ternary QAT starts from its own absmean scales; drop the earlier quantization step")
        return "the previous quantization step's weights and scales"
    from llmcompressor.modifiers.quantization import QuantizationModifier

    if config.bits == "ternary":
        scheme = weight_scheme(config.stored_bits, group_size, True)  # its scales are replaced by absmean ones
        run_oneshot(model, tokenizer, [QuantizationModifier(config_groups=scheme, ignore=list(config.ignore))], None)
        return "absmean scales per group (BitNet b1.58)"
    data_driven = config.observer == "imatrix_mse"
    if data_driven and calibration is None:
        raise HFCompressError("QATConfig(observer='imatrix_mse') needs calibration text; pass calibration= or observer='minmax'")
    scheme = weight_scheme(config.stored_bits, group_size, config.is_symmetric, **observer_args(config))
    run_oneshot(model, tokenizer, [QuantizationModifier(config_groups=scheme, ignore=list(config.ignore))],
                calibration if data_driven else None)
    return f"round-to-nearest scales ({config.observer} observer)"


def _fake_quant(module: Any, config: QATConfig, group_size: int | None) -> GroupFakeQuant:
    weight = module.weight.detach()
    if config.bits == "ternary":
        scale = ternary_scales(weight, group_size)
        zero = scale.new_zeros(scale.shape)
    else:
        scale = module.weight_scale.detach()
        zero_point = getattr(module, "weight_zero_point", None)  # absent on symmetric schemes
        zero = zero_point.detach() if zero_point is not None else scale.new_zeros(scale.shape)
    low, high = config.code_range
    return GroupFakeQuant(weight, scale=scale, zero_point=zero, q_min=low, q_max=high, group_size=group_size,
                          learn_scales=config.learn_scales)


class FakeQuantized:
    """A model's target Linears on QAT's grid: ``prepare`` parametrizes them, ``finish`` stores them on the grid.

    Between the two, any forward pass sees the fake-quantized weights and gradients reach the latent weights and
    the scales. ``finish`` right after ``prepare`` is post-training quantization on QAT's starting grid (the
    benchmark's ternary PTQ row).

    Example:
        >>> from hfcompress.testing import tiny_model
        >>> import tempfile
        >>> from hfcompress.logs import backend_logs
        >>> model, tok = tiny_model("llama")
        >>> with backend_logs(tempfile.mktemp()):   # llm-compressor's log lines go to a file, as in the CLI
        ...     grid = FakeQuantized.prepare(model, tok, QATConfig(bits="ternary", group_size=32), 32)
        >>> codes = grid.finish()
        >>> sorted({c for pair in codes.values() for c in pair})
        [-1, 1]
    """

    def __init__(self, layers: dict[str, Any], forwards: dict[str, Any], started_from: str) -> None:
        self.layers, self.forwards, self.started_from = layers, forwards, started_from

    @classmethod
    def prepare(cls, model: Any, tokenizer: Any, config: QATConfig, group_size: int | None, *,
                calibration: Any = None) -> "FakeQuantized":
        """Give every target Linear its compressed-tensors scheme, then our straight-through fake quantization.

        ``calibration`` (``hfcompress.data.CalibrationData``) feeds the ``imatrix_mse`` observer's starting scales.
        """
        started_from = _attach_grid(model, tokenizer, config, group_size, calibration)
        layers = _quantized_linears(model)
        forwards = {}
        for name, module in layers.items():
            # compressed-tensors' wrapped forward fake-quantizes under no_grad (nothing would train): set aside.
            forwards[name] = module.__dict__.pop("forward", None)
            attach(module, _fake_quant(module, config, group_size))
        return cls(layers, forwards, started_from)

    def finish(self) -> dict[str, tuple[int, int]]:
        """Weights onto the grid, trained scales into the scheme, compressed-tensors' forward back; codes per layer."""
        return _freeze_on_grid(self.layers, self.forwards)


def _freeze_on_grid(quantized: dict[str, Any], saved_forwards: dict[str, Any]) -> dict[str, tuple[int, int]]:
    from torch.nn.utils import parametrize

    codes = {}
    for name, module in quantized.items():
        if parametrize.is_parametrized(module, "weight"):
            values, scale, zero = detach(module)
            module.weight_scale.data = scale.reshape(module.weight_scale.shape).to(module.weight_scale.dtype)
            if getattr(module, "weight_zero_point", None) is not None:
                module.weight_zero_point.data = zero.reshape(module.weight_zero_point.shape).to(module.weight_zero_point.dtype)
            codes[name] = (int(values.min()), int(values.max()))
        if saved_forwards.get(name) is not None:
            module.forward = saved_forwards[name]
    return codes


def _run_dir(config: QATConfig, model: Any, teacher_id: str | None) -> Path:
    if config.run_dir:
        return Path(config.run_dir).expanduser()
    key_parts = {k: v for k, v in config.to_dict().items() if k not in ("steps", "eval_every", "run_dir", "resume", "save_every")}
    key = hashlib.sha256(json.dumps([key_parts, model_fingerprint(model), teacher_id], sort_keys=True, default=str).encode()).hexdigest()[:16]
    return cache_dir() / "qat-runs" / key
