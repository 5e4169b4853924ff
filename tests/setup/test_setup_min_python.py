"""The code runs on Python 3.10, the oldest the users' images have (torch_mlu cp310).

Checked with vermin (pinned in requirements.txt): every module, function and
syntax feature used must exist in 3.10. Annotations count too (evaluated as
written), so a `typing.Self` or `except*` would fail here on this 3.11 machine.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from setup_util import REPO

CODE = ["reference", "harness", "results", "scripts", "tests", "conftest.py"]


def _vermin() -> str:
    exe = Path(sys.executable).with_name("vermin")
    found = str(exe) if exe.exists() else shutil.which("vermin")
    assert found, "vermin is not installed: it is pinned in requirements.txt (make setup)"
    return found


def _run(paths: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([_vermin(), "-t=3.10-", "--no-tips", "--violations", "--eval-annotations",
                           *paths], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_code_needs_no_newer_python_than_3_10():
    proc = _run(CODE)
    assert proc.returncode == 0, f"code needs a Python newer than 3.10:\n{proc.stdout[-3000:]}"


def test_vermin_catches_a_3_11_feature(tmp_path):
    (tmp_path / "new.py").write_text("import tomllib\n")
    proc = _run([str(tmp_path)])
    assert proc.returncode != 0 and "tomllib" in proc.stdout, proc.stdout
