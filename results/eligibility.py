"""Which runs enter the scores, and why the others do not.

Every run gets one of three verdicts (column `scoring` of runs.csv):

* ``scored`` - the MLPerf log passes `harness.mlperf.compliance.check_log`; the run
  converged (run_stop status success) and its time to train counts.
* ``non-converged`` - the log fails compliance *only* because the run did not
  reach its target: every failure is one of `NON_CONVERGENCE_FAILURES`
  (run_stop status aborted, no eval_accuracy <= ds2_target_wer) and run_stop
  really says aborted. Our rules fail such a log (an aborted run is not a
  result on its own), but MLPerf scoring must not forget it: a set's
  non-converged run counts as an *infinite* time to train in the olympic mean
  (it is the slowest run and is dropped; a second one voids the score).
  Dropping it instead would let a submitter hide failed seeds. Its throughput
  is a valid speed measurement and is kept.
* ``excluded`` - anything else, with the reason: no mlperf.log, a torn or
  otherwise unreadable log (listed as invalid), a resumed run (its timed
  region is split across attempts, so run_stop - run_start is not a time to
  train), an unreadable config, any other compliance failure (wrong key
  order, hyper-parameters outside the rules, missing target). Excluded runs
  are in no score, but stay in runs.csv, the plots and the published-loss
  comparison (which is about the loss, not about MLPerf validity).

Throughput is a speed measurement, not a quality result, so it is counted
(column `throughput_ok`) for scored and non-converged runs and also for a
fixed-epoch run without a quality target (e.g. the seed reproduction,
`ds2_target_wer` null) whose log fails compliance for nothing but the
missing target and the resulting aborted status.

If `harness.mlperf.compliance` cannot be imported, runs are classified from their
own logs (status and parse problems only) and the report says in bold that
compliance was not checked.
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

SCORED, NON_CONVERGED, EXCLUDED = "scored", "non-converged", "excluded"


class CheckResultLike(Protocol):
    path: Path
    ok: bool
    failures: list[str]


Checker = Callable[[Path], CheckResultLike]


def load_checker() -> Checker | None:
    """`harness.mlperf.compliance.check_log`, or None when that package is not importable."""
    try:
        from harness.mlperf.compliance import check_log
    except ImportError:
        return None
    return check_log


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
        return verdict(EXCLUDED, row["config_error"])
    if not row.get("has_mlperf_log"):
        return verdict(EXCLUDED, "no mlperf.log (result.json only): no MLPerf timing")
    if row.get("log_problems"):
        return verdict(EXCLUDED, f"invalid log: {row['log_problems']}")
    failures: list[str] = []
    if checker is not None:
        failures = compliance_failures(log_paths, checker)
        out["compliance_ok"] = not failures
        out["compliance_failures"] = "; ".join(failures)
    if row.get("resumed"):
        return verdict(EXCLUDED, f"resumed ({row.get('log_segments', 1)} log segments): the timed "
                                 "region is split across attempts, so there is no time to train")
    target = row.get("target_wer(%)")
    if target is None or (isinstance(target, float) and math.isnan(target)):
        other = [f for f in failures if not is_non_convergence(f)
                 and not any(p in f for p in NO_TARGET_FAILURES)]
        reason = "fixed-epoch run without a quality target (ds2_target_wer null): no time to train"
        if other:
            return verdict(EXCLUDED, f"{reason}; fails compliance: {_short(other)}")
        return verdict(EXCLUDED, f"{reason} (throughput still counted)", throughput_ok=True)
    if checker is None:  # fall back on the log itself
        if row.get("status") == "success":
            return verdict(SCORED)
        if row.get("status") == "aborted":
            return verdict(NON_CONVERGED, f"not converged: {row.get('reason') or 'aborted'}")
        return verdict(EXCLUDED, f"status {row.get('status')}: {row.get('reason') or 'no run_stop'}")
    if not failures:
        return verdict(SCORED)
    other = [f for f in failures if not is_non_convergence(f)]
    if not other and row.get("status") == "aborted":
        return verdict(NON_CONVERGED, f"not converged: {row.get('reason') or 'aborted'}")
    if not other:
        return verdict(EXCLUDED, f"run_stop status {row.get('status')!r} contradicts the log: "
                                 f"{_short(failures)}")
    return verdict(EXCLUDED, f"fails compliance: {_short(other)}")
