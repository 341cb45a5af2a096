"""Pruning and low-rank quality on the embedded SmolLM2-135M: perplexity ratio vs the FP model, parameters, time.

Every variant starts from a fresh copy of the same base model, goes through the same adapter code as
``CompressedModel.from_pretrained(None, recipe=...)``, and is scored on the same held-out tokens
(``hfcompress.data.evaluation_token_ids``; never used for calibration) against the FP model of this process.

Run (about 20-30 minutes on 2 shared cores; one variant at a time, so the CPU is shared politely):
    nohup python benchmarks/pruning_quality.py --json benchmarks/results/pruning_quality.json > pruning.log 2>&1 &
    python benchmarks/pruning_quality.py --only fp,magnitude-50,wanda-50          # a subset
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HFCOMPRESS_QUIET", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

import hfcompress as hfc  # noqa: E402
from hfcompress.bench.perplexity import perplexity  # noqa: E402
from hfcompress.config import target_linear_layers  # noqa: E402
from hfcompress.data import evaluation_token_ids, load_calibration  # noqa: E402
from hfcompress.environment import environment_info  # noqa: E402
from hfcompress.loading import load_model  # noqa: E402
from hfcompress.methods.pruning import restore_sparsity_masks  # noqa: E402
from hfcompress.methods.registry import get_adapter  # noqa: E402


def _per_layer_magnitude(model: Any, tokenizer: Any, calibration: Any, sparsity: float) -> dict[str, Any]:
    """Reference only: one |w| threshold per layer (not per output row), to compare with the shipped per-row rule."""
    with torch.no_grad():
        for layer in target_linear_layers(model).values():
            w = layer.weight
            k = int(w.numel() * sparsity)
            threshold = w.abs().flatten().kthvalue(k).values
            w.masked_fill_(w.abs() <= threshold, 0)
    return {}


def _recipe_runner(recipe: list[Any]) -> Callable[[Any, Any, Any], dict[str, Any]]:
    def run(model: Any, tokenizer: Any, calibration: Any) -> dict[str, Any]:
        info: dict[str, Any] = {}
        for step in recipe:
            step.validate_for_model(model)
            result = get_adapter(step).compress(model, tokenizer, step, calibration if step.needs_calibration else None)
            model, step_info = result if isinstance(result, tuple) else (result, {})
            if step.kind != "prune" and (restored := restore_sparsity_masks(model)):
                step_info = {**step_info, "sparsity_mask_restored": restored}
            info.update(step_info or {})
        return info

    return run


VARIANTS: dict[str, Any] = {
    # The table first, then comparisons that chose the defaults.
    "fp": [],
    "magnitude-30": [hfc.PruneConfig(method="magnitude", sparsity=0.3)],
    "magnitude-50": [hfc.PruneConfig(method="magnitude", sparsity=0.5)],
    "magnitude-70": [hfc.PruneConfig(method="magnitude", sparsity=0.7)],
    "wanda-30": [hfc.PruneConfig(method="wanda", sparsity=0.3)],
    "wanda-50": [hfc.PruneConfig(method="wanda", sparsity=0.5)],
    "wanda-70": [hfc.PruneConfig(method="wanda", sparsity=0.7)],
    "sparsegpt-50": [hfc.PruneConfig(method="sparsegpt", sparsity=0.5)],
    "wanda-2:4": [hfc.PruneConfig(method="wanda", pattern="2:4")],
    "sparsegpt-2:4": [hfc.PruneConfig(method="sparsegpt", pattern="2:4")],
    "neurons-25": [hfc.StructuredPruneConfig(target="neurons", ratio=0.25)],
    "layers-4of30": [hfc.StructuredPruneConfig(target="layers", count=4)],
    "lowrank-energy0.9": [hfc.LowRankConfig(energy=0.9, activation_aware=False)],
    "lowrank-energy0.9-asvd": [hfc.LowRankConfig(energy=0.9, activation_aware=True)],
    "magnitude-50-per-layer": lambda m, t, c: _per_layer_magnitude(m, t, c, 0.5),
    "heads-1of3": [hfc.StructuredPruneConfig(target="heads", count=1)],
    "sparsegpt-2:4+gptq-w4g64": [hfc.PruneConfig(method="sparsegpt", pattern="2:4"), hfc.GPTQConfig(bits=4, group_size=64)],
    "sparsegpt-50-damp0.1": [hfc.PruneConfig(method="sparsegpt", sparsity=0.5, dampening_frac=0.1)],
    "lowrank-energy0.95-asvd": [hfc.LowRankConfig(energy=0.95, activation_aware=True)],
}


def _zeros(model: Any) -> float:
    layers = target_linear_layers(model)
    zeros = sum(int((l.weight == 0).sum()) for l in layers.values())
    return zeros / max(sum(l.weight.numel() for l in layers.values()), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=4096, help="held-out tokens scored (default 4096)")
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--stride", type=int, default=256)
    parser.add_argument("--samples", type=int, default=128, help="calibration samples (default 128, as the API)")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--only", default=None, help="comma-separated variant names (default all): " + ",".join(VARIANTS))
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    names = list(VARIANTS) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    if "fp" not in names:
        names.insert(0, "fp")

    loaded = load_model(None)
    base, tokenizer = loaded.model, loaded.tokenizer
    ids, description = evaluation_token_ids("default", tokenizer, max_tokens=args.tokens)
    calibration = load_calibration("default", tokenizer, num_samples=args.samples, seq_len=args.seq_len, seed=0)
    print(f"eval: {ids.numel()} tokens of {description}; calibration: {len(calibration.input_ids)} x {args.seq_len} tokens", flush=True)

    rows = []
    fp_ppl = None
    for name in names:
        spec = VARIANTS[name]
        model = copy.deepcopy(base)
        torch.manual_seed(0)
        run = spec if callable(spec) else _recipe_runner(spec)
        started = time.perf_counter()
        info = run(model, tokenizer, calibration)
        seconds = time.perf_counter() - started
        model.eval()
        ppl = perplexity(model, ids, context=args.context, stride=args.stride)
        fp_ppl = ppl if name == "fp" else fp_ppl
        row = {
            "variant": name,
            "perplexity": round(ppl, 3),
            "ppl_ratio": round(ppl / fp_ppl, 3),
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "sparsity": round(_zeros(model), 4),
            "compress_s": round(seconds, 1),
            "nm_violations": info.get("nm_violations"),
            "mask_restored": info.get("sparsity_mask_restored"),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        del model
        if args.json:  # after every row, so a long run that is stopped still leaves its numbers
            _write_json(Path(args.json), rows, ids, description, args, calibration)

    print("\n| variant | ppl | ppl / FP | parameters | sparsity (pruned layers) | compress time |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['perplexity']:.2f} | {r['ppl_ratio']:.2f} | {r['parameters'] / 1e6:.1f} M | {r['sparsity']:.3f} | {r['compress_s']:.0f} s |")
    return 0


def _write_json(out: Path, rows: list[dict[str, Any]], ids: Any, description: str, args: Any, calibration: Any) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"rows": rows, "eval": {"tokens": int(ids.numel()), "dataset": description, "context": args.context, "stride": args.stride},
               "calibration": calibration.summary(), **environment_info()}
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
