"""Collect the runs of a directory, score them and write the report files.

`build_report(runs_dir, out)` is the whole pipeline behind `python -m results`:
run directories -> runs DataFrame (+ per-epoch table) -> eligibility ->
group scores -> results.md, results.csv, runs.csv, epochs.csv and plots.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from results import compare, eligibility, plots, scoring
from results.markdown import table
from results.rundirs import find_run_dirs, load_run

_UNSET = object()


class NoRunsError(RuntimeError):
    """The runs directory holds no run directory."""


@dataclass
class Report:
    markdown: str
    runs: pd.DataFrame
    groups: pd.DataFrame
    comparison: pd.DataFrame
    files: list[Path] = field(default_factory=list)


def collect(runs_dir: Path, checker: eligibility.Checker | None,
            skip: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs: one row per run incl. its scoring verdict, epochs: one row per run and epoch)."""
    dirs = find_run_dirs(runs_dir, skip=skip)
    if not dirs:
        raise NoRunsError(f"{runs_dir}: no run directories (a directory with config.yaml and "
                          "mlperf.log or result.json) found")
    rows, epoch_tables = [], []
    for d in dirs:
        run = load_run(d)
        row = dict(run.row)
        row.update(eligibility.classify(row, [lg.path for lg in run.logs], checker))
        row["notes"] = "; ".join(run.notes)
        rows.append(row)
        if len(run.epochs):
            epoch_tables.append(run.epochs.assign(run=row["run"]))
    epochs = (pd.concat(epoch_tables, ignore_index=True) if epoch_tables
              else pd.DataFrame(columns=["run", "epoch"]))
    return pd.DataFrame(rows), epochs


def _ttt_section(groups: pd.DataFrame) -> str:
    g = groups.rename(columns={
        "config_hash": "config", "counted_runs": "counted runs", "non_converged": "non-converged",
        "time_to_train(s)": "time to train (s)", "time_to_train_rule": "rule",
        "epochs_to_converge": "epochs to converge (mean, epochs)"})
    cols = ["benchmark", "config", "platform", "cards", "runs", "counted runs", "converged",
            "non-converged", "excluded", "time to train (s)", "rule",
            "epochs to converge (mean, epochs)"]
    return "\n".join([
        "Time to train = run_stop − run_start of the MLPerf log (evaluation included), one "
        "group per (benchmark, config, platform, cards); configs are never mixed. Olympic mean "
        "over n ≥ 3 runs (fastest and slowest dropped); a non-converged run counts as infinite "
        "time (so it is the dropped slowest), two or more give no score; n < 3: plain mean.", "",
        table(g, cols, digits={"time to train (s)": 1, "epochs to converge (mean, epochs)": 1})])


def _throughput_section(groups: pd.DataFrame) -> str:
    g = groups.assign(**{"scaling efficiency (%)": groups["scaling_efficiency"] * 100}).rename(columns={
        "config_hash": "config", "throughput_runs": "runs with throughput",
        "throughput_mean(utt/s)": "throughput mean (utt/s)", "throughput_std(utt/s)": "std (utt/s)",
        "throughput_min(utt/s)": "min (utt/s)", "throughput_max(utt/s)": "max (utt/s)",
        "scaling_base_cards": "base (cards)", "speedup_vs_base": "speed-up vs base (×)"})
    cols = ["benchmark", "config", "platform", "cards", "runs with throughput",
            "throughput mean (utt/s)", "std (utt/s)", "min (utt/s)", "max (utt/s)",
            "base (cards)", "speed-up vs base (×)", "scaling efficiency (%)"]
    return "\n".join([
        "Throughput = training samples / synchronised training time, warm-up excluded "
        "(`ds2_run_throughput`), over the counted runs (non-converged included) and target-less "
        "fixed-epoch runs whose logs are otherwise compliant. Scaling "
        "efficiency = (thr_N / thr_base) / (N / N_base), base = smallest card count of the same "
        "benchmark, config and accelerator; 100 % is linear scaling.", "",
        table(g, cols, digits={"base (cards)": 0, "scaling efficiency (%)": 1})])


def _runs_section(runs: pd.DataFrame) -> str:
    cols = {"run": "run", "scoring": "scoring", "status": "status", "cards": "cards",
            "seed": "seed", "epochs": "epochs", "time_to_train(s)": "time to train (s)",
            "run_time(s)": "run_stop − run_start (s)",
            "best_wer_ref(%)": "best ref WER (%)", "final_wer_ref(%)": "final ref WER (%)",
            "final_wer_corpus(%)": "final corpus WER (%)", "final_cer(%)": "final CER (%)",
            "throughput(utt/s)": "throughput (utt/s)",
            "allreduce_share(%)": "grad all-reduce (% of train time)", "resumed": "resumed",
            "loss_definition": "loss definition", "config_hash": "config"}
    return table(runs.rename(columns=cols), list(cols.values()),
                 digits={"time to train (s)": 1, "run_stop − run_start (s)": 1,
                         "grad all-reduce (% of train time)": 1})


def _excluded_section(runs: pd.DataFrame) -> str:
    out = runs[runs["scoring"] != eligibility.SCORED]
    if out.empty:
        return "None: every run passed compliance and converged."
    # `reason` is run_stop's own reason; the table shows why the run is not scored.
    view = out[["run", "scoring", "status", "exclusion_reason"]]
    return table(view.rename(columns={"exclusion_reason": "why not scored"}))


def _configs_section(runs: pd.DataFrame) -> str:
    cols = ["config_hash", "benchmark", "division", "rnn_type", "rnn_hidden", "rnn_layers",
            "bidirectional", "loss_definition", "opt_name", "batch_per_card", "target_wer(%)"]
    return table(runs.drop_duplicates("config_hash")[cols].rename(
        columns={"config_hash": "config", "batch_per_card": "batch per card (utt)"}),
        digits={"target_wer(%)": 1})


def render(runs_dir: Path, runs: pd.DataFrame, groups: pd.DataFrame, comp_md: str,
           plot_files: list[Path], compliance_checked: bool, value: float) -> str:
    n = runs["scoring"].value_counts()
    head = [
        "# ds2bench results", "",
        f"Runs directory `{runs_dir}`, {len(runs)} run(s): {n.get('scored', 0)} scored, "
        f"{n.get('non-converged', 0)} non-converged (count as infinite time), "
        f"{n.get('excluded', 0)} excluded. Generated "
        f"{dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
    ]
    if not compliance_checked:
        head += ["", "**Compliance was NOT checked (harness.mlperf.compliance not importable): scores "
                 "rest on the logs' own run_stop status only.**"]
    body = [
        "## Time to train (MLPerf rules)", _ttt_section(groups),
        "## Throughput and scaling", _throughput_section(groups),
        f"## Comparison with the published {value} loss", comp_md,
        "## Runs", _runs_section(runs),
        "## Excluded and non-converged runs", _excluded_section(runs),
        "## Configs", "Config = first 10 hex digits of the SHA-256 of config.yaml without "
        "train.seed and cards.\n\n" + _configs_section(runs),
        "## Plots", "\n".join(f"![{p.stem}]({p.name})" for p in plot_files) or "No plottable data.",
    ]
    return "\n".join(head) + "\n\n" + "\n\n".join(body) + "\n"


def build_report(runs_dir: Path, out: Path | None = None, checker: object = _UNSET,
                 make_plots: bool = True, published: Path = compare.PUBLISHED_YAML) -> Report:
    """Read, score and write everything into `out` (default RUNS/report)."""
    runs_dir = Path(runs_dir)
    out = Path(out) if out is not None else runs_dir / "report"
    chk = eligibility.load_checker() if checker is _UNSET else checker
    runs, epochs = collect(runs_dir, chk, skip=out)  # type: ignore[arg-type]
    groups = scoring.score_groups(runs)
    pub = compare.load_published(published)
    comp = compare.compare_runs(runs, epochs, pub)
    out.mkdir(parents=True, exist_ok=True)
    plot_files = plots.plot_all(runs, epochs, groups, out) if make_plots else []
    md = render(runs_dir, runs, groups, compare.render(pub, comp), plot_files, chk is not None,
                pub.value)
    files = [out / "results.md", out / "results.csv", out / "runs.csv", out / "epochs.csv",
             out / "published_comparison.csv"]
    files[0].write_text(md, encoding="utf-8")
    groups.to_csv(files[1], index=False)
    runs.to_csv(files[2], index=False)
    epochs.to_csv(files[3], index=False)
    comp.to_csv(files[4], index=False)
    return Report(md, runs, groups, comp, files + plot_files)
