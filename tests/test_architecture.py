"""Architecture compression on tiny random models: GQA conversion (fewer KV heads).

What a user relies on: the shapes and config.json say the new number of KV heads, the folder loads in plain
transformers with the logits it had before saving, the KV cache per token really drops in results.json, the PCA
merge is exact where the heads are linear images of each other (and the mean is not), and bad input is one line.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import hfcompress as hfc
from hfcompress.data import load_calibration
from hfcompress.errors import HFCompressError
from hfcompress.methods.architecture import kv_groups
from hfcompress.methods.architecture.gqa import TorchGQA
from hfcompress.methods.registry import StepContext
from hfcompress.testing import TINY_TEXTS, tiny_model


def _calibration(tokenizer):
    return load_calibration(list(TINY_TEXTS), tokenizer, num_samples=4, seq_len=48)


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "mistral", "gemma3", "mixtral", "olmoe"])
@pytest.mark.parametrize("method", ["mean", "pca"])
def test_gqa_shapes_config_and_plain_reload(arch, method, tmp_path):
    model, tok = tiny_model(arch, heads=4, kv_heads=2)
    head_dim = model.config.head_dim if getattr(model.config, "head_dim", None) else 16
    q_rows = model.model.layers[0].self_attn.q_proj.weight.shape
    result = TorchGQA().compress(model, tok, hfc.GQAConfig(num_key_value_heads=1, method=method),
                                 StepContext(calibration=_calibration(tok), progress=False))
    for layer in model.model.layers:
        attn = layer.self_attn
        assert attn.k_proj.weight.shape == attn.v_proj.weight.shape == (head_dim, 64)
        assert attn.q_proj.weight.shape == q_rows and attn.o_proj.weight.shape == (64, 4 * head_dim)
        if arch == "qwen2":  # Qwen2 has k/v biases: merged with the weights
            assert attn.k_proj.bias.shape == attn.v_proj.bias.shape == (head_dim,)
    # Per layer: one KV head's k and v rows (and biases); OLMoE's whole-vector k_norm loses that head's slice too.
    removed = 2 * (2 * head_dim * (64 + (arch == "qwen2")) + head_dim * (arch == "olmoe"))
    assert result.info["num_key_value_heads"] == 1 and result.info["parameters_removed"] == removed
    if arch == "olmoe":  # its k_norm spans all KV heads: merged with them
        assert model.model.layers[0].self_attn.k_norm.weight.shape == (head_dim,)
    if method == "pca" and arch in ("qwen3", "gemma3", "olmoe"):
        assert result.info["keys_merged_by"] == "mean" and result.info["values_merged_by"] == "pca"  # k_norm
    ids = torch.randint(3, 200, (1, 24))
    before = _logits(model, ids)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["num_key_value_heads"] == 1 and saved["num_attention_heads"] == 4 and saved["head_dim"] == head_dim
    assert "auto_map" not in saved
    plain = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(_logits(plain, ids), before, rtol=1e-4, atol=1e-4)
    generated = plain.generate(ids, max_new_tokens=4, do_sample=False)  # the KV cache holds one head per layer
    assert generated.shape == (1, 28)


def _plant_linear_images(model):
    """KV head 1 = a linear image of KV head 0: keys rotated and scaled per rotary frequency, values any invertible map."""
    torch.manual_seed(1)
    d = model.config.hidden_size // model.config.num_attention_heads
    half = d // 2
    for layer in model.model.layers:
        attn = layer.self_attn
        with torch.no_grad():
            k0 = attn.k_proj.weight[:d]
            factor = torch.randn(half, dtype=torch.complex64)
            z = torch.complex(k0[:half], k0[half:]) * factor[:, None]
            attn.k_proj.weight[d:] = torch.cat([z.real, z.imag])
            attn.v_proj.weight[d:] = (torch.eye(d) + 0.5 * torch.randn(d, d)) @ attn.v_proj.weight[:d]


def test_pca_merge_is_exact_where_the_heads_are_linear_images_of_each_other_and_the_mean_is_not():
    errors = {}
    for method in ("mean", "pca"):
        model, tok = tiny_model("llama", heads=4, kv_heads=2)
        _plant_linear_images(model)
        ids = torch.randint(3, 200, (1, 32))
        before = _logits(model, ids)
        TorchGQA().compress(model, tok, hfc.GQAConfig(num_key_value_heads=1, method=method),
                            StepContext(calibration=_calibration(tok), progress=False))
        errors[method] = float((_logits(model, ids) - before).abs().max())
    assert errors["pca"] < 1e-3 < errors["mean"]


def test_mean_merge_of_identical_heads_changes_nothing():
    model, tok = tiny_model("qwen2", heads=4, kv_heads=2)
    d = 16
    with torch.no_grad():
        for layer in model.model.layers:
            for proj in (layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.weight[d:] = proj.weight[:d]
                proj.bias[d:] = proj.bias[:d]
    ids = torch.randint(3, 200, (1, 20))
    before = _logits(model, ids)
    TorchGQA().compress(model, tok, hfc.GQAConfig(num_key_value_heads=1, method="mean"), StepContext(progress=False))
    torch.testing.assert_close(_logits(model, ids), before, rtol=1e-5, atol=1e-5)


def test_a_new_group_may_take_part_of_an_old_one():
    # 12 query heads, 4 KV heads -> 3: each new KV head serves 4 query heads, which used 2 of the old heads.
    assert kv_groups(12, 4, 3) == [{0: 3, 1: 1}, {1: 2, 2: 2}, {2: 1, 3: 3}]
    model, tok = tiny_model("llama", hidden=96, heads=12, kv_heads=4)
    TorchGQA().compress(model, tok, hfc.GQAConfig(num_key_value_heads=3), StepContext(calibration=_calibration(tok), progress=False))
    assert model.model.layers[0].self_attn.k_proj.weight.shape == (3 * 8, 96)
    assert model(torch.randint(3, 200, (1, 8))).logits.isfinite().all()


def test_results_report_the_kv_cache_per_token_and_its_saving(tiny_llama_dir, tiny_texts, tmp_path):
    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.GQAConfig(num_key_value_heads=1),
                                             calibration=tiny_texts, num_samples=4, seq_len=32)
    res = cm.evaluate(eval_data=[tiny_texts], max_tokens=128, context=64, stride=32, speed=False, generations=False, tasks=())
    kv = res.metrics["kv_cache_bytes_per_token"]
    # 2 layers x (K, V) x KV heads x head_dim 16 x 4 bytes (float32): 2 heads before, 1 after.
    assert (kv["value"], kv["base"], kv["ratio"], kv["unit"]) == (2 * 2 * 1 * 16 * 4, 2 * 2 * 2 * 16 * 4, 0.5, "bytes")


@pytest.mark.parametrize("k, words", [
    (3, "does not reduce this model's 2 KV heads"),
    (2, "does not reduce this model's 2 KV heads"),
    (0, "must be a positive integer"),
])
def test_bad_kv_head_counts_are_one_line(k, words, tiny_llama_dir):
    with pytest.raises(HFCompressError) as err:
        hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.GQAConfig(num_key_value_heads=k))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_count_that_does_not_divide_the_query_heads_is_one_line():
    model, _ = tiny_model("llama", hidden=72, heads=9, kv_heads=9)  # 9 query heads: 2 does not divide them
    with pytest.raises(HFCompressError, match=r"num_key_value_heads=2 does not divide the 9 query heads; use one of 1, 3$"):
        hfc.GQAConfig(num_key_value_heads=2).validate_for_model(model)
    with pytest.raises(HFCompressError, match="unknown GQA merge method 'median'"):
        hfc.GQAConfig(method="median")
