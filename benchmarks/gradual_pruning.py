"""Gradual against one-shot pruning of the embedded SmolLM2-135M at the same training budget (Zhu & Gupta 2017).

For each pruning method and target sparsity, three arms:

    one-shot                 PruneConfig(method, sparsity)                              no training
    one-shot + fine-tune     [PruneConfig(method, sparsity), DistillConfig(steps=N)]    N steps after pruning
    gradual                  PruneConfig(method, sparsity, schedule="gradual", stages=K,
                                         finetune=DistillConfig(steps=N // K))      K stages of N/K steps each

The two trained arms go through the same number of optimizer steps, batches and tokens; the fine-tuning is
distillation from the unpruned model on the embedded corpus's calibration part. Each row has the perplexity on
the corpus's held-out part (which neither calibration nor training reads), its ratio to the base, the measured
sparsity of the pruned layers of the final model, and the wall time of the run (load, calibration, pruning,
training; not the perplexity). Written to benchmarks/results/gradual_pruning.json and .md.

    python benchmarks/gradual_pruning.py                                # magnitude and Wanda, 0.5 and 0.7, N=40
    python benchmarks/gradual_pruning.py --methods magnitude --sparsities 0.7 --steps 8   # what results/ holds

The committed results are the small run: on the shared 2-core CPU they were measured on (three other jobs running),
one distillation step of 4 x 128 tokens took about 40 s and a 2,048-token perplexity about 90 s, so N=40 over
twelve arms would have taken hours. With N=8 (gradual: 4 stages of 2 steps) the arms differ by far less training
than the paper's; read them as a check that the pipeline runs, not as the paper's comparison.
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=["magnitude", "wanda"], help="pruning methods (default magnitude wanda)")
    p.add_argument("--sparsities", nargs="+", type=float, default=[0.5, 0.7], help="target sparsities (default 0.5 0.7)")
    p.add_argument("--steps", type=int, default=40, help="training steps of each trained arm, N (default 40)")
    p.add_argument("--stages", type=int, default=4, help="stages of the gradual arm, K; each trains N/K steps (default 4)")
    p.add_argument("--batch-size", type=int, default=4, help="sequences per step (default 4)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per training sequence (default 128)")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate of every fine-tuning run (default 1e-4)")
    p.add_argument("--calib-samples", type=int, default=64, help="calibration samples of 256 tokens, for Wanda (default 64)")
    p.add_argument("--eval-tokens", type=int, default=2048, help="held-out tokens for the perplexities (default 2048)")
    p.add_argument("--arms", nargs="+", default=["one-shot", "one-shot + fine-tune", "gradual"], help="which arms to run")
    p.add_argument("--json", default=str(HERE / "results" / "gradual_pruning.json"), help="where the results are written")
    args = p.parse_args(argv)
    if args.steps % args.stages:
        p.error(f"--steps {args.steps} must be a multiple of --stages {args.stages}, so both trained arms train as long")

    import torch

    import hfcompress as hfc
    from hfcompress.bench.perplexity import perplexity
    from hfcompress.data import evaluation_token_ids
    from hfcompress.loading import load_model
    from hfcompress.methods.pruning import sparsity_report

    torch.manual_seed(0)
    base = load_model(None)
    ids, eval_what = evaluation_token_ids("default", base.tokenizer, max_tokens=args.eval_tokens)

    def ppl(model) -> float:
        return perplexity(model, ids, context=512, stride=256)

    started = time.perf_counter()
    rows: list[dict] = [{"method": None, "sparsity": 0.0, "arm": "base", "ppl": ppl(base.model), "measured_sparsity": 0.0,
                         "train_steps": 0, "seconds": 0.0, "recipe": []}]
    print(f"base ppl {rows[0]['ppl']:.3f} ({len(ids)} held-out tokens of {eval_what}; {time.perf_counter() - started:.0f} s)", flush=True)
    del base

    def finetune(steps: int) -> hfc.DistillConfig:
        return hfc.DistillConfig(steps=steps, batch_size=args.batch_size, seq_len=args.seq_len, learning_rate=args.lr,
                                 warmup=0, eval_every=0, eval_tokens=4 * args.seq_len,
                                 save_every=100_000)  # no checkpoints: nothing here resumes, and each costs a 0.5 GB write

    for method in args.methods:
        for sparsity in args.sparsities:
            prune = hfc.PruneConfig(method=method, sparsity=sparsity)
            arms = {
                "one-shot": ([prune], 0),
                "one-shot + fine-tune": ([prune, finetune(args.steps)], args.steps),
                "gradual": ([hfc.PruneConfig(method=method, sparsity=sparsity, schedule="gradual", stages=args.stages,
                                             finetune=finetune(args.steps // args.stages))], args.steps),
            }
            for arm in args.arms:
                recipe, train_steps = arms[arm]
                t0 = time.perf_counter()
                cm = hfc.CompressedModel.from_pretrained(None, recipe=recipe, num_samples=args.calib_samples, seq_len=256, seed=0)
                seconds = time.perf_counter() - t0
                measured = sparsity_report(cm.model, prune)
                row = {"method": method, "sparsity": sparsity, "arm": arm, "ppl": ppl(cm.model),
                       "measured_sparsity": measured["sparsity"], "sparsity_min": measured["sparsity_min"],
                       "sparsity_max": measured["sparsity_max"], "train_steps": train_steps,
                       "trained_tokens": train_steps * args.batch_size * args.seq_len, "seconds": round(seconds, 1),
                       "recipe": [step.to_dict() for step in recipe], "steps": _step_summaries(cm)}
                rows.append(row)
                print(f"{method:9s} {sparsity:.2f} {arm:22s} ppl {row['ppl']:9.3f}  sparsity {row['measured_sparsity']:.4f}  "
                      f"{seconds:.0f} s", flush=True)
                del cm
                _write(Path(args.json), rows, args, eval_what, len(ids), time.perf_counter() - started)
    print(_table(rows))
    return 0


def _step_summaries(cm) -> list[dict]:
    """What each step of the run did: a pruning stage's target and measured sparsity, a fine-tuning's own held-out
    perplexity before and after it (on the distillation's held-out rows, not the benchmark's)."""
    out = []
    for step in cm.steps:
        info = step.info
        entry = {"kind": step.config.kind, "seconds": round(step.seconds, 1)}
        if step.config.kind == "prune":
            entry.update(target_sparsity=info.get("target_sparsity"), sparsity=info.get("sparsity"),
                         earlier_zeros_revived_and_zeroed=info.get("earlier_zeros_revived_and_zeroed"))
        else:
            entry.update(steps=step.config.steps, ppl_before=(info.get("eval_before") or {}).get("perplexity"),
                         ppl_after=(info.get("eval_after") or {}).get("perplexity"),
                         refilled_during_training=(info.get("held") or {}).get("refilled_during_training"))
        out.append(entry)
    return out


def _write(path: Path, rows: list[dict], args: argparse.Namespace, eval_what: str, eval_tokens: int, seconds: float) -> None:
    import llmcompressor
    import torch
    import transformers

    import hfcompress as hfc

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "benchmark": "gradual (Zhu & Gupta 2017) against one-shot pruning of SmolLM2-135M-Instruct (embedded), same training budget",
        "command": "python benchmarks/gradual_pruning.py " + " ".join(sys.argv[1:]),
        "perplexity": f"held-out part of {eval_what}, {eval_tokens} tokens, window 512 / stride 256, in-memory model",
        "fine-tuning": {"kind": "distillation from the unpruned model on the embedded corpus's calibration part",
                        "steps": args.steps, "stages": args.stages, "steps_per_stage": args.steps // args.stages,
                        "batch_size": args.batch_size, "seq_len": args.seq_len, "learning_rate": args.lr,
                        "warmup": 0, "schedule": "cosine decay from the peak, restarted in every stage (no warm-up: a warm-up "
                                                 "step trains at learning rate 0, half of a 2-step stage)"},
        "calibration": {"source": "default", "num_samples": args.calib_samples, "seq_len": 256},
        "versions": {"hfcompress": hfc.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
                     "llmcompressor": llmcompressor.__version__, "python": platform.python_version()},
        "hardware": f"{platform.machine()} CPU, {os.cpu_count()} cores, no GPU (shared with other work)",
        "seed": 0,
        "total_seconds": round(seconds, 1),
        "rows": rows,
    }, indent=2) + "\n")
    path.with_suffix(".md").write_text(_table(rows) + "\n")


def _table(rows: list[dict]) -> str:
    base_ppl = rows[0]["ppl"]
    lines = ["| method | target sparsity | arm | training steps | held-out ppl | x base | measured sparsity | time s |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method'] or 'base'} | {r['sparsity']:.2f} | {r['arm']} | {r['train_steps']} | {r['ppl']:.2f} | "
                     f"x{r['ppl'] / base_ppl:.2f} | {r['measured_sparsity']:.4f} | {r['seconds']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
