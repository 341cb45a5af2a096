"""Prune, then recover by distillation, on the embedded SmolLM2-135M (slow: minutes on 2 cores)."""

from __future__ import annotations

import json

import pytest
import torch

import hfcompress as hfc

pytestmark = pytest.mark.slow


def test_pruned_smollm2_recovers_perplexity_by_distillation(tmp_path):
    from transformers import AutoModelForCausalLM

    recipe = [
        hfc.StructuredPruneConfig(target="neurons", ratio=0.25, importance="activation"),
        hfc.DistillConfig(steps=12, batch_size=2, seq_len=128, learning_rate=1e-4, warmup=0.1, eval_every=0,
                          eval_tokens=512, save_every=100),
    ]
    cm = hfc.CompressedModel.from_pretrained(None, recipe=recipe, num_samples=8, seq_len=256)
    info = cm.steps[-1].info
    assert cm.model.config.intermediate_size == 1152
    # eval_before is the pruned model, eval_after the distilled one, both on held-out text (never trained on).
    assert info["data"]["eval"] == "held-out corpus"
    assert info["eval_after"]["perplexity"] < info["eval_before"]["perplexity"]
    assert info["eval_after"]["kl"] < info["eval_before"]["kl"]
    assert info["teacher"] == "HuggingFaceTB/SmolLM2-135M-Instruct"

    out = cm.save_pretrained(tmp_path / "pruned-distilled")
    manifest = json.loads((out / "hfcompress.json").read_text())
    assert [s["kind"] for s in manifest["steps"]] == ["structured_prune", "distill"]
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    ids = cm.tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, cm.model(ids).logits, atol=1e-4)
