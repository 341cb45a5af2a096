"""Faults and user mistakes around writing a variant: the input is never touched, an existing variant is either
unchanged or wholly replaced, nothing half-written stays in place, and rerunning the same command finishes the job.

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
