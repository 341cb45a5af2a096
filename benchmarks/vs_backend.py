"""hfcompress's defaults against llm-compressor called directly with its own defaults, same data, same process.

For each scheme the backend offers (RTN W8 and W4, GPTQ W4, AWQ W4, Wanda 50%, SparseGPT 50%, SparseGPT 2:4, 2:4 +
GPTQ), on the embedded SmolLM2-135M-Instruct:
- direct: llm-compressor's modifier with only the scheme set (its defaults for everything else: activation ordering,
  observer, dampening, block size...), ``oneshot`` on the calibration texts as one sample each (how its examples
  feed a dataset), truncated to 512 tokens;
- hfcompress: ``CompressedModel.from_pretrained(None, recipe=[<config with our defaults>])`` on the same texts
  (our calibration packs them into 512-token samples).
Both are measured the same way on the same held-out tokens (4,096 of the default corpus, window 1024, stride 512):
perplexity ratio to the unquantized model, KL to it (mean), and the wall time of the compression.

Run (about an hour on 2 cores; rows print as they finish and append to --jsonl):
    python benchmarks/vs_backend.py
    python benchmarks/vs_backend.py --only gptq-w4 awq-w4
Writes benchmarks/results/vs_backend.jsonl (one line per row and side) and vs_backend.md (the README's table).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import hfcompress as hfc
from hfcompress.bench.perplexity import score_windows
from hfcompress.bench.reference import LogProbFile
from hfcompress.data import calibration_texts, evaluation_token_ids
from hfcompress.environment import environment_info
from hfcompress.loading import load_model
from hfcompress.methods.backends.llmcompressor import run_oneshot
from hfcompress.methods.quantization.llmcompressor import weight_scheme

RESULTS = Path(__file__).resolve().parent / "results"
G = 64  # SmolLM2's width 576 = 9 x 64
NUM_TEXTS = 64
SEQ_LEN = 512


def _direct_quant(modifier: str, bits: int, group: int | None, **scheme: Any) -> Callable[[], list[Any]]:
    def build() -> list[Any]:
        from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier
        from llmcompressor.modifiers.transform.awq import AWQModifier

        groups = weight_scheme(bits, group, scheme.get("symmetric", False))
        if modifier == "rtn":
            return [QuantizationModifier(config_groups=groups, ignore=["lm_head"])]
        if modifier == "gptq":
            return [GPTQModifier(config_groups=groups, ignore=["lm_head"])]
        return [AWQModifier(), QuantizationModifier(config_groups=groups, ignore=["lm_head"])]
    return build


def _direct_prune(method: str, sparsity: float, mask: str = "0:0", then_gptq: bool = False) -> Callable[[], list[Any]]:
    def build() -> list[Any]:
        from llmcompressor.modifiers.pruning.sparsegpt import SparseGPTModifier
        from llmcompressor.modifiers.pruning.wanda import WandaPruningModifier
        from llmcompressor.modifiers.quantization import GPTQModifier

        cls = WandaPruningModifier if method == "wanda" else SparseGPTModifier
        mods = [cls(sparsity=sparsity, mask_structure=mask, targets=["Linear"], ignore=["lm_head"])]
        if then_gptq:
            mods.append(GPTQModifier(config_groups=weight_scheme(4, G, False), ignore=["lm_head"]))
        return mods
    return build


# name -> (hfcompress recipe with our defaults, the direct call's modifiers)
ROWS: dict[str, tuple[list[Any], Callable[[], list[Any]]]] = {
    "rtn-w8": ([hfc.RTNConfig(bits=8)], _direct_quant("rtn", 8, None)),
    "rtn-w4": ([hfc.RTNConfig(bits=4, group_size=G)], _direct_quant("rtn", 4, G)),
    "gptq-w4": ([hfc.GPTQConfig(bits=4, group_size=G)], _direct_quant("gptq", 4, G)),
    "awq-w4": ([hfc.AWQConfig(bits=4, group_size=G)], _direct_quant("awq", 4, G)),
    "wanda-50": ([hfc.PruneConfig(method="wanda", sparsity=0.5)], _direct_prune("wanda", 0.5)),
    "sparsegpt-50": ([hfc.PruneConfig(method="sparsegpt", sparsity=0.5)], _direct_prune("sparsegpt", 0.5)),
    "sparsegpt-2of4": ([hfc.PruneConfig(method="sparsegpt", pattern="2:4")], _direct_prune("sparsegpt", 0.5, "2:4")),
    "2of4-gptq-w4": ([hfc.PruneConfig(method="sparsegpt", pattern="2:4"), hfc.GPTQConfig(bits=4, group_size=G)],
                     _direct_prune("sparsegpt", 0.5, "2:4", then_gptq=True)),
}


# Settings measured for the defaults' choice (hfcompress side only; the direct call is the row's): name -> (row, recipe).
CANDIDATES: dict[str, tuple[str, list[Any]]] = {
    "gptq-w4:actorder=weight": ("gptq-w4", [hfc.GPTQConfig(bits=4, group_size=G, actorder="weight")]),
    "gptq-w4:actorder=static": ("gptq-w4", [hfc.GPTQConfig(bits=4, group_size=G, actorder="static")]),
    "gptq-w4:actorder=weight,observer=mse": ("gptq-w4", [hfc.GPTQConfig(bits=4, group_size=G, actorder="weight", observer="mse")]),
    "gptq-w4:actorder=weight,dampening_frac=0.05": ("gptq-w4", [hfc.GPTQConfig(bits=4, group_size=G, actorder="weight", dampening_frac=0.05)]),
    "gptq-w4:actorder=weight,dampening_frac=0.1": ("gptq-w4", [hfc.GPTQConfig(bits=4, group_size=G, actorder="weight", dampening_frac=0.1)]),
    "gptq-w4:actorder=weight,block_size=64": ("gptq-w4", [hfc.GPTQConfig(bits=4, group_size=G, actorder="weight", block_size=64)]),
    "gptq-w4:actorder=weight,dampening_frac=0.05,block_size=64": ("gptq-w4", [hfc.GPTQConfig(bits=4, group_size=G, actorder="weight", dampening_frac=0.05, block_size=64)]),
    "awq-w4:grid_points=10": ("awq-w4", [hfc.AWQConfig(bits=4, group_size=G, grid_points=10)]),
}


def _texts() -> list[str]:
    # The first NUM_TEXTS calibration texts of the corpus (never the held-out part), the same for both sides.
    return list(calibration_texts()[:NUM_TEXTS])


def _measure(model: Any, ids: Any, reference: LogProbFile) -> dict[str, float]:
    scores = score_windows(model, ids, context=1024, stride=512, reference=reference)
    return {"perplexity": scores.perplexity, "kl": float(scores.kl.mean())}


def _direct(base: Any, tokenizer: Any, build: Callable[[], list[Any]], texts: list[str]) -> tuple[Any, float]:
    from hfcompress.data import CalibrationData

    model = copy.deepcopy(base)
    rows = [tokenizer(t, add_special_tokens=False, truncation=True, max_length=SEQ_LEN)["input_ids"] for t in texts]
    import torch

    calibration = CalibrationData(texts=texts, input_ids=[torch.tensor(r) for r in rows], source="list", seed=0,
                                  num_samples=len(rows), seq_len=SEQ_LEN)
    started = time.perf_counter()
    run_oneshot(model, tokenizer, build(), calibration)
    return model, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="rows to run")
    parser.add_argument("--jsonl", default=str(RESULTS / "vs_backend.jsonl"))
    args = parser.parse_args()
    texts = _texts()
    loaded = load_model(None)
    base, tokenizer = loaded.model, loaded.tokenizer
    ids, _ = evaluation_token_ids("default", tokenizer, max_tokens=4096)
    scratch = Path(tempfile.mkdtemp(prefix="vs-backend-"))
    reference = LogProbFile.create(scratch / "base.npy", rows=ids.numel() - 1, vocab=base.config.vocab_size)
    base_ppl = score_windows(base, ids, context=1024, stride=512, record=reference).perplexity
    reference.flush()
    reference = LogProbFile.open(scratch / "base.npy")
    print(f"base perplexity {base_ppl:.3f}", flush=True)
    env = environment_info()
    jobs = [(name, side, recipe, build) for name, (recipe, build) in ROWS.items() for side in ("direct", "hfcompress")]
    jobs += [(row, f"hfcompress {label.split(':', 1)[1]}", recipe, ROWS[row][1]) for label, (row, recipe) in CANDIDATES.items()]
    for name, side, recipe, build in jobs:
        if args.only and name not in args.only and f"{name}:{side.split(' ', 1)[-1]}" not in args.only:
            continue
        if True:
            gc.collect()
            if side == "direct":
                model, seconds = _direct(base, tokenizer, build, texts)
            else:
                started = time.perf_counter()
                cm = hfc.CompressedModel.from_pretrained(None, recipe=copy.deepcopy(recipe), calibration=texts,
                                                         num_samples=128, seq_len=SEQ_LEN)
                seconds = time.perf_counter() - started
                model = cm.model
            measured = _measure(model, ids, reference)
            row = {"row": name, "side": side, "ppl_ratio": measured["perplexity"] / base_ppl, "kl": measured["kl"],
                   "seconds": round(seconds, 1), "perplexity": measured["perplexity"], "base_perplexity": base_ppl,
                   "recipe": [c.to_dict() for c in recipe] if side != "direct" else [repr(m) for m in build()],
                   "calibration": f"{NUM_TEXTS} texts; direct: one sample each, truncated to {SEQ_LEN}; hfcompress: packed into {SEQ_LEN}-token samples",
                   "eval": "4096 held-out tokens, window 1024, stride 512", "versions": env["versions"], "hardware": env["hardware"]}
            print(f"{name:>16} {side:>34}: ppl x{row['ppl_ratio']:.4f}  KL {row['kl']:.4f}  {seconds:.0f} s", flush=True)
            with open(args.jsonl, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row, default=str) + "\n")
            del model
    (RESULTS / "vs_backend.md").write_text(markdown(Path(args.jsonl)))
    print((RESULTS / "vs_backend.md").read_text())


def markdown(jsonl: Path) -> str:
    """The table: both sides of each row (the last measurement of each), their quotient and their times."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for line in jsonl.read_text().splitlines():
        row = json.loads(line)
        latest[(row["row"], row["side"])] = row
    lines = ["| scheme | llm-compressor direct: ppl × | KL | time (s) | hfcompress: ppl × | KL | time (s) | hfcompress / direct |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in ROWS:
        d, h = latest.get((name, "direct")), latest.get((name, "hfcompress"))
        if not d or not h:
            continue
        lines.append(f"| {name} | {d['ppl_ratio']:.3f} | {d['kl']:.4f} | {d['seconds']:.0f} | {h['ppl_ratio']:.3f} | "
                     f"{h['kl']:.4f} | {h['seconds']:.0f} | {h['ppl_ratio'] / d['ppl_ratio']:.3f} |")
    tried = [(row, side, r) for (row, side), r in latest.items() if side not in ("direct", "hfcompress")]
    if tried:
        lines += ["", "Settings tried for the defaults (hfcompress side):", "",
                  "| scheme | setting | ppl × | KL | time (s) | / direct |", "|---|---|---:|---:|---:|---:|"]
        for row, side, r in tried:
            d = latest.get((row, "direct"))
            lines.append(f"| {row} | {side.split(' ', 1)[1]} | {r['ppl_ratio']:.3f} | {r['kl']:.4f} | {r['seconds']:.0f} | "
                         f"{r['ppl_ratio'] / d['ppl_ratio']:.3f} |" if d else f"| {row} | {side} | {r['ppl_ratio']:.3f} | {r['kl']:.4f} | {r['seconds']:.0f} | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
