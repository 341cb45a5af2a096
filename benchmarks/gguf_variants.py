"""GGUF variants of the embedded SmolLM2-135M-Instruct, measured where users run them: llama.cpp.

Each type is written through hfcompress (llama.cpp's converter, importance matrix and quantizer) and measured by
llama.cpp next to the base converted to F16 and measured the same way in the same run: perplexity and KL to F16 on
the same held-out tokens (the default corpus), prefill and decode tokens/s at batch 1 with threads = cores (median
of runs alternating with F16's, with the spread), peak memory, file size, bits per weight. The transformers base is
measured too (one row), so the CPU speed-up over what users run without GGUF shows, named by engine.

Run on a quiet machine (llama.cpp with two threads on two cores slows badly when anything else runs):
    python benchmarks/gguf_variants.py                     # about 30 minutes on 2 cores
    python benchmarks/gguf_variants.py --only q4km-imatrix q8
Writes benchmarks/results/gguf.json and gguf.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import hfcompress as hfc
from hfcompress.bench import EvalSettings, evaluate
from hfcompress.environment import environment_info

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {
    "f16": hfc.GGUFConfig(quant="F16"),
    "q8": hfc.GGUFConfig(quant="Q8_0"),
    "q6k": hfc.GGUFConfig(quant="Q6_K", imatrix=False),
    "q5km-imatrix": hfc.GGUFConfig(quant="Q5_K_M", imatrix=True),
    "q4km": hfc.GGUFConfig(quant="Q4_K_M", imatrix=False),
    "q4km-imatrix": hfc.GGUFConfig(quant="Q4_K_M", imatrix=True),
    "iq4nl-imatrix": hfc.GGUFConfig(quant="IQ4_NL", imatrix=True),
    "q4_0": hfc.GGUFConfig(quant="Q4_0", imatrix=False),
}
# The held-out text and timing of the other benchmarks (4,096 tokens, window 1024, stride 512).
SETTINGS = dict(max_tokens=4096, context=1024, stride=512, speed_runs=7, warmup=2, prompt_tokens=128, new_tokens=64,
                generations=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="variant names to run")
    parser.add_argument("--out", default="runs/bench-gguf", help="runs folder (variants are kept there)")
    parser.add_argument("--num-samples", type=int, default=64, help="calibration samples of 512 tokens for the importance matrix")
    args = parser.parse_args()
    out = Path(args.out)
    started = time.perf_counter()
    grid = {"variants": {name: [config] for name, config in VARIANTS.items() if not args.only or name in args.only},
            "num_samples": args.num_samples, "seq_len": 512}
    result = hfc.run_grid(grid, None, out, evaluate_kwargs=SETTINGS, progress=True)
    rows = []
    for res in result.results:
        m = res["metrics"]
        rows.append({
            "variant": res["variant"]["name"], "recipe": res["variant"]["recipe"][0],
            "engine": res["settings"]["engine"],
            **{k: _value(m, k) for k in ("size_on_disk", "bits_per_weight", "bits_per_weight_linear", "perplexity",
                                         "kl_divergence", "kl_divergence_p99", "next_token_agreement",
                                         "prefill_tokens_per_s", "decode_tokens_per_s", "peak_memory", "compress_time")},
            "ratios": {k: m[k].get("ratio") for k in ("perplexity", "size_on_disk", "prefill_tokens_per_s", "decode_tokens_per_s")
                       if k in m},
            "spreads": {k: [m[k].get("spread"), m[k].get("base_spread"), m[k].get("reliable")]
                        for k in ("prefill_tokens_per_s", "decode_tokens_per_s") if k in m},
            "base": {k: m[k].get("base") for k in ("perplexity", "size_on_disk", "prefill_tokens_per_s", "decode_tokens_per_s") if k in m},
        })
    # The same held-out tokens through transformers (float32): what a user runs without GGUF.
    transformers_base = evaluate(hfc.CompressedModel.from_pretrained(None)._subject(), EvalSettings(**SETTINGS), base=False,
                                 name="base (transformers, float32)", progress=True).to_dict()["metrics"]
    report = {"rows": rows, "transformers_base": {k: _value(transformers_base, k) for k in
                                                  ("perplexity", "prefill_tokens_per_s", "decode_tokens_per_s", "peak_memory")},
              "settings": SETTINGS, "calibration": f"{args.num_samples} x 512 tokens (importance matrix)",
              "seconds": round(time.perf_counter() - started), **environment_info()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gguf.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    table = markdown(report)
    (RESULTS / "gguf.md").write_text(table)
    print(table)


def _value(metrics: dict, key: str) -> float | None:
    return (metrics.get(key) or {}).get("value")


def markdown(report: dict) -> str:
    """The README's table: each GGUF type against F16, both run by llama.cpp in the same run."""
    tb = report["transformers_base"]
    lines = ["| variant (llama.cpp) | size (MB) | bits/weight | ppl | ppl × F16 | KL mean | KL p99 | top-1 agree | prefill tok/s | decode tok/s | decode × F16 | decode × transformers |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        unreliable = "" if (r["spreads"].get("decode_tokens_per_s") or [None, None, True])[2] is not False else " (noisy)"
        lines.append(
            f"| {r['variant']} | {r['size_on_disk']:.1f} | {r['bits_per_weight']:.2f} | {r['perplexity']:.2f} | "
            f"{r['ratios'].get('perplexity', 0):.3f} | {r['kl_divergence'] or 0:.4f} | {r['kl_divergence_p99'] or 0:.3f} | "
            f"{r['next_token_agreement'] or 0:.3f} | {r['prefill_tokens_per_s']:.0f} | {r['decode_tokens_per_s']:.1f}{unreliable} | "
            f"{r['ratios'].get('decode_tokens_per_s', 0):.2f} | {r['decode_tokens_per_s'] / tb['decode_tokens_per_s']:.2f} |")
    lines.append(f"| base, transformers float32 | | 32 | {tb['perplexity']:.2f} | | | | | {tb['prefill_tokens_per_s']:.0f} | "
                 f"{tb['decode_tokens_per_s']:.1f} | | 1.00 |")
    hw = report["hardware"]
    lines += ["", f"F16 = the base converted by llama.cpp's converter, measured by llama.cpp in the same run. "
              f"{report['settings']['max_tokens']} held-out tokens, window {report['settings']['context']}, stride "
              f"{report['settings']['stride']}; speed at batch 1, {hw['cpu_count']} threads, {report['settings']['prompt_tokens']}-token "
              f"prompt, {report['settings']['new_tokens']} new tokens, median of {report['settings']['speed_runs']}+ runs alternating "
              f"with F16's; {hw['cpu_count']} x {hw['cpu']}; {report['calibration']}; {report['seconds']} s in all."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
