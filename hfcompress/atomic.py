"""Write output folders so the user never loses data: into a temp folder beside the target, then rename.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from hfcompress.atomic import atomic_directory
    >>> target = Path(tempfile.mkdtemp()) / "variant"
    >>> with atomic_directory(target) as tmp:
    ...     _ = (tmp / "config.json").write_text("{}")
    >>> sorted(p.name for p in target.iterdir())
    ['config.json']
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

from .errors import HFCompressError


def check_output_dir(target: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse a non-empty existing folder unless ``overwrite`` (one-line error), and return the path.

    Example:
        >>> check_output_dir("/tmp/surely-not-here-123").name
        'surely-not-here-123'
    """
    target = Path(target).expanduser()
    if target.exists() and not target.is_dir():
        raise HFCompressError(f"{str(target)!r} exists and is a file; choose a folder path")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise HFCompressError(f"{str(target)!r} already exists and is not empty; choose another folder or pass overwrite=True (--overwrite)")
    return target


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder next to ``target``; on success it replaces ``target`` in one rename.

    On any error the temp folder is removed and ``target`` is left exactly as it was. With ``overwrite``,
    the old folder is moved aside first and deleted only after the new one is in place.
    """
    target = check_output_dir(target, overwrite).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    backup = None
    if target.exists():
        backup = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        target.rename(backup)
    try:
        tmp.rename(target)
    except BaseException:
        if backup is not None:
            backup.rename(target)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
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
