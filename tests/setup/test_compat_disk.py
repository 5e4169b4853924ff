"""`make test-compat`'s disk guard (scripts/compat_image.sh, scripts/test_compat.sh).

An image venv needs about 9 GiB while pip installs it. With less free, the
build must stop before it touches anything, in one line, exit 3; the suite
runner fails on that unless CI's COMPAT_LOW_DISK=skip, which records the torch
as NOT TESTED. pip is pointed at no index here, so a guard that lets the build
through fails fast on pip instead of downloading gigabytes.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # What the caller's own compat run set (CI runs this suite under
    # COMPAT_LOW_DISK=skip) must not leak into the scripts tested here.
    env = {k: v for k, v in os.environ.items()
           if k not in ("COMPAT_LOW_DISK", "COMPAT_TORCH", "COMPAT_NUMPY", "COMPAT_ROOT",
                        "COMPAT_MIN_FREE_GIB", "PYTEST_ARGS")}
    env.update(
        COMPAT_ROOT=str(tmp_path / "compat"),
        COMPAT_MIN_FREE_GIB="1000000",  # more than any disk has
        PYTHON=sys.executable,
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(tmp_path / "no-wheels"),
    )
    env.update(extra)
    return env


def test_image_build_refuses_in_one_line_without_the_disk(tmp_path: Path) -> None:
    r = subprocess.run(["bash", "scripts/compat_image.sh", "2.1.2"], cwd=ROOT,
                       env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "GiB free" in lines[0] and "COMPAT_MIN_FREE_GIB" in lines[0]
    assert not (tmp_path / "compat" / "torch-2.1.2" / "image").exists()


def test_image_build_goes_ahead_when_the_disk_suffices(tmp_path: Path) -> None:
    # Past the guard, pip (no index here) fails: any exit but 3 shows the
    # guard let it through.
    r = subprocess.run(["bash", "scripts/compat_image.sh", "2.1.2"], cwd=ROOT,
                       env=_env(tmp_path, COMPAT_MIN_FREE_GIB="0"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode not in (0, 3), r.stdout + r.stderr
    assert "building" in r.stdout


def test_suite_runner_fails_on_short_disk_unless_ci_skips(tmp_path: Path) -> None:
    summary = tmp_path / "compat" / "summary.txt"
    strict = subprocess.run(["bash", "scripts/test_compat.sh"], cwd=ROOT,
                            env=_env(tmp_path, COMPAT_TORCH="2.1.2"),
                            capture_output=True, text=True, timeout=120)
    assert strict.returncode == 1
    assert "could not build" in summary.read_text()
    ci = subprocess.run(["bash", "scripts/test_compat.sh"], cwd=ROOT,
                        env=_env(tmp_path, COMPAT_TORCH="2.1.2", COMPAT_LOW_DISK="skip"),
                        capture_output=True, text=True, timeout=120)
    assert ci.returncode == 0, ci.stdout + ci.stderr
    assert summary.read_text().strip() == (
        "torch 2.1.2: NOT TESTED: too little free disk for its image venv (see above)")


def test_ci_sets_the_skip_for_the_compat_step_only() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    steps = [ln.strip() for ln in lines if ln.strip().startswith(("make", "COMPAT_"))]
    assert steps == ["make test", "COMPAT_LOW_DISK=skip make test-compat COMPAT_TORCH=2.1.2"]
