"""Slow: benchmark one real variant of the embedded SmolLM2-135M-Instruct against its base (a few minutes on 2 cores)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_rtn_int8_of_smollm2_is_measured_against_its_base(tmp_path):
    import hfcompress as hfc
    from hfcompress.bench import EvalSettings, evaluate, load_results, write_results

    cm = hfc.CompressedModel.from_pretrained(None, recipe=hfc.RTNConfig(bits=8))
    folder = cm.save_pretrained(tmp_path / "SmolLM2-135M-Instruct-rtn-int8", card=False)
    settings = EvalSettings(max_tokens=1024, context=512, stride=256, speed_runs=2, new_tokens=8, prompt_tokens=32, max_new_tokens=16)
    res = evaluate(folder, settings, progress=False)
    print(res.table())  # timings and memory: reported, not asserted
    m = res.metrics
    assert res.base_model["model_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert 5 < m["perplexity"]["base"] < 40
    assert m["perplexity"]["ratio"] < 1.05                       # int8 per channel is near lossless
    assert m["next_token_agreement"]["value"] > 0.9
    assert m["parameters"]["value"] == pytest.approx(m["parameters"]["base"], rel=1e-3)
    assert 7.9 < m["bits_per_weight_linear"]["value"] < 8.5      # int8 + one scale per output channel
    assert m["size_on_disk"]["ratio"] < 0.7
    # The embedded base (loaded from no path at all) is timed in alternating runs too.
    assert m["decode_tokens_per_s"]["base"] > 0 and m["decode_tokens_per_s"]["ratio"] > 0
    assert all(g["variant"] for g in res.generations)
    write_results(folder, res.to_dict())
    assert load_results(folder)[0]["metrics"]["perplexity"]["value"] == m["perplexity"]["value"]


def test_lm_eval_task_metrics_and_stderr_land_in_results(tiny_llama_dir, tmp_path):
    """lm-evaluation-harness through hfcompress on a local multiple-choice task (no network); ~20 s to import lm-eval."""
    import json

    pytest.importorskip("lm_eval")
    import hfcompress as hfc

    rows = [{"question": f"Question {i}: which colour is the sky?", "choices": ["blue", "green", "red"], "answer": i % 3} for i in range(6)]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "tiny_mc.yaml").write_text(
        "task: hfc_tiny_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {tmp_path / 'data.jsonl'}\ntest_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: "{{answer}}"\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir))
    res = cm.evaluate(base=False, max_tokens=64, context=32, stride=16, speed=False, generations=False, progress=False,
                   lm_eval_tasks=["hfc_tiny_mc", "surely_not_a_task"], lm_eval_include_path=tmp_path)
    acc = res.metrics["lm_eval/hfc_tiny_mc/acc"]
    assert 0.0 <= acc["value"] <= 1.0 and acc["stderr"] > 0 and acc["higher_is_better"] is True and acc["samples"] == 6
    assert res.skipped[0]["metric"] == "lm_eval/surely_not_a_task"
    res.to_dict()
