"""`python -m harness.perf ...`, the same as `python -m harness perf ...`."""
import sys

from harness.perf.cli import main

sys.exit(main(sys.argv[1:]))
