"""Helpers for the set-up tests: running pip, telling "no index" from "no fit"."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# What pip prints when it cannot reach the package index at all (as opposed
# to reaching it and finding no version that fits, which is a real failure).
_OFFLINE = re.compile(
    r"NewConnectionError|Temporary failure in name resolution|Name or service not known"
    r"|Network is unreachable|ConnectTimeoutError|ProxyError|Failed to establish a new connection"
    r"|No route to host|Connection refused")


def run_pip(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    """`python -m pip ARGS` with few retries; skips (with pip's own reason) when offline."""
    cmd = [sys.executable, "-m", "pip", *args, "--retries", "1", "--timeout", "20",
           "--disable-pip-version-check"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if proc.returncode != 0:
        offline = _OFFLINE.search(proc.stderr + proc.stdout)
        if offline:
            line = next(l for l in (proc.stderr + proc.stdout).splitlines() if offline.group(0) in l)
            pytest.skip(f"package index unreachable, cannot check the resolution: {line.strip()[:200]}")
    return proc
