"""The seed-objective experiment: what training on the seed's loss does (issue #15).

Benchmarks `seed_objective_lstm` (train.loss seed_raw_logits) and its twin
`seed_objective_lstm_nll` (ctc_nll) train the same small LSTM with the seed's
settings for 10 epochs without early stop. This module puts their curves side
by side, per epoch: the seed formula's last-iteration value (what 0.3443 is)
and its epoch mean (the seed's printed "Average Loss"; only for runs that
train on it, where it is computed every step), the proper per-utterance CTC
NLL and the reference WER.

Two sources, never mixed: the runs of the directory being reported
(`extract`), and the committed measurement `results/data/
seed_objective_experiment.json` (written by `python -m results --runs DIR
--export-experiment FILE` from the runs docs/RESULTS.md lists), so that every
report carries the measured curves even where the experiment was not re-run.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from results.markdown import fmt, table

EXPERIMENT_JSON = Path(__file__).parent / "data" / "seed_objective_experiment.json"
BENCHMARK_PREFIX = "seed_objective"
_EPOCH_FIELDS = {"seed_loss_last_iter": "seed_last", "seed_loss_epoch_mean": "seed_mean",
                 "loss_ctc_nll_per_utt": "nll_utt", "loss_ctc_nll_per_char": "nll_char",
                 "wer_ref(%)": "wer_ref", "wer_corpus(%)": "wer_corpus", "cer(%)": "cer"}
_RUN_FIELDS = ("benchmark", "loss_definition", "cards", "batch_per_card", "rnn_type",
               "rnn_hidden", "rnn_layers", "seed", "run_time(s)", "throughput(utt/s)",
               "seed_loss_at_init", "ctc_nll_per_utt_at_init", "best_wer_ref(%)")


def _plain(x: Any) -> Any:
    """JSON-safe scalars: NaN/inf -> None, numpy numbers -> Python."""
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def extract(runs: pd.DataFrame, epochs: pd.DataFrame) -> list[dict[str, Any]]:
    """The experiment's runs of `runs` (benchmark name `seed_objective*`), curves included."""
    out = []
    if runs.empty or "benchmark" not in runs:
        return out
    mine = runs[runs["benchmark"].astype(str).str.startswith(BENCHMARK_PREFIX)]
    for _, r in mine.sort_values(["cards", "benchmark", "run"]).iterrows():
        ep = epochs[epochs["run"] == r["run"]].sort_values("epoch") if len(epochs) else epochs
        curve = [{"epoch": int(row["epoch"]),
                  **{short: _plain(row.get(col, math.nan)) for col, short in _EPOCH_FIELDS.items()}}
                 for _, row in ep.iterrows()]
        out.append({"run": str(r["run"]), **{k: _plain(r.get(k)) for k in _RUN_FIELDS},
                    "epochs": curve})
    return out


def export(runs: pd.DataFrame, epochs: pd.DataFrame, path: Path, commands: list[str]) -> Path:
    """Write the experiment's measured curves (the committed docs data) to `path`."""
    data = {"what": "seed-objective experiment (issue #15): per-epoch curves of "
                    "seed_objective_lstm and seed_objective_lstm_nll",
            "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commands": commands, "runs": extract(runs, epochs)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def load(path: Path = EXPERIMENT_JSON) -> dict[str, Any] | None:
    if not Path(path).is_file():
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _label(r: dict[str, Any]) -> str:
    obj = "seed objective" if r.get("loss_definition") == "seed_raw_logits" else "CTC NLL objective"
    return f"{obj}, {r.get('cards')} card(s)"


def _summary_rows(runs: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for r in runs:
        last = r["epochs"][-1] if r["epochs"] else {}
        rows.append({
            "run": _label(r), "trained on": r.get("loss_definition"),
            "batch/card": r.get("batch_per_card"), "epochs": len(r["epochs"]),
            "seed loss @init": r.get("seed_loss_at_init"),
            "seed loss last iter @last": last.get("seed_last"),
            "seed loss epoch mean @last": last.get("seed_mean"),
            "CTC NLL/utt @init": r.get("ctc_nll_per_utt_at_init"),
            "train CTC NLL/utt @last": last.get("nll_utt"),
            "ref WER @last (%)": last.get("wer_ref"),
            "CER @last (%)": last.get("cer"),
            "best ref WER (%)": r.get("best_wer_ref(%)"),
            "run time (s)": r.get("run_time(s)")})
    return pd.DataFrame(rows).map(lambda v: math.nan if v is None else v)


def _curve_table(runs: list[dict[str, Any]]) -> str:
    """One row per epoch; for each run its seed loss (last, mean), NLL/utt and WER."""
    by_epoch: dict[int, dict[str, Any]] = {}
    cols = ["epoch"]
    for i, r in enumerate(runs, start=1):
        tag = f"[{i}]"
        names = {"seed_last": f"{tag} seed last", "seed_mean": f"{tag} seed mean",
                 "nll_utt": f"{tag} NLL/utt", "wer_ref": f"{tag} WER %", "cer": f"{tag} CER %"}
        cols += list(names.values())
        for e in r["epochs"]:
            row = by_epoch.setdefault(e["epoch"], {"epoch": e["epoch"]})
            for k, name in names.items():
                row[name] = math.nan if e.get(k) is None else e[k]
    df = pd.DataFrame([by_epoch[k] for k in sorted(by_epoch)]).reindex(columns=cols)
    digits = {c: 4 for c in cols if "seed" in c} | {c: 1 for c in cols if "NLL" in c or "ER %" in c}
    return table(df, cols, digits=digits | {"epoch": 0})


def render(runs: list[dict[str, Any]], source: str) -> str:
    """Markdown: what was run, the side-by-side summary, the per-epoch curves, the reading."""
    if not runs:
        return f"No seed-objective runs in {source}."
    keys = "; ".join(f"[{i}] {_label(r)} (`{r['run']}`)" for i, r in enumerate(runs, start=1))
    lines = [f"Source: {source}. Runs: {keys}.", "",
             table(_summary_rows(runs), digits={"seed loss @init": 4,
                                                "seed loss last iter @last": 4,
                                                "seed loss epoch mean @last": 4,
                                                "CTC NLL/utt @init": 1, "train CTC NLL/utt @last": 1,
                                                "ref WER @last (%)": 1, "best ref WER (%)": 1,
                                                "CER @last (%)": 1,
                                                "batch/card": 0, "run time (s)": 0}),
             "", "Per epoch (seed last = the published formula at the epoch's last iteration; "
             "seed mean = its mean over the epoch's steps, the seed's printed “Average Loss”, "
             "only where it is the objective; NLL/utt = proper CTC NLL per utterance, nats, mean over the "
             "epoch's training steps; "
             "WER / CER = reference WER / CER on the dev split, %):", "", _curve_table(runs), "",
             "**Reading.** " + reading(runs)]
    return "\n".join(lines)


def reading(runs: list[dict[str, Any]]) -> str:
    """What the curves say, generated from them."""
    parts = []
    for r in runs:
        if not r["epochs"]:
            continue
        first, last = r["epochs"][0], r["epochs"][-1]
        parts.append(
            f"{_label(r)}: seed-formula loss {fmt(r.get('seed_loss_at_init'), 4)} at init → "
            f"{fmt(last.get('seed_last'), 4)} after epoch {last['epoch']}, CTC NLL/utt "
            f"{fmt(r.get('ctc_nll_per_utt_at_init'), 1)} → {fmt(last.get('nll_utt'), 1)} nats, "
            f"reference WER {fmt(first.get('wer_ref'), 1)}% after epoch 1 → "
            f"{fmt(last.get('wer_ref'), 1)}% (best {fmt(r.get('best_wer_ref(%)'), 1)}%).")
    seed = [r for r in runs if r.get("loss_definition") == "seed_raw_logits" and r["epochs"]]
    nll = [r for r in runs if r.get("loss_definition") == "ctc_nll" and r["epochs"]]
    if seed and nll:
        s, n = seed[0]["epochs"][-1], nll[0]["epochs"][-1]
        ds = (s.get("seed_last") or math.nan) - (seed[0].get("seed_loss_at_init") or math.nan)
        direction = "up" if ds > 0 else "down"
        lower = (n.get("seed_last") or math.nan) < (s.get("seed_last") or math.nan)
        parts.append(
            f"Same model, data and optimiser: 10 epochs of training on the seed formula moved it "
            f"{direction} by {fmt(abs(ds), 4)}, while the run trained on the CTC NLL, which never "
            f"optimised it, ended {'lower' if lower else 'higher'} on it "
            f"({fmt(n.get('seed_last'), 4)} against {fmt(s.get('seed_last'), 4)}). The seed-"
            f"objective run's CTC NLL ended at {fmt(s.get('nll_utt'), 1)} nats against "
            f"{fmt(n.get('nll_utt'), 1)}, its CER at {fmt(s.get('cer'), 1)}% against "
            f"{fmt(n.get('cer'), 1)}%, its WER at {fmt(s.get('wer_ref'), 1)}% against "
            f"{fmt(n.get('wer_ref'), 1)}%.")
        worse = ((s.get("cer") or math.nan) > (n.get("cer") or math.nan)
                 and (s.get("nll_utt") or math.nan) > (n.get("nll_utt") or math.nan))
        if worse:
            parts.append("Here the seed objective trained the model to transcribe worse than the "
                         "CTC NLL did" + (", and the seed formula's value ranked the two runs the "
                                          "wrong way round: it cannot stand for quality."
                                          if not lower else "."))
    return " ".join(parts)
