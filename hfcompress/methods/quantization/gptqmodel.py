"""GPTQModel adapter: GPTQ and AWQ through GPTQModel (ModelCloud), for machines with a CUDA GPU.

GPTQModel writes GPTQ-format (``quant_method: gptq``) or AWQ-format (GEMM) checkpoints; transformers
loads the GPTQ ones with ``optimum`` + ``gptqmodel`` installed and the AWQ ones with ``gptqmodel``. It is
not the ``backend="auto"`` choice (llm-compressor is, on every machine, so the output format does not
depend on the hardware); name it with ``backend="gptqmodel"``. Tested with gptqmodel 7.6.0 (7.7 needs
torch >= 2.14.1).

Example:
    >>> import hfcompress as hfc
    >>> cm = hfc.CompressedModel.from_pretrained(                                    # doctest: +SKIP
    ...     "HuggingFaceTB/SmolLM2-135M", recipe=hfc.GPTQConfig(bits=4, group_size=64), backend="gptqmodel")
    >>> cm.save_pretrained("out/SmolLM2-135M-GPTQ-4bit")                             # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ...config import CompressionConfig
from ...errors import HFCompressError
from ..layers import target_linear_layers
from ..registry import CompressionAdapter, StepContext, StepResult
from .config import AWQConfig, GPTQConfig


def quantize_config(config: CompressionConfig, group_size: int | None) -> Any:
    """GPTQModel's ``QuantizeConfig`` equivalent to our ``GPTQConfig`` or ``AWQConfig``.

    Activation order: our (llm-compressor) names map onto GPTQModel's switches: None -> neither;
    ``"static"`` -> ``desc_act`` with static groups (the same algorithm); ``"weight"`` -> GPTQModel's
    group-aware reordering (reorders within groups, no ``g_idx`` at inference, as "weight" does).

    Example:
        >>> quantize_config(GPTQConfig(bits=4, group_size=64), 64).group_size          # doctest: +SKIP
        64
    """
    from gptqmodel import QuantizeConfig
    from gptqmodel.quantization import FORMAT, METHOD

    common = {"bits": config.bits, "group_size": group_size or -1, "sym": config.symmetric}
    if isinstance(config, GPTQConfig):
        order = {
            None: {"desc_act": False, "act_group_aware": False},
            "static": {"desc_act": True, "static_groups": True, "act_group_aware": False},
            "weight": {"desc_act": False, "act_group_aware": True},
        }[config.actorder]
        return QuantizeConfig(**common, **order, damp_percent=config.dampening_frac, method=METHOD.GPTQ, format=FORMAT.GPTQ)
    if isinstance(config, AWQConfig):
        if config.bits != 4:
            raise HFCompressError(f"GPTQModel's AWQ writes 4-bit GEMM checkpoints only, not bits={config.bits}; use bits=4 or backend='llmcompressor'")
        return QuantizeConfig(**common, method=METHOD.AWQ, format=FORMAT.GEMM)
    raise HFCompressError(f"backend 'gptqmodel' cannot run {config.describe()}; use backend='llmcompressor'")


def scrub_temp_paths(folder: Path) -> list[str]:
    """Remove GPTQModel's temp offload path (``/tmp/gptqmodel_*``) from the JSON configs in ``folder``.

    GPTQModel records where it offloaded layers during quantization in ``quantization_config``; that path
    means nothing to anyone loading the published model and reveals the build machine's layout.
    Returns the keys that were cleared.

    Example:
        >>> scrub_temp_paths(Path("out/model-GPTQ"))          # doctest: +SKIP
        ['quantization_config.meta.offload_to_disk_path']
    """
    temp = re.escape(tempfile.gettempdir().rstrip("/"))
    pattern = re.compile(rf"^({temp}|/tmp)/gptqmodel_")
    cleared: list[str] = []

    def clean(node: Any, where: str) -> Any:
        if isinstance(node, dict):
            return {k: clean(v, f"{where}.{k}" if where else k) for k, v in node.items()}
        if isinstance(node, list):
            return [clean(v, where) for v in node]
        if isinstance(node, str) and pattern.match(node):
            cleared.append(where)
            return None
        return node

    for name in ("config.json", "quantize_config.json", "quant_config.json"):
        path = folder / name
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            cleaned = clean(data, "")
            if cleaned != data:
                path.write_text(json.dumps(cleaned, indent=2) + "\n", encoding="utf-8")
    return cleared


class GPTQModelAdapter(CompressionAdapter):
    """GPTQ and AWQ through GPTQModel; needs a CUDA GPU and ``pip install 'hfcompress[gptq]'``."""

    name = "gptqmodel"
    methods = ("gptq", "awq")
    required_packages = ("gptqmodel",)
    extra = "gptq"
    needs_gpu = True
    save_format = "gptq"
    load_requires = ("gptqmodel", "optimum")
    priority = 20

    def unavailable_reason(self) -> str | None:
        # One line naming both requirements: the GPU is checked first, as installing the extra on a
        # CPU-only machine would not make this backend usable.
        import importlib.util

        import torch

        missing_gpu = not torch.cuda.is_available()
        missing_pkg = importlib.util.find_spec("gptqmodel") is None
        if not (missing_gpu or missing_pkg):
            return None
        needs = " and ".join(
            part for part, missing in (("a CUDA GPU (none is visible)", missing_gpu), ("pip install 'hfcompress[gptq]'", missing_pkg)) if missing
        )
        return f"backend 'gptqmodel' needs {needs}; on this machine use backend='llmcompressor' (or 'auto')"

    def compress(self, model: Any, tokenizer: Any, config: CompressionConfig, context: StepContext) -> StepResult:
        self.expect(config, GPTQConfig, AWQConfig)
        calibration = context.calibration
        if calibration is None:
            raise HFCompressError(f"{config.kind} needs calibration data; pass calibration='default', a file or a list of texts")
        if [p for p in config.ignore if p != "lm_head"]:
            raise HFCompressError("backend 'gptqmodel' quantizes every decoder Linear layer; ignore= other than lm_head needs backend='llmcompressor'")
        group_size = config.resolved_group_size(model)
        if isinstance(config, AWQConfig):
            narrow = sorted({m.out_features for m in target_linear_layers(model, config.ignore).values() if m.out_features % 64})
            if narrow:
                raise HFCompressError(
                    f"GPTQModel's AWQ kernels need layer output widths divisible by 64, and this model has {narrow[0]}; "
                    "use backend='llmcompressor'"
                )
        # GPTQModel sizes a CPU worker pool when it is first imported and crashes on small machines unless told.
        os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(max(1, min(4, os.cpu_count() or 1))))
        qconfig = quantize_config(config, group_size)
        import torch
        from gptqmodel import BACKEND, GPTQModel

        # GPTQModel loads from a path: write the in-memory model (it may carry earlier recipe steps).
        source = tempfile.TemporaryDirectory(prefix="hfcompress-gptqmodel-src-")
        model.save_pretrained(source.name, safe_serialization=True)
        tokenizer.save_pretrained(source.name)
        qmodel = GPTQModel.load(source.name, quantize_config=qconfig)
        rows = [{"input_ids": ids.tolist(), "attention_mask": [1] * len(ids)} for ids in calibration.input_ids]
        if torch.cuda.is_available():
            backend = BACKEND.AUTO
        else:  # only reachable when called directly (the registry requires a GPU); the torch kernels run on CPU
            backend = BACKEND.AWQ_TORCH if isinstance(config, AWQConfig) else BACKEND.GPTQ_TORCH
        qmodel.quantize(rows, tokenizer=tokenizer, batch_size=1, backend=backend)
        info = {"group_size": group_size, "format": str(qconfig.format.value if hasattr(qconfig.format, "value") else qconfig.format)}
        if getattr(config, "observer", "minmax") != "minmax":
            info["observer"] = f"not applied: GPTQModel chooses its own scales ({config.observer!r} is an llm-compressor setting)"

        def save(_model: Any, out_dir: Path) -> None:
            # GPTQModel's own writer; its save copies files from the source folder, kept alive by this closure.
            qmodel.save(str(out_dir))
            scrub_temp_paths(Path(out_dir))
            _ = source

        return StepResult(qmodel.model, info, save=save)

    def save(self, model: Any, out_dir: Path) -> None:
        raise HFCompressError("this model was not quantized by backend 'gptqmodel' in this session; save it with its own backend")
