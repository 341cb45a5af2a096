"""Grids on a tiny model: resume after an interruption without redoing work, skip what is not installed, compare."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import hfcompress as hfc

from hfcompress.config import CompressionConfig, register_config
from hfcompress.errors import HFCompressError
from hfcompress.methods.registry import CompressionAdapter, StepResult, register_adapter

EVAL = dict(max_tokens=128, context=64, stride=32, speed_runs=1, warmup=0, prompt_tokens=8, new_tokens=2, batch_size=2,
            prompts=["Hello"], max_new_tokens=3)
CALLS: list[float] = []


@register_config("test_shrink")
@dataclass
class ShrinkConfig(CompressionConfig):
    """Test method: scale decoder weights (a cheap, data-free stand-in for a real compression)."""

    factor: float = 0.9


@register_config("test_missing")
@dataclass
class MissingConfig(CompressionConfig):
    """Test method whose only backend is not installed."""


@register_adapter
class ShrinkAdapter(CompressionAdapter):
    name = "test-torch"
    methods = ("test_shrink",)

    def compress(self, model, tokenizer, config, context):
        CALLS.append(config.factor)
        with torch.no_grad():
            for name, module in model.named_modules():
                if isinstance(module, torch.nn.Linear) and ".layers." in name:
                    module.weight.mul_(config.factor)
                    module.weight[:, :: max(int(1 / (1 - config.factor)), 2)] = 0
        return StepResult(model, {"factor": config.factor})


@register_adapter
class MissingAdapter(CompressionAdapter):
    name = "test-missing"
    methods = ("test_missing",)
    required_packages = ("surely_not_an_installed_package_42",)
    extra = "missing"


def _grid():
    return {"variants": {"shrink-90": [ShrinkConfig(0.9)], "shrink-50": [{"test_shrink": {"factor": 0.5}}],
                         "needs-backend": [MissingConfig()]}}


def _pixels_like(png, rgb, tolerance=0.08) -> int:
    """How many pixels of the PNG are close to ``rgb`` (0-255): the plotted markers, not axes or text."""
    import matplotlib.image as mpimg
    import numpy as np

    image = mpimg.imread(png)[..., :3]
    return int((np.abs(image - np.array(rgb) / 255.0).max(axis=-1) < tolerance).sum())


def test_interrupted_grid_resumes_without_recomputing_finished_variants(tiny_llama_dir, tmp_path, monkeypatch):
    import hfcompress as hfc
    import hfcompress.grid as grid_module
    from hfcompress.bench import load_results

    out = tmp_path / "runs"
    real = grid_module.evaluate
    seen: list[str] = []

    def interrupt_second(target, settings, **kw):
        seen.append(kw["name"])
        if len(seen) == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C while the second variant was being measured
        return real(target, settings, **kw)

    CALLS.clear()
    monkeypatch.setattr(grid_module, "evaluate", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        hfc.run_grid(_grid(), str(tiny_llama_dir), out, evaluate_kwargs=EVAL)
    finished = out / "shrink-90" / "results.json"
    assert finished.is_file()
    assert not (out / "shrink-50").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".shrink-50")]  # the partial variant was removed
    assert CALLS == [0.9, 0.5]
    stamp = finished.stat().st_mtime_ns

    monkeypatch.setattr(grid_module, "evaluate", real)
    result = hfc.run_grid(_grid(), str(tiny_llama_dir), out, evaluate_kwargs=EVAL)
    assert CALLS == [0.9, 0.5, 0.5]  # only the unfinished variant was compressed again
    assert finished.stat().st_mtime_ns == stamp
    assert result.resumed == ["shrink-90"] and result.computed == ["shrink-50"]
    assert result.skipped["needs-backend"].startswith("not available") and "surely_not_an_installed_package_42" in result.skipped["needs-backend"]
    print(result.table())

    rows = load_results(out)
    assert sorted(r["variant"]["name"] for r in rows) == ["shrink-50", "shrink-90"]
    for row in rows:
        assert row["metrics"]["perplexity"]["base"] > 0
        assert row["reproduce"].startswith("hfcompress grid ") and "--only " + row["variant"]["name"] in row["reproduce"]
        assert (out / row["variant"]["name"] / "README.md").is_file()
        assert (out / row["variant"]["name"] / "config.json").is_file()
    halved = next(r for r in rows if r["variant"]["name"] == "shrink-50")
    assert halved["metrics"]["sparsity"]["value"] == pytest.approx(0.5, abs=0.01)

    # One comparison: base first, then the variants, in Markdown and CSV; plots a person can read.
    md = (out / "comparison.md").read_text()
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert lines[1].startswith("| base: ") and {"shrink-90", "shrink-50"} <= {line.split(" | ")[0][2:] for line in lines[2:]}
    assert "needs-backend: skipped: not available" in md
    assert "decode b2 (tok/s)" in lines[0] and "decode b8" not in lines[0]  # the batch size that was measured
    csv_lines = (out / "comparison.csv").read_text().splitlines()
    assert csv_lines[0].startswith("variant,recipe,engine,size (MB)") and csv_lines[1].startswith("base: ") and len(csv_lines) == 4
    for name in ("size_vs_perplexity.png", "speed_vs_perplexity.png"):
        png = out / name
        assert png.stat().st_size > 5_000
        # The base model's red star and the blue Pareto-front markers are really drawn.
        assert _pixels_like(png, (214, 39, 40)) > 100 and _pixels_like(png, (31, 119, 180)) > 100
    assert (out / "grid.yaml").is_file() and (out / ".base-cache.json").is_file()
    # The trade-off table: one row per technique, from its variant that kept the most quality.
    kept = {r["variant"]["name"]: 100 * r["metrics"]["perplexity"]["base"] / r["metrics"]["perplexity"]["value"] for r in rows}
    winner = max(kept, key=kept.get)
    trade = [line for line in (out / "tradeoffs.md").read_text().splitlines() if line.startswith("| ")][1:]
    assert len(trade) == 1 and f"| {winner} |" in trade[0] and f"| {kept[winner]:.1f} |" in trade[0]

    # A variant whose recipe was edited since is computed again, not served from its old numbers.
    edited = {"variants": {"shrink-90": [ShrinkConfig(0.8)], "shrink-50": [ShrinkConfig(0.5)]}}
    again = hfc.run_grid(edited, str(tiny_llama_dir), out, evaluate_kwargs=EVAL)
    assert again.computed == ["shrink-90"] and again.resumed == ["shrink-50"]
    assert CALLS[-1] == 0.8
    assert load_results(out / "shrink-90")[0]["variant"]["recipe"][0]["factor"] == 0.8


def test_grid_measures_the_base_once(tiny_llama_dir, tmp_path, monkeypatch):
    import hfcompress as hfc
    import hfcompress.bench.benchmark as bench_evaluate

    loads: list = []
    real_load = bench_evaluate.load_model
    monkeypatch.setattr(bench_evaluate, "load_model", lambda where, **kw: loads.append(str(where)) or real_load(where, **kw))
    grid = {"variants": {"a": [ShrinkConfig(0.9)], "b": [ShrinkConfig(0.8)]}}
    result = hfc.run_grid(grid, str(tiny_llama_dir), tmp_path / "g", evaluate_kwargs={**EVAL, "speed": False})
    assert result.computed == ["a", "b"] and loads == [str(tiny_llama_dir)]  # the base, once for the whole grid
    assert result.results[0]["metrics"]["perplexity"]["base"] == result.results[1]["metrics"]["perplexity"]["base"]


def test_grid_input_errors_are_one_clear_line(tmp_path):
    from hfcompress.grid import parse_grid

    with pytest.raises(HFCompressError, match="variant name"):
        parse_grid({"variants": {"bad name!": [ShrinkConfig()]}})
    with pytest.raises(HFCompressError, match="unknown grid setting 'epochs'"):
        parse_grid({"variants": {"a": [ShrinkConfig()]}, "epochs": 3})
    with pytest.raises(HFCompressError, match="not found"):
        parse_grid(str(tmp_path / "missing.yaml"))
    variants, settings = parse_grid("model: x/y\nvariants:\n  a: {recipe: [{test_shrink: {factor: 0.7}}], num_samples: 8}\n")
    assert variants["a"].recipe == [ShrinkConfig(0.7)] and variants["a"].num_samples == 8 and settings == {"model": "x/y"}


def test_unknown_grid_keys_fail_at_load_time_before_any_variant_is_compressed(tiny_llama_dir, tmp_path):
    import hfcompress as hfc
    from hfcompress.grid import load_grid, parse_grid

    path = tmp_path / "grid.yaml"
    path.write_text("evaluate: {max_token: 2048}\nvariants:\n  a: [{test_shrink: {factor: 0.7}}]\n")
    with pytest.raises(HFCompressError, match=r"grid.yaml: evaluate: unknown evaluation setting 'max_token'; valid: ") as err:
        load_grid(path)
    assert "\n" not in str(err.value)
    with pytest.raises(HFCompressError, match="'evaluate:' must be a mapping"):
        parse_grid({"variants": {"a": [ShrinkConfig()]}, "evaluate": [1, 2]})
    with pytest.raises(HFCompressError, match="evaluate: need 0 < stride <= context"):
        parse_grid({"variants": {"a": [ShrinkConfig()]}, "evaluate": {"stride": 99, "context": 64}})
    CALLS.clear()
    for grid in (path, {"variants": {"a": [ShrinkConfig()]}, "evaluation": {"max_tokens": 64}}):
        with pytest.raises(HFCompressError, match="unknown (evaluation|grid) setting"):
            hfc.run_grid(grid, str(tiny_llama_dir), tmp_path / "runs")
    assert CALLS == [] and not (tmp_path / "runs").exists()  # nothing compressed, no runs folder made


def test_the_tradeoff_table_counts_every_stage_of_a_gradual_pruning():
    from hfcompress.bench.report import tradeoff_rows

    finetune = hfc.DistillConfig(steps=5, batch_size=2, seq_len=64)
    gradual = hfc.PruneConfig(method="magnitude", sparsity=0.7, schedule="gradual", stages=4, finetune=finetune)
    result = {"variant": {"name": "gradual-70", "recipe": [gradual.to_dict()]},
              "metrics": {"perplexity": {"value": 30.0, "base": 15.0}}}
    row, = tradeoff_rows([result])
    # Four stages, each followed by 5 steps of 2 x 64 tokens: the training is distillation, and it is counted whole.
    assert row["technique"] == "pruning + distillation" and row["trained tokens"] == 4 * 5 * 2 * 64
