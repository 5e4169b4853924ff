"""Print the pip constraints for installing ds2bench on top of this Python stack.

Usage: python scripts/effective_constraints.py constraints.txt > effective.txt

For every package named in constraints.txt that this interpreter can already
import (an image's numpy, scipy, ...), the exact version it has replaces the
project's pins: pip then keeps it instead of installing the project's choice
beside it (a NumPy 2 over a torch built against NumPy 1.x would break
`torch.from_numpy`). An installed torch is pinned the same way. Packages that
nothing provides keep the lines of constraints.txt, markers and all, so a
fresh machine gets the same exact versions every time.

Standard library only: this runs before any dependency is installed.
"""
from __future__ import annotations

import re
import sys
from importlib import metadata


def _name(line: str) -> str | None:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return re.sub(r"[-_.]+", "-", m.group(1)).lower() if m else None


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def effective(lines: list[str], always: tuple[str, ...] = ("torch",)) -> list[str]:
    """The constraint lines for this interpreter (see the module docstring)."""
    out: list[str] = []
    kept: set[str] = set()
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        name = _name(line) if line else None
        if name is None:
            continue
        have = _installed(name)
        if have is None:
            out.append(line)
        elif name not in kept:
            kept.add(name)
            out.append(f"{name}=={have}  # already installed here")
    for name in always:
        have = _installed(name)
        if have is not None and name not in kept:
            out.append(f"{name}=={have}  # already installed here")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: effective_constraints.py CONSTRAINTS_FILE", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        print("\n".join(effective(f.readlines())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
