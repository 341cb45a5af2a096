"""Slow: benchmark one real variant of the embedded SmolLM2-135M-Instruct against its base (a few minutes on 2 cores)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_rtn_int8_of_smollm2_is_measured_against_its_base(tmp_path):
    import hfcompress as hfc
    from hfcompress.bench import load_results, write_results

    cm = hfc.CompressedModel.from_pretrained(None, recipe=hfc.RTNConfig(bits=8))
    folder = cm.save_pretrained(tmp_path / "SmolLM2-135M-Instruct-rtn-int8", card=False)
    res = cm.evaluate(saved_dir=folder, max_tokens=1024, context=512, stride=256, speed_runs=2, new_tokens=8,
                      prompt_tokens=32, max_new_tokens=16, progress=False)
    print(res.table())  # timings and memory: reported, not asserted
    m = res.metrics
    assert res.base_model["model_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert 5 < m["perplexity"]["base"] < 40
    assert m["perplexity"]["ratio"] < 1.05                       # int8 per channel is near lossless
    assert m["next_token_agreement"]["value"] > 0.9
    assert m["parameters"]["value"] == pytest.approx(m["parameters"]["base"], rel=1e-3)
    assert 7.9 < m["bits_per_weight_linear"]["value"] < 8.5      # int8 + one scale per output channel
    assert m["size_on_disk"]["ratio"] < 0.7
    assert all(g["variant"] for g in res.generations)
    write_results(folder, res.to_dict())
    assert load_results(folder)[0]["metrics"]["perplexity"]["value"] == m["perplexity"]["value"]
