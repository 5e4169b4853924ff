"""Check many logs: directory walking, the seed rule, and `python -m harness check`.

`python -m harness check [--log FILE_OR_DIR ...]` (default: $RUNS or `runs`)
prints one verdict line per log, `PASS path` or `FAIL path: rule; rule`, then
the seed rule across runs, and exits 1 if anything failed.
"""
from __future__ import annotations

import argparse
import os
from collections import defaultdict
from pathlib import Path

from harness.mlperf.compliance.checker import CheckResult, check_log

LOG_PATTERNS = ("mlperf.log", "mlperf.resume*.log")


def find_logs(directory: Path) -> list[Path]:
    """Every mlperf.log / mlperf.resume*.log under `directory`, recursively, sorted."""
    found = {p for pattern in LOG_PATTERNS for p in Path(directory).rglob(pattern) if p.is_file()}
    return sorted(found)


def check_paths(paths_or_dirs: list[Path]) -> list[CheckResult]:
    """Check files as given and every log found under directories.

    A missing path, or a directory without any log, is a failed result (so
    that `check` on the wrong directory cannot pass by finding nothing).
    """
    results: list[CheckResult] = []
    for item in map(Path, paths_or_dirs):
        if not item.exists():
            results.append(CheckResult(item, False, ["no such file or directory"]))
        elif item.is_dir():
            logs = find_logs(item)
            if not logs:
                results.append(CheckResult(item, False, [
                    "no mlperf.log or mlperf.resume*.log found under this directory"]))
            results.extend(check_log(p) for p in logs)
        else:
            results.append(check_log(item))
    return results


def check_seeds_differ(results: list[CheckResult]) -> list[str]:
    """Runs of one set (same benchmark and platform) must use different seeds.

    Only passing logs form a set. Logs in one run directory (mlperf.log and
    its mlperf.resume<k>.log) are one run and may share their seed.
    """
    runs: dict[tuple[str, str], dict[str, set[Path]]] = defaultdict(lambda: defaultdict(set))
    for r in results:
        if r.ok and r.seed is not None:
            runs[(str(r.benchmark), str(r.platform))][repr(r.seed)].add(Path(r.path).parent)
    problems = []
    for (benchmark, platform), by_seed in sorted(runs.items()):
        for seed, dirs in sorted(by_seed.items()):
            if len(dirs) > 1:
                names = ", ".join(str(d) for d in sorted(dirs))
                problems.append(f"seed {seed} is used by {len(dirs)} runs of {benchmark} on "
                                f"{platform} ({names}); runs of one set must use different seeds")
    return problems


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m harness check",
        description="Check MLPerf logs against the DeepSpeech2 compliance rules.")
    p.add_argument("--log", action="append", type=Path, metavar="FILE_OR_DIR",
                   help="a log file or a directory searched recursively for mlperf.log and "
                        "mlperf.resume*.log (repeatable; default: $RUNS or ./runs)")
    return p


def main(argv: list[str]) -> int:
    """Entry point of `python -m harness check`; returns the exit status."""
    args = _parser().parse_args(argv)
    targets = args.log or [Path(os.environ.get("RUNS") or "runs")]
    results = check_paths(targets)
    for r in results:
        print(f"PASS {r.path}" if r.ok else f"FAIL {r.path}: {'; '.join(r.failures)}")
    seed_problems = check_seeds_differ(results)
    for problem in seed_problems:
        print(f"FAIL seeds: {problem}")
    return 0 if results and all(r.ok for r in results) and not seed_problems else 1
