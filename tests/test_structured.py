"""Structured pruning on a tiny random Llama: shapes and config.json shrink, parameters drop as claimed, plain reload."""

from __future__ import annotations

import json

import pytest
import torch

import hfcompress as hfc
from hfcompress.errors import HFCompressError

from hfcompress.testing import build_tiny_model


def _ids():
    return torch.arange(3, 40).reshape(1, -1)


def _params(model):
    return sum(p.numel() for p in model.parameters())


def _save_and_plain_reload(cm, folder):
    from transformers import AutoModelForCausalLM

    with torch.no_grad():
        before = cm.model(_ids()).logits
    out = cm.save_pretrained(folder, card=False)
    # No trust_remote_code, no hfcompress: a plain transformers model of the same architecture.
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(_ids()).logits, before, atol=1e-5)
    assert "auto_map" not in json.loads((out / "config.json").read_text())
    return reloaded, json.loads((out / "config.json").read_text())


@pytest.mark.parametrize("importance", ["magnitude", "activation"])
def test_heads_remove_whole_kv_groups(tiny_llama_dir, tiny_texts, tmp_path, importance):
    # tiny Llama: 4 query heads, 2 KV heads (2 query heads per KV group), head_dim 16.
    base = hfc.CompressedModel.from_pretrained(tiny_llama_dir).model
    cm = hfc.CompressedModel.from_pretrained(
        tiny_llama_dir, recipe=hfc.StructuredPruneConfig(target="heads", ratio=0.5, importance=importance),
        calibration=tiny_texts, num_samples=4, seq_len=64,
    )
    for layer in cm.model.model.layers:
        attn = layer.self_attn
        assert attn.q_proj.weight.shape == (32, 64)
        assert attn.k_proj.weight.shape == (16, 64)
        assert attn.v_proj.weight.shape == (16, 64)
        assert attn.o_proj.weight.shape == (64, 32)
    info = cm.steps[0].info
    assert info["parameters_removed"] == _params(base) - _params(cm.model) == 2 * (32 * 64 + 16 * 64 + 16 * 64 + 64 * 32)
    assert info["parameters_after"] == _params(cm.model)
    removed = info["removed_kv_groups_per_layer"]["0"]
    assert len(removed) == 1
    kept = 1 - removed[0]
    # The kept KV group's key rows are the base model's rows of that group (a real slice, not a retrain).
    assert torch.equal(cm.model.model.layers[0].self_attn.k_proj.weight, base.model.layers[0].self_attn.k_proj.weight[kept * 16:(kept + 1) * 16])
    assert torch.equal(cm.model.model.layers[0].self_attn.q_proj.weight, base.model.layers[0].self_attn.q_proj.weight[kept * 32:(kept + 1) * 32])
    _, config = _save_and_plain_reload(cm, tmp_path / "heads")
    assert (config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]) == (2, 1, 16)


def test_neurons_shrink_intermediate_size(tiny_llama_dir, tiny_texts, tmp_path):
    base_params = _params(hfc.CompressedModel.from_pretrained(tiny_llama_dir).model)
    cm = hfc.CompressedModel.from_pretrained(
        tiny_llama_dir, recipe=hfc.StructuredPruneConfig(target="neurons", ratio=0.25),
        calibration=tiny_texts, num_samples=4, seq_len=64,
    )
    for layer in cm.model.model.layers:
        assert layer.mlp.gate_proj.weight.shape == (96, 64)
        assert layer.mlp.up_proj.weight.shape == (96, 64)
        assert layer.mlp.down_proj.weight.shape == (64, 96)
    info = cm.steps[0].info
    assert info["removed"] == 32 and info["of"] == 128
    assert info["parameters_removed"] == base_params - _params(cm.model) == 2 * 3 * 32 * 64
    _, config = _save_and_plain_reload(cm, tmp_path / "neurons")
    assert config["intermediate_size"] == 96


def test_layers_removed_and_kv_cache_indices_fixed(tmp_path, tiny_texts):
    folder = build_tiny_model(tmp_path / "four", layers=4)
    base_params = _params(hfc.CompressedModel.from_pretrained(folder).model)
    cm = hfc.CompressedModel.from_pretrained(
        folder, recipe=hfc.StructuredPruneConfig(target="layers", count=2), calibration=tiny_texts, num_samples=4, seq_len=64,
    )
    info = cm.steps[0].info
    assert len(info["removed_layers"]) == 2
    assert len(cm.model.model.layers) == 2 and cm.model.config.num_hidden_layers == 2
    assert [l.self_attn.layer_idx for l in cm.model.model.layers] == [0, 1]
    assert info["parameters_removed"] == base_params - _params(cm.model)
    # Generation with the KV cache gives the same tokens as recomputing the whole prefix each step.
    with torch.no_grad():
        cached = cm.model.generate(_ids()[:, :8], max_new_tokens=6, do_sample=False, use_cache=True)
        uncached = cm.model.generate(_ids()[:, :8], max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)
    reloaded, config = _save_and_plain_reload(cm, tmp_path / "layers")
    assert config["num_hidden_layers"] == 2
    if "layer_types" in config:
        assert len(config["layer_types"]) == 2


def test_structured_then_gptq_saves_and_reloads(tiny_llama_dir, tiny_texts, tmp_path):
    from transformers import AutoModelForCausalLM

    recipe = [hfc.StructuredPruneConfig(target="neurons", ratio=0.5, importance="magnitude"), hfc.GPTQConfig(bits=4, group_size=32)]
    cm = hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=recipe, calibration=tiny_texts, num_samples=4, seq_len=64)
    with torch.no_grad():
        before = cm.model(_ids()).logits
    out = cm.save_pretrained(tmp_path / "neurons-gptq", card=False)
    config = json.loads((out / "config.json").read_text())
    assert config["intermediate_size"] == 64
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(_ids()).logits, before, atol=1e-4)


def test_bad_structured_input_is_a_clear_error(tiny_llama_dir):
    with pytest.raises(HFCompressError, match="cannot remove 3 heads of the 2 KV groups"):
        hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=hfc.StructuredPruneConfig(target="heads", count=3, importance="magnitude"))
    with pytest.raises(HFCompressError, match="cannot remove 2 layers of the 2 decoder layers"):
        hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=hfc.StructuredPruneConfig(target="layers", ratio=0.9, importance="magnitude"))
    with pytest.raises(HFCompressError, match="removes none of the 128"):
        hfc.CompressedModel.from_pretrained(tiny_llama_dir, recipe=hfc.StructuredPruneConfig(target="neurons", ratio=0.001, importance="magnitude"))
    with pytest.raises(HFCompressError, match="ratio=1.5 is out of range"):
        hfc.StructuredPruneConfig(ratio=1.5)
    with pytest.raises(HFCompressError, match="unknown structured target"):
        hfc.StructuredPruneConfig(target="channels")


def test_cli_structured_heads(tiny_llama_dir, tmp_path):
    from hfcompress.cli import main

    out = tmp_path / "cli-heads"
    rc = main(["compress", str(tiny_llama_dir), "--method", "structured", "--target", "heads", "--ratio", "0.5",
               "--importance", "magnitude", "-o", str(out)])
    assert rc == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["num_attention_heads"], config["num_key_value_heads"]) == (2, 1)
    assert main(["compress", str(tiny_llama_dir), "--method", "structured", "--target", "layers", "--ratio", "0.99",
                 "--importance", "magnitude", "-o", str(tmp_path / "bad")]) == 2
