"""MLPerf-style scores per group of runs: time to train, throughput, scaling.

A group is one (benchmark, config hash, platform, cards): different configs
are never averaged together (the config hash ignores only the seed and the
card count, see `results.rundirs.config_hash`).

Time to train (MLPerf training rules, as in mlperf_logging's
`_compute_olympic_average`): each counted run's run_stop - run_start, eval
included; a non-converged run counts as infinitely slow. With n >= 3 runs
the fastest and the slowest are dropped and the rest averaged (olympic
mean), so one non-converged run is simply the dropped slowest; more than one
non-converged run gives no score. With n < 3 there is nothing to drop: the
plain mean is reported and the rule column says so (and one non-converged
run then makes the mean infinite: no score).

Throughput (utt/s, the run's `ds2_run_throughput`: samples / synchronised
training time, warm-up excluded) is averaged over the runs whose
`throughput_ok` is set (scored, non-converged and target-less fixed-epoch
runs, see results.eligibility; without that column: scored + non-converged):
speed does not depend on reaching the target. Scaling efficiency compares one (benchmark, config, accelerator)
across card counts against its smallest card count N_min:
(thr_N / thr_Nmin) / (N / N_min); 1.0 is linear scaling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from results.eligibility import NON_CONVERGED, SCORED

GROUP_KEYS = ["benchmark", "config_hash", "platform", "cards"]
SCALING_KEYS = ["benchmark", "config_hash", "accelerator"]


@dataclass(frozen=True)
class TimeScore:
    value: float  # seconds; NaN when there is no score
    rule: str     # how it was obtained, or why there is none


def olympic_mean(times: Sequence[float]) -> TimeScore:
    """MLPerf time-to-train score of one set of runs (math.inf = not converged)."""
    n = len(times)
    failed = sum(1 for t in times if math.isinf(t))
    if n == 0:
        return TimeScore(math.nan, "no counted runs")
    if failed > 1:
        return TimeScore(math.nan, f"no score: {failed} of {n} runs did not converge "
                                   "(more than one non-converged run voids the set)")
    if n < 3:
        if failed:
            return TimeScore(math.nan, f"no score: 1 of {n} runs did not converge and with fewer "
                                       "than 3 runs it cannot be dropped as the slowest")
        return TimeScore(float(np.mean(times)), f"mean of {n} run{'s' * (n > 1)} "
                                                "(fewer than 3: no olympic mean)")
    kept = sorted(times)[1:-1]
    note = "; the non-converged run counted as slowest" if failed else ""
    return TimeScore(float(np.mean(kept)),
                     f"olympic mean of {n} runs (fastest and slowest dropped){note}")


def _time_scores(g: pd.DataFrame) -> tuple[TimeScore, int]:
    """Score of one group and how many runs entered it."""
    times: list[float] = []
    for _, r in g.iterrows():
        if r["scoring"] == NON_CONVERGED:
            times.append(math.inf)
        elif r["scoring"] == SCORED and np.isfinite(r["time_to_train(s)"]):
            times.append(float(r["time_to_train(s)"]))
    return olympic_mean(times), len(times)


def score_groups(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per group with the scores; `runs` needs the runs.csv columns."""
    rows = []
    for key, g in runs.groupby(GROUP_KEYS, dropna=False, sort=True):
        counted = g[g["scoring"].isin([SCORED, NON_CONVERGED])]
        score, n_timed = _time_scores(g)
        conv = counted[counted["scoring"] == SCORED]
        thr_runs = g[g["throughput_ok"].eq(True)] if "throughput_ok" in g else counted
        thr = thr_runs["throughput(utt/s)"].astype(float)
        thr = thr[np.isfinite(thr)]
        rows.append({
            **dict(zip(GROUP_KEYS, key)),
            "accelerator": g["accelerator"].iloc[0],
            "runs": len(g),
            "counted_runs": n_timed,
            "converged": int((counted["scoring"] == SCORED).sum()),
            "non_converged": int((counted["scoring"] == NON_CONVERGED).sum()),
            "excluded": int(len(g) - len(counted)),
            "time_to_train(s)": score.value,
            "time_to_train_rule": score.rule,
            "epochs_to_converge": float(conv["epochs_to_target"].astype(float).mean())
            if len(conv) else math.nan,
            "throughput_mean(utt/s)": float(thr.mean()) if len(thr) else math.nan,
            "throughput_std(utt/s)": float(thr.std(ddof=1)) if len(thr) > 1 else math.nan,
            "throughput_min(utt/s)": float(thr.min()) if len(thr) else math.nan,
            "throughput_max(utt/s)": float(thr.max()) if len(thr) else math.nan,
            "throughput_runs": len(thr),
        })
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return add_scaling(table)


def add_scaling(table: pd.DataFrame) -> pd.DataFrame:
    """Speed-up and scaling efficiency against the smallest card count of the same config."""
    table = table.copy()
    table["scaling_base_cards"] = np.nan
    table["speedup_vs_base"] = np.nan
    table["scaling_efficiency"] = np.nan
    for _, g in table.groupby(SCALING_KEYS, dropna=False):
        have = g[np.isfinite(g["throughput_mean(utt/s)"].astype(float)) & g["cards"].notna()]
        if have.empty:
            continue
        base = have.loc[have["cards"].astype(float).idxmin()]
        n0, t0 = float(base["cards"]), float(base["throughput_mean(utt/s)"])
        for idx, r in have.iterrows():
            speedup = float(r["throughput_mean(utt/s)"]) / t0
            table.loc[idx, "scaling_base_cards"] = n0
            table.loc[idx, "speedup_vs_base"] = speedup
            table.loc[idx, "scaling_efficiency"] = speedup / (float(r["cards"]) / n0)
    return table
