"""The grid, bench and push-grid commands as a user types them, on a tiny model and the loopback Hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hub_server import HubServer

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
