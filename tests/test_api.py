"""CompressedModel end to end on a tiny Llama: load, compress, save atomically, reload; clear errors; no data lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import hfcompress as hfc
from hfcompress.api import CompressedModel


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


@pytest.fixture(scope="module")
def rtn_variant(tiny_llama_dir):
    return CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.RTNConfig(bits=8))


def test_save_writes_every_file_and_a_complete_manifest(rtn_variant, tmp_path):
    out = rtn_variant.save_pretrained(tmp_path / "variant")
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "hfcompress.json", "recipe.yaml", "README.md"} <= names
    manifest = json.loads((out / "hfcompress.json").read_text())
    assert manifest["recipe"] == [hfc.RTNConfig(bits=8).to_dict()]
    assert manifest["steps"][0]["backend"] == "llmcompressor"
    assert manifest["format"] == "compressed-tensors"
    assert manifest["base_model"]["kind"] == "folder"
    assert manifest["load"]["requires"] == ["compressed-tensors"]
    assert {"torch", "transformers", "llmcompressor"} <= set(manifest["versions"])
    assert manifest["hardware"]["cpu_count"] >= 1
    assert hfc.load_recipe(out / "recipe.yaml") == [hfc.RTNConfig(bits=8)]
    # No temp folder is left beside the output.
    assert [p.name for p in tmp_path.iterdir()] == ["variant"]


def test_reloaded_variant_gives_the_same_logits(rtn_variant, tmp_path):
    out = rtn_variant.save_pretrained(tmp_path / "variant")
    ids = torch.randint(3, 200, (2, 24))
    reloaded = CompressedModel.from_pretrained(out)
    assert reloaded.recipe == [hfc.RTNConfig(bits=8)]
    assert reloaded.save_format == "compressed-tensors"
    expected = _logits(rtn_variant.model, ids)
    got = _logits(reloaded.model, ids)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_plain_transformers_loads_the_variant_without_hfcompress(rtn_variant, tmp_path):
    out = rtn_variant.save_pretrained(tmp_path / "variant")
    ids = torch.randint(3, 200, (1, 16))
    torch.save(ids, tmp_path / "ids.pt")
    script = (
        "import sys, torch; from transformers import AutoModelForCausalLM\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(out)!r}).eval()\n"
        f"ids = torch.load({str(tmp_path / 'ids.pt')!r})\n"
        "with torch.no_grad(): out = m(ids).logits\n"
        "assert 'hfcompress' not in sys.modules\n"
        f"torch.save(out, {str(tmp_path / 'logits.pt')!r})\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt"), _logits(rtn_variant.model, ids), rtol=1e-4, atol=1e-4)


def test_existing_folder_is_never_silently_overwritten(rtn_variant, tmp_path):
    target = tmp_path / "variant"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(hfc.HFCompressError, match="already exists and is not empty.*overwrite=True"):
        rtn_variant.save_pretrained(target)
    assert (target / "precious.txt").read_text() == "keep me"
    rtn_variant.save_pretrained(target, overwrite=True)
    assert not (target / "precious.txt").exists() and (target / "hfcompress.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["variant"]


def test_a_failed_save_leaves_the_old_folder_intact(rtn_variant, tmp_path, monkeypatch):
    target = rtn_variant.save_pretrained(tmp_path / "variant")
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(rtn_variant.tokenizer, "save_pretrained", broken_save)
    with pytest.raises(hfc.HFCompressError, match=r"could not write .*\(disk full\); nothing half-written was left behind; the existing folder is unchanged"):
        rtn_variant.save_pretrained(target, overwrite=True)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["variant"]


def test_unknown_backend_and_missing_model_fail_before_any_work(tiny_llama_dir, tmp_path):
    with pytest.raises(hfc.HFCompressError, match="unknown backend 'nope'"):
        CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.RTNConfig(), backend="nope")
    with pytest.raises(hfc.HFCompressError, match="not found"):
        CompressedModel.from_pretrained(str(tmp_path / "missing" / "model"), recipe=hfc.RTNConfig())
    (tmp_path / "empty").mkdir()
    with pytest.raises(hfc.HFCompressError, match="has no config.json"):
        CompressedModel.from_pretrained(str(tmp_path / "empty"), recipe=hfc.RTNConfig())


def test_impossible_group_size_names_the_width_and_the_sizes_that_work(tiny_llama_dir):
    with pytest.raises(hfc.HFCompressError, match="group_size=48 does not divide layer width 64 of this model; use group_size=16 or 32 or 64"):
        CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=hfc.GPTQConfig(group_size=48), calibration=["x y z " * 50])


def test_calibration_from_a_text_file_is_seeded_and_recorded(tiny_llama_dir, tmp_path):
    text = tmp_path / "calib.txt"
    text.write_text("\n\n".join(f"Paragraph {i} talks about compression of models. " * 5 for i in range(20)))
    cm = CompressedModel.from_pretrained(
        str(tiny_llama_dir), recipe=hfc.GPTQConfig(bits=4, group_size=32), calibration=str(text), num_samples=4, seq_len=64, seed=3
    )
    assert cm.calibration == {
        "source": str(text), "description": "file calib.txt", "num_samples": 4, "seq_len": 64, "tokens": 256, "seed": 3,
    }


def test_quantization_must_be_the_last_step(tiny_llama_dir):
    with pytest.raises(hfc.HFCompressError, match=r"step 1 \(gptq\) quantizes.*put quantization last \(e.g. \[prune, gptq\]\)"):
        CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=[hfc.GPTQConfig(group_size=32), hfc.PruneConfig(method="magnitude")])


def test_a_step_is_checked_against_the_model_earlier_steps_left(tiny_llama_dir):
    # Removing 3 of 128 neurons leaves width 125 for down_proj: a 2:4 pattern cannot hold there.
    recipe = [hfc.StructuredPruneConfig(target="neurons", count=3, importance="magnitude"), hfc.PruneConfig(method="magnitude", pattern="2:4")]
    with pytest.raises(hfc.HFCompressError, match=r"pattern 2:4 needs layer widths divisible by 4, but model.layers.0.mlp.down_proj has width 125"):
        CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=recipe)


def test_a_named_backend_runs_the_steps_it_implements_and_auto_the_others(tiny_llama_dir):
    recipe = [hfc.PruneConfig(method="magnitude", sparsity=0.5), hfc.RTNConfig(bits=8)]
    cm = CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=recipe, backend="llmcompressor")
    assert [s.backend for s in cm.steps] == ["torch", "llmcompressor"]
    with pytest.raises(hfc.HFCompressError, match="does not implement"):
        CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=[hfc.LowRankConfig()], backend="llmcompressor")


def test_a_hub_id_that_is_offline_and_not_cached_is_one_clear_line(tmp_path, monkeypatch):
    # A fresh process: huggingface_hub reads HF_HOME and HF_ENDPOINT when it is imported. Port 9 on loopback refuses.
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf-home"), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}
    out = subprocess.run([sys.executable, "-m", "hfcompress.cli", "compress", "someone/not-cached-model", "--method", "rtn",
                          "-o", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.startswith("hfcompress: error: could not load 'someone/not-cached-model' from the Hub: it is not in the local cache and the Hub is unreachable")
    assert out.stderr.count("\n") == 1 and not (tmp_path / "out").exists()
