"""Quantization-aware training against post-training quantization at the same bits and group, on the embedded model.

For each width (4, 3, 2 bits and ternary), groups of 64, on SmolLM2-135M-Instruct:
- RTN: llm-compressor's ``QuantizationModifier`` (min-max scales), called directly; for ternary, absmean scales
  (BitNet b1.58) rounded to {-1, 0, 1}, which is where QAT starts;
- GPTQ: llm-compressor's ``GPTQModifier`` with hfcompress's GPTQ defaults (activation order "weight", imatrix_mse
  observer, dampening 0.05, block 64), on the same 64 calibration texts (hfcompress itself offers GPTQ at 4 and 8
  bits; at 3 and 2 the modifier is called directly with the same settings);
- QAT: ``QATConfig`` through hfcompress, distilled from the unquantized base; at 4 bits it starts from GPTQ's grid
  (``[GPTQConfig, QATConfig]``) or, with ``--start rtn-imatrix``, from RTN with the imatrix_mse observer; elsewhere
  from RTN's min-max grid.
All are measured the same way on the same held-out tokens (4,096 of the default corpus, window 1024, stride 512):
perplexity ratio to the unquantized model, KL to it (mean, nats/token), and wall time.

Run (rows print as they finish and append to --jsonl):
    python benchmarks/qat.py --only w4
    python benchmarks/qat.py --only w2 ternary --steps 120
Writes benchmarks/results/qat.jsonl and qat.md (the README's table).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import hfcompress as hfc
from hfcompress.bench.perplexity import score_windows
from hfcompress.bench.reference import LogProbFile
from hfcompress.data import CalibrationData, calibration_texts, evaluation_token_ids
from hfcompress.environment import environment_info
from hfcompress.loading import load_model
from hfcompress.methods.backends.llmcompressor import run_oneshot
from hfcompress.methods.qat.adapter import FakeQuantized
from hfcompress.methods.quantization.llmcompressor import weight_scheme

RESULTS = Path(__file__).resolve().parent / "results"
G = 64
NUM_TEXTS = 64
SEQ_LEN = 512
WIDTHS = {"w4": 4, "w3": 3, "w2": 2, "ternary": "ternary"}


def _calibration(tokenizer: Any, texts: list[str]) -> CalibrationData:
    import torch

    rows = [tokenizer(t, add_special_tokens=False, truncation=True, max_length=SEQ_LEN)["input_ids"] for t in texts]
    return CalibrationData(texts=texts, input_ids=[torch.tensor(r) for r in rows], source="list", seed=0,
                           num_samples=len(rows), seq_len=SEQ_LEN)


def _ptq(base: Any, tokenizer: Any, method: str, bits: Any, calibration: CalibrationData) -> tuple[Any, float]:
    from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier

    model = copy.deepcopy(base)
    started = time.perf_counter()
    if bits == "ternary":
        # Absmean scales rounded to {-1, 0, 1}: QAT's own starting grid, without training.
        FakeQuantized.prepare(model, tokenizer, hfc.QATConfig(bits="ternary", group_size=G), G).finish()
        return model, time.perf_counter() - started
    groups = weight_scheme(bits, G, False, observer="imatrix_mse") if method == "gptq" else weight_scheme(bits, G, False)
    if method == "rtn":
        modifiers = [QuantizationModifier(config_groups=groups, ignore=["lm_head"])]
    else:
        modifiers = [GPTQModifier(config_groups=groups, ignore=["lm_head"], actorder="weight", dampening_frac=0.05, block_size=64)]
    run_oneshot(model, tokenizer, modifiers, calibration if method == "gptq" else None)
    return model, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(WIDTHS), help="widths to run")
    parser.add_argument("--methods", nargs="*", default=["rtn", "gptq", "qat"], choices=["rtn", "gptq", "qat"])
    parser.add_argument("--steps", type=int, default=None, help="QAT steps (default: QATConfig's)")
    parser.add_argument("--lr", type=float, default=None, help="QAT learning rate (default: QATConfig's)")
    parser.add_argument("--start", choices=["rtn", "rtn-imatrix", "gptq"], default="gptq",
                        help="the PTQ step QAT starts from at 4 bits (elsewhere RTN's grid)")
    parser.add_argument("--jsonl", default=str(RESULTS / "qat.jsonl"))
    args = parser.parse_args()
    texts = list(calibration_texts()[:NUM_TEXTS])
    loaded = load_model(None)
    base, tokenizer = loaded.model, loaded.tokenizer
    calibration = _calibration(tokenizer, texts)
    ids, _ = evaluation_token_ids("default", tokenizer, max_tokens=4096)
    scratch = Path(tempfile.mkdtemp(prefix="qat-bench-"))
    reference = LogProbFile.create(scratch / "base.npy", rows=ids.numel() - 1, vocab=base.config.vocab_size)
    base_ppl = score_windows(base, ids, context=1024, stride=512, record=reference).perplexity
    reference.flush()
    reference = LogProbFile.open(scratch / "base.npy")
    print(f"base perplexity {base_ppl:.3f}", flush=True)
    env = environment_info()
    overrides = {k: v for k, v in (("steps", args.steps), ("learning_rate", args.lr)) if v is not None}
    for width in args.only or list(WIDTHS):
        bits = WIDTHS[width]
        for method in args.methods:
            if method == "gptq" and bits == "ternary":
                continue  # GPTQ has no ternary grid
            gc.collect()
            recipe: list[Any] = []
            if method == "qat":
                recipe = [hfc.QATConfig(bits=bits, group_size=G, **overrides)]
                if bits == 4 and args.start != "rtn":
                    start = (hfc.GPTQConfig(bits=4, group_size=G) if args.start == "gptq"
                             else hfc.RTNConfig(bits=4, group_size=G, observer="imatrix_mse"))
                    recipe.insert(0, start)
                started = time.perf_counter()
                cm = hfc.CompressedModel.from_pretrained(None, recipe=copy.deepcopy(recipe), calibration=texts,
                                                         num_samples=128, seq_len=SEQ_LEN)
                seconds, model = time.perf_counter() - started, cm.model
                training = {k: cm.steps[-1].info.get(k) for k in ("global_step", "train_seconds", "data", "eval_before", "eval_after")}
            else:
                model, seconds = _ptq(base, tokenizer, method, bits, calibration)
                training = None
            scores = score_windows(model, ids, context=1024, stride=512, reference=reference)
            row = {"width": width, "method": method, "ppl_ratio": scores.perplexity / base_ppl, "kl": float(scores.kl.mean()),
                   "seconds": round(seconds, 1), "perplexity": scores.perplexity, "base_perplexity": base_ppl,
                   "recipe": [c.to_dict() for c in recipe] or f"llm-compressor {method} {bits}-bit g{G} (direct)",
                   "training": training, "group_size": G,
                   "eval": "4096 held-out tokens, window 1024, stride 512", "versions": env["versions"], "hardware": env["hardware"]}
            print(f"{width:>8} {method:>5}: ppl x{row['ppl_ratio']:.4f}  KL {row['kl']:.4f}  {seconds:.0f} s", flush=True)
            with open(args.jsonl, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row, default=str) + "\n")
            del model
    (RESULTS / "qat.md").write_text(markdown(Path(args.jsonl)))
    print((RESULTS / "qat.md").read_text())


def markdown(jsonl: Path) -> str:
    """One line per width: RTN, GPTQ and QAT side by side (the last measurement of each)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for line in jsonl.read_text().splitlines():
        row = json.loads(line)
        latest[(row["width"], row["method"])] = row
    lines = ["| weights (g64) | RTN: ppl × | KL | GPTQ: ppl × | KL | QAT: ppl × | KL | QAT steps | QAT time (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for width in WIDTHS:
        cells = []
        for method in ("rtn", "gptq", "qat"):
            r = latest.get((width, method))
            cells += [f"{r['ppl_ratio']:.3f}", f"{r['kl']:.4f}"] if r else ["–", "–"]
        q = latest.get((width, "qat"))
        steps = (q.get("training") or {}).get("global_step") if q else None
        cells += [str(steps) if steps else "–", f"{q['seconds']:.0f}" if q else "–"]
        if any(c != "–" for c in cells):
            lines.append(f"| {width} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
