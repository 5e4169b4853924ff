"""The published-loss comparison: definition always next to the number, verdict from data."""
from __future__ import annotations

import math

import pandas as pd

from results.compare import SEED_LOSS_COL, compare_runs, load_published, render, verdict


def _frames(loss_def: str = "ctc_nll", epochs: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = pd.DataFrame([{"run": "r1", "loss_definition": loss_def, "rnn_type": "gru",
                          "rnn_hidden": 256, "rnn_layers": 3, "bidirectional": True,
                          "batch_per_card": 16, "cards": 1, "opt_name": "adamw", "base_lr": 1.5e-3,
                          "max_epochs": 12, "corpus": "embedded", "seed_loss_at_init": -0.344,
                          "ctc_nll_per_utt_at_init": 168.8, "best_wer_ref(%)": 21.0}])
    ep = pd.DataFrame([{"run": "r1", "epoch": e, "seed_loss_last_iter": -0.3 - e / 100,
                        "loss_ctc_nll_per_utt": 150 / e, "loss_ctc_nll_per_char": 5 / e,
                        "wer_ref(%)": 60 / e} for e in range(1, epochs + 1)])
    return runs, ep


def test_published_figure_is_data_with_its_definition() -> None:
    pub = load_published()
    assert math.isclose(pub.value, 0.3443)
    assert pub.epochs == 10 and "MLU370-X8" in pub.hardware
    assert "nn.CTCLoss()" in pub.definition and "raw logits" in pub.definition
    assert "not a log-likelihood" in pub.definition and pub.wer_published is None


def test_comparison_text_includes_the_definition_and_a_verdict() -> None:
    pub = load_published()
    runs, ep = _frames()
    comp = compare_runs(runs, ep, pub)
    md = render(pub, comp)
    assert pub.definition in md
    assert "0.3443" in md and "not a log-likelihood" in md
    assert "what an untrained model already prints" in md
    assert "not the published 10" in md  # only 3 epochs available
    assert "None of our runs trained with the seed's objective" in md
    assert comp.loc[0, "epoch_E"] == 3 and math.isclose(comp.loc[0, SEED_LOSS_COL], -0.33)


def test_seed_objective_run_at_the_published_epoch() -> None:
    pub = load_published()
    runs, ep = _frames(loss_def="seed_raw_logits", epochs=12)
    comp = compare_runs(runs, ep, pub)
    assert comp.loc[0, "epoch_E"] == 10  # the published epoch, not the last one
    assert math.isclose(comp.loc[0, SEED_LOSS_COL], -0.4)
    text = verdict(pub, comp)
    assert "trained with the seed objective" in text and "None of our runs" not in text
    assert "rnn_type gru≠lstm" in comp.loc[0, "differs from published set-up"]
