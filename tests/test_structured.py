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


# --- mixture-of-experts: target="experts" ------------------------------------------------------------------------


def _router_picks(model, tokenizer, texts):
    """How often each layer's router puts each expert in its top-k on the calibration samples the recipe reads
    (``texts``, 4 x 32 tokens), counted here with hooks of our own."""
    from hfcompress.data import load_calibration

    from hfcompress.methods.structured.experts import moe_blocks

    blocks = moe_blocks(model)
    counts = [torch.zeros(b.gate.weight.shape[0]) for b in blocks]
    def hook(i):
        def count(_module, _args, out):
            counts[i] += torch.bincount(out[2].reshape(-1), minlength=len(counts[i]))
        return count

    handles = [b.gate.register_forward_hook(hook(i)) for i, b in enumerate(blocks)]
    with torch.no_grad():
        for ids in load_calibration(texts, tokenizer, num_samples=4, seq_len=32).input_ids:
            model(ids.reshape(1, -1))
    for h in handles:
        h.remove()
    return counts


@pytest.mark.parametrize("arch, count_key", [("mixtral", "num_local_experts"), ("qwen3_moe", "num_local_experts"),
                                             ("qwen2_moe", "num_experts"), ("olmoe", "num_experts")])
def test_experts_drop_the_least_used_with_their_router_rows(arch, count_key, tiny_texts, tmp_path):
    from transformers import AutoModelForCausalLM

    folder = build_tiny_model(tmp_path / "moe", arch, experts=6)
    base = AutoModelForCausalLM.from_pretrained(folder).eval()
    from hfcompress.testing import tiny_tokenizer

    picks = _router_picks(base, tiny_tokenizer(), tiny_texts)
    cm = hfc.CompressedModel.from_pretrained(str(folder), recipe=hfc.StructuredPruneConfig(target="experts", count=2, importance="frequency"),
                                             calibration=tiny_texts, num_samples=4, seq_len=32)
    info = cm.steps[-1].info
    for layer, removed in info["removed_experts_per_layer"].items():
        # The two experts the router picked least (ties by index) are gone.
        least = sorted(range(6), key=lambda e: (float(picks[int(layer)][e]), e))[:2]
        assert removed == sorted(least)
    mlp = cm.model.model.layers[0].mlp
    assert mlp.gate.weight.shape[0] == mlp.experts.gate_up_proj.shape[0] == mlp.experts.down_proj.shape[0] == 4
    if arch == "qwen2_moe":
        assert hasattr(mlp, "shared_expert")  # kept
    reloaded, config = _save_and_plain_reload(cm, tmp_path / "out")
    assert config[count_key] == 4 and config["num_experts_per_tok"] == 2
    assert info["parameters_removed"] == _params(base) - _params(reloaded) > 0


def test_reap_importance_keeps_the_experts_that_contribute(tiny_texts, tmp_path):
    # Silence two experts (zero down_proj): the router may still pick them, but they add nothing; REAP drops them.
    from transformers import AutoModelForCausalLM

    folder = build_tiny_model(tmp_path / "moe", "mixtral", experts=6)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.mlp.experts.down_proj[[1, 4]] = 0
    model.save_pretrained(folder)
    cm = hfc.CompressedModel.from_pretrained(str(folder), recipe=hfc.StructuredPruneConfig(target="experts", count=2),
                                             calibration=tiny_texts, num_samples=4, seq_len=32)
    assert set(map(tuple, cm.steps[-1].info["removed_experts_per_layer"].values())) == {(1, 4)}


@pytest.mark.parametrize("step, words", [
    (dict(count=4), "cannot remove 4 of the 4 experts per layer: each token is routed to 2, so at least 2 must stay; use count <= 2"),
    (dict(count=3), "cannot remove 3 of the 4 experts per layer"),
    (dict(ratio=0.9), "use count <= 2 or ratio <= 0.50"),
])
def test_too_many_experts_removed_is_one_line(step, words, tmp_path):
    folder = build_tiny_model(tmp_path / "moe", "mixtral")
    with pytest.raises(HFCompressError) as err:
        hfc.CompressedModel.from_pretrained(str(folder), recipe=hfc.StructuredPruneConfig(target="experts", **step))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_experts_on_a_dense_model_is_one_line(tiny_llama_dir):
    with pytest.raises(HFCompressError, match="has no mixture-of-experts layers"):
        hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.StructuredPruneConfig(target="experts", count=1))
    with pytest.raises(HFCompressError, match="importance='frequency' is not valid for target='neurons'"):
        hfc.StructuredPruneConfig(target="neurons", importance="frequency")


def test_the_kept_mlp_width_is_rounded_to_whole_quantization_blocks():
    from hfcompress.methods.structured.plan import plan_removal
    from hfcompress.testing import tiny_model

    model = tiny_model("llama", intermediate=1536)[0]  # SmolLM2's MLP width
    assert plan_removal(model, hfc.StructuredPruneConfig(ratio=0.2)).remove == 1536 - 1216  # 1228.8 -> 38 blocks of 32
    assert plan_removal(model, hfc.StructuredPruneConfig(ratio=0.2, multiple_of=256)).remove == 1536 - 1280
    assert plan_removal(model, hfc.StructuredPruneConfig(ratio=0.2, multiple_of=1)).remove == 307  # the exact ratio
    assert plan_removal(model, hfc.StructuredPruneConfig(count=307)).remove == 307  # a count is taken as given
    with pytest.raises(HFCompressError, match="multiple_of=0 must be a positive integer"):
        hfc.StructuredPruneConfig(multiple_of=0)


@pytest.mark.parametrize("arch", ["mixtral", "qwen3_moe"])
def test_merged_experts_fold_into_the_most_alike_kept_one_by_usage(arch, tiny_texts, tmp_path):
    from transformers import AutoModelForCausalLM

    from hfcompress.methods.structured.experts import merge_targets
    from hfcompress.testing import tiny_tokenizer

    folder = build_tiny_model(tmp_path / "moe", arch, experts=6)
    base = AutoModelForCausalLM.from_pretrained(folder).eval()
    picks = _router_picks(base, tiny_tokenizer(), tiny_texts)
    cm = hfc.CompressedModel.from_pretrained(str(folder), recipe=hfc.StructuredPruneConfig(
        target="experts", count=2, importance="frequency", merge=True), calibration=tiny_texts, num_samples=4, seq_len=32)
    info = cm.steps[-1].info
    for layer, removed in info["removed_experts_per_layer"].items():
        layer_index = int(layer)
        old = base.model.layers[layer_index].mlp
        kept = [e for e in range(6) if e not in removed]
        targets = merge_targets(old.gate.weight, kept, removed)
        new = cm.model.model.layers[layer_index].mlp
        for position, k in enumerate(kept):
            group = [k] + [d for d in removed if targets[d] == k]
            # By hand: each kept expert is the mean of its group weighted by router picks (+1), the router row its own.
            usage = torch.tensor([float(picks[layer_index][e]) + 1 for e in group], dtype=torch.float64)
            share = (usage / usage.sum()).float()
            for name in ("gate_up_proj", "down_proj"):
                expected = (getattr(old.experts, name)[group].detach() * share[:, None, None]).sum(0)
                torch.testing.assert_close(getattr(new.experts, name)[position].detach(), expected, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(new.gate.weight[position].detach(), old.gate.weight[k].detach())
        assert sorted(d for group in info["merged_experts_per_layer"][layer].values() for d in group) == removed
    dropped = hfc.CompressedModel.from_pretrained(str(folder), recipe=hfc.StructuredPruneConfig(
        target="experts", count=2, importance="frequency"), calibration=tiny_texts, num_samples=4, seq_len=32)
    assert not torch.allclose(dropped.model.model.layers[0].mlp.experts.down_proj, cm.model.model.layers[0].mlp.experts.down_proj)
    reloaded, config = _save_and_plain_reload(cm, tmp_path / "out")
    ids = torch.tensor([[1, 5, 9, 30, 2, 7]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, cm.model(ids).logits, rtol=0, atol=1e-5)
    with pytest.raises(HFCompressError, match="merge=True folds removed experts into kept ones, so it needs target='experts'"):
        hfc.StructuredPruneConfig(target="neurons", merge=True)


def test_the_card_says_experts_were_merged():
    from hfcompress.methods.registry import presentation_for

    step = hfc.StructuredPruneConfig(target="experts", count=2, importance="frequency", merge=True).to_dict()
    assert presentation_for("structured_prune").label(step) == "−2 experts merged"
    assert presentation_for("structured_prune").sentence(step).startswith("Expert merging: 2 of the experts")
