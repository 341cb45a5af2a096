"""Prune MLP neurons of the embedded SmolLM2-135M, then recover by distillation from the unpruned model.

Prints the held-out perplexity of the base, the pruned and the distilled model (same tokens, same
sliding window), the fraction of the pruning loss the distillation recovered, and the time each part took.

    python benchmarks/prune_then_distill.py                       # the defaults tuned for a 2-core CPU
    python benchmarks/prune_then_distill.py --ratio 0.5 --steps 120 --lr 2e-4

Recovered fraction = (ppl_pruned - ppl_distilled) / (ppl_pruned - ppl_base).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HFCOMPRESS_QUIET", "0")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratio", type=float, default=0.25, help="fraction of MLP neurons removed (default 0.25)")
    p.add_argument("--importance", default="activation", help="structured pruning importance (default activation)")
    p.add_argument("--calib-samples", type=int, default=32, help="calibration samples of 256 tokens for pruning (default 32)")
    p.add_argument("--steps", type=int, default=60, help="distillation optimizer steps (default 60)")
    p.add_argument("--batch-size", type=int, default=4, help="sequences per step (default 4)")
    p.add_argument("--seq-len", type=int, default=128, help="tokens per training sequence (default 128)")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default 1e-4)")
    p.add_argument("--alpha", type=float, default=0.5, help="cross-entropy weight (default 0.5)")
    p.add_argument("--temperature", type=float, default=2.0, help="softmax temperature (default 2.0)")
    p.add_argument("--loss", default="forward_kl", help="forward_kl, reverse_kl or jsd (default forward_kl)")
    p.add_argument("--freeze-embeddings", action="store_true", help="keep embeddings / tied lm_head fixed")
    p.add_argument("--eval-tokens", type=int, default=4096, help="held-out tokens for the perplexities (default 4096)")
    p.add_argument("--json", help="also write the numbers to this JSON file")
    args = p.parse_args(argv)

    import torch

    import hfcompress as hfc
    from hfcompress.bench.perplexity import perplexity
    from hfcompress.data import evaluation_token_ids
    from hfcompress.loading import load_model
    from hfcompress.methods.registry import get_adapter

    torch.manual_seed(0)
    t0 = time.perf_counter()
    base = load_model(None)
    ids, what = evaluation_token_ids("default", base.tokenizer, max_tokens=args.eval_tokens)
    ppl = lambda model: perplexity(model, ids, context=512, stride=256)  # noqa: E731
    base_ppl = ppl(base.model)
    del base
    t_base = time.perf_counter() - t0
    print(f"base      ppl {base_ppl:8.3f}   ({len(ids)} held-out tokens of {what}; {t_base:.0f} s)", flush=True)

    # The recipe [StructuredPruneConfig, DistillConfig] run as CompressedModel runs it, with the pruned model
    # measured in between: the distillation step is the same adapter call the recipe makes.
    prune = hfc.StructuredPruneConfig(target="neurons", ratio=args.ratio, importance=args.importance)
    distill = hfc.DistillConfig(
        steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len, learning_rate=args.lr, alpha=args.alpha,
        temperature=args.temperature, loss=args.loss, freeze_embeddings=args.freeze_embeddings, warmup=0.1,
        eval_every=0, eval_tokens=args.seq_len, save_every=max(args.steps // 2, 1),
    )
    t1 = time.perf_counter()
    cm = hfc.CompressedModel.from_pretrained(None, recipe=prune, num_samples=args.calib_samples, seq_len=256)
    t_prune = time.perf_counter() - t1
    pruned_ppl = ppl(cm.model)
    print(f"pruned    ppl {pruned_ppl:8.3f}   ({args.ratio:.0%} of MLP neurons, {cm.steps[-1].info['parameters_after'] / 1e6:.1f} M params; "
          f"prune {t_prune:.0f} s)", flush=True)

    from hfcompress.data import load_calibration

    t2 = time.perf_counter()
    calib = load_calibration("default", cm.tokenizer, num_samples=8, seq_len=256, seed=0)
    cm.model.hfcompress_source = cm.source
    model, info = get_adapter(distill).compress(cm.model, cm.tokenizer, distill, calib)
    t_distill = time.perf_counter() - t2
    distilled_ppl = ppl(model)
    recovered = (pruned_ppl - distilled_ppl) / (pruned_ppl - base_ppl) if pruned_ppl > base_ppl else float("nan")
    tokens = args.steps * args.batch_size * args.seq_len
    print(f"distilled ppl {distilled_ppl:8.3f}   ({args.steps} steps x {args.batch_size} x {args.seq_len} tokens = {tokens} tokens; "
          f"distill {t_distill:.0f} s, {tokens / info['train_seconds']:.0f} tokens/s)", flush=True)
    print(f"recovered {recovered:.1%} of the perplexity pruning lost; prune + distill {t_prune + t_distill:.0f} s, "
          f"whole script {time.perf_counter() - t0:.0f} s", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "base_ppl": base_ppl, "pruned_ppl": pruned_ppl, "distilled_ppl": distilled_ppl,
                       "recovered": recovered, "prune_seconds": t_prune, "distill_seconds": t_distill,
                       "losses": info["losses"], "eval_before": info["eval_before"], "eval_after": info["eval_after"]}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
