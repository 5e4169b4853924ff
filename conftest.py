"""Makes the repository root importable for the tests (reference, harness, results)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
