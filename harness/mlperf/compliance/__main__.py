"""`python -m harness.mlperf.compliance [--log FILE_OR_DIR ...]`: same as `python -m harness check`."""
import sys

from harness.mlperf.compliance import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
