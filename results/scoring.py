"""MLPerf scores per set of runs: time to train, with its spread; throughput, scaling.

A set (group) is one (benchmark, config hash, platform, cards): different
configs are never averaged together (the config hash ignores only the seed
and the card count, see `results.rundirs.config_hash`).

Time to train, as MLPerf training scores it (mlperf_logging's
`result_summarizer`, `_compute_strong_score_standalone` and
`_compute_olympic_average`; docs/RESULTS.md):

* the benchmark declares how many runs a set needs (`scoring.required_runs`:
  10 for the closed LibriSpeech benchmarks, as MLPerf speech/RNN-T; 5 for
  `tiny`). A set with fewer runs gets **no score** - "no score (n of N
  runs)" - and its runs are listed; no mean of a short set is ever shown as
  an MLPerf time to train.
* every run of the set counts (results.eligibility): a converged run its
  run_stop - run_start, a non-converged or failed run infinity. The fastest
  and the slowest are dropped and the rest averaged (olympic mean), so one
  infinite run is the dropped slowest; two or more give no score. An
  `invalid` run (breaks a rule other than convergence) voids the set.
* an olympic mean needs at least 3 runs, whatever `required_runs` says.

Spread is shown next to every figure as min / median / max over the set's
runs (time to train and samples / epochs to target over its converged runs,
throughput over the runs that measured it), never as a bare mean.

Throughput (utt/s, the run's `ds2_run_throughput`: samples / synchronised
training time, warm-up excluded) counts for the runs whose `throughput_ok` is
set. Scaling compares one (benchmark, config, accelerator) across card counts
against its smallest card count N_min: (thr_N / thr_Nmin) / (N / N_min). On
CPU the "cards" are processes on one host's cores: the figure is then how
much those processes gain by sharing the same cores, not hardware scaling,
and the table says so (`scaling_kind`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from results.eligibility import FAILED, IN_SET, INVALID, NON_CONVERGED, SCORED

GROUP_KEYS = ["benchmark", "config_hash", "platform", "cards"]
SCALING_KEYS = ["benchmark", "config_hash", "accelerator"]
MAX_INFINITE = 1  # MLPerf's max_dropped_scores for every benchmark but unet3d


@dataclass(frozen=True)
class TimeScore:
    value: float  # seconds; NaN when there is no score
    rule: str     # how it was obtained, or why there is none

    @property
    def scored(self) -> bool:
        return math.isfinite(self.value)


def olympic_mean(times: Sequence[float], required: int = 3) -> TimeScore:
    """MLPerf time-to-train score of one complete set (math.inf = not converged or failed)."""
    n = len(times)
    infinite = sum(1 for t in times if math.isinf(t))
    if n < required:
        return TimeScore(math.nan, f"no score ({n} of {required} runs)")
    if n < 3:
        return TimeScore(math.nan, f"no score: an olympic mean needs at least 3 runs (have {n})")
    if infinite > MAX_INFINITE:
        return TimeScore(math.nan, f"no score: {infinite} of {n} runs did not converge or failed "
                                   f"(more than {MAX_INFINITE} voids the set)")
    if any(t <= 0 or math.isnan(t) for t in times):
        # rundirs/eligibility never let such a time through; refuse rather than average it
        return TimeScore(math.nan, "no score: a run has a non-positive time to train")
    kept = sorted(times)[1:-1]
    note = "; the non-converged/failed run counted as the slowest" if infinite else ""
    return TimeScore(float(np.mean(kept)),
                     f"olympic mean of {n} runs (fastest and slowest dropped){note}")


def set_times(g: pd.DataFrame) -> list[float]:
    """The set's times to train: every member counts, non-converged and failed as infinity."""
    times: list[float] = []
    for _, r in g.iterrows():
        if r["scoring"] == SCORED:
            t = float(r["time_to_train(s)"])
            times.append(t if math.isfinite(t) and t > 0 else math.inf)
        elif r["scoring"] in (NON_CONVERGED, FAILED):
            times.append(math.inf)
    return times


def score_set(g: pd.DataFrame) -> TimeScore:
    """Score of one group's MLPerf set (its members: results.eligibility.IN_SET)."""
    members = g[g["scoring"].isin(IN_SET)]
    if members.empty:
        return TimeScore(math.nan, "no score: no run of this group has a quality target "
                                   "(fixed-epoch runs have no time to train)")
    required = int(pd.to_numeric(members.get("required_runs"), errors="coerce").max()) \
        if "required_runs" in members and members["required_runs"].notna().any() else 10
    invalid = members[members["scoring"] == INVALID]
    if len(invalid):
        names = ", ".join(invalid["run"].astype(str).head(3))
        return TimeScore(math.nan, f"no score: set invalid ({len(invalid)} run(s) break a rule "
                                   f"other than convergence: {names})")
    return olympic_mean(set_times(members), required)


def spread(values: pd.Series | Sequence[float]) -> tuple[float, float, float]:
    """(min, median, max) of the finite values; NaNs when there are none."""
    s = pd.to_numeric(pd.Series(values, dtype=float), errors="coerce")
    s = s[np.isfinite(s)]
    if s.empty:
        return math.nan, math.nan, math.nan
    return float(s.min()), float(s.median()), float(s.max())


def _with_spread(prefix: str, values: pd.Series) -> dict[str, float]:
    lo, med, hi = spread(values)
    return {f"{prefix}_min": lo, f"{prefix}_median": med, f"{prefix}_max": hi}


def score_groups(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per group with the scores; `runs` needs the runs.csv columns."""
    rows = []
    for key, g in runs.groupby(GROUP_KEYS, dropna=False, sort=True):
        members = g[g["scoring"].isin(IN_SET)]
        score = score_set(g)
        conv = members[members["scoring"] == SCORED]
        thr_runs = g[g["throughput_ok"].eq(True)] if "throughput_ok" in g else members
        thr = pd.to_numeric(thr_runs["throughput(utt/s)"], errors="coerce")
        thr = thr[np.isfinite(thr)]
        req = pd.to_numeric(g.get("required_runs", pd.Series(dtype=float)), errors="coerce")
        rows.append({
            **dict(zip(GROUP_KEYS, key)),
            "accelerator": g["accelerator"].iloc[0],
            "runs": len(g),
            "set_runs": len(members),
            "required_runs": int(req.max()) if req.notna().any() else math.nan,
            "converged": int((members["scoring"] == SCORED).sum()),
            "non_converged": int((members["scoring"] == NON_CONVERGED).sum()),
            "failed": int((members["scoring"] == FAILED).sum()),
            "invalid": int((members["scoring"] == INVALID).sum()),
            "excluded": int(len(g) - len(members)),
            "time_to_train(s)": score.value,
            "time_to_train_rule": score.rule,
            **_with_spread("ttt(s)", conv["time_to_train(s)"]),
            **_with_spread("epochs_to_target", conv["epochs_to_target"]),
            **_with_spread("samples_to_target", conv.get("samples_to_target", pd.Series(dtype=float))),
            **_with_spread("best_wer(%)", g.get("best_wer_ref(%)", pd.Series(dtype=float))),
            "max_epochs_run": float(pd.to_numeric(g.get("epochs"), errors="coerce").max())
            if "epochs" in g else math.nan,
            "throughput_mean(utt/s)": float(thr.mean()) if len(thr) else math.nan,
            **_with_spread("throughput(utt/s)", thr),
            "throughput_runs": len(thr),
            "host_cores": _first(g.get("host_cores")),
        })
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return add_scaling(table)


def _first(s: pd.Series | None) -> float:
    if s is None:
        return math.nan
    v = pd.to_numeric(s, errors="coerce").dropna()
    return float(v.iloc[0]) if len(v) else math.nan


def scaling_kind(accelerator: str, cards: float, cores: float) -> str:
    """What a scaling figure measures on this platform, in words."""
    if str(accelerator).upper() != "CPU":
        return "devices"
    where = f"{cores:.0f} cores" if math.isfinite(cores) else "the same cores"
    if cards <= 1:
        return f"1 process on {where}"
    return (f"{cards:.0f} processes sharing {where} of one host: not hardware scaling")


def add_scaling(table: pd.DataFrame) -> pd.DataFrame:
    """Speed-up and scaling efficiency against the smallest card count of the same config."""
    table = table.copy()
    table["scaling_base_cards"] = np.nan
    table["speedup_vs_base"] = np.nan
    table["scaling_efficiency"] = np.nan
    table["scaling_kind"] = [scaling_kind(a, float(c) if pd.notna(c) else math.nan,
                                          float(h) if pd.notna(h) else math.nan)
                             for a, c, h in zip(table["accelerator"], table["cards"],
                                                table["host_cores"])]
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
