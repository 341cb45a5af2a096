"""The package's structure holds: no import points up the layers (import-linter reads pyproject.toml's contract)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_imports_respect_the_layers_from_the_cli_down_to_errors():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail("import-linter is not installed: pip install -e '.[test]'")
    done = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout


def test_no_module_imports_the_version_back_from_the_package():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "hfcompress").rglob("*.py")
                 if "from . import __version__" in p.read_text() or "from .. import __version__" in p.read_text()]
    assert offenders == []
