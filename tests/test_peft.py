"""LoRA-adapted models in: a PEFT adapter (folder or Hub id) loads its base, is merged, compressed and recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import hfcompress as hfc
from hfcompress.errors import HFCompressError
from hfcompress.loading import load_model
from hfcompress.testing import build_tiny_model
from hub_server import HubServer

IDS = torch.tensor([[1, 17, 42, 99, 7, 200, 3, 64, 5, 128]])


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


def _make_lora(base: Path, out: Path) -> torch.Tensor:
    """Save a LoRA adapter on ``base`` with random (non-zero) A and B into ``out``; return the merged model's logits."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    # init_lora_weights=False: B is random, not zero, so the adapter really changes the outputs.
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                                  init_lora_weights=False))
    peft_model.save_pretrained(out)
    assert any(v.abs().sum() > 0 for k, v in peft_model.state_dict().items() if "lora_B" in k)
    return _logits(peft_model.merge_and_unload().eval())


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> tuple[Path, Path, torch.Tensor]:
    root = tmp_path_factory.mktemp("peft")
    base = build_tiny_model(root / "tiny-base")
    merged = _make_lora(base, root / "tiny-lora")
    return base, root / "tiny-lora", merged


def test_an_adapter_folder_is_merged_compressed_and_recorded(adapter, tmp_path):
    from huggingface_hub import ModelCard

    base, lora, merged_logits = adapter
    assert json.loads((lora / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)
    loaded = load_model(lora)
    # The model as loaded is the base with the adapter merged, not the bare base.
    torch.testing.assert_close(_logits(loaded.model), merged_logits, rtol=0, atol=1e-5)
    assert not torch.allclose(_logits(load_model(base).model), merged_logits, atol=1e-3)
    assert not any("lora" in name for name, _ in loaded.model.named_parameters())

    cm = hfc.CompressedModel.from_pretrained(lora, recipe=hfc.PruneConfig(method="magnitude", sparsity=0.5))
    # Magnitude pruning ran on the merged weights: what it kept are the merged model's values.
    merged_weight = loaded.model.model.layers[0].self_attn.q_proj.weight
    pruned = cm.model.model.layers[0].self_attn.q_proj.weight.detach()
    kept = pruned != 0
    assert kept.float().mean().item() == pytest.approx(0.5, abs=0.01)
    torch.testing.assert_close(pruned[kept], merged_weight.detach()[kept], rtol=0, atol=0)
    # The reference a benchmark compares with (the recorded source, reloaded) is the merged model too.
    torch.testing.assert_close(_logits(load_model(cm.source.load_argument()).model), merged_logits, rtol=0, atol=1e-5)

    out = cm.save_pretrained(tmp_path / "tiny-lora-pruned")
    manifest = json.loads((out / "hfcompress.json").read_text())
    assert manifest["base_model"]["kind"] == "folder" and manifest["base_model"]["path"] == str(base.resolve())
    assert manifest["base_model"]["adapter"] == {
        "kind": "folder", "model_id": str(lora.resolve()), "revision": None, "path": str(lora.resolve()),
        "peft_type": "LORA", "hub_id": None, "base_model_name_or_path": str(base)}
    text = ModelCard.load(out / "README.md").text
    assert "LORA adapter `tiny-lora (a local folder)`" in text and str(lora.resolve()) not in text
    assert "hfcompress compress path/to/tiny-lora " in text  # the reproduce command starts from the adapter

    reloaded = hfc.CompressedModel.from_pretrained(out)
    assert reloaded.source.adapter is not None and reloaded.source.adapter.peft_type == "LORA"
    torch.testing.assert_close(_logits(reloaded.model), _logits(cm.model), rtol=0, atol=1e-5)
    # results.json names what was measured as the base: the base with the adapter merged.
    results = reloaded.evaluate(max_tokens=64, context=32, stride=16, speed=False, generations=False, tasks=[], kl=False)
    assert results.base_model["adapter"] == {"model_id": str(lora.resolve()), "revision": None, "peft_type": "LORA"}


def test_an_adapter_from_the_hub_names_its_base_in_the_card_metadata(adapter, tmp_path):
    from huggingface_hub import HfApi, ModelCard

    base, lora, merged_logits = adapter
    with HubServer() as hub, hub.client_env():
        api = HfApi()
        api.create_repo("tester/tiny-base")
        api.upload_folder(folder_path=str(base), repo_id="tester/tiny-base")
        config = json.loads((lora / "adapter_config.json").read_text())
        hub_lora = tmp_path / "hub-lora"
        hub_lora.mkdir()
        (hub_lora / "adapter_model.safetensors").write_bytes((lora / "adapter_model.safetensors").read_bytes())
        (hub_lora / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "tester/tiny-base"}))
        api.create_repo("tester/tiny-lora")
        api.upload_folder(folder_path=str(hub_lora), repo_id="tester/tiny-lora")

        cm = hfc.CompressedModel.from_pretrained("tester/tiny-lora", recipe=hfc.RTNConfig(bits=8))
        manifest = cm.manifest()
        out = cm.save_pretrained(tmp_path / "tiny-lora-rtn")
        base_commit = hub.repos["tester/tiny-base"].last_commit.oid
        lora_commit = hub.repos["tester/tiny-lora"].last_commit.oid
    assert manifest["base_model"]["kind"] == "hub" and manifest["base_model"]["model_id"] == "tester/tiny-base"
    assert manifest["base_model"]["revision"] == base_commit
    assert manifest["base_model"]["adapter"]["model_id"] == "tester/tiny-lora"
    assert manifest["base_model"]["adapter"]["revision"] == lora_commit
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == "tester/tiny-base"
    assert "[tester/tiny-lora](https://huggingface.co/tester/tiny-lora)" in card.text
    assert f"hfcompress compress tester/tiny-lora --revision {lora_commit} " in card.text


def test_base_model_replaces_the_base_an_adapter_cannot_find(adapter, tmp_path):
    base, lora, merged_logits = adapter
    moved = tmp_path / "moved-lora"
    moved.mkdir()
    (moved / "adapter_model.safetensors").write_bytes((lora / "adapter_model.safetensors").read_bytes())
    config = json.loads((lora / "adapter_config.json").read_text())
    (moved / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "/gone/tiny-base"}))

    with pytest.raises(HFCompressError) as err:
        hfc.CompressedModel.from_pretrained(moved, recipe=hfc.RTNConfig(bits=8))
    message = str(err.value)
    assert "\n" not in message and "moved-lora" in message and "/gone/tiny-base" in message and "base_model=" in message

    cm = hfc.CompressedModel.from_pretrained(moved, recipe=hfc.RTNConfig(bits=8), base_model=str(base))
    assert cm.source.path == str(base.resolve()) and cm.source.adapter.base_model_name_or_path == "/gone/tiny-base"
    torch.testing.assert_close(_logits(load_model(cm.source.load_argument()).model), merged_logits, rtol=0, atol=1e-5)
    # A folder as base_model is only an adapter's base.
    with pytest.raises(HFCompressError, match="only an adapter's base"):
        hfc.CompressedModel.from_pretrained(base, recipe=hfc.RTNConfig(bits=8), base_model=str(base))


def test_an_adapter_peft_cannot_merge_is_refused_in_one_line(adapter, tmp_path):
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base, _, _ = adapter
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    get_peft_model(model, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)).save_pretrained(tmp_path / "prompt")
    with pytest.raises(HFCompressError) as err:
        hfc.CompressedModel.from_pretrained(tmp_path / "prompt", recipe=hfc.RTNConfig(bits=8))
    assert "\n" not in str(err.value) and "PROMPT_TUNING" in str(err.value) and "cannot merge" in str(err.value)
