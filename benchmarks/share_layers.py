"""Cross-layer weight sharing of the embedded SmolLM2-135M (30 layers -> 15 groups of 2): mean vs first init, then distillation.

Prints one row per variant: unique parameters, the safetensors file size as saved (each shared tensor once), held-out
perplexity (same tokens, same sliding window) and its ratio to the base, and the time the recipe took; writes the
table to benchmarks/results/share_layers.json and .md.

    python benchmarks/share_layers.py                       # every=2, init mean and first, alone and + distill 30 steps
    python benchmarks/share_layers.py --distill-steps 0     # the sharing alone

Every row is a recipe users run (``hfc.CompressedModel.from_pretrained(None, recipe=...)``): ``[ShareLayersConfig(
every=2, init=...)]`` and ``[ShareLayersConfig(every=2, init=...), DistillConfig(steps=...)]`` (the teacher is the base).
The distillation is short (30 steps of 2 x 64 tokens, about 10 s a step on the shared 2-core CPU this was run on): it
shows the direction, not where a real run ends.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HFCOMPRESS_QUIET", "0")
RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--every", type=int, default=2, help="consecutive layers per group (default 2)")
    p.add_argument("--inits", default="mean,first", help="inits to compare (default mean,first)")
    p.add_argument("--eval-tokens", type=int, default=2048, help="held-out tokens for the perplexities (default 2048)")
    p.add_argument("--distill-steps", type=int, default=30, help="distillation steps after each sharing; 0 = none (default 30)")
    p.add_argument("--batch-size", type=int, default=2, help="distillation sequences per step (default 2)")
    p.add_argument("--seq-len", type=int, default=64, help="distillation tokens per sequence (default 64)")
    p.add_argument("--learning-rate", type=float, default=3e-4, help="distillation learning rate (default 3e-4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "share_layers"), help="results path without suffix (.json and .md)")
    args = p.parse_args(argv)

    import torch
    import transformers

    import hfcompress as hfc
    from hfcompress.bench.perplexity import perplexity
    from hfcompress.data import evaluation_token_ids
    from hfcompress.loading import load_model

    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    base = load_model(None)
    ids, what = evaluation_token_ids("default", base.tokenizer, max_tokens=args.eval_tokens)
    command = "python benchmarks/share_layers.py " + " ".join(argv if argv is not None else sys.argv[1:])

    def file_bytes(model) -> int:
        # As saved (SharedLayers<Base>.save_pretrained writes each shared tensor once), in the model's own dtype.
        with tempfile.TemporaryDirectory() as tmp:
            type(model).save_pretrained(model, tmp, safe_serialization=True)
            return sum(f.stat().st_size for f in Path(tmp).glob("*.safetensors"))

    def row(name: str, model, seconds: float, recipe: list, info: dict | None = None) -> dict:
        model.eval()
        return {"variant": name, "recipe": [s.to_dict() for s in recipe],
                "ppl": perplexity(model, ids, context=512, stride=256),
                "unique_parameters": sum(q.numel() for q in model.parameters()),
                "safetensors_bytes": file_bytes(model), "dtype": str(next(model.parameters()).dtype),
                "recipe_seconds": round(seconds, 1), **({"distill": info} if info else {})}

    rows = [row("base", base.model, 0.0, [])]
    layers = base.model.config.num_hidden_layers
    del base

    def write() -> None:  # after every row, so a run cut short keeps what it measured
        first = rows[0]
        for r in rows:
            r["ppl_ratio"] = r["ppl"] / first["ppl"]
            r["parameters_ratio"] = r["unique_parameters"] / first["unique_parameters"]
            r["size_ratio"] = r["safetensors_bytes"] / first["safetensors_bytes"]
        out = {"model": f"embedded SmolLM2-135M-Instruct ({layers} decoder layers, tied embeddings)",
               "eval": {"tokens": int(len(ids)), "data": what, "context": 512, "stride": 256},
               "distill": {"steps": args.distill_steps, "batch_size": args.batch_size, "seq_len": args.seq_len,
                           "learning_rate": args.learning_rate, "teacher": "the base model", "data": "default calibration text"},
               "command": command, "seed": args.seed,
               "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "hfcompress": hfc.__version__,
                            "python": platform.python_version()},
               "hardware": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "gpu": None},
               "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out + ".json").write_text(json.dumps(out, indent=1), encoding="utf-8")
        lines = ["| variant | unique parameters (M) | x base | safetensors MB | x base | ppl | x base | recipe s |",
                 "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['variant']} | {r['unique_parameters'] / 1e6:.2f} | x{r['parameters_ratio']:.3f} | "
                  f"{r['safetensors_bytes'] / 1e6:.1f} | x{r['size_ratio']:.3f} | {r['ppl']:.2f} | x{r['ppl_ratio']:.2f} | "
                  f"{r['recipe_seconds']:.0f} |" for r in rows]
        note = (f"\n{out['model']}; {len(ids)} held-out tokens of {what}, window 512, stride 256. Distillation: "
                f"{args.distill_steps} steps x {args.batch_size} x {args.seq_len} tokens, lr {args.learning_rate}, teacher = base. "
                f"Compute per token and KV cache are the base's in every row (every layer still runs). "
                f"torch {torch.__version__}, transformers {transformers.__version__}, {os.cpu_count()} CPU cores, seed {args.seed}.\n"
                f"Command: `{command}`\n")
        Path(args.out + ".md").write_text("\n".join(lines) + "\n" + note, encoding="utf-8")

    def show(r: dict) -> None:
        write()
        print(f"{r['variant']:<30} {r['unique_parameters'] / 1e6:7.2f} M params  {r['safetensors_bytes'] / 1e6:7.1f} MB  "
              f"ppl {r['ppl']:10.2f}  x{r['ppl_ratio']:8.2f}  {r['recipe_seconds']:5.0f} s", flush=True)

    print(f"{len(ids)} held-out tokens of {what}; window 512, stride 256", flush=True)
    show(rows[0])
    for init in args.inits.split(","):
        share = hfc.ShareLayersConfig(every=args.every, init=init)
        recipes = [(f"every {args.every} {init}", [share])]
        if args.distill_steps:
            distill = hfc.DistillConfig(steps=args.distill_steps, batch_size=args.batch_size, seq_len=args.seq_len,
                                        learning_rate=args.learning_rate, warmup=0.1, eval_every=0, eval_tokens=128,
                                        save_every=args.distill_steps, seed=args.seed)
            recipes.append((f"every {args.every} {init} + distill {args.distill_steps}", [share, distill]))
        for name, recipe in recipes:
            t = time.perf_counter()
            cm = hfc.CompressedModel.from_pretrained(None, recipe=recipe, seq_len=256)
            info = cm.steps[-1].info if len(recipe) > 1 else None
            summary = {k: info.get(k) for k in ("train_loss", "global_step", "shared_layers")} if info else None
            rows.append(row(name, cm.model, time.perf_counter() - t, recipe, summary))
            show(rows[-1])
            del cm
    write()
    print(f"wrote {args.out}.json and .md ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
