"""GGUF export on tiny random models: the file holds the types asked, transformers reads it back with the same
logits, llama.cpp runs it, earlier steps (structured pruning, quantization, low rank) carry over, and what cannot
work is one line. The tiny models use the embedded SmolLM2's tokenizer, which llama.cpp's converter recognises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import hfcompress as hfc
from hfcompress.errors import BackendUnavailableError, HFCompressError
from hfcompress.methods.backends import llamacpp
from hfcompress.testing import TINY_TEXTS, build_tiny_model

pytestmark = pytest.mark.skipif(llamacpp.unavailable_reason(imatrix=True) is not None,
                                reason=f"llama.cpp is not installed here: {llamacpp.INSTALL_HINT}")
# Hidden 64 keeps conversions quick; K-quants need rows of 256, so the tests of types use a wider model.
SIZES = dict(hidden=64, intermediate=128, tokenizer="smollm2")
CALIBRATION = dict(calibration=list(TINY_TEXTS), num_samples=4, seq_len=64)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("gguf") / "tiny-llama", "llama", **SIZES)


@pytest.fixture(scope="module")
def wide_f32(tmp_path_factory) -> Path:
    """A tiny Llama with rows of 256, converted once to F32 GGUF by llama.cpp's converter."""
    import shutil

    folder = tmp_path_factory.mktemp("gguf-wide")
    model = build_tiny_model(folder / "wide-llama", "llama", hidden=256, intermediate=512, tokenizer="smollm2")
    shutil.copytree(model, folder / "hf")
    return llamacpp.convert(folder / "hf", folder / "wide-f32.gguf", "f32")


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("arch", ["llama", "qwen3", "gemma3", "mistral"])
def test_f16_conversion_round_trips_through_transformers(arch, tmp_path):
    from transformers import AutoModelForCausalLM

    # transformers' GGUF reader takes Qwen3's head size from its config default (128): build it so.
    sizes = {**SIZES, "hidden": 256, "heads": 2, "kv_heads": 1} if arch == "qwen3" else SIZES
    folder = build_tiny_model(tmp_path / f"tiny-{arch}", arch, **sizes)
    original = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    cm = hfc.CompressedModel.from_pretrained(str(folder), recipe=hfc.GGUFConfig(quant="F16"))
    out = cm.save_pretrained(tmp_path / "out")
    gguf_file = out / cm.steps[0].info["gguf_file"]
    assert gguf_file.name == f"tiny-{arch}-F16.gguf" and sorted(p.name for p in out.iterdir()) == sorted(
        ["README.md", "hfcompress.json", "recipe.yaml", gguf_file.name])
    reread = AutoModelForCausalLM.from_pretrained(str(out), gguf_file=gguf_file.name, dtype=torch.float32).eval()
    ids = torch.randint(3, 2000, (1, 32))
    torch.testing.assert_close(_logits(reread, ids), _logits(original, ids), rtol=2e-2, atol=2e-2)
    meta = llamacpp.file_metadata(gguf_file)
    assert meta["general.architecture"] == {"llama": "llama", "qwen3": "qwen3", "gemma3": "gemma3", "mistral": "llama"}[arch]
    assert meta["tokenizer.chat_template"] is True  # SmolLM2's chat template came along


@pytest.mark.parametrize("quant, main", [("Q8_0", "Q8_0"), ("Q6_K", "Q6_K"), ("IQ4_NL", "IQ4_NL"), ("Q5_K_M", "Q5_K")])
def test_llama_cpp_writes_the_type_asked(quant, main, wide_f32, tmp_path):
    out = llamacpp.quantize(wide_f32, tmp_path / f"{quant}.gguf", quant)
    types = llamacpp.tensor_types(out)
    assert types.get(main, 0) / sum(types.values()) > 0.5, types  # the bulk; norms stay F32, the _M mixes keep a few wider


def test_the_gguf_step_records_its_types_and_its_importance_matrix(wide_f32, tmp_path):
    folder = wide_f32.parent / "wide-llama"
    cm = hfc.CompressedModel.from_pretrained(str(folder), recipe=hfc.GGUFConfig(quant="Q4_K_M"), **CALIBRATION)
    out = cm.save_pretrained(tmp_path / "q4km")
    info = cm.steps[0].info
    types = llamacpp.tensor_types(out / info["gguf_file"])
    assert max(types, key=types.get) == "Q4_K" and info["tensor_types"]["Q4_K"] == pytest.approx(types["Q4_K"] / sum(types.values()), abs=1e-4)
    assert info["imatrix"]["tool"] == "llama-imatrix" and info["imatrix"]["chunks"] >= 1  # on by default for K-quants
    # llama-quantize records the importance matrix it quantized with (its bare file name: no local path).
    meta = llamacpp.file_metadata(out / info["gguf_file"])
    assert meta["quantize.imatrix.chunks_count"] >= 1 and meta["quantize.imatrix.file"] == "imatrix.gguf"
    assert 4.5 < info["bits_per_weight"] < 6.5
    manifest = json.loads((out / "hfcompress.json").read_text())
    assert manifest["format"] == "gguf" and manifest["load"]["gguf_file"] == info["gguf_file"] == "wide-llama-Q4_K_M.gguf"
    card = (out / "README.md").read_text()
    assert "- gguf" in card and "- llama-cpp" in card and "ollama run" in card and "wide-llama-Q4_K_M.gguf" in card


def test_the_importance_matrix_changes_the_rounding(wide_f32, tmp_path):
    text = tmp_path / "calibration.txt"
    text.write_text("\n\n".join(TINY_TEXTS * 4))
    imatrix = llamacpp.compute_imatrix(wide_f32, text, tmp_path / "imatrix.gguf", context=64, chunks=4)
    plain = llamacpp.quantize(wide_f32, tmp_path / "plain.gguf", "Q4_K_M")
    weighted = llamacpp.quantize(wide_f32, tmp_path / "weighted.gguf", "Q4_K_M", imatrix=imatrix)
    assert plain.read_bytes() != weighted.read_bytes()
    assert llamacpp.tensor_types(plain) == llamacpp.tensor_types(weighted)  # same types, other roundings


def test_llama_cpp_runs_the_file_and_the_benchmark_names_its_engine(tiny_llama, tmp_path):
    from hfcompress.bench import EvalSettings, evaluate
    from hfcompress.bench.engines import LlamaCppEngine

    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama), recipe=hfc.GGUFConfig(quant="Q8_0"))
    out = cm.save_pretrained(tmp_path / "q8")
    engine = LlamaCppEngine(out / cm.steps[0].info["gguf_file"], context=64)
    assert isinstance(engine.generate(["Hello"], max_new_tokens=4)[0], str)
    settings = EvalSettings(eval_data=[list(TINY_TEXTS)], max_tokens=192, context=64, stride=32, speed_runs=1,
                            prompt_tokens=8, new_tokens=4, max_new_tokens=4, prompts=["Hi"], task_items=5)
    res = evaluate(out, settings, progress=False)
    m = res.metrics
    assert res.settings["engine"] == "llama.cpp" and res.settings["base_engine"] == "llama.cpp"
    assert m["perplexity"]["engine"] == "llama.cpp" and m["decode_tokens_per_s"]["engine"] == "llama.cpp"
    assert m["perplexity"]["base"] > 0 and 0 <= m["kl_divergence"]["value"] < 0.05  # Q8_0 against F16
    assert m["task/cloze/acc"]["engine"] == "llama.cpp" and m["task/cloze/acc"]["samples"] == 5
    assert m["size_on_disk"]["ratio"] < 0.6 and 8 < m["bits_per_weight_linear"]["value"] < 9  # Q8_0: 8.5 bits
    res.to_dict()


def test_earlier_steps_carry_over_into_the_file(tiny_llama, tmp_path):
    # Structured pruning: the file has the new shapes. RTN (compressed-tensors) and low rank: dequantized / merged first.
    pruned = hfc.CompressedModel.from_pretrained(str(tiny_llama), recipe=[
        hfc.StructuredPruneConfig(target="neurons", ratio=0.25, importance="magnitude"), hfc.GGUFConfig(quant="F16")])
    pruned_file = pruned.save_pretrained(tmp_path / "pruned") / pruned.steps[1].info["gguf_file"]
    assert llamacpp.file_metadata(pruned_file)["llama.feed_forward_length"] == 96  # 128 less a quarter
    quantized = hfc.CompressedModel.from_pretrained(str(tiny_llama), recipe=[hfc.RTNConfig(bits=8), hfc.GGUFConfig(quant="F16")])
    assert "dequantized" in quantized.steps[1].info
    low_rank = hfc.CompressedModel.from_pretrained(str(tiny_llama), recipe=[
        hfc.LowRankConfig(rank=32, activation_aware=False), hfc.GGUFConfig(quant="F16")])
    assert low_rank.steps[1].info["low_rank_merged"] > 0
    ids = torch.randint(3, 2000, (1, 16))
    factored = hfc.CompressedModel.from_pretrained(str(tiny_llama), recipe=hfc.LowRankConfig(rank=32, activation_aware=False))
    torch.testing.assert_close(_logits(low_rank.model, ids), _logits(factored.model, ids), rtol=2e-2, atol=2e-2)
    # Shared layers: llama.cpp has no tied decoder layers, so each layer gets its own copy of the shared weights.
    shared = hfc.CompressedModel.from_pretrained(str(tiny_llama), recipe=[hfc.ShareLayersConfig(every=2), hfc.GGUFConfig(quant="F16")])
    shared_file = shared.save_pretrained(tmp_path / "shared") / shared.steps[1].info["gguf_file"]
    assert shared.steps[1].info["shared_layers_copied"] > 0
    layers = shared.model.config.num_hidden_layers
    assert llamacpp.file_metadata(shared_file)["llama.block_count"] == layers
    from transformers import AutoModelForCausalLM

    reread = AutoModelForCausalLM.from_pretrained(str(shared_file.parent), gguf_file=shared_file.name, dtype=torch.float32).eval()
    torch.testing.assert_close(_logits(reread, ids), _logits(shared.model, ids), rtol=2e-2, atol=2e-2)


def test_what_cannot_work_is_one_line(tiny_llama, tmp_path, monkeypatch):
    from hfcompress.cli import main
    from hfcompress.methods.gguf.convert import check_architecture

    with pytest.raises(HFCompressError, match="is not a GGUF type"):
        hfc.GGUFConfig(quant="Q4_K_X")
    with pytest.raises(HFCompressError, match="imatrix=True does nothing for Q8_0"):
        hfc.GGUFConfig(quant="Q8_0", imatrix=True)
    model = hfc.CompressedModel.from_pretrained(str(tiny_llama)).model
    model.config.architectures = ["NoSuchModelForCausalLM"]
    with pytest.raises(HFCompressError, match="does not support NoSuchModelForCausalLM"):
        check_architecture(model)
    with pytest.raises(HFCompressError, match="recipe step 1 .gguf. writes a GGUF file, so nothing can follow it"):
        hfc.CompressedModel.from_pretrained(str(tiny_llama), recipe=[hfc.GGUFConfig(), hfc.PruneConfig()])
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(HFCompressError, match="not a readable GGUF file"):
        hfc.CompressedModel.from_pretrained(str(bad), recipe=hfc.RTNConfig())
    monkeypatch.setattr(llamacpp, "llama_cpp_home", lambda: None)
    with pytest.raises(BackendUnavailableError, match="convert_hf_to_gguf.py.*install"):
        hfc.CompressedModel.from_pretrained(str(tiny_llama), recipe=hfc.GGUFConfig(quant="F16"))
    assert main(["compress", str(tiny_llama), "--method", "gguf", "--quant", "F16", "-o", str(tmp_path / "x")]) == 2


def test_cli_and_grid_yaml_write_gguf(tiny_llama, tmp_path):
    from hfcompress.cli import main
    from hfcompress.grid import parse_grid

    out = tmp_path / "cli-q4km"
    assert main(["compress", str(tiny_llama), "--method", "gguf", "--quant", "Q4_K_M", "--imatrix", "-o", str(out),
                 "--calibration", str(_texts_file(tmp_path)), "--num-samples", "4", "--seq-len", "64"]) == 0
    recipe = json.loads((out / "hfcompress.json").read_text())["recipe"]
    assert recipe == [hfc.GGUFConfig(quant="Q4_K_M", imatrix=True).to_dict()]
    variants, _ = parse_grid("variants:\n  gguf-q4km: [{gguf: {quant: Q4_K_M, imatrix: true}}]\n")
    assert variants["gguf-q4km"].recipe == [hfc.GGUFConfig(quant="Q4_K_M", imatrix=True)]



def _texts_file(tmp_path: Path) -> Path:
    path = tmp_path / "calibration.txt"
    path.write_text("\n\n".join(TINY_TEXTS * 3))
    return path
