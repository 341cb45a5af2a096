"""Loading inputs as users hand them over: a sharded checkpoint is read whole, compressed, and reloads the same."""

from __future__ import annotations

import json

import torch

import hfcompress as hfc
from hfcompress.loading import load_model
from hfcompress.testing import tiny_model

IDS = torch.tensor([[1, 17, 42, 99, 7, 200, 3, 64, 5, 128]])


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


def test_a_sharded_checkpoint_is_read_whole_compressed_and_reloads_with_the_same_logits(tmp_path):
    from transformers import AutoModelForCausalLM

    model, tokenizer = tiny_model()
    folder = tmp_path / "tiny-sharded"
    model.save_pretrained(folder, max_shard_size="100KB")
    tokenizer.save_pretrained(folder)
    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert len(shards) >= 3 and not (folder / "model.safetensors").exists()
    assert {p.name for p in shards} == set(index["weight_map"].values())
    last = index["weight_map"]["model.layers.1.mlp.down_proj.weight"]
    assert last != index["weight_map"]["model.layers.0.self_attn.q_proj.weight"]  # the layers span several shards

    # Every shard is read: a weight missing from the load would be re-initialized at random and change the logits.
    torch.testing.assert_close(_logits(load_model(folder).model), _logits(model), rtol=0, atol=0)

    for name, config in (("rtn", hfc.RTNConfig(bits=8)), ("magnitude", hfc.PruneConfig(method="magnitude", sparsity=0.5))):
        cm = hfc.CompressedModel.from_pretrained(folder, recipe=config)
        assert not torch.allclose(_logits(cm.model), _logits(model), atol=1e-6)  # it was compressed
        out = cm.save_pretrained(tmp_path / f"tiny-sharded-{name}")
        reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        torch.testing.assert_close(_logits(reloaded), _logits(cm.model), rtol=0, atol=1e-5)
    pruned = cm.model.model.layers[1].mlp.down_proj.weight  # a later shard's layer was pruned too
    assert (pruned == 0).float().mean().item() == 0.5
