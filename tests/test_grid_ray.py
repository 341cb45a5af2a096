"""Grids on Ray: a local Ray (2 CPUs) runs a tiny grid; the variants equal the serial run's; a failure stays one variant's."""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")

import hfcompress as hfc  # noqa: E402

EVAL = dict(eval_data=[["The river ran past the old mill and into the town. " * 30]], max_tokens=256, context=64, stride=32,
            speed=False, generations=False, tasks=[], kl=True)
GRID = {
    "variants": {
        "magnitude-50": [{"prune": {"method": "magnitude", "sparsity": 0.5}}],
        "rtn-int8": [{"rtn": {"bits": 8, "group_size": -1}}],
        # 48 does not divide the tiny model's width (64): this variant fails inside its Ray task.
        "rtn-bad-group": [{"rtn": {"bits": 4, "group_size": 48}}],
    },
    "evaluate": EVAL,
}


def _deterministic(result: dict) -> dict:
    m = result["metrics"]
    return {"recipe": result["variant"]["recipe"], "format": result["variant"]["format"],
            "sparsity": m.get("sparsity", {}).get("value"), "bits": m["bits_per_weight"]["value"],
            "perplexity": round(m["perplexity"]["value"], 3), "base": round(m["perplexity"]["base"], 3),
            "kl": round(m["kl_divergence"]["value"], 6)}


def test_ray_grid_equals_the_serial_run_and_reports_a_failed_variant(tiny_llama_dir, tmp_path):
    serial = hfc.run_grid(GRID, str(tiny_llama_dir), tmp_path / "serial", progress=False)
    assert serial.computed == ["magnitude-50", "rtn-int8"] and list(serial.failed) == ["rtn-bad-group"]

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        out = tmp_path / "ray"
        on_ray = hfc.run_grid(GRID, str(tiny_llama_dir), out, executor="ray", progress=False)
        assert sorted(on_ray.computed) == ["magnitude-50", "rtn-int8"]
        assert list(on_ray.failed) == ["rtn-bad-group"] and "48" in on_ray.failed["rtn-bad-group"]
        assert on_ray.failed["rtn-bad-group"] == serial.failed["rtn-bad-group"]
        assert [_deterministic(r) for r in on_ray.results] == [_deterministic(r) for r in serial.results]
        # The same folders (the very same weights), card, results, and one comparison with the failure in it.
        for name in ("magnitude-50", "rtn-int8"):
            assert sorted(p.name for p in (out / name).iterdir()) == sorted(p.name for p in (tmp_path / "serial" / name).iterdir())
            assert (out / name / "model.safetensors").read_bytes() == (tmp_path / "serial" / name / "model.safetensors").read_bytes()
        assert "rtn-bad-group: failed" in (out / "comparison.md").read_text()
        assert (out / "tradeoffs.md").is_file() and (out / "comparison.csv").is_file()
        assert len(json.loads((out / ".base-cache.json").read_text())) == 1  # the base was measured once
        assert not [p for p in out.iterdir() if p.name.startswith(".hfcompress-driver-")]

        # Resume: finished variants are not dispatched again; only the failed one runs again (and fails again).
        again = hfc.run_grid(GRID, str(tiny_llama_dir), out, executor="ray", progress=False)
        assert sorted(again.resumed) == ["magnitude-50", "rtn-int8"] and not again.computed and list(again.failed) == ["rtn-bad-group"]
    finally:
        ray.shutdown()


def test_ray_task_gathers_the_folder_when_the_runs_folder_is_not_shared(tiny_llama_dir, tmp_path):
    # A worker that does not see the driver's marker file (another node, no shared storage) sends the folder back.
    from hfcompress.grid import _pack, _ray_task, _unpack, plan_grid

    grid = {"variants": {"magnitude-50": [{"prune": {"method": "magnitude", "sparsity": 0.5}}]}, "evaluate": EVAL}
    plan, variants, _ = plan_grid(grid, str(tiny_llama_dir), tmp_path / "worker", progress=False)
    outcome, cache, archive = _ray_task(plan, variants["magnitude-50"], {}, ".hfcompress-driver-not-here")
    assert outcome.status == "computed" and cache and archive is not None
    _unpack(archive, tmp_path / "head", "magnitude-50")
    assert sorted(p.name for p in (tmp_path / "head" / "magnitude-50").iterdir()) == sorted(
        p.name for p in (tmp_path / "worker" / "magnitude-50").iterdir())
    assert _pack(tmp_path / "head" / "magnitude-50")  # and it packs again


def test_ray_errors_are_one_line(tiny_llama_dir, tmp_path, monkeypatch):
    import builtins

    from hfcompress.errors import HFCompressError

    with pytest.raises(HFCompressError, match="unknown executor 'dask'"):
        hfc.run_grid(GRID, str(tiny_llama_dir), tmp_path / "a", executor="dask")
    with pytest.raises(HFCompressError, match="executor='ray'"):
        hfc.run_grid(GRID, str(tiny_llama_dir), tmp_path / "a", address="auto")
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(HFCompressError, match=r"pip install 'hfcompress\[ray\]'"):
        hfc.run_grid(GRID, str(tiny_llama_dir), tmp_path / "b", executor="ray")
    assert not (tmp_path / "b").exists()  # nothing was written before the error


@pytest.mark.slow
def test_cli_grid_on_a_local_ray_started_for_the_run(tiny_llama_dir, tmp_path, capsys):
    import yaml

    from hfcompress.cli import main

    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"variants": {k: GRID["variants"][k] for k in ("magnitude-50", "rtn-int8")}, "evaluate": EVAL}))
    assert not ray.is_initialized()
    code = main(["grid", str(grid), str(tiny_llama_dir), "-o", str(tmp_path / "runs"), "--executor", "ray", "--cpus-per-variant", "1"])
    assert code == 0 and not ray.is_initialized()  # the Ray started for the run was shut down
    out = capsys.readouterr().out
    assert "2 computed" in out and "| magnitude-50 |" in out
