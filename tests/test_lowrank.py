"""Low-rank (SVD) factorization on a tiny random Llama: layers become two factors, parameters drop, reload matches."""

from __future__ import annotations

import json

import pytest
import torch

import hfcompress as hfc
from hfcompress.errors import HFCompressError
from hfcompress.methods.lowrank import choose_rank


def _ids():
    return torch.arange(3, 40).reshape(1, -1)


def _params(model):
    return sum(p.numel() for p in model.parameters())


def test_rank_factorization_saves_and_reloads_with_remote_code(tiny_llama_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    base = hfc.CompressedModel.from_pretrained(tiny_llama_dir).model
    cm = hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=hfc.LowRankConfig(activation_aware=False, rank=8, targets=["mlp.up_proj", "mlp.down_proj"]))
    up = cm.model.model.layers[0].mlp.up_proj
    assert (up.first.weight.shape, up.second.weight.shape) == ((8, 64), (128, 8))
    # The product of the factors is the best rank-8 approximation of the original weight (Eckart-Young).
    w = base.model.layers[0].mlp.up_proj.weight
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    assert torch.allclose(up.second.weight @ up.first.weight, (u[:, :8] * s[:8]) @ vh[:8], atol=1e-5)
    info = cm.steps[0].info
    assert info["factored_layers"] == 4 and info["skipped_layers"] == 0
    assert info["parameters_removed"] == _params(base) - _params(cm.model) == 4 * (64 * 128 - 8 * (64 + 128))

    with torch.no_grad():
        before = cm.model(_ids()).logits
    out = cm.save_pretrained(tmp_path / "lowrank", card=False)
    assert (out / "modeling_lowrank.py").is_file()
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_lowrank.LowRankLlamaForCausalLM"
    assert config["low_rank_layers"]["model.layers.1.mlp.down_proj"] == 8
    assert json.loads((out / "hfcompress.json").read_text())["load"]["trust_remote_code"] is True
    reloaded = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True, dtype=torch.float32).eval()
    assert _params(reloaded) == _params(cm.model)
    with torch.no_grad():
        assert torch.allclose(reloaded(_ids()).logits, before, atol=1e-5)
    # And through hfcompress, which reads load.trust_remote_code from hfcompress.json.
    again = hfc.CompressedModel.from_pretrained(out)
    with torch.no_grad():
        assert torch.allclose(again.model(_ids()).logits, before, atol=1e-5)


def test_energy_skips_layers_that_would_not_shrink(tiny_llama_dir):
    # A random matrix spreads its energy evenly: 0.99 of it needs nearly full rank, which saves nothing.
    cm = hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=hfc.LowRankConfig(activation_aware=False, energy=0.99))
    info = cm.steps[0].info
    assert info["factored_layers"] == 0 and info["skipped_layers"] == 6
    assert info["parameters_removed"] == 0
    assert not hasattr(cm.model.config, "auto_map") or not cm.model.config.auto_map


def test_choose_rank_rules():
    s = torch.tensor([4.0, 2.0, 1.0, 1.0])  # energies 16, 4, 1, 1 of 22
    assert choose_rank(s, hfc.LowRankConfig(energy=0.7), 4, 4) == 1
    assert choose_rank(s, hfc.LowRankConfig(energy=0.9), 4, 4) == 2
    assert choose_rank(s, hfc.LowRankConfig(rank=0.5), 4, 8) == 2
    assert choose_rank(s, hfc.LowRankConfig(rank=3), 4, 4) == 3


def test_bad_low_rank_input_is_a_clear_error(tiny_llama_dir):
    with pytest.raises(HFCompressError, match="rank=100 is larger than the full rank 64"):
        hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=hfc.LowRankConfig(activation_aware=False, rank=100))
    with pytest.raises(HFCompressError, match="match no Linear layer"):
        hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=hfc.LowRankConfig(activation_aware=False, rank=4, targets=["ffn.w1"]))
    with pytest.raises(HFCompressError, match="energy=1.5 is out of range"):
        hfc.LowRankConfig(energy=1.5)
    with pytest.raises(HFCompressError, match="rank=-2 must be a positive integer"):
        hfc.LowRankConfig(rank=-2)


def test_cli_lowrank(tiny_llama_dir, tmp_path):
    from hfcompress.cli import main

    out = tmp_path / "cli-lowrank"
    assert main(["compress", str(tiny_llama_dir), "--method", "lowrank", "--rank", "8", "-o", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert set(config["low_rank_layers"].values()) == {8} and len(config["low_rank_layers"]) == 6
    assert (out / "modeling_lowrank.py").is_file()


def test_activation_aware_factors_reload(tiny_llama_dir, tiny_texts, tmp_path):
    from transformers import AutoModelForCausalLM

    config = hfc.LowRankConfig(rank=16, targets=["mlp.down_proj"], activation_aware=True)
    assert config.needs_calibration
    cm = hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=config, calibration=tiny_texts, num_samples=4, seq_len=64)
    assert cm.steps[0].info["activation_aware"] is True
    assert cm.model.model.layers[0].mlp.down_proj.first.weight.shape == (16, 128)
    with torch.no_grad():
        before = cm.model(_ids()).logits
    out = cm.save_pretrained(tmp_path / "asvd", card=False)
    reloaded = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True, dtype=torch.float32).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(_ids()).logits, before, atol=1e-5)
