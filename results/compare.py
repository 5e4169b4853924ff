"""Our runs next to the published "FP32 avg loss 0.3443 after 10 epochs", exactly.

The published figure (results/published.yaml, docs/RESULTS.md) is the seed
trainer's last-iteration raw-logit CTC value divided by the per-card batch,
not a log-likelihood. Every run of ours logs the same formula
(`ds2_seed_loss`, last iteration of each epoch; `ds2_seed_loss_at_init`
before the first step). What the comparison may claim follows from what
matches:

* **per-card batch** - the formula divides by it, so a value at per-card
  batch b is put on the published scale by × b / 8 (shown as its own
  column). Only a run at the published per-card batch computes *the same
  quantity*; any other run's value is "the same formula at batch b".
* **sign** - cannot be normalised: the published value is positive, raw-logit
  CTC values are often negative; a different sign is stated, never hidden by
  an absolute value.
* **model, data, epoch, objective** - cannot be normalised either; they are
  listed per run (`differs from published set-up`), and the epoch is the
  published one only when the run reached it.

The verdict paragraph is generated from these numbers, never written by hand.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from results.markdown import fmt, table

PUBLISHED_YAML = Path(__file__).with_name("published.yaml")

SEED_LOSS_COL = "seed-formula loss @E"
NORM_COL = "@E × batch/8 (published scale)"
COLUMNS = ["run", "trained objective", "batch per card", "same quantity as published?",
           "differs from published set-up (cannot be normalised)", "E (epoch)",
           "seed-formula loss @init", SEED_LOSS_COL, NORM_COL, "sign vs published",
           "CTC NLL/utt @init (nats)", "CTC NLL/utt @E (nats)", "ref WER @E (%)",
           "best ref WER (%)"]


@dataclass(frozen=True)
class Published:
    value: float
    quantity: str
    epochs: int
    hardware: str
    source: str
    definition: str
    batch_per_card: int = 8
    source_file: str = ""
    setup: dict[str, Any] = field(default_factory=dict)
    wer_published: float | None = None


def load_published(path: Path = PUBLISHED_YAML) -> Published:
    d = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return Published(float(d["value"]), d["quantity"], int(d["epochs"]), d["hardware"],
                     " ".join(d["source"].split()), " ".join(d["definition"].split()),
                     int(d.get("batch_per_card") or 8), str(d.get("source_file") or ""),
                     dict(d.get("setup") or {}), d.get("wer_published"))


def _show(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else fmt(x)


# Set-up entries a per-card normalisation cannot fix (batch_per_card is
# normalised instead); `cards` changes how many ranks' last iterations the
# all-reduce averages.
_NOT_NORMALISABLE = ("loss_definition", "rnn_type", "rnn_hidden", "rnn_layers", "bidirectional",
                     "opt_name", "base_lr", "corpus", "max_epochs", "cards")


def _differences(row: pd.Series, setup: dict[str, Any]) -> list[str]:
    out = []
    for key in _NOT_NORMALISABLE:
        if key not in setup:
            continue
        want, have = setup[key], row.get(key)
        if isinstance(want, float) and isinstance(have, (int, float)) and not isinstance(have, bool):
            same = math.isclose(float(have), want, rel_tol=1e-6)
        else:
            same = have == want
        if not same:
            out.append(f"{key} {_show(have)}≠{_show(want)}")
    return out


def _at(ep: pd.DataFrame, epoch: int | None, col: str) -> float:
    if epoch is None or ep.empty or col not in ep:
        return math.nan
    s = ep.loc[ep["epoch"] == epoch, col].dropna()
    return float(s.iloc[-1]) if len(s) else math.nan


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def _sign_word(x: float, pub: float) -> str:
    if not math.isfinite(x):
        return "—"
    if x == 0 or (x > 0) == (pub > 0):
        return "same"
    return f"opposite ({'negative' if x < 0 else 'positive'})"


def compare_runs(runs: pd.DataFrame, epochs: pd.DataFrame, pub: Published) -> pd.DataFrame:
    """One row per run: the published formula, normalised, and the honest metrics."""
    rows = []
    for _, r in runs.iterrows():
        ep = epochs[epochs["run"] == r["run"]] if len(epochs) else epochs
        have = ep.dropna(subset=["seed_loss_last_iter"]) if len(ep) and "seed_loss_last_iter" in ep else ep.iloc[0:0]
        epochs_with_loss = set(have["epoch"].astype(int)) if len(have) else set()
        e = pub.epochs if pub.epochs in epochs_with_loss else (max(epochs_with_loss) if epochs_with_loss else None)
        seed_obj = r.get("loss_definition") == pub.setup.get("loss_definition")
        b = _num(r.get("batch_per_card"))
        same_batch = math.isfinite(b) and int(b) == pub.batch_per_card
        value = _at(ep, e, "seed_loss_last_iter")
        scale = b / pub.batch_per_card if math.isfinite(b) and b > 0 else math.nan
        rows.append({
            "run": r["run"],
            "trained objective": ("seed's raw-logit CTC (as the published run)" if seed_obj
                                  else f"CTC NLL ({r.get('loss_definition')}); seed formula "
                                       "computed on the side"),
            "seed_objective": seed_obj,
            "batch per card": b,
            "same_batch": same_batch,
            "same quantity as published?": (
                "yes: same formula, same per-card batch" if same_batch else
                f"no: same formula at batch {fmt(b, 0)} per card; ×{fmt(scale, 3)} puts it on the "
                "published scale" if math.isfinite(b) else "no: per-card batch unknown"),
            "differs from published set-up (cannot be normalised)":
                ", ".join(_differences(r, pub.setup)) or "none",
            "E (epoch)": ("—" if e is None else str(e) if e == pub.epochs
                          else f"{e} (not {pub.epochs}: last available)"),
            "epoch_E": e,
            "seed-formula loss @init": _num(r.get("seed_loss_at_init", math.nan)),
            SEED_LOSS_COL: value,
            NORM_COL: value * scale,
            "init_normalised": _num(r.get("seed_loss_at_init", math.nan)) * scale,
            "sign vs published": _sign_word(value, pub.value),
            "CTC NLL/utt @init (nats)": _num(r.get("ctc_nll_per_utt_at_init", math.nan)),
            "CTC NLL/utt @E (nats)": _at(ep, e, "loss_ctc_nll_per_utt"),
            "ref WER @E (%)": _at(ep, e, "wer_ref(%)"),
            "best ref WER (%)": _num(r.get("best_wer_ref(%)", math.nan)),
        })
    return pd.DataFrame(rows, columns=COLUMNS + ["seed_objective", "same_batch", "epoch_E",
                                                 "init_normalised"])


def _finite(s: pd.Series) -> pd.Series:
    s = pd.to_numeric(s, errors="coerce")
    return s[np.isfinite(s)]


def _span(s: pd.Series, digits: int = 3) -> str:
    lo, hi = float(s.min()), float(s.max())
    return fmt(lo, digits) if math.isclose(lo, hi, abs_tol=5e-4) else f"{fmt(lo, digits)} … {fmt(hi, digits)}"


def verdict(pub: Published, comp: pd.DataFrame) -> str:
    """Plain-words paragraph generated from the comparison numbers."""
    parts = [f"The published {pub.value} ({pub.quantity}, {pub.hardware}) is the seed trainer's "
             f"last-iteration raw-logit CTC value ÷ per-card batch {pub.batch_per_card} "
             f"({pub.source_file or 'the seed trainer'}): not a log-likelihood, and no WER was "
             "published with it."]
    if comp.empty:
        return " ".join(parts + ["There are no runs of ours to put next to it."])
    same = comp[comp["same_batch"]]
    others = ("" if len(same) == len(comp) else
              f"; the other {len(comp) - len(same)} run(s)' values are multiplied by batch/"
              f"{pub.batch_per_card} to put them on the published scale")
    parts.append(f"{len(same)} of {len(comp)} run(s) here use the published per-card batch "
                 f"{pub.batch_per_card} and so compute the same quantity{others}.")
    init = _finite(comp["init_normalised"])
    if len(init):
        parts.append(f"At initialisation, on the published scale, our models print {_span(init)}"
                     f" (published after {pub.epochs} epochs: {pub.value:+g}).")
    trained = comp.dropna(subset=[SEED_LOSS_COL])
    if len(trained):
        seed_runs = trained[trained["seed_objective"]]
        which = seed_runs if len(seed_runs) else trained
        r = which.loc[pd.to_numeric(which["ref WER @E (%)"], errors="coerce").fillna(np.inf).idxmin()]
        e = r["epoch_E"]
        how = ("trained with the seed objective" if r["seed_objective"]
               else "trained with the CTC NLL; its seed-formula value is a side computation")
        parts.append(
            f"After epoch {e}{'' if e == pub.epochs else f' (not the published {pub.epochs})'}, "
            f"run {r['run']} ({how}) prints {fmt(r[SEED_LOSS_COL], 4)} "
            f"({fmt(r[NORM_COL], 4)} on the published scale, sign {r['sign vs published']}), "
            f"against {fmt(r['seed-formula loss @init'], 4)} at init; its per-utterance CTC NLL "
            f"went from {fmt(r['CTC NLL/utt @init (nats)'], 1)} to "
            f"{fmt(r['CTC NLL/utt @E (nats)'], 1)} nats and its reference WER is "
            f"{fmt(r['ref WER @E (%)'], 1)}% (best {fmt(r['best ref WER (%)'], 1)}%).")
        diff = r["differs from published set-up (cannot be normalised)"]
        if diff != "none":
            parts.append(f"Not normalisable, so the values stay different experiments: {diff}.")
        if not len(seed_runs):
            parts.append("None of these runs trained with the seed's objective; the seed-objective "
                         "experiment (below) is the like-for-like one.")
    parts.append("Judge runs by their WER and CTC NLL: this loss can fall while transcripts "
                 "do not improve.")
    return " ".join(parts)


MAX_ROWS = 12  # the full table is in published_comparison.csv


def render(pub: Published, comp: pd.DataFrame) -> str:
    """The Markdown section: definition first, then the numbers, then the verdict."""
    shown = comp
    if len(comp) > MAX_ROWS:  # seed-objective runs first, then the best WER
        order = comp.assign(_w=pd.to_numeric(comp["best ref WER (%)"], errors="coerce"))
        shown = order.sort_values(["seed_objective", "_w"], ascending=[False, True]).head(MAX_ROWS)
    lines = [
        f"**Published figure:** {pub.value} — “{pub.quantity}” on {pub.hardware}.  ",
        f"**Source:** {pub.source}.  ",
        f"**Definition (the only way to read {pub.value}):** {pub.definition}  ",
        f"**WER published with it:** {'none' if pub.wer_published is None else pub.wer_published}.",
        "",
        f"“{SEED_LOSS_COL}” is that formula on our run (last iteration of epoch E, mean over "
        f"ranks); “{NORM_COL}” multiplies it by batch-per-card / {pub.batch_per_card}, the only "
        "difference that can be normalised. Sign, model, data, objective and epoch cannot; they "
        "are stated per run. CTC NLL/utt @E is the proper negative log-likelihood per utterance "
        "(log-softmax, sum ÷ batch), mean over epoch E's training steps; ref WER is the reference-definition WER.",
        "",
    ]
    pub_row = pd.DataFrame([{c: "—" for c in COLUMNS} | {
        "run": f"published ({pub.hardware})", "trained objective": "seed's raw-logit CTC",
        "batch per card": float(pub.batch_per_card), "same quantity as published?": "—",
        "E (epoch)": str(pub.epochs), SEED_LOSS_COL: pub.value, NORM_COL: pub.value,
        "ref WER @E (%)": "not published"}])
    lines.append(table(pd.concat([pub_row, shown[COLUMNS]], ignore_index=True), COLUMNS,
                       digits={SEED_LOSS_COL: 4, NORM_COL: 4, "seed-formula loss @init": 4,
                               "batch per card": 0}))
    if len(shown) < len(comp):
        lines.append(f"\n{len(shown)} of {len(comp)} runs shown (seed-objective runs first, then "
                     "the lowest WER); all runs are in published_comparison.csv.")
    lines += ["", "**Verdict.** " + verdict(pub, comp)]
    return "\n".join(lines)
