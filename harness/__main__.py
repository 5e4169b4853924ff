"""ds2bench command line: `python -m harness <command> ...` (the Makefile forwards here).

Commands: bench, scaling, eval, check, verify, data, perf, seedcmp.
"""
from __future__ import annotations

import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
