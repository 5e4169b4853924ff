"""Check many logs: directory walking, the set rules, and `python -m harness check`.

`python -m harness check [--log FILE_OR_DIR ...]` (default: $RUNS or `runs`)
prints one verdict line per log, `PASS path` or `FAIL path: rule; rule`, then,
when the logs come from more than one run directory, one verdict on them as a
submission set (`check_set`): `SET PASS ...` or `SET FAIL ...: problem; ...`.
Exit status 1 if anything failed.
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


def check_paths(paths_or_dirs: list[Path], benchmarks_dir: Path | None = None) -> list[CheckResult]:
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
            results.extend(check_log(p, benchmarks_dir) for p in logs)
        else:
            results.append(check_log(item, benchmarks_dir))
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


def _runs(results: list[CheckResult]) -> dict[Path, list[CheckResult]]:
    """Run directory -> its logs (mlperf.log and mlperf.resume<k>.log are one run)."""
    runs: dict[Path, list[CheckResult]] = defaultdict(list)
    for r in results:
        runs[Path(r.path).parent].append(r)
    return dict(runs)


def _first_logs(runs: dict[Path, list[CheckResult]]) -> dict[Path, CheckResult]:
    """Run directory -> the log that describes the run (mlperf.log; resumed attempts repeat it)."""
    return {d: sorted(logs, key=lambda r: r.path.name != "mlperf.log")[0]
            for d, logs in runs.items()}


def _rcp_file(name: str, benchmarks_dir: Path | None) -> Path:
    """Where a benchmark's reference convergence points live: <benchmarks>/rcp/<name>.json."""
    from harness.mlperf.compliance.generate import BENCHMARKS_DIR

    return (benchmarks_dir or BENCHMARKS_DIR) / "rcp" / f"{name}.json"


def check_set(results: list[CheckResult], benchmarks_dir: Path | None = None) -> list[str]:
    """Judge the runs of `results` as one submission set; the problems, [] when it is one.

    A set is judged as MLPerf judges a submission: every run of the same
    benchmark definition (`ds2_benchmark`), division and platform, with the
    same configuration (every logged setting before init_stop except the
    seed), distinct seeds, and at least the benchmark's
    `scoring.required_runs` runs. Non-compliant logs are reported by
    `check_log`; here they still count as runs of the set (a failed run is a
    run that did not converge, it does not vanish). `results` come from
    `check_paths`, `check_log` or `results/`.
    """
    from harness.mlperf.compliance.generate import BENCHMARKS_DIR, benchmark_definitions

    runs = _runs([r for r in results if r.path.is_file()])
    if not runs:
        return ["no runs to judge as a set"]
    first = _first_logs(runs)
    problems = []
    kinds = {(r.benchmark_name, r.division, r.platform) for r in first.values()}
    if len(kinds) > 1:
        shown = "; ".join(f"{b} {d} on {p}" for b, d, p in sorted(kinds, key=repr))
        problems.append(f"a set is one benchmark, division and platform; these runs mix {shown}")
    elif len({r.config for r in first.values()}) > 1:
        by_config: dict[str | None, list[str]] = defaultdict(list)
        for d, r in sorted(first.items()):
            by_config[r.config].append(d.name)
        shown = " vs ".join(", ".join(names) for names in by_config.values())
        problems.append(f"runs of one set must share their configuration (all but the seed); "
                        f"these differ: {shown}")
    by_seed: dict[str, list[str]] = defaultdict(list)
    for d, r in sorted(first.items()):
        by_seed[repr(r.seed)].append(d.name)
    for seed, names in sorted(by_seed.items()):
        if len(names) > 1:
            problems.append(f"seed {seed} is used by {len(names)} runs ({', '.join(names)}); "
                            "runs of one set must use different seeds")
    names = {r.benchmark_name for r in first.values()}
    if len(names) == 1:
        (name,) = names
        cfg = benchmark_definitions(benchmarks_dir or BENCHMARKS_DIR).get(name)
        if cfg is None:
            problems.append(f"ds2_benchmark {name!r} has no definition, so no required run count")
        elif len(runs) < cfg.scoring.required_runs:
            problems.append(f"{name} needs {cfg.scoring.required_runs} runs per set "
                            f"(scoring.required_runs), found {len(runs)}")
        elif not problems:
            problems += _rcp_problems([r.path for r in first.values()], name,
                                      benchmarks_dir or BENCHMARKS_DIR, cfg.scoring.required_runs)
    return problems


def _rcp_problems(logs: list[Path], name: str, benchmarks_dir: Path, required_runs: int
                  ) -> list[str]:
    """MLPerf's RCP test of a set, where `benchmarks/rcp/<name>.json` exists.

    A set that converges significantly faster than the benchmark's reference
    convergence points is a sign of a changed recipe (the engine's own
    one-sided test). Without an RCP file there is nothing to compare with, and
    nothing is said; a set that did not converge is reported by the engine too.
    """
    rcp_file = _rcp_file(name, benchmarks_dir)
    if not rcp_file.is_file():
        return []
    from harness.mlperf.rcp import check_set as rcp_check_set

    ok, msg = rcp_check_set(logs, rcp_file, required_runs)
    if ok:
        return []
    # The engine fails a set it could compare only when it converges too fast.
    faster = msg.startswith(("RCP found", "RCP Interpolation"))
    what = ("converges faster than the reference convergence points allow" if faster
            else "RCP test failed")
    return [f"{what} ({rcp_file.name}: {msg})"]


def _rcp_said(results: list[CheckResult], benchmarks_dir: Path | None) -> str:
    """For a set that passed: whether its convergence was compared with RCPs."""
    first = _first_logs(_runs([r for r in results if r.path.is_file()]))
    names = {r.benchmark_name for r in first.values()}
    name = next(iter(names)) if len(names) == 1 else None
    rcp_file = _rcp_file(str(name), benchmarks_dir)
    if name and rcp_file.is_file():
        return f"convergence within the reference convergence points ({rcp_file.name})"
    return f"convergence speed not judged (no rcp/{name}.json)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m harness check",
        description="Check MLPerf logs against the DeepSpeech2 compliance rules.")
    p.add_argument("--log", action="append", type=Path, metavar="FILE_OR_DIR",
                   help="a log file or a directory searched recursively for mlperf.log and "
                        "mlperf.resume*.log (repeatable; default: $RUNS or ./runs)")
    p.add_argument("--benchmarks", type=Path, default=None, metavar="DIR",
                   help="benchmark definitions the rules are generated from (default: benchmarks/)")
    return p


def main(argv: list[str]) -> int:
    """Entry point of `python -m harness check`; returns the exit status."""
    args = _parser().parse_args(argv)
    targets = args.log or [Path(os.environ.get("RUNS") or "runs")]
    results = check_paths(targets, args.benchmarks)
    for r in results:
        print(f"PASS {r.path}" if r.ok else f"FAIL {r.path}: {'; '.join(r.failures)}")
    set_problems: list[str] = []
    runs = _runs([r for r in results if r.path.is_file()])
    if len(runs) > 1:  # one log or one run directory is a run, not a set
        where = " ".join(map(str, targets))
        set_problems = check_set(results, args.benchmarks)
        print(f"SET FAIL {where}: {'; '.join(set_problems)}" if set_problems else
              f"SET PASS {where}: {len(runs)} runs, one benchmark and configuration, "
              f"distinct seeds, {_rcp_said(results, args.benchmarks)}")
    return 0 if results and all(r.ok for r in results) and not set_problems else 1
