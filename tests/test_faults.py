"""Faults and user mistakes: the input is never touched, an existing variant is either unchanged or wholly replaced,
nothing half-written stays in place, and rerunning the same command finishes the job. Each user mistake (a bad model,
a damaged file, contradicting settings) exits 2 with one line; HTTP errors from the loopback Hub leave the local
variant byte for byte as it was.

A kill -9 at a chosen point is a real SIGKILL of a real ``hfcompress compress`` process: ``HFCOMPRESS_FAULT`` names
the point (``hfcompress.atomic.FAULT_POINTS``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hfcompress.atomic import FAULT_POINTS, atomic_directory, check_output_dir, recover_output, write_errors
from hfcompress.errors import HFCompressError


def run_cli(*args, fault: str | None = None, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "HFCOMPRESS_FAULT"}
    if fault:
        env["HFCOMPRESS_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "hfcompress.cli", *args], capture_output=True, text=True, timeout=timeout, env=env)


class _Done:
    def __init__(self, returncode: int, stderr: str) -> None:
        self.returncode, self.stderr = returncode, stderr


def run_main(capfd, *args) -> _Done:
    """The command in this process (user mistakes fail before any work: no need to pay for a new interpreter)."""
    from hfcompress.cli import main

    capfd.readouterr()
    code = main(list(args))
    return _Done(code, capfd.readouterr().err)


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


@pytest.fixture()
def model_copy(tiny_llama_dir, tmp_path) -> Path:
    folder = tmp_path / "models" / "tiny"
    shutil.copytree(tiny_llama_dir, folder)
    return folder


def assert_one_line_error(out, message: str) -> None:
    assert out.returncode == 2, out.stderr
    # Backends' own import warnings may precede it; ours is one line and there is no traceback.
    errors = [line for line in out.stderr.splitlines() if line.startswith("hfcompress: error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in out.stderr, out.stderr


def test_the_output_may_not_be_contain_or_lie_inside_the_input(model_copy, capfd):
    before = hashes(model_copy)
    cases = [(model_copy, "is the input model"), (model_copy / "variant", "lies inside the input model"),
             (model_copy.parent, "contains the input model")]
    for output, message in cases:
        out = run_main(capfd, "compress", str(model_copy), "--method", "rtn", "-o", str(output), "--overwrite")
        assert_one_line_error(out, message)
    assert hashes(model_copy) == before and not (model_copy / "variant").exists()


def test_run_dir_equal_to_output_is_refused_before_training(model_copy, tmp_path, capfd):
    out = run_main(capfd, "distill", str(model_copy), "--steps", "1", "-o", str(tmp_path / "s"), "--run-dir", str(tmp_path / "s"))
    assert_one_line_error(out, "--run-dir and -o are the same folder")


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_an_unwritable_output_fails_in_one_line_before_any_work(model_copy, tmp_path, where, capfd):
    output = {"under-a-file": tmp_path / "a-file" / "out", "proc": Path("/proc/hfcompress-out")}[where]
    (tmp_path / "a-file").write_text("x")
    out = run_main(capfd, "compress", str(model_copy), "--method", "gptq", "-o", str(output))
    assert_one_line_error(out, "cannot ")
    assert "calibrat" not in out.stderr.lower()  # refused before the (slow) work, not after


def test_a_read_only_folder_is_refused(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    os.chmod(parent, 0o555)
    try:
        probe = parent / "probe"
        try:
            probe.mkdir()
        except PermissionError:
            pass
        else:
            probe.rmdir()
            pytest.skip("this user can write into a read-only folder (root); the /proc case covers an unwritable place")
        with pytest.raises(HFCompressError, match="is not writable \\(permission denied\\)"):
            check_output_dir(parent / "out")
    finally:
        os.chmod(parent, 0o755)


def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True).returncode == 0


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(model_copy, tmp_path):
    disk = tmp_path / "small-disk"
    if not _tmpfs(disk, "48k"):  # the tiny int8 variant needs about 150 kB
        pytest.skip("cannot mount a small tmpfs here (needs root and a kernel that allows it in this container)")
    try:
        (disk / "existing").mkdir()
        (disk / "existing" / "keep.txt").write_text("the previous variant")
        out = run_cli("compress", str(model_copy), "--method", "rtn", "--bits", "8", "-o", str(disk / "existing"), "--overwrite")
        assert_one_line_error(out, "no space left on the device")
        assert "nothing half-written was left behind" in out.stderr
        assert sorted(p.name for p in disk.iterdir()) == ["existing"]
        assert (disk / "existing" / "keep.txt").read_text() == "the previous variant"
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_write_errors_names_the_cause_in_one_line(tmp_path):
    for err, reason in [(OSError(28, "No space left on device"), "no space left on the device"),
                        (OSError(30, "Read-only file system"), "read-only file system")]:
        with pytest.raises(HFCompressError, match=reason):
            with write_errors(tmp_path / "x"):
                raise err


# Each case kills a real CLI process (~15 s): the trickiest point runs by default, the others with -m slow.
@pytest.mark.parametrize("point", ["atomic:between-renames"] + [pytest.param(p, marks=pytest.mark.slow) for p in
                                   ("save:after-weights", "atomic:before-rename", "atomic:before-cleanup")])
def test_kill_9_during_an_overwrite_then_the_same_command_finishes_the_job(model_copy, tmp_path, point, capfd):
    output = tmp_path / "variant"
    first = run_main(capfd, "compress", str(model_copy), "--method", "rtn", "--bits", "8", "-o", str(output))
    assert first.returncode == 0, first.stderr
    old = hashes(output)
    args = ("compress", str(model_copy), "--method", "rtn", "--bits", "4", "--group-size", "32", "-o", str(output), "--overwrite")
    killed = run_cli(*args, fault=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # What a user sees right after the kill: the old variant whole, the new one whole, or (between the two renames)
    # neither in place but the old one complete beside it.
    if output.exists():
        assert hashes(output) in (old,) or json.loads((output / "hfcompress.json").read_text())["recipe"][0]["bits"] == 4
    else:
        assert point == "atomic:between-renames" and len(leftovers(tmp_path)) >= 1
    again = run_main(capfd, *args)  # the same command, run again (only the killed run needs its own process)
    assert again.returncode == 0, again.stderr
    assert json.loads((output / "hfcompress.json").read_text())["recipe"][0]["bits"] == 4
    assert leftovers(tmp_path) == []  # the temps and the moved-aside folder of the killed run are gone


def test_an_interrupted_overwrite_is_restored_by_the_next_reader(tmp_path):
    output = tmp_path / "variant"
    code = (f"from hfcompress.atomic import atomic_directory\n"
            f"with atomic_directory({str(output)!r}, overwrite=True) as tmp:\n"
            f"    (tmp / 'new.txt').write_text('new')\n")
    output.mkdir()
    (output / "old.txt").write_text("old")
    env = {**os.environ, "HFCOMPRESS_FAULT": "atomic:between-renames"}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == -signal.SIGKILL
    assert not output.exists()
    done = recover_output(output)
    assert done and done[0].startswith("restored variant")
    assert (output / "old.txt").read_text() == "old" and leftovers(tmp_path) == []


def test_a_live_processes_temp_is_never_removed(tmp_path):
    target = tmp_path / "variant"
    with atomic_directory(target) as tmp:
        (tmp / "half.bin").write_bytes(b"x")
        assert recover_output(target) == [] and tmp.is_dir()  # ours (this pid is alive): left alone
    assert (target / "half.bin").is_file()


def test_a_saved_folder_follows_the_umask(model_copy, tmp_path):
    import hfcompress as hfc

    cm = hfc.CompressedModel.from_pretrained(str(model_copy), recipe=[hfc.RTNConfig(bits=8)])
    previous = os.umask(0o022)
    try:
        cm.save_pretrained(tmp_path / "v")  # safetensors writes its files 0600 of its own
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "v").stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "v").iterdir() if p.is_file()} == {0o644}


def test_every_fault_point_is_documented():
    import hfcompress

    sources = "".join(p.read_text() for p in Path(hfcompress.__file__).parent.rglob("*.py"))
    for point in FAULT_POINTS:
        assert f'fault_point("{point}")' in sources, point


@pytest.mark.parametrize("flag", ["--temperature", "--lr"])
def test_a_nan_training_setting_is_refused_before_any_training(model_copy, tmp_path, flag, capfd):
    out = run_main(capfd, "distill", str(model_copy), "--steps", "2", flag, "nan", "-o", str(tmp_path / "student"))
    assert_one_line_error(out, "nan")
    assert not (tmp_path / "student").exists()


# ---------------------------------------------------------------------------------------------------------------
# Bad models and damaged files: one line naming what is wrong, nothing written, the input untouched.


@pytest.fixture(scope="module")
def rtn8_variant(tiny_llama_dir, tmp_path_factory) -> Path:
    """An RTN W8 variant (compressed-tensors) of the tiny Llama; tests copy it before changing it."""
    import hfcompress as hfc

    cm = hfc.CompressedModel.from_pretrained(str(tiny_llama_dir), recipe=[hfc.RTNConfig(bits=8)])
    return cm.save_pretrained(tmp_path_factory.mktemp("faults") / "tiny-rtn8")


@pytest.fixture()
def variant_copy(rtn8_variant, tmp_path) -> Path:
    return Path(shutil.copytree(rtn8_variant, tmp_path / "variants" / "tiny-rtn8"))


def test_an_already_quantized_variant_is_refused_naming_its_format(variant_copy, tmp_path, capfd):
    before = hashes(variant_copy)
    out = run_main(capfd, "compress", str(variant_copy), "--method", "rtn", "--bits", "4", "-o", str(tmp_path / "x"))
    assert_one_line_error(out, "is already quantized (compressed-tensors)")
    assert "compress its base model instead" in out.stderr
    assert hashes(variant_copy) == before and not (tmp_path / "x").exists()


def test_a_truncated_safetensors_file_is_one_line_naming_it(model_copy, tmp_path, capfd):
    weights = model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    before = hashes(model_copy)
    out = run_main(capfd, "compress", str(model_copy), "--method", "rtn", "--bits", "8", "-o", str(tmp_path / "x"))
    assert_one_line_error(out, "model.safetensors is truncated")
    assert hashes(model_copy) == before and not (tmp_path / "x").exists()


@pytest.mark.parametrize("content", [b"GGUF" + bytes(range(256)) * 2, bytes(range(256)), b""], ids=["bad-header", "random", "empty"])
def test_a_garbage_gguf_file_is_one_line(tmp_path, content, capfd):
    (tmp_path / "model.gguf").write_bytes(content)
    out = run_main(capfd, "compress", str(tmp_path / "model.gguf"), "--method", "rtn", "--bits", "8", "-o", str(tmp_path / "x"))
    assert_one_line_error(out, "model.gguf is not a readable GGUF file")
    assert not (tmp_path / "x").exists()


def test_a_masked_lm_is_refused_naming_its_architecture(tiny_llama_dir, tmp_path, capfd):
    from transformers import BertConfig, BertForMaskedLM

    bert = tmp_path / "tiny-bert"
    BertForMaskedLM(BertConfig(vocab_size=256, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64)).save_pretrained(bert)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_llama_dir / name, bert / name)
    out = run_main(capfd, "compress", str(bert), "--method", "rtn", "--bits", "8", "-o", str(tmp_path / "x"))
    assert_one_line_error(out, "is a BertForMaskedLM, not a causal language model")
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------------------------
# Damaged records of a variant: results are derived data (measured again), a manifest is not (one line).


def test_bench_treats_a_corrupt_results_json_as_absent_and_writes_a_fresh_one(variant_copy, capfd):
    from hfcompress.bench import validate_results

    (variant_copy / "results.json").write_text('{"metrics": {"perplexity": ')
    out = run_main(capfd, "bench", str(variant_copy), "--max-tokens", "64", "--context", "32", "--stride", "32",
                   "--no-speed", "--no-generations", "--offline-tasks", "none")
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "results.json: not valid JSON" in warnings[0] and "writing a fresh one" in warnings[0]
    validate_results(json.loads((variant_copy / "results.json").read_text()))


def test_reloading_a_variant_with_corrupt_results_loads_it_without_them(variant_copy, caplog):
    import hfcompress as hfc

    (variant_copy / "results.json").write_text("{not json")
    cm = hfc.CompressedModel.from_pretrained(str(variant_copy))
    assert cm.results is None and cm.recipe[0].bits == 8
    assert "results.json: not valid JSON" in caplog.text


@pytest.mark.parametrize("content", ["[1, 2]", "{not json", "null"])
def test_a_manifest_that_is_not_a_json_object_is_one_line(variant_copy, content, capfd):
    import hfcompress as hfc

    (variant_copy / "hfcompress.json").write_text(content)
    before = hashes(variant_copy)
    with pytest.raises(HFCompressError, match="hfcompress.json: (expected a JSON object of manifest|not valid JSON)"):
        hfc.CompressedModel.from_pretrained(str(variant_copy))
    out = run_main(capfd, "bench", str(variant_copy), "--no-speed")
    assert_one_line_error(out, "hfcompress.json")
    assert hashes(variant_copy) == before


# ---------------------------------------------------------------------------------------------------------------
# Settings that contradict each other or cannot be used: refused before loading anything.


def test_an_nm_pattern_contradicting_the_sparsity_is_refused(model_copy, tmp_path, capfd):
    out = run_main(capfd, "compress", str(model_copy), "--method", "prune", "--pattern", "3:4", "--sparsity", "0.5",
                   "-o", str(tmp_path / "x"))
    assert_one_line_error(out, "pattern 3:4 means sparsity 0.25")


def test_an_empty_recipe_is_refused_not_a_copy_of_the_base(model_copy, tmp_path, capfd):
    import hfcompress as hfc

    (tmp_path / "recipe.yaml").write_text("recipe: []\n")
    out = run_main(capfd, "compress", str(model_copy), "--recipe", str(tmp_path / "recipe.yaml"), "-o", str(tmp_path / "x"))
    assert_one_line_error(out, "holds no steps, so there is nothing to compress")
    with pytest.raises(HFCompressError, match="holds no steps"):
        hfc.CompressedModel.from_pretrained(str(model_copy), recipe=[])
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("options, message", [
    ({"seq_len": 2.5}, "seq_len=2.5 must be a positive whole number"),
    ({"num_samples": True}, "num_samples=True must be a positive whole number"),
    ({"calibration": b"some text"}, "not bytes \\(decode bytes first"),
    ({"calibration": 42}, "not int"),
    ({"base_model": "not a hub id"}, "is not a Hub model id"),
], ids=["seq-len-float", "num-samples-bool", "calibration-bytes", "calibration-int", "base-model"])
def test_api_arguments_of_the_wrong_type_are_one_line_errors(model_copy, options, message):
    import hfcompress as hfc

    with pytest.raises(HFCompressError, match=message):
        hfc.CompressedModel.from_pretrained(str(model_copy), recipe=[hfc.GPTQConfig(bits=4, group_size=32)], **options)


@pytest.mark.parametrize("content", [bytes(range(256)) * 8, "texte en latin-1: été".encode("latin-1")], ids=["binary", "latin-1"])
def test_a_calibration_file_that_is_not_utf8_text_is_refused(model_copy, tmp_path, content, capfd):
    (tmp_path / "calib.txt").write_bytes(content)
    out = run_main(capfd, "compress", str(model_copy), "--method", "gptq", "--calibration", str(tmp_path / "calib.txt"),
                   "--num-samples", "2", "--seq-len", "16", "-o", str(tmp_path / "x"))
    assert_one_line_error(out, "calib.txt' is not UTF-8 text")
    assert not (tmp_path / "x").exists()


def test_no_calibration_is_recorded_as_the_default_text():
    from hfcompress.data import load_calibration
    from hfcompress.testing import tiny_tokenizer

    assert load_calibration(None, tiny_tokenizer(), num_samples=2, seq_len=16).summary()["source"] == "default"


def test_space_on_a_folder_that_does_not_exist_is_refused_without_serving(tmp_path, capfd, monkeypatch):
    import hfcompress.cli.space as space_cli

    monkeypatch.setattr(space_cli, "serve", lambda *a, **k: pytest.fail("a server was started"))
    out = run_main(capfd, "space", str(tmp_path / "no-such-runs"))
    assert_one_line_error(out, "no such folder, and not a Hub collection id")


def test_resuming_with_a_student_of_another_shape_is_refused_before_training(model_copy, tmp_path, capfd):
    from hfcompress.testing import tiny_model

    smaller, _ = tiny_model("llama", layers=1)  # a checkpoint left by an earlier run with another student
    smaller.save_pretrained(tmp_path / "run" / "checkpoint-1")
    out = run_main(capfd, "distill", str(model_copy), "--steps", "2", "--eval-every", "0", "--run-dir", str(tmp_path / "run"),
                   "-o", str(tmp_path / "student"))
    assert_one_line_error(out, "was written for a student of another shape")
    assert "--no-resume" in out.stderr and not (tmp_path / "student").exists()


# ---------------------------------------------------------------------------------------------------------------
# The Hub: HTTP errors leave the local variant byte for byte as it was, and the same command finishes the job.


@pytest.fixture()
def hub():
    from hub_server import HubServer

    with HubServer() as server, server.client_env():
        yield server


@pytest.mark.parametrize("what, status", [("commit", 500), ("lfs_put", 403), ("create_repo", 500)])
def test_a_failed_push_leaves_the_local_variant_unchanged_and_a_rerun_finishes(hub, variant_copy, what, status, capfd):
    before = hashes(variant_copy)
    hub.fail_next(what, status=status)
    out = run_main(capfd, "push", str(variant_copy), "tester/tiny-rtn8")
    assert_one_line_error(out, f"HTTP {status}")
    assert hub.token not in out.stderr
    if what != "create_repo":
        assert "the local folder is unchanged" in out.stderr
    assert hashes(variant_copy) == before  # the card too: it is rendered for the upload, not into the folder
    again = run_main(capfd, "push", str(variant_copy), "tester/tiny-rtn8")
    assert again.returncode == 0, again.stderr
    remote = hub.repos["tester/tiny-rtn8"].files()
    assert remote["README.md"] == (variant_copy / "README.md").read_bytes()  # now the local card names the repo too
    assert b'from_pretrained("tester/tiny-rtn8")' in remote["README.md"]


def test_a_refused_token_while_loading_a_hub_model_is_a_token_problem(tmp_path, capfd):
    from hub_server import HubServer

    wrong = "hf_" + "x" * 34
    with HubServer() as server, server.client_env(token=wrong):
        out = run_main(capfd, "compress", "tester/tiny", "--method", "rtn", "--bits", "8", "-o", str(tmp_path / "x"))
    assert_one_line_error(out, "the Hub refused the token")
    assert "connection" not in out.stderr and wrong not in out.stderr
