"""Benchmarks on tiny random models: perplexity equals a hand computation, results follow the schema, sizes are honest."""

from __future__ import annotations

import copy
import json
import math
import tempfile

import pytest
import torch

from hfcompress.errors import HFCompressError

# Settings that keep one evaluate() call to seconds on a tiny model; timing numbers are reported, not asserted.
FAST = dict(max_tokens=192, context=64, stride=32, speed_runs=1, warmup=0, prompt_tokens=8, new_tokens=2, batch_size=2,
            prompts=["Hello there"], max_new_tokens=4, task_items=10, progress=False)


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_llama_dir)


def _ids(tokenizer, text="The quick brown fox jumps over the lazy dog, twice; then it sleeps."):
    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_perplexity_equals_hand_computed_value_when_the_window_covers_the_text(tiny):
    from hfcompress.bench import negative_log_likelihood, perplexity

    model, tok = tiny
    ids = _ids(tok)
    with torch.no_grad():
        logits = model(ids[None]).logits[0].double()
    log_probs = torch.log_softmax(logits[:-1], dim=-1)
    hand = math.exp(-float(log_probs[torch.arange(len(ids) - 1), ids[1:]].mean()))

    assert perplexity(model, ids, context=len(ids) + 5, stride=len(ids) + 5) == pytest.approx(hand, rel=1e-5)
    nll, count = negative_log_likelihood(model, ids, context=len(ids), stride=len(ids))
    assert count == len(ids) - 1


def test_sliding_window_scores_every_token_once_and_matches_the_transformers_guide_loop(tiny):
    from hfcompress.bench import negative_log_likelihood

    model, tok = tiny
    ids = _ids(tok, "Sliding windows score each token once, with left context from the window before. " * 2)
    context, stride = 24, 10
    nll, count = negative_log_likelihood(model, ids, context=context, stride=stride)
    assert count == len(ids) - 1

    # The loop of the transformers perplexity guide, written out independently (labels=-100 for context).
    total, scored, prev_end = 0.0, 0, 0
    with torch.no_grad():
        for begin in range(0, len(ids), stride):
            end = min(begin + context, len(ids))
            trg_len = end - prev_end
            window = ids[begin:end][None]
            labels = window.clone()
            labels[:, :-trg_len] = -100
            out = model(window, labels=labels)
            valid = int((labels[:, 1:] != -100).sum())
            total += float(out.loss) * valid
            scored += valid
            prev_end = end
            if end == len(ids):
                break
    assert scored == count
    assert nll == pytest.approx(total, rel=1e-5)


def test_bad_window_settings_are_refused(tiny):
    from hfcompress.bench import perplexity

    model, tok = tiny
    with pytest.raises(ValueError, match="stride"):
        perplexity(model, _ids(tok), context=8, stride=16)


def test_packed_int4_weights_count_as_their_logical_number(tmp_path):
    from safetensors.torch import save_file

    from hfcompress.bench.size import checkpoint_stats

    # A 4 x 16 int4 matrix packed 8 per int32 (what compressed-tensors' pack-quantized writes), with its metadata.
    save_file({
        "model.embed_tokens.weight": torch.zeros(10, 16),
        "model.layers.0.mlp.up_proj.weight_packed": torch.zeros(4, 2, dtype=torch.int32),
        "model.layers.0.mlp.up_proj.weight_shape": torch.tensor([4, 16]),
        "model.layers.0.mlp.up_proj.weight_scale": torch.zeros(4, 1, dtype=torch.bfloat16),
        "model.layers.0.input_layernorm.weight": torch.ones(16),
    }, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"config_groups": {"g": {"weights": {"num_bits": 4}}}}}))
    stats = checkpoint_stats(tmp_path)
    assert stats["parameters"] == 160 + 64 + 16
    assert stats["parameters_linear"] == 64
    # 64 weights in 8 int32 (256 bits) + 4 bf16 scales (64 bits) + the int64 shape (128 bits)
    assert stats["bits_per_weight_linear"] == pytest.approx((256 + 64 + 128) / 64)
    total_bits = 160 * 32 + 256 + 128 + 64 + 16 * 32
    assert stats["bits_per_weight"] == pytest.approx(total_bits / 240)


def test_sparsity_counts_zeros_of_decoder_linear_weights(tiny):
    from hfcompress.bench.size import linear_sparsity

    model = copy.deepcopy(tiny[0])
    assert linear_sparsity(model) < 0.01
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and ".layers." in name:
                module.weight[:, ::2] = 0
    assert linear_sparsity(model) == pytest.approx(0.5)


def test_speed_summary_is_the_median_with_its_spread():
    from hfcompress.bench.speed import summarize

    s = summarize([10.0, 1.0, 4.0, 3.0, 2.0])
    assert (s["value"], s["spread_kind"], s["min"], s["max"], s["runs"]) == (3.0, "iqr", 1.0, 10.0, 5)
    assert s["spread"] == pytest.approx(4.0 - 2.0)


def test_evaluate_measures_variant_and_base_and_results_validate(tiny_llama_dir, tmp_path):
    import hfcompress as hfc
    from hfcompress.bench import load_results, validate_results, write_results
    from hfcompress.bench.perplexity import perplexity
    from hfcompress.data import evaluation_token_ids

    base = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir))
    variant = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir))
    with torch.no_grad():  # a crude "compression": zero a quarter of every decoder weight
        for name, module in variant.model.named_modules():
            if isinstance(module, torch.nn.Linear) and ".layers." in name:
                module.weight[:, ::4] = 0

    cache: dict = {}
    res = variant.evaluate(base=base, base_cache=cache, name="zeroed", **FAST)
    data = res.to_dict()
    print(res.table())  # timing and memory: reported, not asserted

    m = data["metrics"]
    ids, _ = evaluation_token_ids("default", variant.tokenizer, max_tokens=192)
    assert m["perplexity"]["value"] == pytest.approx(perplexity(variant.model, ids, context=64, stride=32), rel=1e-6)
    assert m["perplexity"]["base"] == pytest.approx(perplexity(base.model, ids, context=64, stride=32), rel=1e-6)
    assert m["perplexity"]["ratio"] == pytest.approx(m["perplexity"]["value"] / m["perplexity"]["base"])
    assert m["perplexity"]["tokens"] == 192 and m["perplexity"]["scored_tokens"] == 191
    assert m["sparsity"]["value"] == pytest.approx(0.25) and m["sparsity"]["base"] < 0.01
    assert 0.0 <= m["next_token_agreement"]["value"] <= 1.0
    assert m["parameters"]["value"] == m["parameters"]["base"] == sum(p.numel() for p in base.model.parameters())
    for name in ("decode_tokens_per_s", "decode_tokens_per_s_batch2", "time_to_first_token", "peak_memory", "size_on_disk"):
        assert m[name]["value"] > 0 and m[name]["base"] > 0
    assert data["generations"][0]["prompt"] == "Hello there" and "base" in data["generations"][0]
    for task in ("last_word", "cloze"):  # the offline tasks, on by default, with their standard errors
        acc = m[f"task/{task}/acc"]
        assert 0 <= acc["value"] <= 1 and 0 <= acc["base"] <= 1 and acc["samples"] == 10 and acc["stderr"] >= 0
    assert data["reproduce"].startswith("hfcompress ")
    assert data["environment"]["versions"]["torch"] == torch.__version__
    assert len(cache) == 1  # the base's numbers are kept for the next variant

    folder = tmp_path / "zeroed"
    folder.mkdir()
    write_results(folder, data)
    assert load_results(folder)[0]["metrics"]["perplexity"]["value"] == m["perplexity"]["value"]
    assert [r["variant"]["name"] for r in load_results(tmp_path)] == ["zeroed"]

    broken = copy.deepcopy(data)
    del broken["metrics"]["perplexity"]["unit"]
    with pytest.raises(HFCompressError, match="results.schema.json"):
        validate_results(broken)
    with pytest.raises(HFCompressError, match="schema_version"):
        validate_results({**data, "schema_version": "0.9"})
    with pytest.raises(HFCompressError):
        write_results(folder, {**data, "reproduce": ""})
    assert json.loads((folder / "results.json").read_text())["reproduce"] == data["reproduce"]


def test_evaluate_refuses_bad_settings_before_any_work(tiny_llama_dir):
    import hfcompress as hfc
    from hfcompress.bench import EvalSettings

    with pytest.raises(HFCompressError, match="stride"):
        EvalSettings(context=128, stride=256)
    with pytest.raises(HFCompressError, match="max_tokens"):
        EvalSettings(max_tokens=1)
    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir))
    with pytest.raises(HFCompressError, match="unknown evaluation setting 'max_token'"):
        cm.evaluate(max_token=2048)


def test_public_eval_sets_are_skipped_with_the_reason_when_offline(tiny_llama_dir, monkeypatch):
    import hfcompress as hfc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir))
    res = cm.evaluate(base=False, eval_data=["default", "wikitext2"], speed=False, generations=False,
                   **{k: v for k, v in FAST.items() if k in ("max_tokens", "context", "stride", "progress")})
    assert "perplexity" in res.metrics and "perplexity/wikitext2" not in res.metrics
    assert res.skipped[0]["metric"] == "perplexity/wikitext2" and "offline" in res.skipped[0]["reason"]
    res.to_dict()  # still a valid result


def test_an_in_memory_variant_is_measured_as_saved_and_reloaded(tiny_llama_dir):
    import hfcompress as hfc
    from transformers import AutoModelForCausalLM

    from hfcompress.bench.perplexity import perplexity
    from hfcompress.data import evaluation_token_ids

    texts = ["The quick brown fox jumps over the lazy dog. " * 8, "Paris is the capital of France. " * 8]
    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.RTNConfig(bits=8), calibration=texts,
                                             num_samples=2, seq_len=32)
    res = cm.evaluate(base=False, **FAST)
    m = res.metrics
    assert res.settings["measured"] == "saved folder, reloaded"
    assert m["load_peak_memory"]["value"] >= 0 and m["size_on_disk"]["value"] > 0
    assert res.variant["name"].endswith("-rtn") and res.variant["recipe"][0]["kind"] == "rtn"
    assert m["compress_time"]["value"] > 0

    # The perplexity is the one the saved folder gives in plain transformers.
    with tempfile.TemporaryDirectory() as tmp:
        folder = cm.save_pretrained(tmp + "/v", card=False)
        reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        ids, _ = evaluation_token_ids("default", cm.tokenizer, max_tokens=FAST["max_tokens"])
        expected = perplexity(reloaded, ids, context=FAST["context"], stride=FAST["stride"])
    assert m["perplexity"]["value"] == pytest.approx(expected, rel=1e-5)

    in_memory = cm.evaluate(base=False, reload=False, speed=False, generations=False,
                         **{k: v for k, v in FAST.items() if k in ("max_tokens", "context", "stride", "progress")})
    assert in_memory.settings["measured"] == "in-memory model" and "load_peak_memory" not in in_memory.metrics
