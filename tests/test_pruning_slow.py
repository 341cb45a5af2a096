"""Slow: on the embedded SmolLM2-135M, Wanda at 50% keeps perplexity lower than magnitude pruning at 50%."""

from __future__ import annotations

import pytest
import torch

import hfcompress as hfc
from hfcompress.bench.perplexity import perplexity
from hfcompress.data import evaluation_token_ids


@pytest.mark.slow
def test_wanda_50_beats_magnitude_50_on_smollm2():
    results = {}
    for method in ("magnitude", "wanda"):
        cm = hfc.CompressedModel.from_pretrained(None, recipe=hfc.PruneConfig(method=method, sparsity=0.5), num_samples=64)
        info = cm.steps[0].info
        assert info["pruned_layers"] == 210  # 30 layers x 7 projections; lm_head and embeddings untouched
        assert info["sparsity_min"] >= 0.499 and info["sparsity_max"] <= 0.501
        ids, _ = evaluation_token_ids("default", cm.tokenizer, max_tokens=2048)
        results[method] = perplexity(cm.model, ids, context=512, stride=256)
        del cm
        torch.manual_seed(0)
    assert results["wanda"] < results["magnitude"], results
