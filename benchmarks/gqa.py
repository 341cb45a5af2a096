"""GQA conversion of the embedded SmolLM2-135M (9 query heads, 3 KV heads -> 1): mean merge vs PCA merge, then distillation.

Prints one row per variant: held-out perplexity (same tokens, same sliding window), its ratio to the base, the KV
cache per token and the time the step took; writes the table to benchmarks/results/gqa.json.

    python benchmarks/gqa.py                         # k=1, mean and pca, then [pca, distill 40 steps]
    python benchmarks/gqa.py --distill-steps 0       # the merges alone

The merges are the recipe steps users run (``hfc.CompressedModel.from_pretrained(None, recipe=...)``); the
distilled row is the recipe ``[GQAConfig(num_key_value_heads=1), DistillConfig(steps=...)]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HFCOMPRESS_QUIET", "0")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kv-heads", type=int, default=1, help="KV heads the model ends with (default 1)")
    p.add_argument("--methods", default="mean,pca", help="merges to compare (default mean,pca)")
    p.add_argument("--calib-samples", type=int, default=32, help="calibration samples of 256 tokens for the PCA merge (default 32)")
    p.add_argument("--eval-tokens", type=int, default=4096, help="held-out tokens for the perplexities (default 4096)")
    p.add_argument("--distill-steps", type=int, default=40, help="distillation steps after the best merge; 0 = none (default 40)")
    p.add_argument("--json", default=str(Path(__file__).parent / "results" / "gqa.json"), help="where the table is written")
    args = p.parse_args(argv)

    import torch

    import hfcompress as hfc
    from hfcompress.bench.perplexity import perplexity
    from hfcompress.bench.size import kv_cache_bytes_per_token
    from hfcompress.data import evaluation_token_ids
    from hfcompress.loading import load_model

    torch.manual_seed(0)
    t0 = time.perf_counter()
    base = load_model(None)
    ids, what = evaluation_token_ids("default", base.tokenizer, max_tokens=args.eval_tokens)

    def row(name: str, model, seconds: float, recipe: list) -> dict:
        ppl = perplexity(model, ids, context=512, stride=256)
        kv = kv_cache_bytes_per_token(model.config, 2)  # bf16/f16 cache, as the model is served
        return {"variant": name, "recipe": [s.to_dict() for s in recipe], "ppl": ppl, "kv_heads": model.config.num_key_value_heads,
                "kv_cache_bytes_per_token_16bit": kv, "parameters": sum(q.numel() for q in model.parameters()), "step_seconds": seconds}

    rows = [row("base", base.model, 0.0, [])]
    del base
    base_ppl = rows[0]["ppl"]

    def write() -> None:  # after every row, so a run cut short keeps what it measured
        for r in rows:
            r["ppl_ratio"] = r["ppl"] / base_ppl
        out = {"model": "embedded SmolLM2-135M-Instruct (9 query heads, 3 KV heads, 30 layers, head_dim 64)",
               "eval": {"tokens": int(len(ids)), "data": what, "context": 512, "stride": 256},
               "calibration": {"samples": args.calib_samples, "seq_len": 256, "data": "default (embedded Wikipedia summaries)"},
               "command": "python benchmarks/gqa.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows,
               "seconds": time.perf_counter() - t0}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")

    def show(r: dict) -> None:
        write()
        print(f"{r['variant']:<28} ppl {r['ppl']:9.3f}  x{r['ppl'] / base_ppl:7.3f}  KV heads {r['kv_heads']}  "
              f"KV cache {r['kv_cache_bytes_per_token_16bit']:>6} B/token  {r['parameters'] / 1e6:6.2f} M params  {r['step_seconds']:5.0f} s", flush=True)

    print(f"{len(ids)} held-out tokens of {what}; window 512, stride 256", flush=True)
    show(rows[0])
    for method in args.methods.split(","):
        recipe = [hfc.GQAConfig(num_key_value_heads=args.kv_heads, method=method)]
        t = time.perf_counter()
        cm = hfc.CompressedModel.from_pretrained(None, recipe=recipe, num_samples=args.calib_samples, seq_len=256)
        rows.append(row(f"gqa k={args.kv_heads} {method}", cm.model, cm.steps[-1].seconds, recipe))
        show(rows[-1])
        del cm
    if args.distill_steps:
        best = min(rows[1:], key=lambda r: r["ppl"])["recipe"][0]["method"]
        recipe = [hfc.GQAConfig(num_key_value_heads=args.kv_heads, method=best),
                  hfc.DistillConfig(steps=args.distill_steps, batch_size=4, seq_len=128, learning_rate=1e-4, warmup=0.1,
                                    eval_every=0, eval_tokens=128, save_every=args.distill_steps)]
        t = time.perf_counter()
        cm = hfc.CompressedModel.from_pretrained(None, recipe=recipe, num_samples=args.calib_samples, seq_len=256)
        rows.append(row(f"gqa k={args.kv_heads} {best} + distill {args.distill_steps}", cm.model, time.perf_counter() - t, recipe))
        show(rows[-1])
    write()
    print(f"wrote {args.json} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
