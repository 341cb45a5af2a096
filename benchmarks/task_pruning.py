"""Task-specific ("knowledge") pruning of the embedded SmolLM2-135M: calibrate on the task, recover on the task.

The task is the user's prompt/response pairs: country -> capital ("The capital of France is" -> " Paris"), 98 pairs
to calibrate and train on (benchmarks/data/capitals_train.jsonl) and 50 other countries held out to score
(capitals_test.jsonl; greedy decoding must give the capital exactly). Every arm removes the same share of MLP
neurons; they differ only in the text that decides which neurons stay and in what the recovery trains on:

    base                                  the unpruned model
    generic calibration                   StructuredPruneConfig(neurons, ratio) on the offline Wikipedia text
    task calibration                      the same, calibrated on the task's training pairs
    generic calibration + distill         then DistillConfig on Wikipedia text (soft targets from the base)
    task calibration + task distill       then DistillConfig on the task pairs (task_specific: loss on responses)

Each row has the task accuracy (with its standard error), the held-out Wikipedia perplexity (what the task focus
costs in general text), the last-word accuracy, and the wall time. Written to benchmarks/results/task_pruning.json.

    python benchmarks/task_pruning.py                       # ratio 0.25, 30 distillation steps (about 15 minutes alone)
    python benchmarks/task_pruning.py --steps 0             # the calibrations alone
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HFCOMPRESS_QUIET", "1")
HERE = Path(__file__).resolve().parent
TRAIN = HERE / "data" / "capitals_train.jsonl"
TEST = HERE / "data" / "capitals_test.jsonl"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratio", type=float, default=0.25, help="share of MLP neurons removed (default 0.25)")
    p.add_argument("--steps", type=int, default=30, help="distillation steps of the recovered arms; 0 = none (default 30)")
    p.add_argument("--json", default=str(HERE / "results" / "task_pruning.json"), help="where the table is written")
    args = p.parse_args(argv)

    import torch

    import hfcompress as hfc

    torch.manual_seed(0)
    evaluate = dict(speed=False, generations=False, kl=False, tasks=[str(TEST), "last_word"], task_items=100)
    prune = hfc.StructuredPruneConfig(target="neurons", ratio=args.ratio)
    distill = dict(steps=args.steps, batch_size=4, seq_len=128, eval_every=0, learning_rate=1e-4)
    arms = [
        ("generic calibration", [prune], "default"),
        ("task calibration", [prune], str(TRAIN)),
    ]
    if args.steps:
        arms += [
            ("generic calibration + distill", [prune, hfc.DistillConfig(**distill)], "default"),
            ("task calibration + task distill", [prune, hfc.DistillConfig(data=str(TRAIN), task_specific=True, **distill)], str(TRAIN)),
        ]
    base_cache: dict = {}
    rows: list[dict] = []

    def metric(results, name: str, base: bool = False) -> dict:
        m = results.metrics[name]
        value = m["base"] if base else m["value"]
        return {"value": value, "stderr": (value * (1 - value) / m["samples"]) ** 0.5, "items": m["samples"]}

    for name, recipe, calibration in arms:
        t0 = time.perf_counter()
        # Calibration on the task: its 98 short pairs are under 1,000 tokens; 16 samples of 64 tokens hold them all.
        sampling = dict(num_samples=16, seq_len=64) if calibration != "default" else dict(num_samples=128, seq_len=512)
        variant = hfc.CompressedModel.from_pretrained(None, recipe=recipe, calibration=calibration, **sampling)
        seconds = time.perf_counter() - t0
        results = variant.evaluate(base_cache=base_cache, **evaluate)
        task = f"task/{TEST.stem}/acc"
        if not rows:
            rows.append({"arm": "base", "task_acc": metric(results, task, base=True), "last_word_acc": metric(results, "task/last_word/acc", base=True),
                         "ppl": results.metrics["perplexity"]["base"], "seconds": 0.0, "recipe": [], "calibration": None})
        rows.append({"arm": name, "task_acc": metric(results, task), "last_word_acc": metric(results, "task/last_word/acc"),
                     "ppl": results.metrics["perplexity"]["value"], "seconds": round(seconds, 1),
                     "recipe": [s.to_dict() for s in recipe], "calibration": {"source": calibration, **sampling}})
        print(f"{name:34s} task {rows[-1]['task_acc']['value']:.2f}  ppl {rows[-1]['ppl']:.2f}  {seconds:.0f} s", flush=True)
        del variant
        _write(Path(args.json), rows, args)
    print(_table(rows))
    return 0


def _write(path: Path, rows: list[dict], args: argparse.Namespace) -> None:
    import torch

    import hfcompress as hfc

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "benchmark": "task-specific structured pruning of SmolLM2-135M-Instruct (embedded)",
        "command": "python benchmarks/task_pruning.py " + " ".join(sys.argv[1:]),
        "task": f"{TEST.name}: 50 held-out country -> capital pairs, greedy exact response; trained on {TRAIN.name} (98 other countries)",
        "perplexity": "held-out offline Wikipedia text, 4,096 tokens, window 512 / stride 256",
        "ratio": args.ratio, "distill_steps": args.steps,
        "versions": {"hfcompress": hfc.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "hardware": f"{platform.machine()} CPU, {os.cpu_count()} cores, no GPU", "seed": 0,
        "rows": rows,
    }, indent=2) + "\n")
    path.with_suffix(".md").write_text(_table(rows) + "\n")


def _table(rows: list[dict]) -> str:
    base_ppl = rows[0]["ppl"]
    lines = ["| arm | capitals acc (50 held out) | last-word acc | ppl (x base) | time s |", "|---|---|---|---|---|"]
    for r in rows:
        t, w = r["task_acc"], r["last_word_acc"]
        lines.append(f"| {r['arm']} | {t['value']:.2f} ± {t['stderr']:.2f} | {w['value']:.2f} ± {w['stderr']:.2f} | "
                     f"{r['ppl']:.2f} (x{r['ppl'] / base_ppl:.2f}) | {r['seconds']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
