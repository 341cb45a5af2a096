"""The grid, bench and push-grid commands as a user types them, on a tiny model and the loopback Hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hub_server import HubServer

from hfcompress.testing import TINY_TEXTS

FAST = ["--max-tokens", "128", "--context", "64", "--stride", "32", "--no-speed", "--no-generations", "--task-items", "5"]


def run_cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "hfcompress.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HFCOMPRESS_QUIET": "1", **(env or {})})


def test_grid_then_bench_then_push_grid(tiny_llama_dir, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("variants:\n  rtn-int8: [{rtn: {bits: 8}}]\n  magnitude-30: [{prune: {method: magnitude, sparsity: 0.3}}]\n")
    runs = tmp_path / "runs"
    out = run_cli("grid", str(grid), str(tiny_llama_dir), "-o", str(runs), *FAST)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| rtn-int8 |" in out.stdout and "| magnitude-30 |" in out.stdout  # the comparison, printed
    assert "technique" in out.stdout and (runs / "tradeoffs.md").is_file()  # and the trade-off table
    assert "backend logs: " in out.stderr and (runs / "hfcompress.log").stat().st_size > 0
    pruned = json.loads((runs / "magnitude-30" / "results.json").read_text())
    assert abs(pruned["metrics"]["sparsity"]["value"] - 0.3) < 0.01 and pruned["metrics"]["task/cloze/acc"]["samples"] == 5

    bench = run_cli("bench", str(runs / "rtn-int8"), "--no-write", "--offline-tasks", "none", *FAST[:-2])
    assert bench.returncode == 0, bench.stderr[-3000:]
    assert "perplexity" in bench.stdout and "cloze" not in bench.stdout

    with HubServer() as hub:
        pushed = run_cli("push-grid", str(runs), "tester", env=hub.env())
        assert pushed.returncode == 0, pushed.stderr[-3000:]
        repos = sorted(hub.repos)
        assert any(r.endswith("-rtn-int8") for r in repos) and any(r.endswith("-magnitude-30") for r in repos)
        for repo in repos:
            files = hub.repos[repo].files()
            assert {"README.md", "results.json", "hfcompress.json", "config.json"} <= set(files)
        assert hub.collections  # grouped in a collection
        assert hub.token.encode() not in b"\n".join(hub.received)


def test_demo_on_a_tiny_model_writes_variants_results_and_the_comparison(tiny_llama_dir, tmp_path, capsys):
    from hfcompress.cli import main
    from hfcompress.demo import DEMO_EVALUATE

    runs = tmp_path / "demo"
    # --model (hidden, for tests) replaces the embedded SmolLM2; the evaluation flags shrink the demo's settings.
    assert main(["demo", "--model", str(tiny_llama_dir), "-o", str(runs), "--only", "rtn-int8,magnitude-50", *FAST]) == 0
    stdout = capsys.readouterr().out
    assert {p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")} == {"rtn-int8", "magnitude-50"}
    for name, kind in (("rtn-int8", "rtn"), ("magnitude-50", "prune")):
        folder = runs / name
        assert {"model.safetensors", "config.json", "tokenizer.json", "hfcompress.json", "results.json", "README.md"} <= {
            p.name for p in folder.iterdir()}
        assert json.loads((folder / "hfcompress.json").read_text())["recipe"][0]["kind"] == kind
        results = json.loads((folder / "results.json").read_text())
        assert results["metrics"]["perplexity"]["base"] > 0 and results["metrics"]["task/cloze/acc"]["samples"] == 5
        # The flags given override the demo's settings; the others stay the demo's.
        assert results["settings"]["max_tokens"] == 128 and results["settings"]["speed_runs"] == DEMO_EVALUATE["speed_runs"]
        assert results["settings"]["batch_size"] == DEMO_EVALUATE["batch_size"]
    pruned = json.loads((runs / "magnitude-50" / "results.json").read_text())["metrics"]
    assert abs(pruned["sparsity"]["value"] - 0.5) < 0.01
    quantized = json.loads((runs / "rtn-int8" / "results.json").read_text())["metrics"]
    assert quantized["size_on_disk"]["value"] < 0.7 * quantized["size_on_disk"]["base"]

    table = [line for line in (runs / "comparison.md").read_text().splitlines() if line.startswith("| ")]
    assert table[1].startswith("| base: ") and [line.split(" | ")[0][2:] for line in table[2:]] == ["rtn-int8", "magnitude-50"]
    assert len((runs / "comparison.csv").read_text().splitlines()) == 4  # header, base, two variants
    assert (runs / "tradeoffs.md").is_file() and (runs / "size_vs_perplexity.png").stat().st_size > 5_000
    # The demo prints the comparison and the trade-off table.
    assert "| rtn-int8 | RTN 8-bit |" in stdout and "| magnitude-50 |" in stdout and "| technique |" in stdout
    assert "2 computed, 0 kept from before, 0 skipped, 0 failed" in stdout


def test_the_demos_combined_pipeline_prunes_recovers_then_quantizes_last(tmp_path):
    import dataclasses

    import hfcompress as hfc
    from hfcompress.demo import demo_grid
    from hfcompress.methods.backends import llamacpp
    from hfcompress.testing import build_tiny_model

    if llamacpp.unavailable_reason(imatrix=True):
        pytest.skip(f"llama.cpp is not installed here: {llamacpp.INSTALL_HINT}")
    # SmolLM2's tokenizer (llama.cpp's converter knows it) and rows of 256 (K-quants' block).
    model = build_tiny_model(tmp_path / "tiny", "llama", hidden=256, intermediate=512, tokenizer="smollm2")
    recipe = demo_grid()["variants"]["pipeline-neurons20-distill-q4_k_m"]
    assert [type(s).__name__ for s in recipe] == ["StructuredPruneConfig", "DistillConfig", "GGUFConfig"]  # quantization last
    recipe[1] = dataclasses.replace(recipe[1], steps=2, seq_len=32, eval_tokens=64)  # the demo's 30 steps take minutes here
    cm = hfc.CompressedModel.from_pretrained(str(model), recipe=recipe, calibration=list(TINY_TEXTS), num_samples=4, seq_len=64)
    folder = cm.save_pretrained(tmp_path / "pipeline")
    manifest = json.loads((folder / "hfcompress.json").read_text())
    pruned, distilled, _ = manifest["steps"]
    # 20% of 512 neurons is 102.4; the width kept is rounded to llama.cpp's 32-weight blocks: 416.
    assert pruned["info"]["intermediate_size"] == 416 and pruned["parameters_after"] < pruned["parameters_before"]
    tensors = llamacpp.read_header(next(folder.glob("*.gguf")))[1]
    ffn_down = [t for t in tensors if t.name.endswith("ffn_down.weight")]
    assert ffn_down and all(416 in t.shape for t in ffn_down)
    # Every MLP weight is quantized (416 is no multiple of K-quants' 256: llama.cpp falls back to a 32-block type, not F16).
    mlp = [t for t in tensors if t.name.endswith(("ffn_down.weight", "ffn_up.weight", "ffn_gate.weight"))]
    assert len(mlp) == 3 * len(ffn_down) and all(t.type not in ("F32", "F16", "BF16") for t in mlp)
    card = (folder / "README.md").read_text()
    assert "| structured_prune |" in card and "| distill |" in card and "| gguf |" in card and "KL to the base" in card
