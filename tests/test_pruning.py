"""Unstructured and N:M pruning on a tiny random Llama: sparsity as asked, patterns exact, saved folder reloads."""

from __future__ import annotations

import json

import pytest
import torch

import hfcompress as hfc
from hfcompress.methods.layers import target_linear_layers
from hfcompress.errors import HFCompressError
from hfcompress.methods.pruning import magnitude_mask, nm_violations

from hfcompress.testing import build_tiny_model


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def _ids():
    return torch.arange(3, 40).reshape(1, -1)


def _plain_reload(folder, **kw):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kw).eval()


def _check_sparsity(model, config):
    """Every pruned layer holds exactly floor(in * sparsity) zeros per row (or N:M), lm_head and embeddings untouched."""
    layers = target_linear_layers(model, config.ignore)
    assert len(layers) == 14  # 2 layers x (q, k, v, o, gate, up, down)
    for name, layer in layers.items():
        w = layer.weight
        if config.pattern == "unstructured":
            expected = int(w.shape[1] * config.sparsity) / w.shape[1]
            measured = float((w == 0).float().mean())
            # Wanda and magnitude prune per row; SparseGPT per block of columns (+ at most one weight per block).
            assert abs(measured - expected) <= 1.0 / w.shape[1], (name, measured, expected)
        else:
            n, m = config.nm
            assert nm_violations(w, n, m) == 0, name
            assert float((w == 0).float().mean()) >= 1 - n / m - 1e-6
    assert float((model.lm_head.weight == 0).float().mean()) == 0.0
    # The embedding's only zeros are the padding row.
    assert int((model.model.embed_tokens.weight == 0).all(dim=1).sum()) == 1
    assert float((model.model.embed_tokens.weight[1:] == 0).float().mean()) == 0.0


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
def test_magnitude_sparsity_is_exact_per_layer(tiny_llama_dir, sparsity):
    config = hfc.PruneConfig(method="magnitude", sparsity=sparsity)
    cm = hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=config)
    _check_sparsity(cm.model, config)
    info = cm.steps[0].info
    assert cm.steps[0].backend == "torch"
    assert info["sparsity"] == pytest.approx(sparsity, abs=1 / 64)
    assert set(info["sparsity_per_layer"]) == set(target_linear_layers(cm.model, config.ignore))
    assert "dense" in info["storage"]


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_llmcompressor_pruning_save_and_plain_reload(tiny_llama_dir, tiny_texts, tmp_path, method, pattern):
    config = hfc.PruneConfig(method=method, sparsity=0.5, pattern=pattern)
    cm = hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=config, calibration=tiny_texts, num_samples=4, seq_len=64)
    assert cm.steps[0].backend == "llmcompressor"
    _check_sparsity(cm.model, config)
    if pattern != "unstructured":
        assert cm.steps[0].info["nm_violations"] == 0
    before = _logits(cm.model, _ids())
    out = cm.save_pretrained(tmp_path / "pruned", card=False)
    reloaded = _plain_reload(out)
    assert torch.allclose(_logits(reloaded, _ids()), before, atol=1e-5)
    _check_sparsity(reloaded, config)
    manifest = json.loads((out / "hfcompress.json").read_text())
    assert manifest["format"] == "safetensors"
    assert manifest["steps"][0]["info"]["sparsity"] == pytest.approx(0.5, abs=1 / 64)
    assert "quantization_config" not in json.loads((out / "config.json").read_text())


def test_magnitude_4_8_pattern_holds_in_every_group(tiny_llama_dir):
    config = hfc.PruneConfig(method="magnitude", pattern="4:8")
    cm = hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=config)
    _check_sparsity(cm.model, config)
    assert cm.steps[0].info["nm_violations"] == 0


def test_magnitude_mask_keeps_the_largest_weights():
    w = torch.tensor([[0.1, -5.0, 0.2, 3.0, -0.05, 1.0, 2.0, -0.3]])
    assert magnitude_mask(w, 0.5).tolist() == [[True, False, True, False, True, False, False, True]]
    assert magnitude_mask(w, 0.5, (2, 4)).tolist() == [[True, False, True, False, True, False, False, True]]
    assert magnitude_mask(w, 0.5, (1, 4)).sum() == 6


def test_2of4_then_gptq_keeps_the_mask(tiny_llama_dir, tiny_texts, tmp_path):
    prune = hfc.PruneConfig(method="sparsegpt", pattern="2:4")
    recipe = [prune, hfc.GPTQConfig(bits=4, group_size=32)]
    cm = hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=recipe, calibration=tiny_texts, num_samples=4, seq_len=64)
    _check_sparsity(cm.model, prune)
    restored = cm.steps[1].info["sparsity_mask_restored"]
    assert restored["layers"] == 14
    before = _logits(cm.model, _ids())
    out = cm.save_pretrained(tmp_path / "sparse-gptq", card=False)
    reloaded = _plain_reload(out)
    assert torch.allclose(_logits(reloaded, _ids()), before, atol=1e-4)
    # What was published still holds the 2:4 pattern (GPTQ would have refilled pruned slots).
    for name, layer in target_linear_layers(reloaded, prune.ignore).items():
        assert nm_violations(layer.weight, 2, 4) == 0, name


@pytest.mark.parametrize("method, sparsity", [("wanda", 0.1), ("wanda", 0.9), ("sparsegpt", 0.3), ("sparsegpt", 0.7)])
def test_calibrated_pruning_holds_the_sparsity_asked_for(tiny_llama_dir, tiny_texts, method, sparsity):
    config = hfc.PruneConfig(method=method, sparsity=sparsity)
    cm = hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=config, calibration=tiny_texts, num_samples=4, seq_len=64)
    _check_sparsity(cm.model, config)
    assert torch.isfinite(_logits(cm.model, _ids())).all()


def test_magnitude_pruned_folder_reloads_in_plain_transformers(tiny_llama_dir, tmp_path):
    config = hfc.PruneConfig(method="magnitude", sparsity=0.5)
    cm = hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=config)
    before = _logits(cm.model, _ids())
    reloaded = _plain_reload(cm.save_pretrained(tmp_path / "magnitude", card=False))
    assert torch.equal(_logits(reloaded, _ids()), before)
    _check_sparsity(reloaded, config)


def test_bad_sparsity_is_a_clear_error():
    with pytest.raises(HFCompressError, match="sparsity=1.2 is out of range"):
        hfc.PruneConfig(method="magnitude", sparsity=1.2)
    with pytest.raises(HFCompressError, match="unknown pruning method"):
        hfc.PruneConfig(method="random")
    with pytest.raises(HFCompressError, match="N:M needs 0 < N < M"):
        hfc.PruneConfig(pattern="4:2")


def test_2of4_on_width_not_divisible_by_4_is_a_clear_error(tmp_path):
    folder = build_tiny_model(tmp_path / "odd", hidden=62, intermediate=126, heads=2, kv_heads=1)
    with pytest.raises(HFCompressError, match="divisible by 4.*width 62"):
        hfc.CompressedModel.from_pretrained(folder, recipe=hfc.PruneConfig(method="magnitude", pattern="2:4"))


def test_cli_wanda(tiny_llama_dir, tmp_path):
    from hfcompress.cli import main

    texts = tmp_path / "calib.txt"
    texts.write_text("\n\n".join(["Small models are pruned on small machines. " * 10] * 4))
    out = tmp_path / "cli-wanda"
    rc = main(["compress", str(tiny_llama_dir), "--method", "wanda", "--sparsity", "0.5", "-o", str(out),
               "--calibration", str(texts), "--num-samples", "4", "--seq-len", "64"])
    assert rc == 0
    manifest = json.loads((out / "hfcompress.json").read_text())
    assert manifest["recipe"][0]["method"] == "wanda"
    assert manifest["steps"][0]["info"]["sparsity"] == pytest.approx(0.5, abs=1 / 64)
