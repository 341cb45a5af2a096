"""GGUF export through llama.cpp: its converter writes a float GGUF, llama-imatrix weighs the calibration text,
llama-quantize writes the type asked.

The model in memory stays the dense one the file was written from: reading the file back into transformers would
dequantize it to float32 (four bytes a weight, more than the file and the dense model together for a large model)
only to measure what llama.cpp measures from the file itself. ``CompressedModel.evaluate`` measures the file.

Example:
    >>> from hfcompress.methods.registry import get_adapter
    >>> from hfcompress import GGUFConfig
    >>> get_adapter(GGUFConfig()).save_format                     # doctest: +SKIP
    'gguf'
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

from ...config import CompressionConfig
from ...errors import HFCompressError
from ..backends import llamacpp
from ..layers import count_parameters
from ..registry import CompressionAdapter, StepContext, StepResult
from .config import GGUFConfig
from .convert import dense_folder

logger = logging.getLogger(__name__)


def gguf_file_name(model_id: str | None, quant: str) -> str:
    """``<base model name>-<TYPE>.gguf``, as GGUF repos on the Hub name their files.

    Example:
        >>> gguf_file_name("HuggingFaceTB/SmolLM2-135M-Instruct", "Q4_K_M")
        'SmolLM2-135M-Instruct-Q4_K_M.gguf'
    """
    stem = Path(str(model_id or "model").rstrip("/")).name.removesuffix(".gguf") or "model"
    return f"{stem}-{quant}.gguf"


class LlamaCppGGUF(CompressionAdapter):
    """GGUF export with llama.cpp's own converter, importance matrix and quantizer."""

    name = "llama.cpp"
    methods = ("gguf",)
    required_packages = ("gguf",)
    extra = "gguf"
    save_format = "gguf"
    load_requires = ("gguf",)
    writes_tokenizer = False  # the GGUF file carries the tokenizer and chat template
    priority = 10

    def unavailable_reason(self) -> str | None:
        return super().unavailable_reason() or llamacpp.unavailable_reason()

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, context: StepContext) -> StepResult:
        self.expect(config, GGUFConfig)
        if config.uses_imatrix and (reason := llamacpp.unavailable_reason(imatrix=True)):
            raise HFCompressError(reason)
        folder = Path(tempfile.mkdtemp(prefix="hfcompress-gguf-"))
        try:
            return self._convert_and_quantize(model, tokenizer, config, context, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def _convert_and_quantize(self, model: Any, tokenizer: Any, config: GGUFConfig, context: StepContext,
                              folder: Path) -> StepResult:
        log = folder / "llama.cpp.log"
        timings: dict[str, float] = {}
        started = time.perf_counter()
        undone = dense_folder(model, tokenizer, context.save_model, folder / "hf")
        timings["dense_folder_s"] = time.perf_counter() - started

        # Quantize from 32-bit floats where that fits (no rounding before the one asked for), else from 16 bits.
        float_type = {"F32": "f32", "F16": "f16", "BF16": "bf16"}.get(config.quant) or ("f32" if count_parameters(model) <= 2e9 else "bf16")
        step = time.perf_counter()
        model_name = Path(str(getattr(context.source, "model_id", "") or "model").rstrip("/")).name.removesuffix(".gguf")
        source = llamacpp.convert(folder / "hf", folder / f"model-{float_type}.gguf", float_type, log=log, name=model_name)
        timings["convert_s"] = time.perf_counter() - step
        shutil.rmtree(folder / "hf", ignore_errors=True)
        name = gguf_file_name(getattr(context.source, "model_id", None), config.quant)
        final = folder / name
        imatrix_info = None
        if config.quant.upper() == float_type.upper():
            source.rename(final)
        else:
            imatrix = None
            if config.uses_imatrix:
                step = time.perf_counter()
                imatrix, imatrix_info = self._imatrix(source, folder, config, context)
                timings["imatrix_s"] = time.perf_counter() - step
            step = time.perf_counter()
            llamacpp.quantize(source, final, config.quant, imatrix=imatrix, log=log)
            timings["quantize_s"] = time.perf_counter() - step
            source.unlink()
        types = llamacpp.tensor_types(final)
        total = sum(types.values())
        info: dict[str, Any] = {
            "gguf_file": name,
            "quant": config.quant,
            "file_bytes": final.stat().st_size,
            "bits_per_weight": round(final.stat().st_size * 8 / max(total, 1), 4),
            "tensor_types": {k: round(v / total, 4) for k, v in sorted(types.items(), key=lambda kv: -kv[1])},
            "converted_from": float_type.upper(),
            "imatrix": imatrix_info,
            "engine": "llama.cpp",
            "seconds": {k: round(v, 2) for k, v in timings.items()},
            **undone,
        }
        main = llamacpp.MAIN_TENSOR_TYPE[config.quant]
        if config.quant not in llamacpp.FLOAT_TYPES and types.get(main, 0) < 0.5 * total:
            info["note"] = (f"most weights are not {main}: llama.cpp falls back to other types for rows whose width is "
                            "not a multiple of its block size (256 for K-quants)")
        info["in_memory"] = "the dense weights the file was written from; the file itself is measured with llama.cpp"

        def save(_model: Any, out_dir: Path) -> None:
            out_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(final, Path(out_dir) / name)

        # The file lives in the temp folder as long as the variant can still be saved: removed with ``save``.
        weakref.finalize(save, shutil.rmtree, str(folder), True)

        return StepResult(model, info, save=save, load={"library": "llama.cpp", "gguf_file": name})

    def _imatrix(self, source: Path, folder: Path, config: GGUFConfig, context: StepContext) -> tuple[Path, dict[str, Any]]:
        calibration = context.calibration
        if calibration is None or not calibration.texts:
            raise HFCompressError("an importance matrix needs calibration text; pass calibration= (or imatrix=False)")
        text = folder / "calibration.txt"
        text.write_text("\n\n".join(calibration.texts), encoding="utf-8")
        # llama-imatrix wants at least two chunks' worth of text: a short calibration gets shorter chunks.
        context = max(16, min(config.imatrix_context, calibration.seq_len, calibration.num_tokens // 2))
        chunks = max(1, calibration.num_tokens // context)
        path = llamacpp.compute_imatrix(source, text, folder / "imatrix.gguf", context=context, chunks=chunks,
                                        log=folder / "llama.cpp.log")
        return path, {"calibration": calibration.description, "chunks": chunks, "context": context,
                      "tokens": chunks * context, "tool": "llama-imatrix"}
