"""Tensor factorization across layers vs per-matrix SVD on the embedded SmolLM2-135M, at equal parameter count.

Issue 16 asks whether factoring weights stacked across layers (Tucker through tensorly, a shared basis as Basis
Sharing does, CP) beats hfcompress's activation-aware SVD at the same number of parameters. The MLP weights of all
30 layers are factored (gate, up, down: 71% of the non-embedding parameters), each kind as one stack
``layers x out x in``, and every method gets the same parameter budget for them (a fraction of their dense count):

    svd            per matrix W ~ U_r S_r V_r^T                              params r (out + in) per layer
    asvd           the same on W diag(s), s = calibration input RMS per channel (hfcompress's LowRankConfig default)
    basis-sharing  groups of G consecutive layers share the left basis: [W_1 .. W_G] diag(s) ~ B [C_1 .. C_G]
                   (Wang et al. 2024, "Basis Sharing"), params out r + G r in per group
    tucker         Tucker-2 of the stack (layer mode kept): W_l ~ U_out G_l U_in^T, HOOI by tensorly, activation-
                   scaled like asvd, ranks in proportion to out and in, params out r_out + in r_in + L r_out r_in
    cp             CP of the stack at the same budget needs rank R = budget / (L + out + in) (about 9,000-11,000
                   here); tensorly's ALS forms (out x in) x R Khatri-Rao products (over 30 GB): not run, said in the results

Weights are replaced by their reconstructions for the measurement (a real variant would store the factors; the
parameter counts are the factors'). Perplexity on 4,096 held-out tokens, window 512 / stride 256.

    pip install tensorly            # only this benchmark needs it
    python benchmarks/factorization.py                     # budgets 0.9 and 0.75 of the MLP parameters
    python benchmarks/factorization.py --budgets 0.5 --methods asvd,tucker
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HFCOMPRESS_QUIET", "1")
KINDS = ("gate_proj", "up_proj", "down_proj")
METHODS = ("svd", "asvd", "basis-sharing", "tucker")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budgets", default="0.9,0.75", help="kept fraction of the MLP parameters (default 0.9,0.75)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"default {','.join(METHODS)}")
    p.add_argument("--group", type=int, default=2, help="layers per shared basis for basis-sharing (default 2, the paper's best at 20-50%%)")
    p.add_argument("--calib-samples", type=int, default=32, help="calibration samples of 512 tokens for the input scales (default 32)")
    p.add_argument("--json", default=str(Path(__file__).parent / "results" / "factorization.json"))
    p.add_argument("--keep", action="store_true", help="keep the other rows already in --json (rerun some methods or budgets)")
    args = p.parse_args(argv)
    budgets = [float(b) for b in args.budgets.split(",")]
    methods = args.methods.split(",")

    import tensorly
    import torch

    import hfcompress as hfc
    from hfcompress.bench.perplexity import perplexity
    from hfcompress.data import evaluation_token_ids, load_calibration
    from hfcompress.loading import load_model
    from hfcompress.methods.activations import input_channel_energy

    torch.manual_seed(0)
    tensorly.set_backend("pytorch")
    loaded = load_model(None)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    ids, what = evaluation_token_ids("default", tokenizer, max_tokens=4096)
    layers = model.model.layers
    stacks = {kind: [getattr(layer.mlp, kind) for layer in layers] for kind in KINDS}
    originals = {kind: [m.weight.detach().clone() for m in mods] for kind, mods in stacks.items()}
    dense = sum(w.numel() for ws in originals.values() for w in ws)
    calibration = load_calibration("default", tokenizer, num_samples=args.calib_samples, seq_len=512, seed=0)
    t0 = time.perf_counter()
    scales = {}
    for kind, mods in stacks.items():
        # Floored as hfcompress's ASVD floors them, so no channel divides by ~0.
        scales[kind] = [e.sqrt().clamp_min(max(float(e.sqrt().mean()) * 1e-3, 1e-8)) for e in input_channel_energy(model, mods, calibration)]
    print(f"input scales from {len(calibration.input_ids)} x 512 tokens in {time.perf_counter() - t0:.0f} s", flush=True)

    def measure() -> float:
        with torch.no_grad():
            return perplexity(model, ids, context=512, stride=256)

    rows = [{"method": "dense", "budget": 1.0, "mlp_parameters": dense, "ppl": measure(), "seconds": 0.0}]
    out_path = Path(args.json)
    if args.keep and out_path.is_file():  # rows of other methods or budgets from an earlier run stay
        rows += [r for r in json.loads(out_path.read_text())["rows"][1:]
                 if not (r["method"] in methods and r["budget"] in budgets)]
    print(f"dense: ppl {rows[0]['ppl']:.2f}", flush=True)
    for budget in budgets:
        for method in methods:
            t0 = time.perf_counter()
            params = 0
            for kind, mods in stacks.items():
                weights = [w.float() for w in originals[kind]]
                s = scales[kind] if method != "svd" else [torch.ones(w.shape[1]) for w in weights]
                recon, n = FACTOR[method](weights, s, budget, args.group)
                params += n
                for module, w in zip(mods, recon):
                    module.weight.data.copy_(w.to(module.weight.dtype))
            seconds = time.perf_counter() - t0
            ppl = measure()
            rows.append({"method": method, "budget": budget, "mlp_parameters": params, "ppl": ppl, "seconds": round(seconds, 1),
                         **({"group": args.group} if method == "basis-sharing" else {})})
            print(f"{method:14s} budget {budget:.2f}: params {params / dense:.3f} of dense, ppl {ppl:.2f} ({seconds:.0f} s)", flush=True)
            for kind, mods in stacks.items():
                for module, w in zip(mods, originals[kind]):
                    module.weight.data.copy_(w)
            _write(out_path, rows, what, args, hfc.__version__, tensorly.__version__, torch.__version__)
    cp_rank = [math.floor(b * dense / len(KINDS) / (len(layers) + 1536 + 576)) for b in budgets]
    _write(out_path, rows, what, args, hfc.__version__, tensorly.__version__, torch.__version__, cp_rank=cp_rank)
    print(_table(rows))
    return 0


def _svd(weights, scales, budget, group):
    """Per-matrix truncated SVD of W diag(s) (s = 1 for plain SVD), rank from the budget."""
    import torch

    out, n = [], 0
    for w, s in zip(weights, scales):
        r = max(1, int(budget * w.numel() / sum(w.shape)))
        u, sv, vh = torch.linalg.svd(w * s[None, :], full_matrices=False)
        out.append((u[:, :r] * sv[:r]) @ vh[:r] / s[None, :])
        n += r * sum(w.shape)
    return out, n


def _basis_sharing(weights, scales, budget, group):
    """Groups of ``group`` layers: one left basis B (out x r) for all, a coefficient matrix per layer."""
    import torch

    out, n = [], 0
    rows = weights[0].shape[0]
    for start in range(0, len(weights), group):
        ws, ss = weights[start:start + group], scales[start:start + group]
        cols = sum(w.shape[1] for w in ws)
        r = max(1, int(budget * rows * cols / (rows + cols)))
        u, sv, vh = torch.linalg.svd(torch.cat([w * s[None, :] for w, s in zip(ws, ss)], dim=1), full_matrices=False)
        coeff = sv[:r, None] * vh[:r]
        offset = 0
        for w, s in zip(ws, ss):
            out.append(u[:, :r] @ coeff[:, offset:offset + w.shape[1]] / s[None, :])
            offset += w.shape[1]
        n += r * (rows + cols)
    return out, n


def _tucker(weights, scales, budget, group):
    """Tucker-2 of the scaled stack (layers x out x in), layer mode kept: U_out, U_in shared, a core slice per layer."""
    import torch
    from tensorly.decomposition import tucker

    layers, rows, cols = len(weights), *weights[0].shape
    # Ranks in proportion to the sides, r_out = a rows, r_in = a cols: the factors hold a (rows^2 + cols^2) and the
    # core layers a^2 rows cols parameters; solve for the budget.
    dense = layers * rows * cols
    a = (-(rows ** 2 + cols ** 2) + math.sqrt((rows ** 2 + cols ** 2) ** 2 + 4 * dense * budget * dense)) / (2 * dense)
    r_out, r_in = max(1, int(a * rows)), max(1, int(a * cols))
    stack = torch.stack([w * s[None, :] for w, s in zip(weights, scales)])
    core, (u_layer, u_out, u_in) = tucker(stack, rank=[layers, r_out, r_in], init="svd", n_iter_max=10, random_state=0)
    slices = torch.einsum("kab,lk->lab", core, u_layer)  # the layer factor is full rank: fold it into one core slice per layer
    out = [u_out @ slices[i] @ u_in.T / s[None, :] for i, s in enumerate(scales)]
    return out, rows * r_out + cols * r_in + layers * r_out * r_in


FACTOR = {"svd": _svd, "asvd": _svd, "basis-sharing": _basis_sharing, "tucker": _tucker}


def _write(path: Path, rows, what, args, hfc_version, tl_version, torch_version, cp_rank=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "benchmark": "factorization of SmolLM2-135M-Instruct's MLP weights (all 30 layers) at equal parameter count",
        "command": "python benchmarks/factorization.py " + " ".join(sys.argv[1:]),
        "evaluation": f"perplexity on {what}, 4,096 tokens, window 512 / stride 256",
        "calibration": f"input RMS per channel from {args.calib_samples} x 512 tokens of the offline corpus's calibration part",
        "versions": {"hfcompress": hfc_version, "tensorly": tl_version, "torch": torch_version, "python": platform.python_version()},
        "hardware": f"{platform.machine()} CPU, {os.cpu_count()} cores, no GPU", "seed": 0,
        "rows": rows,
    }
    if cp_rank is not None:
        gb = min(cp_rank) * 1536 * 576 * 4 / 1e9
        data["cp"] = (f"not run: CP at these budgets needs ranks {cp_rank} per stack; tensorly's ALS builds (out*in) x rank "
                      f"Khatri-Rao products, {gb:.0f} GB in float32 at the smallest (this machine has 24 GB)")
    path.write_text(json.dumps(data, indent=2) + "\n")
    path.with_suffix(".md").write_text(_table(rows) + "\n")


def _table(rows) -> str:
    dense = rows[0]
    lines = ["| method | MLP parameters kept | ppl | x dense | factor time s |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']}{' (G=%d)' % r['group'] if 'group' in r else ''} | {r['mlp_parameters'] / dense['mlp_parameters']:.3f} | "
                     f"{r['ppl']:.2f} | x{r['ppl'] / dense['ppl']:.2f} | {r['seconds']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
