"""PNG plots of the runs (matplotlib, Agg backend, imported only when plotting).

* wer_vs_time.png  - reference WER (%) against wall time since run_start (s)
* wer_vs_epoch.png - reference WER (%) against epoch
* train_loss_vs_epoch.png - per-utterance CTC NLL (nats, log scale) against epoch
* throughput_vs_cards.png - median throughput (utt/s, min-max bars) against
  cards, with the ideal linear-scaling line from the smallest card count of
  each config (on CPU the cards are processes sharing one host's cores)
* seed_objective_curves.png - the seed-objective experiment's curves (seed
  formula, CTC NLL, WER per epoch; results.experiment)
A plot without any data is not written (and not listed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MAX_LEGEND = 14  # beyond this a legend hides the data


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display; safe on servers and in tests
    import matplotlib.pyplot as plt

    return plt


def _label(run: pd.Series) -> str:
    return f"{run['benchmark']} {run['platform']} s{run['seed']}"


def _per_run(runs: pd.DataFrame, epochs: pd.DataFrame, x: str, y: str, ylabel: str,
             xlabel: str, title: str, path: Path, logy: bool = False,
             targets: bool = False) -> Path | None:
    if epochs.empty or epochs[[x, y]].dropna().empty:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for _, run in runs.iterrows():
        d = epochs[epochs["run"] == run["run"]][[x, y]].dropna().sort_values(x)
        if d.empty:
            continue
        style = "--" if run.get("scoring") == "excluded" else "-"
        ax.plot(d[x], d[y], style, marker="o", ms=3, label=_label(run))
    if targets:
        for t in sorted(set(runs["target_wer(%)"].dropna())):
            ax.axhline(t, color="grey", lw=0.8, ls=":")
            ax.annotate(f"target {t:g}%", (ax.get_xlim()[0], t), fontsize=7, color="grey",
                        va="bottom")
    if logy and (epochs[y].dropna() > 0).all():  # a log axis cannot show <= 0
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    if len(ax.get_lines()) <= MAX_LEGEND:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _throughput(runs: pd.DataFrame, groups: pd.DataFrame, path: Path) -> Path | None:
    have = groups[np.isfinite(groups["throughput_mean(utt/s)"].astype(float))] if len(groups) else groups
    if have.empty:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for (bench, chash, accel), g in have.groupby(["benchmark", "config_hash", "accelerator"]):
        g = g.sort_values("cards")
        med = g["throughput(utt/s)_median"].astype(float)
        err = np.vstack([(med - g["throughput(utt/s)_min"].astype(float)).fillna(0),
                         (g["throughput(utt/s)_max"].astype(float) - med).fillna(0)])
        cpu = str(accel).upper() == "CPU"
        line = ax.errorbar(g["cards"], med, yerr=err, marker="o", capsize=3,
                           label=f"{bench} [{chash}] on {accel}"
                                 + (" (processes sharing one host's cores)" if cpu else ""))
        n0, t0 = float(g["cards"].iloc[0]), float(med.iloc[0])
        xs = np.array(sorted(set(g["cards"].astype(float))))
        ax.plot(xs, t0 * xs / n0, ":", color=line[0].get_color(),
                label=f"ideal linear from {n0:g} card{'s' * (n0 != 1)}")
    ax.set(xlabel="cards", ylabel="throughput (utt/s)", title="Throughput vs cards (median, min–max over runs)")
    ax.set_xticks(sorted(set(have["cards"].astype(float))))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(runs: pd.DataFrame, epochs: pd.DataFrame, groups: pd.DataFrame, out: Path) -> list[Path]:
    """Write every plot that has data into `out`; returns the written paths."""
    out.mkdir(parents=True, exist_ok=True)
    made = [
        _per_run(runs, epochs, "elapsed(s)", "wer_ref(%)", "reference WER (%)",
                 "time since run_start (s)", "Reference WER vs time", out / "wer_vs_time.png",
                 targets=True),
        _per_run(runs, epochs, "epoch", "wer_ref(%)", "reference WER (%)", "epoch",
                 "Reference WER vs epoch", out / "wer_vs_epoch.png", targets=True),
        _per_run(runs, epochs, "epoch", "loss_ctc_nll_per_utt", "train CTC NLL per utterance (nats, epoch mean)",
                 "epoch", "Training loss (proper CTC NLL) vs epoch",
                 out / "train_loss_vs_epoch.png", logy=True),
        _throughput(runs, groups, out / "throughput_vs_cards.png"),
    ]
    return [p for p in made if p is not None]


def seed_objective_curves(exp_runs: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """Seed formula (last iteration), CTC NLL/utt and reference WER per epoch, per run."""
    have = [r for r in exp_runs if r.get("epochs")]
    if not have:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for r in have:
        ep = pd.DataFrame(r["epochs"]).astype(float, errors="ignore")
        obj = "seed objective" if r.get("loss_definition") == "seed_raw_logits" else "CTC NLL objective"
        label = f"{obj}, {r.get('cards')} card(s)"
        for ax, col in zip(axes, ("seed_last", "nll_utt", "wer_ref")):
            ax.plot(ep["epoch"], pd.to_numeric(ep[col], errors="coerce"), marker="o", label=label)
    for ax, ylabel in zip(axes, ("seed formula, last iteration (published quantity)",
                                 "train CTC NLL per utterance (nats, epoch mean)", "reference WER (%)")):
        ax.set(xlabel="epoch", ylabel=ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
