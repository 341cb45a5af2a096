"""Write output folders so the user never loses data: into a temp folder beside the target, then rename.

What a user can rely on, whatever happens to the process (an error, Ctrl-C, ``kill -9``, a full disk):

- the target is either as it was or wholly the new folder, never half-written;
- the folder being replaced is moved aside (``.NAME.old-*``) and deleted only once the new one is in place;
- what a killed run left beside the target (``.NAME.tmp-*`` temps, an ``.NAME.old-*`` folder that never got
  put back) is cleaned up by the next run that writes or reads that target: an old folder is restored when the
  target is missing, stale temps are removed. A temp is stale when the process that made it (named in it:
  host and pid) is gone; temps of live processes and of other machines are never touched.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from hfcompress.atomic import atomic_directory
    >>> target = Path(tempfile.mkdtemp()) / "variant"
    >>> with atomic_directory(target) as tmp:
    ...     _ = (tmp / "config.json").write_text("{}")
    >>> sorted(p.name for p in target.iterdir())
    ['config.json']

Fault injection (tests): ``HFCOMPRESS_FAULT=<point>[,<point>...]`` makes the process kill itself with SIGKILL when
it reaches a named ``fault_point``; see ``FAULT_POINTS``. Unset, a fault point costs one environment lookup.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import stat
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, Union

from .errors import HFCompressError

logger = logging.getLogger(__name__)

FAULT_ENV = "HFCOMPRESS_FAULT"
FAULT_POINTS = {
    "atomic:before-rename": "the temp folder is complete; nothing renamed yet",
    "atomic:between-renames": "the old folder is moved aside (--overwrite); the new one is not in place yet",
    "atomic:before-cleanup": "the new folder is in place; the old one is not deleted yet",
    "save:after-weights": "save_pretrained wrote the weights into the temp folder, nothing else yet",
}

# Temp names carry their maker (a short hash of the host name, and the pid) so a later run can tell a temp of a
# dead process (stale: remove, or restore) from one a live process is still writing (leave alone).
_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-(?P<rand>[0-9a-f]{8})")

# An input the output must not touch: a path, or (path, what it is for the message).
InputPath = Union[str, "os.PathLike[str]", tuple, None]


def fault_point(name: str) -> None:
    """Test hook: kill this process with SIGKILL when ``$HFCOMPRESS_FAULT`` names ``name`` (a comma-separated list).

    The fault-injection suite (tests/test_faults.py) uses it to stop a real run at a chosen point, as ``kill -9``
    or a power cut would. Unset, it returns at once.

    Example:
        >>> fault_point("atomic:before-rename")      # HFCOMPRESS_FAULT is not set: nothing happens
    """
    wanted = os.environ.get(FAULT_ENV)
    if wanted and name in wanted.split(","):
        kill = getattr(signal, "SIGKILL", None)
        if kill is None:  # no SIGKILL (Windows): the closest thing is an exit that runs no cleanup
            os._exit(137)
        os.kill(os.getpid(), kill)


def _temp_name(target: Path, kind: str) -> str:
    return f".{target.name}.{kind}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _maker_is_gone(host: str, pid: int) -> bool:
    if host != _HOST or pid == os.getpid():
        return False  # another machine's (cannot tell), or this process's own
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OSError):
        return False  # alive (owned by another user) or unknowable: leave it
    return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def recover_output(target: str | os.PathLike) -> list[str]:
    """Finish what a killed run left beside ``target``; returns what was done, one sentence each.

    A folder moved aside by an interrupted overwrite (``.NAME.old-*``) is put back when ``target`` is missing (it is
    the last complete version), and deleted when ``target`` is in place; stale ``.NAME.tmp-*`` temps are removed.
    Only leftovers of processes that are gone are touched. Problems (a read-only parent) are logged, not raised:
    the write that follows reports them in one line.

    Example:
        >>> import tempfile
        >>> parent = Path(tempfile.mkdtemp())
        >>> (parent / f".variant.old-{_HOST}-999999999-0123abcd").mkdir()   # left by a process that is gone
        >>> done = recover_output(parent / "variant")
        >>> done[0].startswith("restored variant from .variant.old-"), (parent / "variant").is_dir()
        (True, True)
    """
    target = Path(target).expanduser()
    try:
        entries = list(target.parent.iterdir()) if target.parent.is_dir() else []
    except OSError:
        return []
    old: list[Path] = []
    temps: list[Path] = []
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if not match or match["name"] != target.name:
            continue
        if not _maker_is_gone(match["host"], int(match["pid"])):
            continue
        (old if match["kind"] == "old" else temps).append(entry)
    done: list[str] = []
    try:
        if old and not os.path.lexists(target):
            newest = max(old, key=lambda p: p.stat().st_mtime)
            newest.rename(target)
            old.remove(newest)
            done.append(f"restored {target.name} from {newest.name} (an earlier run was stopped while replacing it)")
            logger.warning("%s: %s", target.parent, done[-1])
        for entry in old + temps:
            _remove(entry)
            done.append(f"removed {entry.name}, left by an earlier run that was stopped")
            logger.info("%s: %s", target.parent, done[-1])
    except OSError as err:
        logger.warning("could not clean up after an earlier run beside %s: %s", target, err)
    return done


def _as_inputs(inputs: Iterable[InputPath]) -> list[tuple[Path, str]]:
    out = []
    for item in inputs:
        path, what = (item if isinstance(item, tuple) else (item, "the input"))
        if path is None or str(path) == "":
            continue
        candidate = Path(os.fspath(path)).expanduser()
        if candidate.exists():
            out.append((candidate.resolve(), what))
    return out


def check_output_dir(target: str | os.PathLike, overwrite: bool = False, *, inputs: Sequence[InputPath] = ()) -> Path:
    """Check, before any work, that ``target`` can be written as a new (or, with ``overwrite``, replaced) folder.

    One-line errors for: a target that is a file or lies under one, a non-empty folder without ``overwrite``, a
    place this process cannot write (read-only, no permission, ``/proc``), and a target that is, contains or lies
    inside one of ``inputs`` (paths, or ``(path, "what it is")`` pairs, e.g. the model being compressed: the input
    is never overwritten). Leftovers of a killed earlier run are cleaned up first (``recover_output``).

    Example:
        >>> check_output_dir("/tmp/surely-not-here-123").name
        'surely-not-here-123'
        >>> check_output_dir("/tmp/models/tiny/q8", inputs=[("/tmp", "the input model")])
        Traceback (most recent call last):
        hfcompress.errors.HFCompressError: output '/tmp/models/tiny/q8' lies inside the input model ('/tmp'); choose an output folder outside it
    """
    target = Path(target).expanduser()
    recover_output(target)
    resolved = target.resolve()
    for source, what in _as_inputs(inputs):
        if resolved == source:
            problem = "is"
        elif source in resolved.parents and source.is_dir():
            problem = "lies inside"
        elif resolved in source.parents:
            problem = "contains"
        else:
            continue
        raise HFCompressError(f"output {str(target)!r} {problem} {what} ({str(source)!r}); choose an output folder outside it"
                              + (" (the input is never overwritten)" if problem != "lies inside" else ""))
    if target.exists() and not target.is_dir():
        raise HFCompressError(f"{str(target)!r} exists and is a file; choose a folder path")
    existing = resolved.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise HFCompressError(f"cannot create {str(target)!r}: {str(existing)!r} is a file, not a folder; choose another output path")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise HFCompressError(f"{str(target)!r} already exists and is not empty; choose another folder or pass overwrite=True (--overwrite)")
    _check_writable(existing, target)
    return target


def _check_writable(folder: Path, target: Path) -> None:
    # Creating (and removing) a folder where the temp folder will go is the one test that answers for read-only
    # mounts, permissions, quotas on inodes and pseudo file systems alike; os.access does not know about them all.
    probe = folder / f".hfcompress-probe-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        os.mkdir(probe)
    except OSError as err:
        raise HFCompressError(f"cannot write {str(target)!r}: {str(folder)!r} is not writable ({_reason(err)}); "
                              "choose another output folder") from None
    with contextlib.suppress(OSError):
        os.rmdir(probe)


def _reason(err: BaseException) -> str:
    code = getattr(err, "errno", None)
    if code == errno.ENOSPC:
        return "no space left on the device"
    if code == errno.EDQUOT:
        return "disk quota exceeded"
    if code == errno.EROFS:
        return "read-only file system"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    text = getattr(err, "strerror", None) or " ".join(str(err).split())
    # safetensors' Rust errors carry the OS message inside a longer text.
    for needle, reason in (("No space left", "no space left on the device"), ("Read-only", "read-only file system"),
                           ("Permission denied", "permission denied"), ("Disk quota", "disk quota exceeded")):
        if needle in str(err):
            return reason
    return text[:200] or type(err).__name__


@contextlib.contextmanager
def write_errors(target: str | os.PathLike, *, existed: bool | None = None) -> Iterator[None]:
    """Turn a failed write inside the block (a full disk, a read-only file system, no permission) into one line.

    Meant around writing into an ``atomic_directory``: by the time the error arrives the temp folder is gone, so
    the message can say that nothing half-written was left and what happened to an existing folder.

    Example:
        >>> with write_errors("/tmp/out"):
        ...     raise OSError(28, "No space left on device")
        Traceback (most recent call last):
        hfcompress.errors.HFCompressError: could not write '/tmp/out' (no space left on the device); nothing half-written was left behind; free some space or choose another folder, then run it again
    """
    target = Path(target)
    if existed is None:
        existed = target.is_dir() and any(target.iterdir())
    try:
        yield
    except HFCompressError:
        raise
    except Exception as err:
        # safetensors raises its own SafetensorError (not an OSError) for a failed write.
        if not isinstance(err, OSError) and type(err).__name__ != "SafetensorError":
            raise
        kept = "; the existing folder is unchanged" if existed else ""
        raise HFCompressError(f"could not write {str(target)!r} ({_reason(err)}); nothing half-written was left behind{kept}; "
                              "free some space or choose another folder, then run it again") from None


def _make_temp_dir(target: Path) -> tuple[Path, int]:
    # os.mkdir applies the umask (tempfile.mkdtemp would force 0700): the saved folder gets the mode any folder
    # the user creates gets. The mode it got is the one every file inside is given before the rename.
    while True:
        tmp = target.with_name(_temp_name(target, "tmp"))
        try:
            os.mkdir(tmp, 0o777)
        except FileExistsError:
            continue
        return tmp, stat.S_IMODE(os.stat(tmp).st_mode)


def _follow_umask(folder: Path, mode: int) -> None:
    # Backends write some files 0600 (safetensors does): a saved variant is readable like the user's other files.
    file_mode = mode & 0o666
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, name), mode)
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue
            with contextlib.suppress(OSError):
                current = stat.S_IMODE(os.stat(path).st_mode)
                wanted = mode if current & stat.S_IXUSR else file_mode
                if current != wanted:
                    os.chmod(path, wanted)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, overwrite: bool = False, *, inputs: Sequence[InputPath] = ()) -> Iterator[Path]:
    """Yield a temp folder next to ``target``; on success it replaces ``target`` in one rename.

    On any error the temp folder is removed and ``target`` is left exactly as it was. With ``overwrite``,
    the old folder is moved aside first and deleted only after the new one is in place. ``target`` is checked
    first as ``check_output_dir`` checks it (``inputs``: paths the output must not touch).
    """
    target = check_output_dir(target, overwrite, inputs=inputs).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp, mode = _make_temp_dir(target)
    try:
        yield tmp
        _follow_umask(tmp, mode)
        fault_point("atomic:before-rename")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    backup = None
    if target.exists():
        backup = target.with_name(_temp_name(target, "old"))
        target.rename(backup)
        fault_point("atomic:between-renames")
    try:
        tmp.rename(target)
    except BaseException:
        if backup is not None:
            backup.rename(target)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fault_point("atomic:before-cleanup")
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temp file and ``os.replace``: readers never see half a file.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> write_text_atomic(folder / "a.txt", "hello").read_text()
        'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_output(path)  # a temp copy of this file a killed run left
    tmp = path.with_name(_temp_name(path, "tmp"))
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON to ``path`` through a temp file and ``os.replace`` (no half-written file on a crash).

    Example:
        >>> import tempfile
        >>> write_json_atomic(Path(tempfile.mkdtemp()) / "x.json", {"a": 1}).read_text()
        '{\\n  "a": 1\\n}\\n'
    """
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
