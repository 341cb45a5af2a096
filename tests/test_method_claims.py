"""What each method is for, asserted on tiny models, so that a method silently degraded to a simpler one fails.

The model has planted outlier input channels (a few channels of every norm scaled up, as trained LLMs have), which
is where activation-aware methods beat data-free ones: GPTQ's and AWQ's output error on calibration text is clearly
below round-to-nearest's at the same bits, Wanda's and SparseGPT's below magnitude pruning's (and Wanda's mask is
another one), activation-aware SVD's below plain SVD's at the same rank. Structured pruning removes the units a hand
computation ranks lowest. ``scripts/mutation_check.py`` breaks each of these on purpose and checks a test here fails.
"""

from __future__ import annotations

import copy

import pytest
import torch

import hfcompress as hfc
from hfcompress.data import load_calibration
from hfcompress.methods.layers import target_linear_layers
from hfcompress.testing import TINY_TEXTS, build_tiny_model

OUTLIERS = 4  # channels scaled up in every norm
SCALE = 12.0


@pytest.fixture(scope="module")
def outlier_llama(tmp_path_factory):
    """A tiny Llama whose norms amplify a few channels, so every Linear after them sees outlier inputs."""
    from transformers import AutoModelForCausalLM

    folder = build_tiny_model(tmp_path_factory.mktemp("outliers") / "outlier-llama", "llama", hidden=128, intermediate=256, seed=3)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        for layer in model.model.layers:
            for norm in (layer.input_layernorm, layer.post_attention_layernorm):
                norm.weight[:OUTLIERS] *= SCALE
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reference(outlier_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(outlier_llama).eval()
    tokenizer = AutoTokenizer.from_pretrained(outlier_llama)
    calibration = load_calibration(list(TINY_TEXTS) * 3, tokenizer, num_samples=8, seq_len=64)
    ids = torch.stack(calibration.input_ids[:4])
    with torch.no_grad():
        logits = model(ids).logits
    return model, ids, logits


def _error(cm, reference) -> float:
    """Mean squared error of the compressed model's logits against the original's, on calibration text."""
    _, ids, logits = reference
    with torch.no_grad():
        return float((cm.model(ids).logits - logits).pow(2).mean())


def _compress(folder, recipe):
    return hfc.CompressedModel.from_pretrained(str(folder), recipe=recipe, calibration=list(TINY_TEXTS) * 3,
                                               num_samples=8, seq_len=64)


def test_gptq_corrects_what_round_to_nearest_leaves(outlier_llama, reference):
    # Same scheme, same observer: only the error correction differs.
    rtn = _error(_compress(outlier_llama, hfc.RTNConfig(bits=4, group_size=32, observer="minmax")), reference)
    gptq = _error(_compress(outlier_llama, hfc.GPTQConfig(bits=4, group_size=32, observer="minmax")), reference)
    assert gptq < 0.8 * rtn, (gptq, rtn)


def test_awq_scaling_beats_plain_rounding_on_outlier_channels(outlier_llama, reference):
    rtn = _error(_compress(outlier_llama, hfc.RTNConfig(bits=4, group_size=32, observer="minmax")), reference)
    awq = _error(_compress(outlier_llama, hfc.AWQConfig(bits=4, group_size=32, grid_points=10)), reference)
    assert awq < 0.9 * rtn, (awq, rtn)


def test_wanda_and_sparsegpt_read_the_activations(outlier_llama, reference):
    magnitude_cm = _compress(outlier_llama, hfc.PruneConfig(method="magnitude", sparsity=0.5))
    wanda_cm = _compress(outlier_llama, hfc.PruneConfig(method="wanda", sparsity=0.5))
    sparsegpt_cm = _compress(outlier_llama, hfc.PruneConfig(method="sparsegpt", sparsity=0.5))
    magnitude, wanda, sparsegpt = (_error(cm, reference) for cm in (magnitude_cm, wanda_cm, sparsegpt_cm))
    assert wanda < 0.8 * magnitude and sparsegpt < 0.8 * magnitude, (wanda, sparsegpt, magnitude)
    # Wanda keeps weights magnitude would drop: on the outlier input channels their small weights matter.
    q_wanda = target_linear_layers(wanda_cm.model)["model.layers.0.self_attn.q_proj"].weight
    q_magnitude = target_linear_layers(magnitude_cm.model)["model.layers.0.self_attn.q_proj"].weight
    differ = float(((q_wanda == 0) != (q_magnitude == 0)).float().mean())
    assert differ > 0.05
    assert float((q_wanda[:, :OUTLIERS] != 0).float().mean()) > float((q_magnitude[:, :OUTLIERS] != 0).float().mean())


def test_activation_aware_svd_keeps_what_the_activations_use(outlier_llama, reference):
    plain = _error(_compress(outlier_llama, hfc.LowRankConfig(rank=24, activation_aware=False)), reference)
    aware = _error(_compress(outlier_llama, hfc.LowRankConfig(rank=24, activation_aware=True)), reference)
    assert aware < 0.8 * plain, (aware, plain)


@pytest.mark.parametrize("importance", ["magnitude", "activation"])
def test_structured_pruning_removes_the_least_important_neurons(importance, outlier_llama, reference):
    model, ids, _ = reference
    original = copy.deepcopy(model)
    mlp = original.model.layers[0].mlp
    down = mlp.down_proj.weight.detach().pow(2).sum(0)
    if importance == "magnitude":
        score = (mlp.gate_proj.weight.detach().pow(2).sum(1) + mlp.up_proj.weight.detach().pow(2).sum(1) + down).sqrt()
    else:
        # Wanda-style: ||W_down[:, c]|| * sqrt(E[x_c^2]) with x the input of down_proj over the calibration samples.
        seen = []
        handle = mlp.down_proj.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().reshape(-1, args[0].shape[-1])))
        cm_calibration = load_calibration(list(TINY_TEXTS) * 3, hfc.CompressedModel.from_pretrained(str(outlier_llama)).tokenizer,
                                          num_samples=8, seq_len=64)
        with torch.no_grad():
            for sample in cm_calibration.input_ids:
                original(sample.reshape(1, -1))
        handle.remove()
        energy = torch.cat(seen).pow(2).mean(0)
        score = down.sqrt() * energy.sqrt()
    cm = _compress(outlier_llama, hfc.StructuredPruneConfig(target="neurons", ratio=0.25, importance=importance))
    kept = torch.sort(torch.topk(score, cm.model.config.intermediate_size).indices).values
    torch.testing.assert_close(cm.model.model.layers[0].mlp.down_proj.weight, mlp.down_proj.weight[:, kept])


def test_structured_pruning_removes_the_least_important_kv_groups(outlier_llama):
    from transformers import AutoModelForCausalLM

    original = AutoModelForCausalLM.from_pretrained(outlier_llama)
    attn = original.model.layers[1].self_attn
    heads, kv = original.config.num_attention_heads, original.config.num_key_value_heads
    head_dim = original.config.hidden_size // heads
    rep = heads // kv
    q = attn.q_proj.weight.detach().pow(2).sum(1).reshape(kv, rep * head_dim).sum(-1)
    k = attn.k_proj.weight.detach().pow(2).sum(1).reshape(kv, head_dim).sum(-1)
    v = attn.v_proj.weight.detach().pow(2).sum(1).reshape(kv, head_dim).sum(-1)
    o = attn.o_proj.weight.detach().pow(2).sum(0).reshape(kv, rep * head_dim).sum(-1)
    keep = int(torch.argmax(q + k + v + o))
    cm = _compress(outlier_llama, hfc.StructuredPruneConfig(target="heads", count=1, importance="magnitude"))
    rows = slice(keep * head_dim, (keep + 1) * head_dim)
    torch.testing.assert_close(cm.model.model.layers[1].self_attn.k_proj.weight, attn.k_proj.weight[rows])
