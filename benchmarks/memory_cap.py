"""A 1.1B model quantized with GPTQ under a memory cap below its float32 size: the layer-by-layer path, measured.

A random-weight Llama of TinyLlama-1.1B's shape (hidden 2048, MLP 5632, 22 layers, 32 query / 4 KV heads, vocab
32000; 4.4 GB of float32 weights) is saved as a safetensors folder. Each side then runs in its own process inside
a cgroup (v1 memory controller) whose limit is below the float32 weights, so a run that holds the whole model is
killed by the kernel:

- hfcompress: ``CompressedModel.from_pretrained(folder, recipe=[GPTQConfig(...)], max_memory={"cpu": ...})`` and
  ``save_pretrained``: the weights wait on disk and llm-compressor's sequential pipeline onloads one decoder layer
  at a time;
- in-memory (the control): the same hfcompress call without ``max_memory``, which must be killed by the cap;
- direct: llm-compressor called as its docs show for a model larger than memory: ``load_offloaded_model()`` around
  transformers' ``from_pretrained(device_map="auto", max_memory=..., offload_folder=...)``, then ``oneshot`` with
  the same GPTQ modifier and calibration samples, then ``save_pretrained(save_compressed=True)``.

Reported per side: wall time (load + compress + save), peak RSS (VmHWM, imports included), whether the cgroup
killed it, and the saved size; the ratios hfcompress / direct. Needs root (it creates the cgroup).

    python benchmarks/memory_cap.py                       # about 30-40 minutes on 2 cores
    python benchmarks/memory_cap.py --cap-gb 3 --max-memory-gb 1 --samples 8 --seq-len 128
Writes benchmarks/results/memory_cap.json and memory_cap.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SHAPE = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
             num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048, tie_word_embeddings=False)
CGROUP_ROOT = Path("/sys/fs/cgroup/memory")


def build(folder: Path, layers: int) -> int:
    """The random 1.1B Llama in ``folder`` (built once, in this process, before any cap); its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from hfcompress.testing import tiny_tokenizer

    if (folder / "params.json").is_file():
        return json.loads((folder / "params.json").read_text())["parameters"]
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**{**SHAPE, "num_hidden_layers": layers}))
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder, safe_serialization=True)
    tiny_tokenizer(vocab=256, kind="bytes").save_pretrained(folder)
    (folder / "params.json").write_text(json.dumps({"parameters": params}))
    return params


def child(job: dict[str, Any]) -> dict[str, Any]:
    """One capped run: load, GPTQ, save; wall time and peak RSS."""
    import hfcompress as hfc
    from hfcompress.data import load_calibration, read_texts
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = list(read_texts("default")[0])
    config = hfc.GPTQConfig(bits=4, group_size=128)
    max_memory = {"cpu": int(job["max_memory_gb"] * 1e9)}
    out, offload = Path(job["out"]), Path(job["offload"])
    started = time.perf_counter()
    if job["side"] in ("hfcompress", "in-memory"):
        offloading = dict(max_memory=max_memory, offload_folder=offload) if job["side"] == "hfcompress" else {}
        cm = hfc.CompressedModel.from_pretrained(job["folder"], recipe=[config], calibration=texts, num_samples=job["samples"],
                                                 seq_len=job["seq_len"], **offloading)
        cm.save_pretrained(out)
    else:
        from compressed_tensors.offload import load_offloaded_model

        from hfcompress.methods.registry import get_adapter

        with load_offloaded_model():
            model = AutoModelForCausalLM.from_pretrained(job["folder"], dtype="float32", device_map="auto",
                                                         max_memory=max_memory, offload_folder=str(offload))
        tokenizer = AutoTokenizer.from_pretrained(job["folder"])
        calibration = load_calibration(texts, tokenizer, num_samples=job["samples"], seq_len=job["seq_len"])
        oneshot(model=model, tokenizer=tokenizer, recipe=get_adapter(config).modifiers(model, config),
                dataset=calibration.to_dataset(), num_calibration_samples=len(calibration.input_ids),
                max_seq_length=job["seq_len"], shuffle_calibration_samples=False)
        model.save_pretrained(out, save_compressed=True, safe_serialization=True, max_shard_size="5GB")
        tokenizer.save_pretrained(out)
    seconds = time.perf_counter() - started
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return {"seconds": seconds, "peak_rss": _peak_rss(), "output_bytes": size}


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _run_capped(job: dict[str, Any], cap_bytes: int) -> dict[str, Any]:
    """Run ``job`` in a child process inside a fresh memory cgroup limited to ``cap_bytes``."""
    group = CGROUP_ROOT / f"hfcompress-cap-{os.getpid()}-{job['side']}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(cap_bytes))

        def enter() -> None:  # runs in the child before exec: everything it loads is charged to the cgroup
            (group / "cgroup.procs").write_text(str(os.getpid()))

        env = {**os.environ, "HFCOMPRESS_QUIET": "1", "TQDM_DISABLE": "1", "HFCOMPRESS_SKIP_MEMORY_CHECK": "1"}
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], capture_output=True, text=True,
                              env=env, preexec_fn=enter)
        oom_killed = "oom_kill 1" in (group / "memory.oom_control").read_text() or proc.returncode == -9
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]
            return {"error": "killed by the memory cap" if oom_killed else tail, "returncode": proc.returncode, "oom_killed": oom_killed}
        return {**json.loads(lines[-1][len("RESULT "):]), "oom_killed": False}
    finally:
        group.rmdir()


def markdown(data: dict[str, Any]) -> str:
    lines = [f"# GPTQ of a {data['parameters'] / 1e9:.2f} B model under a {data['cap_gb']:g} GB memory cap ({data['hardware']})", "",
             f"float32 weights {data['parameters'] * 4 / 1e9:.1f} GB; max_memory {data['max_memory_gb']:g} GB of weights in memory, "
             f"the rest offloaded to disk; GPTQ W4 g128, {data['samples']} calibration samples x {data['seq_len']} tokens; "
             f"measured {data['created']}; {data['note']}.", "",
             "| side | wall time (s) | peak RSS (GB) | killed by the cap | saved (GB) |", "|---|---:|---:|---|---:|"]
    for side in ("hfcompress", "direct", "in-memory"):
        if side not in data:
            continue
        r = data[side]
        if "error" in r:
            lines.append(f"| {side} | {r['error']} | | {r['oom_killed']} | |")
        else:
            lines.append(f"| {side} | {r['seconds']:.0f} | {r['peak_rss'] / 1e9:.2f} | no | {r['output_bytes'] / 1e9:.2f} |")
    if "time_ratio" in data:
        lines += ["", f"hfcompress / direct: time x{data['time_ratio']:.3f}, peak RSS x{data['rss_ratio']:.3f}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--cap-gb", type=float, default=3.0, help="cgroup memory limit (default 3 GB: below the 4.4 GB of float32 weights)")
    parser.add_argument("--max-memory-gb", type=float, default=1.0, help="weights kept in memory (default 1 GB)")
    parser.add_argument("--samples", type=int, default=8, help="calibration samples (default 8)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per calibration sample (default 128)")
    parser.add_argument("--models", default=None, help="folder for the random model (default: a temp folder)")
    parser.add_argument("--layers", type=int, default=SHAPE["num_hidden_layers"], help="decoder layers (default 22; fewer for a quick look)")
    parser.add_argument("--sides", nargs="+", default=["in-memory", "hfcompress", "direct"], choices=["in-memory", "hfcompress", "direct"])
    parser.add_argument("--note", default="other work shared the 2 cores", help="recorded in the results")
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return
    from hfcompress.environment import environment_info, hardware_summary

    folder = Path(args.models or tempfile.mkdtemp(prefix="hfcompress-cap-")) / f"llama-{args.layers}-layers"
    params = build(folder, args.layers)
    print(f"{params / 1e9:.3f} B parameters, float32 {params * 4 / 1e9:.1f} GB; cap {args.cap_gb:g} GB", flush=True)
    data: dict[str, Any] = {"created": time.strftime("%Y-%m-%d %H:%M"), "hardware": hardware_summary(),
                            "environment": environment_info(), "parameters": params, "shape": {**SHAPE, "num_hidden_layers": args.layers}, "cap_gb": args.cap_gb,
                            "max_memory_gb": args.max_memory_gb, "samples": args.samples, "seq_len": args.seq_len,
                            "note": args.note, "seed": 0, "command": "python benchmarks/memory_cap.py " + " ".join(sys.argv[1:])}
    with tempfile.TemporaryDirectory(prefix="hfcompress-cap-out-") as scratch:
        for side in args.sides:
            job = {"side": side, "folder": str(folder), "samples": args.samples, "seq_len": args.seq_len,
                   "max_memory_gb": args.max_memory_gb, "out": str(Path(scratch) / side), "offload": str(Path(scratch) / f"{side}-offload")}
            data[side] = _run_capped(job, int(args.cap_gb * 1e9))
            print(f"  {side:<10} {json.dumps(data[side])}", flush=True)
    h, d = data.get("hfcompress", {}), data.get("direct", {})
    if h and d and "error" not in h and "error" not in d:
        data["time_ratio"], data["rss_ratio"] = h["seconds"] / d["seconds"], h["peak_rss"] / d["peak_rss"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "memory_cap.json").write_text(json.dumps(data, indent=2) + "\n")
    (RESULTS / "memory_cap.md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
