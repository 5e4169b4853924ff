"""Our runs next to the published "FP32 avg loss 0.3443 after 10 epochs".

The published figure (results/published.yaml) is a raw-logit CTC value, not a
log-likelihood, and an untrained model already prints the same magnitude
(reference-notes §3). So a fair comparison shows, per run: the *identical*
quantity (`ds2_seed_loss` of the same epoch, else the last epoch with a note),
the same quantity at initialisation as the baseline, the honest metrics
(per-utterance and per-character CTC NLL, reference WER), which objective the
run trained with, and how its set-up differs from the published one. The
verdict paragraph is generated from these numbers, never written by hand.
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

SEED_LOSS_COL = "seed loss @E (same quantity as published)"
COLUMNS = ["run", "trained objective", "differs from published set-up", "E (epoch)",
           "seed loss @init", SEED_LOSS_COL, "CTC NLL/utt @init (nats)",
           "CTC NLL/utt @E (nats)", "CTC NLL/char @E (nats)", "ref WER @E (%)",
           "best ref WER (%)"]


@dataclass(frozen=True)
class Published:
    value: float
    quantity: str
    epochs: int
    hardware: str
    source: str
    definition: str
    setup: dict[str, Any] = field(default_factory=dict)
    wer_published: float | None = None


def load_published(path: Path = PUBLISHED_YAML) -> Published:
    d = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return Published(float(d["value"]), d["quantity"], int(d["epochs"]), d["hardware"],
                     " ".join(d["source"].split()), " ".join(d["definition"].split()),
                     dict(d.get("setup") or {}), d.get("wer_published"))


def _show(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else fmt(x)


def _differences(row: pd.Series, setup: dict[str, Any]) -> list[str]:
    out = []
    for key, want in setup.items():
        have = row.get(key)
        if isinstance(want, float) and isinstance(have, (int, float)) and not isinstance(have, bool):
            same = math.isclose(float(have), want, rel_tol=1e-6)
        else:
            same = have == want
        if not same:
            out.append(f"{key} {_show(have)}≠{_show(want)}")
    return out


def _at(ep: pd.DataFrame, epoch: int | None, col: str) -> float:
    if epoch is None or ep.empty:
        return math.nan
    s = ep.loc[ep["epoch"] == epoch, col].dropna()
    return float(s.iloc[-1]) if len(s) else math.nan


def compare_runs(runs: pd.DataFrame, epochs: pd.DataFrame, pub: Published) -> pd.DataFrame:
    """One row per run: the published quantity and the honest metrics side by side."""
    rows = []
    for _, r in runs.iterrows():
        ep = epochs[epochs["run"] == r["run"]] if len(epochs) else epochs
        have = ep.dropna(subset=["seed_loss_last_iter"]) if len(ep) else ep
        epochs_with_loss = set(have["epoch"].astype(int)) if len(have) else set()
        e = pub.epochs if pub.epochs in epochs_with_loss else (max(epochs_with_loss) if epochs_with_loss else None)
        seed_obj = r.get("loss_definition") == pub.setup.get("loss_definition")
        rows.append({
            "run": r["run"],
            "trained objective": ("seed's raw-logit CTC (like the published run)" if seed_obj
                                  else f"correct CTC NLL ({r.get('loss_definition')}); "
                                       "seed loss computed on the side"),
            "seed_objective": seed_obj,
            "differs from published set-up": ", ".join(_differences(r, pub.setup)) or "none",
            "E (epoch)": ("—" if e is None else str(e) if e == pub.epochs
                          else f"{e} (not {pub.epochs}: last available)"),
            "epoch_E": e,
            "seed loss @init": r.get("seed_loss_at_init", math.nan),
            SEED_LOSS_COL: _at(ep, e, "seed_loss_last_iter"),
            "CTC NLL/utt @init (nats)": r.get("ctc_nll_per_utt_at_init", math.nan),
            "CTC NLL/utt @E (nats)": _at(ep, e, "loss_ctc_nll_per_utt"),
            "CTC NLL/char @E (nats)": _at(ep, e, "loss_ctc_nll_per_char"),
            "ref WER @E (%)": _at(ep, e, "wer_ref(%)"),
            "best ref WER (%)": r.get("best_wer_ref(%)", math.nan),
        })
    return pd.DataFrame(rows, columns=COLUMNS + ["seed_objective", "epoch_E"])


def _finite(s: pd.Series) -> pd.Series:
    s = pd.to_numeric(s, errors="coerce")
    return s[np.isfinite(s)]


def verdict(pub: Published, comp: pd.DataFrame) -> str:
    """One plain-words paragraph generated from the comparison numbers."""
    parts = [f"The published {pub.value} ({pub.quantity}, {pub.hardware}) is the seed's training "
             f"loss — {pub.definition.split(';')[0]} — not a log-likelihood, and no WER was "
             "published with it, so on its own it says nothing about recognition quality."]
    if comp.empty:
        return " ".join(parts + ["There are no runs of ours to put next to it."])
    init = _finite(comp["seed loss @init"])
    if len(init):
        lo, hi = float(init.min()), float(init.max())
        span = fmt(lo, 3) if math.isclose(lo, hi, abs_tol=5e-4) else f"{fmt(lo, 3)} … {fmt(hi, 3)}"
        ratio = abs(pub.value) / max(float(init.abs().median()), 1e-12)
        if 0.5 <= ratio <= 2:
            parts.append(f"Our models print {span} for the identical quantity before the first "
                         "training step: the published magnitude is what an untrained model "
                         "already prints, so the number cannot show training quality.")
        else:
            size = f"{ratio:.1f}× larger" if ratio > 1 else f"{1 / ratio:.1f}× smaller"
            parts.append(f"Our models print {span} for the identical quantity at initialisation "
                         f"(the published magnitude is {size}); "
                         "its scale depends on the raw logits, not on how well transcripts are "
                         "predicted, so neither agreement nor disagreement measures quality.")
    trained = comp.dropna(subset=[SEED_LOSS_COL])
    if len(trained):
        seed_runs = trained[trained["seed_objective"]]
        which = seed_runs if len(seed_runs) else trained
        r = which.loc[pd.to_numeric(which["ref WER @E (%)"], errors="coerce").fillna(np.inf).idxmin()]
        same_e = r["epoch_E"] == pub.epochs
        parts.append(
            f"After epoch {r['epoch_E']}{'' if same_e else f' (not the published {pub.epochs})'} "
            f"run {r['run']} ({'trained with the seed objective' if r['seed_objective'] else 'trained with the correct CTC NLL, so its raw-logit value is a side computation'}) "
            f"prints {fmt(r[SEED_LOSS_COL], 3)} for the same quantity (vs {fmt(r['seed loss @init'], 3)} at init), "
            f"while its per-utterance CTC NLL went from {fmt(r['CTC NLL/utt @init (nats)'], 1)} to "
            f"{fmt(r['CTC NLL/utt @E (nats)'], 1)} nats and its reference WER is "
            f"{fmt(r['ref WER @E (%)'], 1)}% (best {fmt(r['best ref WER (%)'], 1)}%).")
        if not len(seed_runs):
            parts.append("None of our runs trained with the seed's objective, so no like-for-like "
                         "reproduction of the training itself is in this report.")
        if not (trained["epoch_E"] == pub.epochs).any():
            parts.append(f"No run reached epoch {pub.epochs}: no value is after the same number "
                         "of epochs as the published one.")
    parts.append("Judge the runs by their WER and CTC NLL, not by this loss.")
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
        f"Column “{SEED_LOSS_COL}” is computed exactly like the published {pub.value} "
        "(raw-logit CTC, mean over target lengths then batch, ÷ batch again, last iteration of "
        "epoch E, all-reduced); “seed loss @init” is the same formula before the first step. "
        "CTC NLL/utt is the proper negative log-likelihood per utterance (log-softmax, sum ÷ batch), "
        "CTC NLL/char the same per target character; ref WER is the reference-definition WER.",
        "",
    ]
    pub_row = pd.DataFrame([{c: "—" for c in COLUMNS} | {
        "run": f"published ({pub.hardware})", "trained objective": "seed's raw-logit CTC",
        "differs from published set-up": "—", "E (epoch)": str(pub.epochs),
        SEED_LOSS_COL: pub.value, "ref WER @E (%)": "not published"}])
    lines.append(table(pd.concat([pub_row, shown[COLUMNS]], ignore_index=True), COLUMNS,
                       digits={SEED_LOSS_COL: 4, "seed loss @init": 4, "CTC NLL/char @E (nats)": 3}))
    if len(shown) < len(comp):
        lines.append(f"\n{len(shown)} of {len(comp)} runs shown (seed-objective runs first, then "
                     "the lowest WER); all runs are in published_comparison.csv.")
    lines += ["", "**Verdict.** " + verdict(pub, comp)]
    return "\n".join(lines)
