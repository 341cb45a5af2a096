"""How time and memory grow with model size: hfcompress against llm-compressor's ``oneshot`` called directly.

Random-weight Llama-shaped models (time and memory depend on shapes, not on trained weights) at three sizes,
float32, saved as safetensors folders with a byte-level tokenizer. For each method and size, two fresh
processes, one after the other, each doing the whole job from the saved folder:

- hfcompress: ``CompressedModel.from_pretrained(folder, recipe=[config], calibration=texts)`` then
  ``save_pretrained`` (validation, calibration sampling, provenance, the compressed save, the card);
- direct: transformers ``from_pretrained`` + ``oneshot`` with the very modifiers our adapter builds for that
  config, on the same calibration samples, then llm-compressor's own ``save_pretrained(save_compressed=True)``.

Each process reports its wall time from before loading to after saving, and its peak RSS (``VmHWM``, which
includes the imports: the figure a user's machine must hold); the import-only RSS is reported too. Ratios are
hfcompress / direct; the growth is the slope of log(value) against log(parameters) between the sizes.

Run (about 30-60 minutes on 2 cores):
    nohup python benchmarks/scaling.py > /tmp/scaling.log 2>&1 &
    python benchmarks/scaling.py --sizes s --methods rtn          # a quick look
Writes benchmarks/results/scaling.json and scaling.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

# name -> Llama shape (vocab 32000, untied embeddings, head dim 64); parameters are computed from the built model.
SIZES: dict[str, dict[str, int]] = {
    "s": dict(hidden_size=384, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=6, num_key_value_heads=2),
    "m": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=8, num_attention_heads=12, num_key_value_heads=4),
    "l": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=20, num_attention_heads=16, num_key_value_heads=8),
}
VOCAB = 32000
METHODS = {
    "rtn": {"rtn": {"bits": 4, "group_size": 128}},
    "wanda": {"prune": {"method": "wanda", "sparsity": 0.5}},
    "gptq": {"gptq": {"bits": 4, "group_size": 128}},
}


def build(folder: Path, size: str) -> int:
    """A random Llama of ``size`` with a byte-level tokenizer in ``folder``; returns its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from hfcompress.testing import tiny_tokenizer

    if (folder / "config.json").is_file():
        return json.loads((folder / "params.json").read_text())["parameters"]
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, max_position_embeddings=2048, tie_word_embeddings=False, **SIZES[size])
    model = LlamaForCausalLM(config)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder, safe_serialization=True)
    tiny_tokenizer(vocab=256, kind="bytes").save_pretrained(folder)
    (folder / "params.json").write_text(json.dumps({"parameters": params}))
    return params


def _texts() -> list[str]:
    from hfcompress.data import read_texts

    texts, _ = read_texts("default")
    return list(texts)


def child(job: dict[str, Any]) -> dict[str, Any]:
    """One measured run, in its own process: load, compress and save; wall time and peak RSS."""
    import hfcompress as hfc
    from hfcompress.config import CompressionConfig
    from hfcompress.data import load_calibration

    # Both sides import the backend before the clock starts (hfcompress would import it lazily, inside the timed
    # work): the times compare the work, not who pays the ~5 s import of llm-compressor.
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import_rss = _peak_rss()
    texts = _texts()
    config = CompressionConfig.from_dict({"kind": next(iter(job["recipe"])), **next(iter(job["recipe"].values()))})
    out = Path(job["out"])
    started = time.perf_counter()
    if job["side"] == "hfcompress":
        cm = hfc.CompressedModel.from_pretrained(job["folder"], recipe=[config], calibration=texts,
                                                 num_samples=job["samples"], seq_len=job["seq_len"])
        cm.save_pretrained(out)
    else:
        from hfcompress.methods.registry import get_adapter

        model = AutoModelForCausalLM.from_pretrained(job["folder"], dtype="float32")
        tokenizer = AutoTokenizer.from_pretrained(job["folder"])
        adapter = get_adapter(config)
        modifiers = adapter.modifiers(model, config)
        kwargs: dict[str, Any] = {}
        if config.needs_calibration:
            calibration = load_calibration(texts, tokenizer, num_samples=job["samples"], seq_len=job["seq_len"])
            kwargs = dict(dataset=calibration.to_dataset(), num_calibration_samples=len(calibration.input_ids),
                          max_seq_length=job["seq_len"], shuffle_calibration_samples=False)
        oneshot(model=model, tokenizer=tokenizer, recipe=modifiers, **kwargs)
        quantized = adapter.save_format == "compressed-tensors"
        model.save_pretrained(out, save_compressed=quantized, safe_serialization=True) if quantized else \
            type(model).save_pretrained(model, out, safe_serialization=True)
        tokenizer.save_pretrained(out)
    seconds = time.perf_counter() - started
    peak = _peak_rss()
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {"seconds": seconds, "peak_rss": peak, "import_rss": import_rss, "output_bytes": size}


def _peak_rss() -> int:
    """This process's peak resident memory in bytes: VmHWM, which starts afresh at exec (``ru_maxrss`` would carry
    over the parent's peak from before the fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _run_child(job: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "HFCOMPRESS_QUIET": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:300], "returncode": proc.returncode}
    return json.loads(lines[-1][len("RESULT "):])


def _slope(points: list[tuple[float, float]]) -> float | None:
    # Least-squares slope of log(value) against log(parameters): 1.0 = grows in proportion.
    pts = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx, my = sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den if den else None


def markdown(data: dict[str, Any]) -> str:
    rows = data["rows"]
    lines = [
        f"# Scaling: hfcompress vs llm-compressor `oneshot` called directly ({data['hardware']})",
        "",
        f"Random-weight Llama-shaped models, float32, {data['samples']} calibration samples x {data['seq_len']} tokens; "
        "each figure from its own fresh process (load + compress + save). Peak RSS includes the imports "
        "(import-only RSS in the JSON). Measured " + data["created"] + f"; CPU shared with other work: {data['note']}.",
        "",
        "| method | params (M) | hfcompress time (s) | direct time (s) | time ratio | hfcompress peak RSS (GB) | direct peak RSS (GB) | RSS ratio | fp32 weights (GB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        h, d = r["hfcompress"], r["direct"]
        if "error" in h or "error" in d:
            lines.append(f"| {r['method']} | {r['parameters'] / 1e6:.0f} | {h.get('error', '')} | {d.get('error', '')} | | | | | |")
            continue
        lines.append(f"| {r['method']} | {r['parameters'] / 1e6:.0f} | {h['seconds']:.1f} | {d['seconds']:.1f} | {r['time_ratio']:.3f} | "
                     f"{h['peak_rss'] / 1e9:.2f} | {d['peak_rss'] / 1e9:.2f} | {r['rss_ratio']:.3f} | {r['parameters'] * 4 / 1e9:.2f} |")
    lines += ["", "Growth with parameter count (slope of log value against log parameters; 1.0 = proportional):", "",
              "| method | side | time slope | peak RSS slope | peak RSS above imports slope |", "|---|---|---:|---:|---:|"]
    for g in data["growth"]:
        fmt = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"| {g['method']} | {g['side']} | {fmt(g['time_slope'])} | {fmt(g['rss_slope'])} | {fmt(g['rss_above_imports_slope'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--samples", type=int, default=16, help="calibration samples (default 16)")
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per calibration sample (default 256)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side, alternating; the fastest is kept (default 2)")
    parser.add_argument("--append", action="store_true", help="keep the rows of scaling.json this run does not redo")
    parser.add_argument("--models", default=None, help="folder for the random models (default: a temp folder)")
    parser.add_argument("--note", default="other engineers' tests ran on the same 2 cores", help="recorded in the results")
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return

    models = Path(args.models or tempfile.mkdtemp(prefix="hfcompress-scaling-"))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hfcompress-scaling-out-") as scratch:
        for size in args.sizes:
            folder = models / f"llama-{size}"
            params = build(folder, size)
            print(f"size {size}: {params / 1e6:.1f} M parameters", flush=True)
            for method in args.methods:
                row: dict[str, Any] = {"size": size, "method": method, "parameters": params, "shape": SIZES[size]}
                # Alternate which side goes first, so a slower stretch of the shared machine does not always hit one.
                order = ("hfcompress", "direct") if len(rows) % 2 == 0 else ("direct", "hfcompress")
                runs: dict[str, list[dict[str, Any]]] = {"hfcompress": [], "direct": []}
                for repeat in range(args.repeats):
                    for side in order if repeat % 2 == 0 else order[::-1]:
                        job = {"side": side, "folder": str(folder), "recipe": METHODS[method], "samples": args.samples,
                               "seq_len": args.seq_len, "out": str(Path(scratch) / f"{size}-{method}-{side}-{repeat}")}
                        runs[side].append(_run_child(job))
                        print(f"  {method:<6} {side:<10} {json.dumps(runs[side][-1])}", flush=True)
                for side, measured in runs.items():
                    ok = [m for m in measured if "error" not in m]
                    # The fastest run of each side: the one least slowed by whatever else the machine was doing.
                    row[side] = min(ok, key=lambda m: m["seconds"]) if ok else measured[-1]
                    row[side]["runs_seconds"] = [round(m["seconds"], 2) for m in ok]
                h, d = row["hfcompress"], row["direct"]
                if "error" not in h and "error" not in d:
                    row["time_ratio"] = h["seconds"] / d["seconds"]
                    row["rss_ratio"] = h["peak_rss"] / d["peak_rss"]
                rows.append(row)
                _write(rows, args)
    _write(rows, args, final=True)


def _write(rows: list[dict[str, Any]], args: argparse.Namespace, final: bool = False) -> None:
    from hfcompress.environment import environment_info, hardware_summary

    if args.append and (RESULTS / "scaling.json").is_file():
        done = {(r["size"], r["method"]) for r in rows}
        earlier = [r for r in json.loads((RESULTS / "scaling.json").read_text())["rows"] if (r["size"], r["method"]) not in done]
        rows = sorted(earlier + rows, key=lambda r: (r["parameters"], list(METHODS).index(r["method"])))
    growth = []
    for method in METHODS:
        for side in ("hfcompress", "direct"):
            ok = [r for r in rows if r["method"] == method and "error" not in r[side]]
            growth.append({
                "method": method, "side": side,
                "time_slope": _slope([(r["parameters"], r[side]["seconds"]) for r in ok]),
                "rss_slope": _slope([(r["parameters"], r[side]["peak_rss"]) for r in ok]),
                "rss_above_imports_slope": _slope([(r["parameters"], r[side]["peak_rss"] - r[side]["import_rss"]) for r in ok]),
            })
    data = {"created": time.strftime("%Y-%m-%d %H:%M"), "hardware": hardware_summary(), "environment": environment_info(),
            "samples": args.samples, "seq_len": args.seq_len, "note": args.note, "rows": rows, "growth": growth,
            "command": "python benchmarks/scaling.py " + " ".join(sys.argv[1:]),
            "repeats": args.repeats}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scaling.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / "scaling.md").write_text(markdown(data))
    if final:
        print(markdown(data))


if __name__ == "__main__":
    main()
