"""requirements.txt + constraints.txt resolve, with wheels only, for Python 3.10 and 3.12.

A real resolution against the package index (`pip install --dry-run --report`
for a foreign Python version and manylinux x86_64), not a parse of the files:
a pin that has no wheel for that Python (NumPy 2.4 on 3.10) fails here. pip
evaluates environment markers against the interpreter running it, not against
`--python-version`, so the markers are evaluated here for the target version
first (with `packaging`, pip's own marker engine) and pip gets plain lines.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from setup_util import REPO, run_pip

PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def _for_python(path: Path, version: str) -> list[Requirement]:
    """The requirement lines of PATH whose markers hold on Python VERSION."""
    env = {"python_version": version, "python_full_version": f"{version}.0",
           "implementation_name": "cpython", "platform_python_implementation": "CPython",
           "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
           "os_name": "posix"}
    out = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            req.marker = None
            out.append(req)
    return out


@pytest.mark.parametrize("python", ["3.10", "3.12"])
def test_dependencies_resolve_with_wheels(python, tmp_path):
    reqs = _for_python(REPO / "requirements.txt", python)
    cons = _for_python(REPO / "constraints.txt", python)
    (tmp_path / "req.txt").write_text("\n".join(map(str, reqs)) + "\n")
    (tmp_path / "con.txt").write_text("\n".join(map(str, cons)) + "\n")
    report = tmp_path / "report.json"
    proc = run_pip(["install", "--dry-run", "--ignore-installed", "--only-binary=:all:",
                    "--python-version", python, *[a for p in PLATFORMS for a in ("--platform", p)],
                    "--target", str(tmp_path / "target"), "--report", str(report), "--quiet",
                    "-r", str(tmp_path / "req.txt"), "-c", str(tmp_path / "con.txt")])
    assert proc.returncode == 0, f"does not resolve for Python {python}:\n{proc.stderr[-3000:]}"
    chosen = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
              for i in json.loads(report.read_text())["install"]}
    for req in reqs:  # every requirement is there, in its range
        name = canonicalize_name(req.name)
        assert name in chosen, f"{req.name} not in the resolution for Python {python}"
        assert req.specifier.contains(chosen[name]), (req, chosen[name])
    for con in cons:  # where nothing provides a package, the exact version is the one installed
        name = canonicalize_name(con.name)
        assert con.specifier.contains(chosen[name]), f"Python {python}: {name} {chosen[name]} not {con}"


def test_constraints_pin_every_ranged_requirement():
    """A range in requirements.txt without an exact pin would float on a fresh machine."""
    ranged = {canonicalize_name(r.name) for v in ("3.10", "3.11", "3.12", "3.13")
              for r in _for_python(REPO / "requirements.txt", v)
              if not any(s.operator == "==" for s in r.specifier)}
    for version in ("3.10", "3.11", "3.12", "3.13"):
        pinned = {canonicalize_name(c.name) for c in _for_python(REPO / "constraints.txt", version)
                  if any(s.operator == "==" for s in c.specifier)}
        assert ranged <= pinned, f"Python {version}: no exact pin for {sorted(ranged - pinned)}"
