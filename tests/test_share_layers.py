"""Cross-layer weight sharing on tiny random models (Llama, Qwen3, Gemma 3, Mistral).

What a user relies on: the layers of a group hold the very same tensors (the norms stay per layer), with the mean or
the first layer's values; the unique parameter count and the safetensors file drop by exactly the layers given up;
the folder reloads (trust_remote_code) with the logits it had before saving and the layers still tied; distillation
after it trains each shared tensor once with every layer's gradient; and bad input is one line.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

import hfcompress as hfc
from hfcompress.config import CompressionConfig
from hfcompress.errors import HFCompressError
from hfcompress.methods.architecture.share_layers import TorchShareLayers
from hfcompress.methods.registry import StepContext, cli_method, presentation_for
from hfcompress.testing import TINY_TEXTS, build_tiny_model, tiny_config, tiny_model

# Per layer of the tiny models (hidden 64, 4 query heads and 2 KV heads of 16, MLP 128): q, o 64x64; k, v 32x64;
# gate, up, down 64x128. The norms (128 numbers, Gemma 3 and Qwen3 also q/k norms) stay per layer.
SHARED_PER_LAYER = 2 * 64 * 64 + 2 * 32 * 64 + 3 * 64 * 128
PROJECTIONS = ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
               "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")


def _share(model, tok, **options):
    return TorchShareLayers().compress(model, tok, hfc.ShareLayersConfig(**options), StepContext(progress=False))


def _unique_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() yields a shared tensor once


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def _weights_file_bytes(folder) -> int:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors"))


@pytest.mark.parametrize("arch", ["llama", "qwen3", "gemma3", "mistral"])
@pytest.mark.parametrize("init", ["mean", "first"])
def test_the_layers_of_a_group_hold_the_same_tensors_with_the_chosen_values(arch, init):
    model, tok = tiny_model(arch, layers=5)
    layers = model.model.layers
    originals = [{n: p.detach().clone() for n, p in layer.named_parameters()} for layer in layers]
    before = _unique_parameters(model)
    result = _share(model, tok, every=2, init=init)

    assert result.info["groups"] == [[0, 1], [2, 3]]  # layer 4 is left over and keeps its own weights
    for first, second in ([0, 1], [2, 3]):
        for name in PROJECTIONS:
            shared = layers[first].get_parameter(name)
            assert shared is layers[second].get_parameter(name)
            expected = originals[first][name] if init == "first" else (originals[first][name] + originals[second][name]) / 2
            torch.testing.assert_close(shared.detach(), expected)
        norms = [n for n in originals[first] if "norm" in n]
        assert norms and all(layers[first].get_parameter(n) is not layers[second].get_parameter(n) for n in norms)
        assert all(torch.equal(layers[second].get_parameter(n), originals[second][n]) for n in norms)  # untouched
    assert all(torch.equal(layers[4].get_parameter(n), originals[4][n]) for n in PROJECTIONS)
    assert not any(layers[4].get_parameter(n) is layers[3].get_parameter(n) for n in PROJECTIONS)
    # Two groups of two: two layers' projections are no longer stored.
    assert before - _unique_parameters(model) == result.info["parameters_removed"] == 2 * SHARED_PER_LAYER
    assert model.config.shared_layer_groups == [[0, 1], [2, 3]]


def test_explicit_groups_of_three_keep_one_copy_each():
    model, tok = tiny_model("qwen3", layers=6)
    before = _unique_parameters(model)
    _share(model, tok, groups=[[5, 3, 4], [0, 2]])  # any order; layer 1 is in no group
    layers = model.model.layers
    up = [layers[i].mlp.up_proj.weight for i in range(6)]
    assert up[3] is up[4] is up[5] and up[0] is up[2] and up[1] is not up[0] and up[1] is not up[3]
    assert before - _unique_parameters(model) == 3 * SHARED_PER_LAYER
    assert model.config.shared_layer_groups == [[3, 4, 5], [0, 2]]


def _tied_embeddings_model():
    config = tiny_config("llama", layers=4)
    config.tie_word_embeddings = True  # as SmolLM2: transformers' own tie of lm_head to the embeddings must survive
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    return model, tiny_model("llama")[1]


@pytest.mark.parametrize("arch", ["llama", "qwen3", "gemma3", "tied-embeddings"])
def test_saved_once_smaller_file_and_reload_gives_the_same_logits(arch, tmp_path):
    model, tok = _tied_embeddings_model() if arch == "tied-embeddings" else tiny_model(arch, layers=4)
    model.save_pretrained(tmp_path / "base")
    result = _share(model, tok, every=2)
    ids = torch.randint(3, 200, (1, 24))
    before = _logits(model, ids)
    model.save_pretrained(tmp_path / "shared")

    saved = json.loads((tmp_path / "shared" / "config.json").read_text())
    assert saved["shared_layer_groups"] == [[0, 1], [2, 3]]
    assert saved["auto_map"]["AutoModelForCausalLM"].startswith("modeling_shared_layers.SharedLayers")
    assert (tmp_path / "shared" / "modeling_shared_layers.py").is_file()
    with safe_open(str(next((tmp_path / "shared").glob("*.safetensors"))), "pt") as f:
        keys = set(f.keys())
    assert all(f"model.layers.0.{n}" in keys and f"model.layers.1.{n}" not in keys for n in PROJECTIONS)
    assert "model.layers.1.input_layernorm.weight" in keys  # norms stay per layer
    assert ("lm_head.weight" in keys) == (arch != "tied-embeddings")
    # The file lost exactly the two layers' projections (float32), give or take the header's entries.
    dropped = _weights_file_bytes(tmp_path / "base") - _weights_file_bytes(tmp_path / "shared")
    assert 2 * SHARED_PER_LAYER * 4 <= dropped < 2 * SHARED_PER_LAYER * 4 + 4096
    assert result.info["parameters_removed"] == 2 * SHARED_PER_LAYER

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "shared", trust_remote_code=True).eval()
    torch.testing.assert_close(_logits(reloaded, ids), before, rtol=1e-5, atol=1e-5)
    layers = reloaded.model.layers
    assert all(layers[0].get_parameter(n) is layers[1].get_parameter(n) for n in PROJECTIONS)
    assert _unique_parameters(reloaded) == _unique_parameters(model)
    if arch == "tied-embeddings":
        assert reloaded.lm_head.weight is reloaded.model.embed_tokens.weight


def test_gradients_of_every_layer_of_a_group_accumulate_into_the_shared_tensor():
    model, tok = tiny_model("llama", layers=2)
    _share(model, tok, every=2)
    untied = copy.deepcopy(model)  # the same values, each layer holding its own copy
    for name in PROJECTIONS:
        parent, _, leaf = name.rpartition(".")
        module = untied.model.layers[1].get_submodule(parent)
        setattr(module, leaf, torch.nn.Parameter(module.get_parameter(leaf).detach().clone()))
    ids = torch.randint(3, 200, (2, 16))
    for m in (model, untied):
        m.train()
        m(ids, labels=ids).loss.backward()
    for name in PROJECTIONS:
        summed = untied.model.layers[0].get_parameter(name).grad + untied.model.layers[1].get_parameter(name).grad
        torch.testing.assert_close(model.model.layers[0].get_parameter(name).grad, summed, rtol=1e-4, atol=1e-6)
    params = list(model.parameters())
    assert len({id(p) for p in params}) == len(params) == len(list(untied.parameters())) - len(PROJECTIONS)


def test_distillation_after_sharing_trains_the_shared_tensors_once_and_keeps_them_tied(tmp_path, monkeypatch):
    from transformers import Trainer

    seen: list[list[int]] = []
    create = Trainer.create_optimizer

    def record(self, *args, **kwargs):
        optimizer = create(self, *args, **kwargs)
        seen.append([id(p) for group in optimizer.param_groups for p in group["params"]])
        return optimizer

    monkeypatch.setattr(Trainer, "create_optimizer", record)
    folder = build_tiny_model(tmp_path / "base", "qwen3", layers=4)
    share = hfc.ShareLayersConfig(every=2)
    distill = hfc.DistillConfig(steps=2, batch_size=2, seq_len=32, learning_rate=1e-3, eval_every=0, eval_tokens=64,
                                run_dir=str(tmp_path / "run"))
    shared_only = hfc.CompressedModel.from_pretrained(str(folder), recipe=[share], calibration=list(TINY_TEXTS),
                                                      num_samples=4, seq_len=32)
    cm = hfc.CompressedModel.from_pretrained(str(folder), recipe=[share, distill], calibration=list(TINY_TEXTS),
                                             num_samples=4, seq_len=32)

    layers = cm.model.model.layers
    assert all(layers[0].get_parameter(n) is layers[1].get_parameter(n) for n in PROJECTIONS)
    assert all(layers[2].get_parameter(n) is layers[3].get_parameter(n) for n in PROJECTIONS)
    # The optimizer got each shared tensor once: as many entries as unique trainable parameters, no duplicates.
    ids = seen[-1]
    trainable = [p for p in cm.model.parameters() if p.requires_grad]
    assert len(ids) == len(set(ids)) == len(trainable)
    assert id(layers[0].mlp.up_proj.weight) in ids and id(layers[1].mlp.up_proj.weight) in ids  # the same id
    info = cm.steps[-1].info
    assert info["train_loss"] is not None and torch.isfinite(torch.tensor(info["train_loss"]))
    assert info["shared_layers"]["untied_tensors"] == 0 and info["shared_layers"]["tied_tensors"] == 2 * len(PROJECTIONS)
    # Training changed the shared weights (it did something), and the unique count is still the shared one.
    assert not torch.equal(layers[0].mlp.up_proj.weight, shared_only.model.model.layers[0].mlp.up_proj.weight)
    assert _unique_parameters(cm.model) == _unique_parameters(shared_only.model)

    out = cm.save_pretrained(tmp_path / "variant")
    manifest = json.loads((out / "hfcompress.json").read_text())
    assert manifest["load"]["trust_remote_code"] is True
    reloaded = hfc.CompressedModel.from_pretrained(str(out))
    ids_in = torch.randint(3, 200, (1, 16))
    torch.testing.assert_close(_logits(reloaded.model, ids_in), _logits(cm.model.eval(), ids_in), rtol=1e-4, atol=1e-4)


def test_a_later_step_that_rewrites_every_layer_alike_is_tied_again(tmp_path):
    # GQA's mean merge gives each layer new k/v Parameters with the same values: the hold ties them back.
    cm = hfc.CompressedModel.from_pretrained(str(build_tiny_model(tmp_path / "base", "llama", layers=4)),
                                             recipe=[hfc.ShareLayersConfig(every=2), hfc.GQAConfig(num_key_value_heads=1, method="mean")])
    layers = cm.model.model.layers
    assert layers[0].self_attn.k_proj.weight.shape == (16, 64)
    assert layers[0].self_attn.k_proj.weight is layers[1].self_attn.k_proj.weight
    report = cm.steps[-1].info["shared_layers"]
    assert report["untied_tensors"] == 0 and report["retied_tensors"] == 4  # k and v, in two groups


def test_recipe_yaml_cli_and_card(tiny_llama_dir, tmp_path):
    recipe = [hfc.ShareLayersConfig(groups=[[0, 1]], init="first"), hfc.DistillConfig(steps=1)]
    assert hfc.recipe_from_yaml(hfc.recipe_to_yaml(recipe)) == recipe
    assert CompressionConfig.from_dict({"kind": "share_layers"}) == hfc.ShareLayersConfig(every=2)
    assert cli_method("share-layers") == ("share_layers", {}) and cli_method("share-layers-first") == ("share_layers", {"init": "first"})
    out = subprocess.run([sys.executable, "-m", "hfcompress.cli", "compress", str(tiny_llama_dir), "--method", "share-layers-first",
                          "-o", str(tmp_path / "v")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    manifest = json.loads((tmp_path / "v" / "hfcompress.json").read_text())
    assert manifest["recipe"][0] == {"kind": "share_layers", "every": 2, "groups": None, "init": "first"}
    assert manifest["steps"][0]["info"]["parameters_removed"] == SHARED_PER_LAYER
    card = (tmp_path / "v" / "README.md").read_text()
    presentation = presentation_for("share_layers")
    assert presentation.sentence(manifest["recipe"][0]) in card
    assert "not faster" in card and "KV cache" in card and "run distillation" in card and "trust_remote_code=True" in card
    assert presentation.label(manifest["recipe"][0]) == "Shared layers every 2 (first)"


@pytest.mark.parametrize("options, words", [
    ({"groups": [[0, 1], [1, 2]]}, "layer 1 is named twice"),
    ({"groups": [[0, 0]]}, "layer 0 is named twice"),
    ({"groups": [[0]]}, "holds one layer"),
    ({"groups": [[0, "a"]]}, "must be a list of lists of layer indices"),
    ({"every": 1}, "every=1 shares nothing"),
    ({"every": 2, "groups": [[0, 1]]}, "not both"),
    ({"init": "median"}, "unknown init 'median'"),
])
def test_bad_configs_are_one_line(options, words):
    with pytest.raises(HFCompressError) as err:
        hfc.ShareLayersConfig(**options)
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("options, words", [
    ({"groups": [[0, 2]]}, "layer 2 in group [0, 2] does not exist: this model has 2 decoder layers"),
    ({"every": 3}, "every=3 is more than this model's 2 decoder layers"),
])
def test_configs_that_do_not_fit_the_model_are_one_line_before_any_work(options, words, tiny_llama_dir):
    with pytest.raises(HFCompressError) as err:
        hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.ShareLayersConfig(**options))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_a_model_without_the_standard_decoder_layout_is_one_line():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=256, n_positions=64))
    with pytest.raises(HFCompressError, match=r"GPT2LMHeadModel has no standard decoder layout .*[^\n]$"):
        hfc.ShareLayersConfig().validate_for_model(gpt2)
    model, tok = tiny_model("llama", layers=4)
    _share(model, tok, every=2)
    with pytest.raises(HFCompressError, match="already runs custom modeling code"):
        hfc.ShareLayersConfig().validate_for_model(model)
