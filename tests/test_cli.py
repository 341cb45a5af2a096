"""The hfcompress command as a user types it: help, version, compress, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import hfcompress


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "hfcompress.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_the_commands_and_version_prints():
    out = run_cli("--help")
    assert out.returncode == 0 and "compress" in out.stdout
    version = run_cli("--version")
    assert version.stdout.strip() == f"hfcompress {hfcompress.__version__}"


def test_compress_with_method_flags_writes_a_variant(tiny_llama_dir, tmp_path):
    out = run_cli("compress", str(tiny_llama_dir), "--method", "rtn", "--bits", "4", "--group-size", "32", "-o", str(tmp_path / "v"))
    assert out.returncode == 0, out.stderr
    manifest = json.loads((tmp_path / "v" / "hfcompress.json").read_text())
    assert manifest["recipe"][0] == {"kind": "rtn", "bits": 4, "group_size": 32, "symmetric": False, "observer": "minmax", "ignore": ["lm_head"]}


@pytest.mark.slow  # the default benchmark settings: about a minute even on a tiny model
def test_compress_evaluate_writes_results_named_after_the_folder(tiny_llama_dir, tmp_path):
    out = run_cli("compress", str(tiny_llama_dir), "--method", "rtn", "--bits", "8", "-o", str(tmp_path / "tiny-rtn-int8"), "--evaluate")
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "tiny-rtn-int8" / "results.json").read_text())
    assert results["variant"]["name"] == "tiny-rtn-int8" and results["settings"]["measured"] == "saved folder, reloaded"
    ppl = results["metrics"]["perplexity"]
    assert ppl["value"] > 0 and ppl["base"] > 0 and ppl["unit"]
    assert "tiny-rtn-int8" in (tmp_path / "tiny-rtn-int8" / "README.md").read_text()


def test_compress_with_a_recipe_file(tiny_llama_dir, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("recipe:\n  - rtn: {bits: 8}\n")
    out = run_cli("compress", str(tiny_llama_dir), "--recipe", str(recipe), "-o", str(tmp_path / "v"))
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "v" / "hfcompress.json").read_text())["recipe"][0]["bits"] == 8


def test_errors_are_one_line_with_exit_code_2(tiny_llama_dir, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    cases = [
        (["compress", str(tiny_llama_dir), "--method", "gptq", "--bits", "3", "-o", str(tmp_path / "a")], "does not support bits=3"),
        (["compress", str(tiny_llama_dir), "--method", "rtn", "-o", str(tmp_path / "taken")], "already exists and is not empty"),
        (["compress", str(tiny_llama_dir), "-o", str(tmp_path / "b")], "nothing to do"),
        (["compress", str(tiny_llama_dir), "--method", "quantum", "-o", str(tmp_path / "c")], "unknown --method 'quantum'; use one of rtn, gptq"),
    ]
    for args, message in cases:
        out = run_cli(*args)
        assert out.returncode == 2, (args, out.stderr)
        error_lines = [line for line in out.stderr.splitlines() if line.startswith("hfcompress: error:")]
        assert len(error_lines) == 1 and message in error_lines[0], out.stderr
        assert "Traceback" not in out.stderr
