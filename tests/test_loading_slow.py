"""The embedded default model: loads offline, from the cached folder and from the GGUF file alike."""

from __future__ import annotations

import pytest
import torch

from hfcompress.loading import EMBEDDED_MODEL_ID, embedded_gguf_path, load_model

pytestmark = pytest.mark.slow


def test_embedded_default_loads_offline_and_matches_its_gguf_file():
    cached = load_model(None)
    assert cached.source.kind == "embedded" and cached.source.model_id == EMBEDDED_MODEL_ID
    assert "GGUF" in cached.source.note
    assert cached.model.config.hidden_size == 576 and cached.model.config.num_hidden_layers == 30
    assert abs(sum(p.numel() for p in cached.model.parameters()) - 134.5e6) < 0.1e6
    from_gguf = load_model(str(embedded_gguf_path()))
    assert from_gguf.source.kind == "gguf"
    ids = cached.tokenizer("The capital of France is", return_tensors="pt").input_ids
    assert ids.tolist() == from_gguf.tokenizer("The capital of France is", return_tensors="pt").input_ids.tolist()
    with torch.no_grad():
        a, b = cached.model(ids).logits, from_gguf.model(ids).logits
    torch.testing.assert_close(a, b)
    assert cached.tokenizer.decode(a[0, -1].argmax()).strip() == "Paris"
