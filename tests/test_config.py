"""Configs, recipes and YAML: what users write must round-trip, and bad values fail at once with one line."""

from __future__ import annotations

import pytest

import hfcompress as hfc
from hfcompress.config import CompressionConfig, config_kinds
from hfcompress.grid import load_grid
from hfcompress.methods.layers import resolve_group_size
from hfcompress.recipe import as_recipe


ALL_CONFIGS = [
    hfc.RTNConfig(bits=4, group_size=64),
    hfc.GPTQConfig(bits=4, group_size=None, actorder="static"),
    hfc.AWQConfig(group_size=32),
    hfc.PruneConfig(method="sparsegpt", pattern="2:4"),
    hfc.StructuredPruneConfig(target="heads", ratio=0.25, importance="magnitude"),
    hfc.LowRankConfig(rank=16),
    hfc.DistillConfig(steps=10, alpha=0.3, loss="jsd"),
]


@pytest.mark.parametrize("config", ALL_CONFIGS, ids=lambda c: c.kind)
def test_every_config_round_trips_through_dict_and_yaml(config):
    assert CompressionConfig.from_dict(config.to_dict()) == config
    assert hfc.recipe_from_yaml(hfc.recipe_to_yaml([config])) == [config]


def test_recipe_yaml_accepts_both_spellings_and_keeps_order(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("recipe:\n  - prune: {method: wanda, sparsity: 0.5}\n  - kind: gptq\n    bits: 4\n    group_size: 64\n")
    recipe = hfc.load_recipe(path)
    assert recipe == [hfc.PruneConfig(method="wanda", sparsity=0.5), hfc.GPTQConfig(bits=4, group_size=64)]


def test_grid_yaml_round_trips(tmp_path):
    grid = {"rtn-int8": [hfc.RTNConfig()], "wanda-then-gptq": [hfc.PruneConfig(), hfc.GPTQConfig(group_size=64)]}
    path = tmp_path / "grid.yaml"
    path.write_text(hfc.grid_to_yaml(grid))
    assert load_grid(path) == grid


def test_load_grid_reads_variants_with_their_own_settings(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("num_samples: 32\nvariants:\n  rtn-int8: [{rtn: {bits: 8}}]\n"
                    "  awq-4bit:\n    recipe: [{awq: {bits: 4, group_size: 64}}]\n    num_samples: 8\n")
    assert load_grid(path) == {"rtn-int8": [hfc.RTNConfig(bits=8)], "awq-4bit": [hfc.AWQConfig(bits=4, group_size=64)]}
    path.write_text("variants:\n  Bad name: [{rtn: {bits: 8}}]\n")
    with pytest.raises(hfc.HFCompressError, match="variant name"):
        load_grid(path)


def test_nm_pattern_fixes_sparsity():
    assert hfc.PruneConfig(pattern="4:8").sparsity == 0.5
    assert hfc.PruneConfig(pattern="1:4").sparsity == 0.75
    assert hfc.PruneConfig.from_dict(hfc.PruneConfig(pattern="1:4").to_dict()).sparsity == 0.75
    with pytest.raises(hfc.HFCompressError, match="pattern 2:4 means sparsity 0.5, but sparsity=0.7 was asked"):
        hfc.PruneConfig(pattern="2:4", sparsity=0.7)


def test_yaml_values_of_the_wrong_type_fail_or_are_read_as_meant():
    assert hfc.recipe_from_yaml("- gptq: {ignore: lm_head}")[0].ignore == ["lm_head"]
    with pytest.raises(hfc.HFCompressError, match=r"GPTQConfig.block_size='big' must be an integer"):
        hfc.recipe_from_yaml("- gptq: {block_size: big}")
    with pytest.raises(hfc.HFCompressError, match=r"must be a list of layer names"):
        hfc.RTNConfig(ignore=[3])
    with pytest.raises(hfc.HFCompressError, match=r"PruneConfig.sparsity='half' must be a number"):
        hfc.PruneConfig(sparsity="half")


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: hfc.GPTQConfig(bits=3), "does not support bits=3"),
        (lambda: hfc.RTNConfig(group_size=0), "group_size=0 is not valid"),
        (lambda: hfc.PruneConfig(sparsity=1.2), "sparsity=1.2 is out of range"),
        (lambda: hfc.PruneConfig(method="random"), "unknown pruning method"),
        (lambda: hfc.PruneConfig(pattern="4:2"), "N:M needs 0 < N < M"),
        (lambda: hfc.StructuredPruneConfig(target="channels"), "unknown structured target"),
        (lambda: hfc.LowRankConfig(rank=-3, energy=None), "must be a positive integer"),
        (lambda: hfc.DistillConfig(alpha=2), "alpha=2 is out of range"),
        (lambda: CompressionConfig.from_dict({"kind": "magic"}), "unknown compression method 'magic'"),
        (lambda: CompressionConfig.from_dict({"kind": "gptq", "bitz": 4}), "has no option 'bitz'"),
        (lambda: as_recipe([42]), "a recipe step must be a config"),
        (lambda: hfc.recipe_from_yaml("recipe: [gptq: {bits: 4}"), "could not be parsed"),
    ],
)
def test_bad_values_fail_with_one_clear_line(build, message):
    with pytest.raises(hfc.HFCompressError) as info:
        build()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_group_size_is_checked_against_the_model(tiny_llama_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    assert resolve_group_size("auto", model) == 64  # widths 64 and 128: 128 does not divide 64
    assert resolve_group_size(None, model) is None
    with pytest.raises(hfc.HFCompressError, match="does not divide layer width 64.*use group_size=16 or 32 or 64"):
        hfc.GPTQConfig(group_size=128).validate_for_model(model)


def test_every_documented_method_has_a_config():
    assert {"rtn", "gptq", "awq", "prune", "structured_prune", "low_rank", "distill"} <= set(config_kinds())


def test_distill_texts_given_in_python_are_not_copied_into_records():
    cfg = hfc.DistillConfig(data=["my private text one", "my private text two"], steps=5)
    recorded = cfg.to_dict()["data"]
    assert recorded.startswith("<2 items given in Python, sha256:") and "private" not in hfc.recipe_to_yaml([cfg])
    reloaded = CompressionConfig.from_dict(cfg.to_dict())  # a saved variant's recipe still reads back
    with pytest.raises(hfc.HFCompressError, match="was a list given in Python when this recipe was recorded"):
        reloaded.check_data_is_present()
    with pytest.raises(hfc.HFCompressError, match="task_specific=True needs data="):
        hfc.DistillConfig(task_specific=True)
