"""Scoring rules on synthetic run rows: olympic mean, non-converged runs, groups, scaling."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from results import eligibility as E
from results.scoring import olympic_mean, score_groups


def test_olympic_mean_drops_fastest_and_slowest() -> None:
    s = olympic_mean([100.0, 10.0, 30.0, 20.0, 40.0])
    assert s.value == pytest.approx(30.0)  # mean of 20, 30, 40
    assert "olympic" in s.rule


def test_one_non_converged_run_counts_as_slowest_and_is_dropped() -> None:
    s = olympic_mean([10.0, 20.0, 30.0, math.inf])
    assert s.value == pytest.approx(25.0)  # 10 (fastest) and inf (slowest) dropped
    assert "non-converged" in s.rule


def test_two_non_converged_runs_give_no_score() -> None:
    s = olympic_mean([10.0, 20.0, 30.0, math.inf, math.inf])
    assert math.isnan(s.value)
    assert "2 of 5" in s.rule


def test_fewer_than_three_runs_is_a_plain_mean_and_says_so() -> None:
    s = olympic_mean([10.0, 20.0])
    assert s.value == pytest.approx(15.0)
    assert "fewer than 3" in s.rule
    assert math.isnan(olympic_mean([10.0, math.inf]).value)
    assert math.isnan(olympic_mean([]).value)


def _row(run: str, cards: int = 1, ttt: float = 100.0, thr: float = 10.0,
         scoring: str = E.SCORED, chash: str = "aaaa", accel: str = "CPU") -> dict:
    return {"run": run, "benchmark": "tiny", "config_hash": chash, "platform": f"{cards}x{accel}",
            "accelerator": accel, "cards": cards, "scoring": scoring, "time_to_train(s)": ttt,
            "throughput(utt/s)": thr, "epochs_to_target": 3 if scoring == E.SCORED else None}


def test_groups_never_mix_configs() -> None:
    runs = pd.DataFrame([_row("a", ttt=100), _row("b", ttt=200), _row("c", ttt=400, chash="bbbb")])
    g = score_groups(runs).set_index("config_hash")
    assert len(g) == 2
    assert g.loc["aaaa", "time_to_train(s)"] == pytest.approx(150.0)
    assert g.loc["bbbb", "time_to_train(s)"] == pytest.approx(400.0)
    assert g.loc["aaaa", "runs"] == 2 and g.loc["bbbb", "runs"] == 1


def test_group_counts_non_converged_and_ignores_excluded() -> None:
    runs = pd.DataFrame([_row("a", ttt=10), _row("b", ttt=20), _row("c", ttt=30),
                         _row("d", ttt=5, scoring=E.NON_CONVERGED, thr=12.0),
                         _row("e", ttt=1, scoring=E.EXCLUDED, thr=1000.0)])
    g = score_groups(runs).iloc[0]
    assert g["time_to_train(s)"] == pytest.approx(25.0)
    assert (g["counted_runs"], g["converged"], g["non_converged"], g["excluded"]) == (4, 3, 1, 1)
    # throughput: counted runs only (non-converged included, excluded not)
    assert g["throughput_mean(utt/s)"] == pytest.approx((10 + 10 + 10 + 12) / 4)
    assert g["throughput_max(utt/s)"] == pytest.approx(12.0)
    assert g["epochs_to_converge"] == pytest.approx(3.0)


def test_scaling_efficiency_against_smallest_card_count() -> None:
    runs = pd.DataFrame([_row("a", cards=1, thr=10.0), _row("b", cards=1, thr=10.0),
                         _row("c", cards=2, thr=20.0), _row("d", cards=4, thr=30.0),
                         _row("e", cards=8, thr=999.0, accel="H100")])
    g = score_groups(runs).set_index("platform")
    assert g.loc["1xCPU", "scaling_efficiency"] == pytest.approx(1.0)
    assert g.loc["2xCPU", "scaling_efficiency"] == pytest.approx(1.0)
    assert g.loc["4xCPU", "scaling_efficiency"] == pytest.approx(0.75)
    assert g.loc["4xCPU", "speedup_vs_base"] == pytest.approx(3.0)
    # another accelerator is its own baseline, never compared with CPU
    assert g.loc["8xH100", "scaling_base_cards"] == 8
    assert g.loc["8xH100", "scaling_efficiency"] == pytest.approx(1.0)


class _Check:
    def __init__(self, failures: list[str]) -> None:
        self.failures = failures

    def __call__(self, path: Path):
        return type("R", (), {"path": path, "ok": not self.failures, "failures": self.failures})()


_BASE = {"has_mlperf_log": True, "log_problems": "", "resumed": False, "config_error": None,
         "target_wer(%)": 23.0, "status": "aborted", "reason": "target 23.0 not reached"}


def test_failing_only_for_non_convergence_counts_as_non_converged() -> None:
    chk = _Check(["line 55 run_stop: run_stop status must be success (aborted runs do not count)",
                  "eval_accuracy: some eval_accuracy (WER) must be <= ds2_target_wer "
                  "(target not reached)"])
    v = E.classify(dict(_BASE), [Path("mlperf.log")], chk)
    assert v["scoring"] == E.NON_CONVERGED and "not reached" in v["exclusion_reason"]


def test_other_compliance_failures_exclude_the_run() -> None:
    chk = _Check(["line 55 run_stop: run_stop status must be success (aborted runs do not count)",
                  "opt_momentum: required exactly once, found 0"])
    v = E.classify(dict(_BASE), [Path("mlperf.log")], chk)
    assert v["scoring"] == E.EXCLUDED and "opt_momentum" in v["exclusion_reason"]
    assert "run_stop status" not in v["exclusion_reason"]


def test_resumed_torn_and_logless_runs_are_excluded_with_reasons() -> None:
    ok = _Check([])
    assert E.classify({**_BASE, "status": "success"}, [Path("x")], ok)["scoring"] == E.SCORED
    v = E.classify({**_BASE, "resumed": True, "log_segments": 2}, [Path("x")] * 2, ok)
    assert v["scoring"] == E.EXCLUDED and "resumed" in v["exclusion_reason"]
    v = E.classify({**_BASE, "log_problems": "mlperf.log line 9: torn"}, [Path("x")], ok)
    assert v["scoring"] == E.EXCLUDED and "invalid log" in v["exclusion_reason"]
    v = E.classify({**_BASE, "has_mlperf_log": False}, [], ok)
    assert v["scoring"] == E.EXCLUDED and "no mlperf.log" in v["exclusion_reason"]
