"""Calibration and evaluation text: seeded, full-length samples; held-out text never used for calibration."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

import hfcompress as hfc
from hfcompress import data


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def test_embedded_corpus_splits_into_disjoint_calibration_and_evaluation_parts():
    calib, held_out = set(data.calibration_texts()), set(data.evaluation_texts())
    assert len(held_out) == data.EVAL_HOLDOUT
    assert len(calib) > 5000
    assert not calib & held_out


def test_calibration_samples_are_full_length_and_seeded(tokenizer):
    first = data.load_calibration("default", tokenizer, num_samples=6, seq_len=48, seed=1)
    again = data.load_calibration("default", tokenizer, num_samples=6, seq_len=48, seed=1)
    other = data.load_calibration("default", tokenizer, num_samples=6, seq_len=48, seed=2)
    assert [len(x) for x in first.input_ids] == [48] * 6
    assert all((a == b).all() for a, b in zip(first.input_ids, again.input_ids))
    assert not all((a == b).all() for a, b in zip(first.input_ids, other.input_ids))
    assert first.summary()["tokens"] == 288
    ds = first.to_dataset()
    assert ds.column_names == ["input_ids", "attention_mask"] and len(ds) == 6


def test_text_sources_list_file_and_jsonl(tmp_path, tokenizer):
    assert data.read_texts(["a b c", "  ", "d e f"])[0] == ["a b c", "d e f"]
    (tmp_path / "t.txt").write_text("first paragraph\n\nsecond paragraph\n")
    assert data.read_texts(str(tmp_path / "t.txt"))[0] == ["first paragraph", "second paragraph"]
    (tmp_path / "t.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    assert data.read_texts(str(tmp_path / "t.jsonl"))[0] == ["one", "two"]


@pytest.mark.parametrize(
    "spec, message",
    [([], "the list of texts is empty"), ("./missing.txt", "text file './missing.txt' not found")],
)
def test_bad_text_sources_fail_clearly(spec, message):
    with pytest.raises(hfc.HFCompressError, match=message):
        data.read_texts(spec)


def test_evaluation_ids_come_from_the_held_out_part(tokenizer):
    ids, description = data.evaluation_token_ids("default", tokenizer, max_tokens=300)
    assert ids.shape == (300,) and "held-out" in description


def test_malformed_json_text_files_name_the_file_and_line(tmp_path):
    bad = tmp_path / "calib.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": broken}\n')
    with pytest.raises(hfc.HFCompressError, match=r"calib.jsonl' line 2 is not valid JSON"):
        data.read_texts(str(bad))
    (tmp_path / "calib.json").write_text("[1, 2")
    with pytest.raises(hfc.HFCompressError, match=r"calib.json' is not valid JSON"):
        data.read_texts(str(tmp_path / "calib.json"))


def test_cli_names_the_extra_when_an_optional_package_is_missing(monkeypatch, capsys):
    from hfcompress import cli

    def needs_gradio(args):
        raise ModuleNotFoundError("No module named 'gradio'", name="gradio")

    monkeypatch.setitem(cli.COMMANDS, "space", needs_gradio)
    assert cli.main(["space"]) == 2
    assert "pip install 'hfcompress[space]'" in capsys.readouterr().err
