"""Quantization-aware training on tiny random models: what trained is what is saved, the loss falls, runs resume,
the codes stay on the grid asked (ternary included), it starts from a PTQ step's grid, and bad settings fail in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import hfcompress as hfc
from hfcompress.errors import HFCompressError
from hfcompress.methods.backends.llmcompressor import save_compressed
from hfcompress.methods.qat.adapter import FakeQuantized
from hfcompress.methods.qat.fakequant import GroupFakeQuant
from hfcompress.testing import TINY_TEXTS, build_tiny_model, tiny_model

TEXTS = list(TINY_TEXTS) * 6
PROMPT = "The capital of France is Paris, and the quick brown fox"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HFCOMPRESS_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    """A tiny Llama with peaked next-token distributions, so quantizing it costs something measurable."""
    from transformers import AutoModelForCausalLM

    folder = build_tiny_model(tmp_path_factory.mktemp("base") / "base", layers=2, seed=0)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        model.lm_head.weight.mul_(30.0)
    model.save_pretrained(folder)
    return folder


def _qat(**kw) -> hfc.QATConfig:
    settings = dict(bits=4, group_size=32, steps=4, batch_size=2, seq_len=32, eval_tokens=64, save_every=2,
                    learning_rate=1e-3, warmup=0)
    settings.update(kw)
    return hfc.QATConfig(**settings)


def _run(base_dir: Path, recipe) -> hfc.CompressedModel:
    return hfc.CompressedModel.from_pretrained(str(base_dir), recipe=recipe, calibration=TEXTS, num_samples=8, seq_len=32)


def _logits(model, tokenizer) -> torch.Tensor:
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(ids).logits


def test_fake_quant_forward_equals_the_saved_model(tmp_path):
    # What the training saw (the parametrized forward, with scales moved off their start) is what plain
    # transformers computes from the saved folder.
    from transformers import AutoModelForCausalLM

    model, tokenizer = tiny_model("qwen3", seed=3)
    config = _qat(bits=3, observer="minmax")
    grid = FakeQuantized.prepare(model, tokenizer, config, config.resolved_group_size(model))
    torch.manual_seed(0)
    for module in grid.layers.values():
        quant = module.parametrizations.weight[0]
        with torch.no_grad():
            quant.scale.mul_(1 + 0.2 * torch.rand_like(quant.scale))  # as training would move them
            module.parametrizations.weight.original.add_(0.01 * torch.randn_like(module.weight))
    simulated = _logits(model, tokenizer)
    grid.finish()
    save_compressed(model, tmp_path / "out")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["quantization_config"]["format"] == "pack-quantized"
    torch.testing.assert_close(_logits(reloaded, tokenizer), simulated, atol=1e-5, rtol=1e-5)


def test_gradients_pass_the_rounding_and_reach_the_scales():
    weight = torch.randn(4, 8, requires_grad=True)
    quant = GroupFakeQuant(weight, scale=torch.full((4, 2), 0.5), zero_point=torch.zeros(4, 2), q_min=-8, q_max=7,
                           group_size=4, learn_scales=True)
    quant(weight).sum().backward()
    assert torch.equal(weight.grad, torch.ones_like(weight))  # straight through inside the range
    assert quant.scale.grad is not None and quant.scale.grad.abs().sum() > 0
    clipped = GroupFakeQuant(weight, scale=torch.full((4, 2), 1e-3), zero_point=torch.zeros(4, 2), q_min=-1, q_max=1,
                             group_size=4, learn_scales=False)
    weight.grad = None
    clipped(weight).sum().backward()
    assert weight.grad.abs().sum() < weight.numel()  # clipped weights get no gradient


def test_training_lowers_the_loss_and_the_saved_model_reloads_with_its_outputs(base_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    cm = _run(base_dir, _qat(bits=2, steps=16, eval_every=8, save_every=8, observer="minmax"))
    info = cm.steps[-1].info
    losses = [row["loss"] for row in info["losses"]]
    assert losses[-1] < losses[0]
    assert info["eval_after"]["kl"] < info["eval_before"]["kl"]
    assert info["codes"]["range"] == [-2, 1] and -2 <= info["codes"]["used"][0] <= info["codes"]["used"][1] <= 1
    before = _logits(cm.model, cm.tokenizer)
    cm.save_pretrained(tmp_path / "qat2")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "qat2")
    torch.testing.assert_close(_logits(reloaded, cm.tokenizer), before, atol=1e-5, rtol=1e-5)
    weights = json.loads((tmp_path / "qat2" / "config.json").read_text())["quantization_config"]["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["group_size"], weights["symmetric"]) == (2, 32, False)
    manifest = json.loads((tmp_path / "qat2" / "hfcompress.json").read_text())
    assert manifest["recipe"][0]["kind"] == "qat" and manifest["format"] == "compressed-tensors"


def test_ternary_weights_are_minus_one_zero_or_one_times_their_scale(base_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    cm = _run(base_dir, _qat(bits="ternary", steps=2))
    assert cm.steps[-1].info["codes"]["range"] == [-1, 1]
    for module in (m for m in cm.model.modules() if hasattr(m, "weight_scale")):
        grouped = module.weight.detach().reshape(module.weight.shape[0], -1, 32)
        codes = grouped / module.weight_scale.detach().unsqueeze(-1)
        torch.testing.assert_close(codes, torch.round(codes), atol=1e-5, rtol=0)
        assert set(torch.round(codes).unique().tolist()) <= {-1.0, 0.0, 1.0}
    before = _logits(cm.model, cm.tokenizer)
    cm.save_pretrained(tmp_path / "ternary")
    weights = json.loads((tmp_path / "ternary" / "config.json").read_text())["quantization_config"]["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["symmetric"]) == (2, True)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "ternary")
    torch.testing.assert_close(_logits(reloaded, cm.tokenizer), before, atol=1e-5, rtol=1e-5)
    assert "ternary" in (tmp_path / "ternary" / "README.md").read_text()


def test_resume_continues_from_the_saved_step(base_dir, tmp_path):
    run_dir = tmp_path / "run"
    first = _run(base_dir, _qat(steps=4, save_every=2, run_dir=str(run_dir)))
    assert first.steps[-1].info["global_step"] == 4
    longer = _run(base_dir, _qat(steps=6, save_every=2, run_dir=str(run_dir)))
    info = longer.steps[-1].info
    assert (info["resumed_from_step"], info["steps_run"], info["global_step"]) == (4, 2, 6)


def test_starts_from_a_ptq_step_and_keeps_a_pruning_mask(base_dir):
    cm = _run(base_dir, [hfc.GPTQConfig(bits=4, group_size=32), _qat(bits=4)])
    assert cm.steps[-1].info["started_from"] == "the previous quantization step's weights and scales"
    pruned = _run(base_dir, [hfc.PruneConfig(method="magnitude", sparsity=0.5), _qat(bits=4)])
    layer = pruned.model.model.layers[0].mlp.up_proj.weight
    assert float((layer == 0).float().mean()) >= 0.5
    assert pruned.steps[-1].info["held"]["refilled_during_training"] == 0


def test_no_teacher_trains_on_cross_entropy_alone(base_dir):
    cm = _run(base_dir, _qat(teacher=None, alpha=1.0, steps=2))
    assert cm.steps[-1].info["teacher"] is None and "kl" not in cm.steps[-1].info["eval_after"]


@pytest.mark.parametrize("settings, message", [
    (dict(bits=1), "QATConfig.bits=1 is not supported"),
    (dict(steps=0), "steps=0 must be a positive integer"),
    (dict(teacher=None), "teacher=None trains on next-token cross-entropy only"),
    (dict(learning_rate=float("nan")), "must be a finite number"),
])
def test_bad_settings_fail_in_one_line(settings, message):
    with pytest.raises(HFCompressError, match=message) as err:
        hfc.QATConfig(**settings)
    assert "\n" not in str(err.value)


def test_group_size_that_does_not_divide_fails_before_work(base_dir):
    with pytest.raises(HFCompressError, match="group") as err:
        _run(base_dir, _qat(group_size=48))
    assert "\n" not in str(err.value)


def test_a_different_grid_after_ptq_fails_in_one_line(base_dir):
    with pytest.raises(HFCompressError, match="give both the same grid"):
        _run(base_dir, [hfc.RTNConfig(bits=4, group_size=32), _qat(bits=2)])


def test_the_command_line_runs_a_qat_recipe_and_names_ternary(base_dir, tmp_path):
    from hfcompress.cli import main
    from hfcompress.methods.registry import cli_method

    assert cli_method("qat-ternary") == ("qat", {"bits": "ternary"})
    recipe = tmp_path / "qat.yaml"
    recipe.write_text(hfc.recipe_to_yaml([_qat(bits=3, steps=2)]))
    calibration = tmp_path / "text.txt"
    calibration.write_text("\n\n".join(TEXTS))
    out = tmp_path / "qat3"
    assert main(["compress", str(base_dir), "--recipe", str(recipe), "-o", str(out), "--calibration", str(calibration),
                 "--num-samples", "8", "--seq-len", "32"]) == 0
    weights = json.loads((out / "config.json").read_text())["quantization_config"]["config_groups"]["group_0"]["weights"]
    assert (weights["num_bits"], weights["group_size"]) == (3, 32)
    assert "QAT 3-bit g32" in (out / "README.md").read_text() or "Quantization-aware training" in (out / "README.md").read_text()


def test_training_texts_given_in_python_are_not_copied_into_the_recipe():
    recorded = _qat(data=["a private sentence the user typed"]).to_dict()["data"]
    assert "private" not in recorded and recorded.startswith("<1 items given in Python, sha256:")


def test_the_starting_grid_is_chosen_with_calibration_activations(base_dir):
    weighted = _run(base_dir, _qat(bits=2, steps=4, learning_rate=1e-12))
    plain = _run(base_dir, _qat(bits=2, steps=4, learning_rate=1e-12, observer="minmax"))
    assert weighted.steps[-1].info["started_from"] == "round-to-nearest scales (imatrix_mse observer)"
    assert weighted.steps[-1].info["eval_before"]["kl"] < plain.steps[-1].info["eval_before"]["kl"]
