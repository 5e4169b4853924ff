"""Scoring rules: required run count, olympic mean, every run counted, spread, scaling.

The olympic mean and the run-count rule are cross-checked against
mlperf_logging's own result summariser (`_compute_olympic_average`, the
`get_result_file_counts` table) on the cases it handles.
"""
from __future__ import annotations

import math
import random
from pathlib import Path

import pandas as pd
import pytest
import yaml

from reference.config import ScoringConfig
from results import eligibility as E
from results.scoring import olympic_mean, score_groups, score_set

summarizer = pytest.importorskip("mlperf_logging.result_summarizer.result_summarizer")
from mlperf_logging.benchmark_meta import get_result_file_counts  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _mlperf_score(times: list[float]) -> float | None:
    """What mlperf_logging's strong-scaling summariser computes for this set.

    It appends the finite times and counts every run it cannot score as a
    dropped score (`_compute_strong_score_standalone`); more than one dropped
    score is a "CRITICAL ERROR" (no valid score).
    """
    finite = [t for t in times if math.isfinite(t)]
    dropped = len(times) - len(finite)
    if dropped > 1:
        return None
    return summarizer._compute_olympic_average(list(finite), dropped, 1)


@pytest.mark.parametrize("trial", range(40))
def test_olympic_mean_matches_mlperf_logging(trial: int) -> None:
    rng = random.Random(trial)
    n = rng.randint(5, 12)
    times = [rng.uniform(50, 500) for _ in range(n)]
    for i in rng.sample(range(n), rng.choice([0, 0, 1, 1, 2])):
        times[i] = math.inf  # non-converged or failed
    ours = olympic_mean(times, required=5)
    theirs = _mlperf_score(times)
    if theirs is None:
        assert math.isnan(ours.value) and "voids the set" in ours.rule
    else:
        assert ours.value == pytest.approx(theirs)
        assert "olympic mean" in ours.rule


def test_required_run_counts_match_mlperf_speech() -> None:
    counts = get_result_file_counts("training")
    assert ScoringConfig().required_runs == counts["rnnt"] == 10
    for name in ("mlcommons_v05", "cambricon_mlu370x8_16"):
        cfg = yaml.safe_load((REPO / "benchmarks" / f"{name}.yaml").read_text())
        assert (cfg.get("scoring") or {}).get("required_runs", 10) == 10, name
    tiny = yaml.safe_load((REPO / "benchmarks" / "tiny.yaml").read_text())
    assert tiny["scoring"]["required_runs"] >= 5


def test_fewer_runs_than_required_is_no_score_never_a_mean() -> None:
    for times in ([100.0], [100.0, 120.0], [100.0, 120.0, 90.0, 110.0]):
        s = olympic_mean(times, required=5)
        assert math.isnan(s.value)
        assert s.rule == f"no score ({len(times)} of 5 runs)"
    assert olympic_mean([10.0, 20.0, 30.0, 40.0, 50.0], required=5).value == pytest.approx(30.0)
    # an olympic mean needs 3 runs even when a benchmark asks for fewer
    assert math.isnan(olympic_mean([10.0, 20.0], required=2).value)


def _row(run: str, cards: int = 1, ttt: float = 100.0, thr: float = 10.0,
         scoring: str = E.SCORED, chash: str = "aaaa", accel: str = "CPU",
         required: int = 3, epochs_to_target: float | None = 3.0, best: float = 20.0) -> dict:
    return {"run": run, "benchmark": "tiny", "config_hash": chash, "platform": f"{cards}x{accel}",
            "accelerator": accel, "cards": cards, "scoring": scoring, "time_to_train(s)": ttt,
            "throughput(utt/s)": thr, "required_runs": required, "host_cores": 2,
            "epochs_to_target": epochs_to_target if scoring == E.SCORED else None,
            "samples_to_target": 480 * 3 if scoring == E.SCORED else math.nan,
            "best_wer_ref(%)": best, "epochs": 3,
            "throughput_ok": scoring in (E.SCORED, E.NON_CONVERGED)}


def test_groups_never_mix_configs() -> None:
    runs = pd.DataFrame([_row("a", ttt=100), _row("b", ttt=200), _row("c", ttt=300),
                         _row("d", ttt=400, chash="bbbb")])
    g = score_groups(runs).set_index("config_hash")
    assert len(g) == 2
    assert g.loc["aaaa", "time_to_train(s)"] == pytest.approx(200.0)
    assert math.isnan(g.loc["bbbb", "time_to_train(s)"])
    assert g.loc["bbbb", "time_to_train_rule"] == "no score (1 of 3 runs)"


def test_every_run_counts_failed_and_non_converged_are_infinite() -> None:
    base = [_row("a", ttt=10), _row("b", ttt=20), _row("c", ttt=30), _row("d", ttt=40)]
    # one failed (torn log) run: the dropped slowest, as mlperf_logging drops one bad file
    g = score_groups(pd.DataFrame(base + [_row("t", ttt=1, scoring=E.FAILED)])).iloc[0]
    assert g["time_to_train(s)"] == pytest.approx(_mlperf_score([10, 20, 30, 40, math.inf]))
    assert g["time_to_train(s)"] == pytest.approx(30.0) and g["failed"] == 1
    # a failed run and a non-converged one: two infinite runs void the set; the fast
    # failed run never leaves the set so that the rest is scored
    two = pd.DataFrame(base + [_row("t", ttt=1, scoring=E.FAILED),
                               _row("n", ttt=5, scoring=E.NON_CONVERGED)])
    g = score_groups(two).iloc[0]
    assert math.isnan(g["time_to_train(s)"]) and "2 of 6" in g["time_to_train_rule"]
    # an invalid run (breaks another rule) voids the set
    g = score_groups(pd.DataFrame(base + [_row("x", scoring=E.INVALID)])).iloc[0]
    assert math.isnan(g["time_to_train(s)"]) and "set invalid" in g["time_to_train_rule"]
    # excluded (no target) runs are not members: 4 members of 5 required -> no score
    g = score_groups(pd.DataFrame(base + [_row("e", scoring=E.EXCLUDED)]
                                  )).iloc[0]
    assert g["set_runs"] == 4 and g["excluded"] == 1


def test_a_scored_run_with_a_non_positive_time_is_never_averaged() -> None:
    s = score_set(pd.DataFrame([_row("a", ttt=10), _row("b", ttt=-5.0), _row("c", ttt=30)]))
    # a negative time cannot pass as fast: it counts as infinite, never as a score
    assert s.value == pytest.approx(30.0)
    assert "slowest" in s.rule


def test_spread_columns_are_min_median_max() -> None:
    runs = pd.DataFrame([_row("a", ttt=10, thr=9.0, best=19.0), _row("b", ttt=20, thr=10.0),
                         _row("c", ttt=60, thr=14.0, epochs_to_target=4.0, best=22.0),
                         _row("d", scoring=E.NON_CONVERGED, thr=11.0, best=30.0)])
    g = score_groups(runs).iloc[0]
    assert (g["ttt(s)_min"], g["ttt(s)_median"], g["ttt(s)_max"]) == (10.0, 20.0, 60.0)
    assert (g["epochs_to_target_min"], g["epochs_to_target_max"]) == (3.0, 4.0)
    assert (g["throughput(utt/s)_min"], g["throughput(utt/s)_median"],
            g["throughput(utt/s)_max"]) == (9.0, 10.5, 14.0)
    assert (g["best_wer(%)_min"], g["best_wer(%)_max"]) == (19.0, 30.0)


def test_scaling_and_cpu_processes_are_not_hardware_scaling() -> None:
    runs = pd.DataFrame([_row("a", cards=1, thr=10.0), _row("b", cards=1, thr=10.0),
                         _row("c", cards=2, thr=20.0), _row("d", cards=4, thr=30.0),
                         _row("e", cards=8, thr=999.0, accel="H100")])
    g = score_groups(runs).set_index("platform")
    assert g.loc["4xCPU", "scaling_efficiency"] == pytest.approx(0.75)
    assert g.loc["4xCPU", "speedup_vs_base"] == pytest.approx(3.0)
    assert "processes sharing 2 cores" in g.loc["2xCPU", "scaling_kind"]
    assert "not hardware scaling" in g.loc["2xCPU", "scaling_kind"]
    assert g.loc["8xH100", "scaling_kind"] == "devices"
    assert g.loc["8xH100", "scaling_base_cards"] == 8


class _Check:
    def __init__(self, failures: list[str]) -> None:
        self.failures = failures

    def __call__(self, path: Path):
        return type("R", (), {"path": path, "ok": not self.failures, "failures": self.failures})()


_BASE = {"has_mlperf_log": True, "log_problems": "", "time_problems": "", "resumed": False,
         "config_error": None, "target_wer(%)": 23.0, "status": "aborted",
         "reason": "target 23.0 not reached"}


def test_failing_only_for_non_convergence_counts_as_non_converged() -> None:
    chk = _Check(["line 55 run_stop: run_stop status must be success (aborted runs do not count)",
                  "eval_accuracy: some eval_accuracy (WER) must be <= ds2_target_wer "
                  "(target not reached)"])
    v = E.classify(dict(_BASE), [Path("mlperf.log")], chk)
    assert v["scoring"] == E.NON_CONVERGED and "not reached" in v["exclusion_reason"]


def test_other_compliance_failures_make_the_run_invalid() -> None:
    chk = _Check(["line 55 run_stop: run_stop status must be success (aborted runs do not count)",
                  "opt_momentum: required exactly once, found 0"])
    v = E.classify(dict(_BASE), [Path("mlperf.log")], chk)
    assert v["scoring"] == E.INVALID and "opt_momentum" in v["exclusion_reason"]
    assert "voids its set" in v["exclusion_reason"]


def test_resumed_torn_backwards_and_logless_runs_fail_and_stay_in_the_set() -> None:
    ok = _Check([])
    assert E.classify({**_BASE, "status": "success"}, [Path("x")], ok)["scoring"] == E.SCORED
    cases = [({"resumed": True, "log_segments": 2}, "resumed"),
             ({"log_problems": "mlperf.log line 9: torn"}, "torn"),
             ({"time_problems": "mlperf.log line 40: time runs backwards"}, "backwards"),
             ({"status": "no run_stop", "reason": "the MLPerf log has no run_stop"}, "no run_stop"),
             ({"has_mlperf_log": False}, "no mlperf.log")]
    for extra, word in cases:
        v = E.classify({**_BASE, **extra}, [Path("x")], ok)
        assert v["scoring"] == E.FAILED, extra
        assert word in v["exclusion_reason"] and "non-converged (∞)" in v["exclusion_reason"]
