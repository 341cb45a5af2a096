"""Adapters for AutoGPTQ and AutoAWQ (both archived upstream), behind ``pip install 'hfcompress[legacy]'``.

Kept for users who already run them; new work should use llm-compressor (the default) or GPTQModel.
Each states in one line why it cannot run where it cannot:

- ``autogptq`` (auto-gptq 0.7.1): imports only with transformers 4.x and quantizes only on a CUDA GPU.
- ``autoawq`` (autoawq 0.2.9): quantizes on CPU, but transformers 5 loads its AWQ checkpoints only with
  ``gptqmodel`` installed, so it runs only where that is installed too.

Example:
    >>> import hfcompress as hfc
    >>> cm = hfc.CompressedModel.from_pretrained("my-model", recipe=hfc.AWQConfig(group_size=64),   # doctest: +SKIP
    ...                                          backend="autoawq")
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import tempfile
from pathlib import Path
from typing import Any

from ...config import CompressionConfig
from ...errors import HFCompressError
from ..registry import CompressionAdapter, StepContext, StepResult
from .config import AWQConfig, GPTQConfig


class _LegacyAdapter(CompressionAdapter):
    extra = "legacy"
    priority = 90  # only when named, or when nothing maintained is installed

    def _check_config(self, config: CompressionConfig) -> None:
        if config.bits != 4:
            raise HFCompressError(f"backend {self.name!r} writes 4-bit checkpoints only, not bits={config.bits}; use bits=4 or backend='llmcompressor'")
        if [p for p in config.ignore if p != "lm_head"]:
            raise HFCompressError(f"backend {self.name!r} quantizes every decoder Linear layer; ignore= other than lm_head needs backend='llmcompressor'")

    @staticmethod
    def _write_source(model: Any, tokenizer: Any) -> tempfile.TemporaryDirectory:
        # Both libraries load from a path: write the in-memory model (it may carry earlier recipe steps).
        source = tempfile.TemporaryDirectory(prefix="hfcompress-legacy-src-")
        model.save_pretrained(source.name, safe_serialization=True)
        tokenizer.save_pretrained(source.name)
        return source

    @staticmethod
    def _result(wrapper: Any, source: tempfile.TemporaryDirectory, info: dict[str, Any]) -> StepResult:
        def save(_model: Any, out_dir: Path) -> None:
            wrapper.save_quantized(str(out_dir))  # the library's own writer; the closure keeps the source folder alive
            _ = source

        return StepResult(wrapper.model, info, save=save)

    def save(self, model: Any, out_dir: Path) -> None:
        raise HFCompressError(f"this model was not quantized by backend {self.name!r} in this session; save it with its own backend")


class AutoGPTQAdapter(_LegacyAdapter):
    """GPTQ through AutoGPTQ 0.7.1 (transformers 4.x and a CUDA GPU only)."""

    name = "autogptq"
    methods = ("gptq",)
    required_packages = ("auto_gptq",)
    needs_gpu = True
    save_format = "gptq"
    load_requires = ("optimum", "gptqmodel")

    def unavailable_reason(self) -> str | None:
        import torch

        if importlib.util.find_spec("auto_gptq") is None:
            return "backend 'autogptq' needs auto-gptq: pip install 'hfcompress[legacy]' (or use backend='llmcompressor')"
        transformers_version = importlib.metadata.version("transformers")
        if int(transformers_version.split(".")[0]) >= 5:
            return f"backend 'autogptq' (auto-gptq 0.7.1) does not import with transformers {transformers_version} (needs 4.x); use backend='llmcompressor' or 'gptqmodel'"
        if not torch.cuda.is_available():
            return "backend 'autogptq' needs a CUDA GPU (none is visible); use backend='llmcompressor' on CPU"
        return None

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, context: StepContext) -> StepResult:
        self.expect(config, GPTQConfig)
        calibration = context.calibration
        self._check_config(config)
        if config.actorder == "weight":
            raise HFCompressError("backend 'autogptq' has no actorder='weight'; use None or 'static'")
        from auto_gptq import AutoGPTQForCausalLM, BaseQuantizeConfig

        group_size = config.resolved_group_size(model)
        qconfig = BaseQuantizeConfig(
            bits=config.bits,
            group_size=group_size or -1,
            sym=config.symmetric,
            damp_percent=config.dampening_frac,
            desc_act=config.actorder == "static",
            static_groups=config.actorder == "static",  # llm-compressor's "static" = desc_act + static groups
        )
        source = self._write_source(model, tokenizer)
        wrapper = AutoGPTQForCausalLM.from_pretrained(source.name, qconfig)
        wrapper.quantize([{"input_ids": ids.unsqueeze(0), "attention_mask": ids.new_ones(1, len(ids))} for ids in calibration.input_ids])
        return self._result(wrapper, source, {"group_size": group_size})


class AutoAWQAdapter(_LegacyAdapter):
    """AWQ through AutoAWQ 0.2.9 (CPU works; the output needs gptqmodel to load in transformers 5)."""

    name = "autoawq"
    methods = ("awq",)
    required_packages = ("awq",)
    save_format = "awq"
    load_requires = ("gptqmodel",)

    def unavailable_reason(self) -> str | None:
        if importlib.util.find_spec("awq") is None:
            return "backend 'autoawq' needs autoawq: pip install 'hfcompress[legacy]' (or use backend='llmcompressor')"
        if importlib.util.find_spec("gptqmodel") is None:
            return "backend 'autoawq' writes AWQ checkpoints that transformers 5 loads only with gptqmodel: pip install 'hfcompress[awq]' (or use backend='llmcompressor')"
        return None

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, context: StepContext) -> StepResult:
        self.expect(config, AWQConfig)
        calibration = context.calibration
        self._check_config(config)
        from awq import AutoAWQForCausalLM

        group_size = config.resolved_group_size(model)
        if group_size is None:
            raise HFCompressError("backend 'autoawq' needs groups (e.g. group_size=64 or 128), not per-channel scales")
        source = self._write_source(model, tokenizer)
        wrapper = AutoAWQForCausalLM.from_pretrained(source.name)
        wrapper.quantize(
            tokenizer,
            quant_config={"w_bit": config.bits, "q_group_size": group_size, "zero_point": not config.symmetric, "version": "GEMM"},
            calib_data=[ids.tolist() for ids in calibration.input_ids],  # pre-tokenized: AutoAWQ takes lists of ints
            duo_scaling=config.duo_scaling,
            max_calib_samples=len(calibration.input_ids),
            max_calib_seq_len=calibration.seq_len,
        )
        return self._result(wrapper, source, {"group_size": group_size})
