"""``hfcompress demo``: the default grid on the embedded SmolLM2-135M-Instruct, offline, in minutes on a CPU.

Every method hfcompress has an adapter for gets one variant; a method whose backend is not installed is
skipped and said so. Settings are small so the whole demo fits a 2-core CPU in about 25 minutes (24.5 measured):
calibration of 16 samples of 512 tokens (8 of 256 with 10 grid points for AWQ, whose scale search was the
slowest step of any grid: 15 minutes at 16 x 512 and 20 points), 30 distillation steps of 4 x 128 tokens,
2,048 evaluation tokens, three speed runs. These are the demo's settings, not the methods' defaults
(128 x 512 calibration), and each variant's card and results say which were used.

Example:
    >>> from hfcompress.demo import demo_grid
    >>> len(demo_grid()["variants"])
    11
"""

from __future__ import annotations

import os
from typing import Any

from .grid import run_grid
from .methods.distill import DistillConfig
from .methods.gguf import GGUFConfig
from .methods.lowrank import LowRankConfig
from .methods.pruning import PruneConfig
from .methods.quantization import AWQConfig, GPTQConfig, RTNConfig
from .methods.structured import StructuredPruneConfig

# Calibration and evaluation sizes of the demo (small on purpose; see the module docstring).
DEMO_NUM_SAMPLES = 16
DEMO_SEQ_LEN = 512
DEMO_EVALUATE: dict[str, Any] = {
    "max_tokens": 2048,
    "context": 512,
    "stride": 256,
    "speed_runs": 3,
    "warmup": 1,
    "prompt_tokens": 64,
    "new_tokens": 16,
    "batch_size": 8,
    "max_new_tokens": 24,
    "task_items": 50,
}


def demo_grid() -> dict[str, Any]:
    """The demo's grid: one variant per method family, with group size 64 (SmolLM2's width 576 = 9 x 64).

    Example:
        >>> sorted(demo_grid()["variants"])[:4]
        ['awq-4bit-g64', 'gguf-q4_k_m-imatrix', 'gguf-q8_0', 'gptq-4bit-g64']
    """
    return {
        "num_samples": DEMO_NUM_SAMPLES,
        "seq_len": DEMO_SEQ_LEN,
        "variants": {
            "rtn-int8": [RTNConfig(bits=8)],
            "gptq-4bit-g64": [GPTQConfig(bits=4, group_size=64)],
            "awq-4bit-g64": {"recipe": [AWQConfig(bits=4, group_size=64, grid_points=10)], "num_samples": 8, "seq_len": 256},
            "magnitude-50": [PruneConfig(method="magnitude", sparsity=0.5)],
            "wanda-50": [PruneConfig(method="wanda", sparsity=0.5)],
            "sparsegpt-2of4": [PruneConfig(method="sparsegpt", pattern="2:4")],
            "structured-neurons25": [StructuredPruneConfig(target="neurons", ratio=0.25)],
            "lowrank-asvd95": [LowRankConfig()],
            # GGUF files for llama.cpp (measured with llama.cpp against the base's F16 GGUF): where a CPU gets faster.
            "gguf-q8_0": [GGUFConfig(quant="Q8_0")],
            "gguf-q4_k_m-imatrix": [GGUFConfig(quant="Q4_K_M")],
            # The seeds' combined pipeline: prune structure, recover by distillation from the base, quantize last
            # (quantizing first would leave the pruning's importance and the distillation's gradients to act on
            # rounded weights, and the 4-bit grid would be fit to a model that then changes). The card's step
            # table says what each step cost.
            "pipeline-neurons20-distill-q4_k_m": [
                StructuredPruneConfig(target="neurons", ratio=0.2),
                DistillConfig(steps=30, batch_size=4, seq_len=128, eval_every=0, learning_rate=1e-4),
                GGUFConfig(quant="Q4_K_M"),
            ],
        },
    }


def run_demo(output_dir: str | os.PathLike = "runs/demo", *, only: list[str] | None = None, progress: bool = True,
             model: str | os.PathLike | None = None, evaluate_kwargs: dict[str, Any] | None = None) -> Any:
    """Run the demo grid on the embedded model and write variants, results, cards, table and plots.

    ``evaluate_kwargs`` (``EvalSettings`` fields) override the demo's settings; ``model`` replaces the embedded model
    (the tests run the demo on a tiny model folder).

    Example:
        >>> out = run_demo("runs/demo")                     # doctest: +SKIP
    """
    return run_grid(demo_grid(), model, output_dir, evaluate_kwargs={**DEMO_EVALUATE, **(evaluate_kwargs or {})}, only=only,
                    progress=progress)
