"""Every registered method, end to end on a tiny model: compress, save, reload in plain transformers, evaluate,
render the card, and appear in the Space's table under its family and label. A method that forgets a piece of its
presentation fails here, not in front of a user."""

from __future__ import annotations

import json

import pytest
import torch

import hfcompress as hfc
from hfcompress.config import config_class, config_kinds
from hfcompress.methods.registry import presentation_for, registered_kinds

EVAL = dict(max_tokens=128, context=64, stride=32, speed=False, generations=False, tasks=())


def test_every_config_of_the_package_is_a_registered_method_with_an_example():
    ours = [k for k in config_kinds() if config_class(k).__module__.startswith("hfcompress.")]
    assert sorted(ours) == sorted(registered_kinds())
    for kind in registered_kinds():
        presentation = presentation_for(kind)
        assert presentation.family != "other", f"{kind} has no family"
        assert isinstance(presentation.example(), config_class(kind)), f"{kind} has no example config"
        assert presentation.cli_names, f"{kind} has no --method name"


@pytest.mark.parametrize("kind", registered_kinds())
def test_a_registered_method_runs_end_to_end_and_presents_itself(kind, tiny_llama_dir, tiny_texts, tmp_path):
    from transformers import AutoModelForCausalLM

    from hfcompress.space import find_variants, table_rows

    from hfcompress.testing import build_tiny_model

    presentation = presentation_for(kind)
    config = presentation.example()
    model = build_tiny_model(tmp_path / "model", **presentation.example_model()) if presentation.example_model() else tiny_llama_dir
    cm = hfc.CompressedModel.from_pretrained(str(model), recipe=config, calibration=tiny_texts, num_samples=4, seq_len=32)
    cm.evaluate(eval_data=[tiny_texts], name=kind, **EVAL)
    out = cm.save_pretrained(tmp_path / "runs" / kind)

    # Plain transformers loads what was saved and computes what the compressed model computes (a GGUF file through
    # transformers' GGUF reader, within its 8-bit rounding).
    manifest = json.loads((out / "hfcompress.json").read_text())
    gguf_file = manifest["load"].get("gguf_file")
    plain = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=manifest["load"]["trust_remote_code"],
                                                 **({"gguf_file": gguf_file} if gguf_file else {})).eval()
    ids = torch.randint(3, 200, (1, 24))
    tolerance = 5e-2 if gguf_file else 1e-3
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, cm.model(ids).logits, rtol=tolerance, atol=tolerance)

    # The measured numbers went into results.json, and the card says what was done in the method's words.
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"]["perplexity"]["base"] > 0 and results["variant"]["recipe"][0]["kind"] == kind
    step = config.to_dict()
    card = (out / "README.md").read_text()
    assert presentation.sentence(step) in card
    assert all(f"- {tag}" in card for tag in presentation.tags(step))

    # The Space's table lists it under the method's family and label.
    row = next(r for r in table_rows(find_variants(tmp_path / "runs")) if r["variant"] == kind)
    assert row["family"] == presentation.family and row["method"] == presentation.label(step)
