"""scripts/setup_env.sh on a machine whose torch lives in an *activated* venv.

The Cambricon images keep torch + torch_mlu in a venv the user activates; a
`venv --system-site-packages` made from there would not see them. Here the
project's own test venv plays the image (it has torch, numpy and every
dependency): setup_env.sh runs with it activated, and the new venv must use
that torch and numpy as they are and install nothing (nothing is missing).
The same path with a real torch 2.1.2 / 2.4.1 image that lacks the other
dependencies is `make test-compat` (scripts/test_compat.sh).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from setup_util import REPO

# Slow (a venv and a real pip run, ~15-40 s here): `make test-all`; `make test-compat`
# covers the same path on every run with real old torch images.
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _site(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def _setup(venv: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(VENV=str(venv), **env_extra)
    return subprocess.run(["bash", "scripts/setup_env.sh"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_activated_venv_torch_and_numpy_are_reused(tmp_path):
    image = Path(sys.prefix)  # this venv: torch + all dependencies
    if image == Path(sys.base_prefix):
        pytest.skip("the tests are not running in a venv, so there is no venv to play the image")
    venv = tmp_path / "ds2"
    bindir = str(image / "bin")
    proc = _setup(venv, {"VIRTUAL_ENV": str(image), "PATH": bindir + os.pathsep + os.environ["PATH"]})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reusing torch" in proc.stdout, proc.stdout
    assert (venv / ".ds2bench-ready").exists()
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import sys, torch, numpy; print(torch.__file__); print(numpy.__version__); print(sys.prefix)"],
        capture_output=True, text=True, check=True).stdout.splitlines()
    from importlib import metadata

    import numpy
    import torch
    assert Path(probe[0]) == Path(torch.__file__)      # the image's torch, not a second copy
    assert probe[1] == numpy.__version__
    assert Path(probe[2]) == venv                        # but it runs as the new venv
    own = {p.name.split("-")[0].lower() for p in _site(venv / "bin" / "python").glob("*.dist-info")}
    assert not own & {"torch", "numpy", "scipy", "pandas", "matplotlib", "pyyaml"}, own
    cons = (venv / ".ds2bench-constraints.txt").read_text()
    # pip's versions (a CUDA wheel's torch.__version__ has a "+cu121" its metadata lacks)
    assert f"numpy=={metadata.version('numpy')}" in cons and f"torch=={metadata.version('torch')}" in cons

