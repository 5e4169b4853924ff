"""Which runs enter a set's MLPerf score, and how each one counts.

MLPerf scores a *set* of runs as a whole: every run of the set counts, so a
seed cannot leave the set by dying. Each run gets one verdict (column
`scoring` of runs.csv), and `results.scoring` turns the verdicts of a set into
its score:

* ``scored`` - the MLPerf log passes `harness.mlperf.compliance.check_log`,
  its clock runs forward, and the run converged (run_stop status success):
  its run_stop - run_start is a time to train.
* ``non-converged`` - the log fails compliance *only* because the run did not
  reach its target (every failure is one of `NON_CONVERGENCE_FAILURES`) and
  run_stop says aborted. Counts as an infinite time to train.
* ``failed`` - a run of the set that produced no usable measurement: no
  mlperf.log, a torn or unreadable log, a log without run_stop (crashed or
  killed), a clock that runs backwards or a non-positive run_stop - run_start,
  or a resumed run (its timed region is split across attempts). Counts as an
  infinite time to train, exactly like a non-converged run - what
  mlperf_logging's result summariser does with a result file it cannot read
  or check (`_compute_strong_score_standalone` adds it to `dropped_scores`).
  Such a run is never scored on its own.
* ``invalid`` - a readable log that breaks a rule other than convergence
  (wrong key order, hyper-parameters outside the rules, ...). It voids the
  *whole set*: a submission holding a non-compliant result file is rejected
  by MLPerf's package checker, whatever the other runs did.
* ``excluded`` - not a member of any MLPerf set: a fixed-epoch run without a
  quality target (`ds2_target_wer` null, e.g. the seed-objective experiment)
  has no time to train at all, and a run whose config.yaml is unreadable
  cannot be put in a group. They stay in runs.csv, the plots and the
  published-loss comparison.

Throughput is a speed measurement, not a quality result, so it is counted
(column `throughput_ok`) for scored and non-converged runs and also for a
fixed-epoch run without a quality target whose log fails compliance for
nothing but the missing target and the resulting aborted status.

If `harness.mlperf.compliance` cannot be imported, runs are classified from their
own logs (status, clock and parse problems only) and the report says in bold
that compliance was not checked.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Protocol

# Failure texts of harness.mlperf.compliance that mean "did not converge" and nothing
# else (the `# rule in words` comments of rules/common_ds2.yaml).
NON_CONVERGENCE_FAILURES = (
    "run_stop status must be success",
    "(target not reached)",
)
# ... and those that only say that the run has no quality target at all.
NO_TARGET_FAILURES = ("ds2_target_wer must be a WER",)

SCORED, NON_CONVERGED, FAILED, INVALID, EXCLUDED = (
    "scored", "non-converged", "failed", "invalid", "excluded")
# Verdicts that are members of their MLPerf set (every one of them counts).
IN_SET = (SCORED, NON_CONVERGED, FAILED, INVALID)


class CheckResultLike(Protocol):
    path: Path
    ok: bool
    failures: list[str]


Checker = Callable[[Path], CheckResultLike]


def load_checker(benchmarks_dir: Path | None = None) -> Checker | None:
    """`harness.mlperf.compliance.check_log` (against the benchmark definitions in
    `benchmarks_dir`, default the project's), or None when that package is not importable."""
    try:
        from harness.mlperf.compliance import check_log
    except ImportError:
        return None
    if benchmarks_dir is None:
        return check_log
    return lambda path: check_log(path, benchmarks_dir)


def is_non_convergence(failure: str) -> bool:
    return any(pattern in failure for pattern in NON_CONVERGENCE_FAILURES)


def compliance_failures(logs: list[Path], checker: Checker) -> list[str]:
    """All failures of all segments (prefixed by the file name when there are several)."""
    out: list[str] = []
    for path in logs:
        res = checker(path)
        prefix = f"{Path(path).name}: " if len(logs) > 1 else ""
        out.extend(prefix + f for f in res.failures)
        if not res.ok and not res.failures:
            out.append(prefix + "compliance check failed without a message")
    return out


def _short(items: list[str], n: int = 3) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return "; ".join(items[:n]) + more


def classify(row: dict[str, Any], log_paths: list[Path], checker: Checker | None) -> dict[str, Any]:
    """Return {'scoring', 'exclusion_reason', 'throughput_ok', 'compliance_ok',
    'compliance_failures'} for one run."""
    out: dict[str, Any] = {"compliance_ok": None, "compliance_failures": ""}

    def verdict(kind: str, reason: str = "", throughput_ok: bool | None = None) -> dict[str, Any]:
        thr_ok = kind in (SCORED, NON_CONVERGED) if throughput_ok is None else throughput_ok
        return {**out, "scoring": kind, "exclusion_reason": reason, "throughput_ok": thr_ok}

    if row.get("config_error"):
        return verdict(EXCLUDED, f"{row['config_error']}: the run cannot be put in a set")
    target = row.get("target_wer(%)")
    no_target = target is None or (isinstance(target, float) and math.isnan(target))
    if not row.get("has_mlperf_log"):
        if no_target:
            return verdict(EXCLUDED, "no mlperf.log and no quality target: no time to train")
        return verdict(FAILED, "no mlperf.log (result.json only): counts as non-converged (∞)")
    if row.get("log_problems"):
        return verdict(FAILED, f"torn or unreadable log, counts as non-converged (∞): "
                               f"{row['log_problems']}")
    if row.get("time_problems"):
        return verdict(FAILED, f"log clock unusable, never scored; counts as non-converged (∞): "
                               f"{row['time_problems']}")
    failures: list[str] = []
    if checker is not None:
        failures = compliance_failures(log_paths, checker)
        out["compliance_ok"] = not failures
        out["compliance_failures"] = "; ".join(failures)
    if no_target:
        other = [f for f in failures if not is_non_convergence(f)
                 and not any(p in f for p in NO_TARGET_FAILURES)]
        reason = "fixed-epoch run without a quality target (ds2_target_wer null): no time to train"
        if other:
            return verdict(EXCLUDED, f"{reason}; fails compliance: {_short(other)}")
        return verdict(EXCLUDED, f"{reason} (throughput still counted)", throughput_ok=True)
    if row.get("resumed"):
        return verdict(FAILED, f"resumed ({row.get('log_segments', 1)} log segments): the timed "
                               "region is split across attempts, so there is no time to train; "
                               "counts as non-converged (∞)")
    if row.get("status") not in ("success", "aborted"):
        return verdict(FAILED, f"status {row.get('status')}: {row.get('reason') or 'no run_stop'} "
                               "(crashed or killed); counts as non-converged (∞)")
    if checker is None:  # fall back on the log itself
        if row.get("status") == "success":
            return verdict(SCORED)
        return verdict(NON_CONVERGED, f"not converged: {row.get('reason') or 'aborted'}")
    if not failures:
        return verdict(SCORED)
    other = [f for f in failures if not is_non_convergence(f)]
    if not other and row.get("status") == "aborted":
        return verdict(NON_CONVERGED, f"not converged: {row.get('reason') or 'aborted'}")
    if not other:
        return verdict(INVALID, f"run_stop status {row.get('status')!r} contradicts the log: "
                                f"{_short(failures)}; voids its set")
    return verdict(INVALID, f"fails compliance: {_short(other)}; voids its set")
