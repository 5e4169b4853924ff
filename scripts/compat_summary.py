"""One block of `make test-compat`'s summary: counts, times, each failure and its error line.

Reads the junit XML pytest wrote for one torch version. Standard library only.
"""
from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET


def _error_line(message: str | None, text: str | None) -> str:
    """pytest's one-line message, or for a module that failed to import its `E ...` line."""
    if message and message.strip() != "collection failure":
        return message.strip().splitlines()[0][:240]
    e_lines = [l[1:].strip() for l in (text or "").splitlines() if l.startswith("E ")]
    return (e_lines[-1] if e_lines else (message or "(no message)").strip())[:240]


def summarize(junit: str, torch: str, image_s: int, setup_s: int, image_size: str) -> str:
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError) as err:
        return f"torch {torch}: no test report ({junit}: {err})\n"
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    passed = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
    lines = [f"torch {torch}: {passed} passed, {n['failures']} failed, {n['errors']} errors, "
             f"{n['skipped']} skipped in {float(suite.get('time', 0)):.0f} s "
             f"(image venv {image_size}, built/checked in {image_s} s; setup_env.sh {setup_s} s)"]
    for case in suite.iter("testcase"):
        for kind in ("failure", "error"):
            bad = case.find(kind)
            if bad is not None:
                cls, name = case.get("classname", ""), case.get("name", "")
                # A module that failed to import has no class name: its name is the module.
                test_id = (f"{cls.replace('.', '/')}.py::{name}" if cls
                           else f"{name.replace('.', '/')}.py (collection)")
                lines.append(f"  {kind.upper()} {test_id}: {_error_line(bad.get('message'), bad.text)}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--torch", required=True)
    ap.add_argument("--junit", required=True)
    ap.add_argument("--image-s", type=int, default=0)
    ap.add_argument("--setup-s", type=int, default=0)
    ap.add_argument("--image-size", default="?")
    a = ap.parse_args()
    sys.stdout.write(summarize(a.junit, a.torch, a.image_s, a.setup_s, a.image_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
