"""The published-loss comparison: definition next to the number, normalised per-card batch.

The wording tests on real run directories are in test_results_real_runs.py;
these check the arithmetic and the published figure's own data.
"""
from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from results.compare import NORM_COL, SEED_LOSS_COL, compare_runs, load_published, verdict
from results.compare import PUBLISHED_YAML


def _frames(loss_def: str, batch: int, epochs: int, seed_at: float
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = pd.DataFrame([{"run": "r1", "loss_definition": loss_def, "rnn_type": "lstm",
                          "rnn_hidden": 2560, "rnn_layers": 3, "bidirectional": False,
                          "batch_per_card": batch, "cards": 16, "opt_name": "sgd", "base_lr": 1e-4,
                          "max_epochs": 10, "corpus": "librispeech", "seed_loss_at_init": seed_at,
                          "ctc_nll_per_utt_at_init": 168.8, "best_wer_ref(%)": 40.0}])
    ep = pd.DataFrame([{"run": "r1", "epoch": e, "seed_loss_last_iter": seed_at - e / 100,
                        "loss_ctc_nll_per_utt": 150 / e, "wer_ref(%)": 60 / e}
                       for e in range(1, epochs + 1)])
    return runs, ep


def test_published_figure_is_data_with_its_definition_and_source_file() -> None:
    pub = load_published()
    assert math.isclose(pub.value, 0.3443) and pub.epochs == 10 and pub.batch_per_card == 8
    assert pub.source_file == ("Cambricon/pytorch_modelzoo "
                               "built-in/nlp/DeepSpeech2/models/pytorch/train.py")
    assert "last training iteration" in pub.definition and "nn.CTCLoss()" in pub.definition
    assert "per-card batch" in pub.definition and pub.wer_published is None
    # The data names its source repository-relative: no absolute path of any machine.
    absolute = re.compile(r"(?<![\w.:/-])/[\w.-]+/")
    assert absolute.findall(PUBLISHED_YAML.read_text()) == []
    assert absolute.search("source: /data/x/train.py")  # the check can fail


def test_per_card_batch_is_normalised_and_named() -> None:
    pub = load_published()
    comp = compare_runs(*_frames("ctc_nll", batch=16, epochs=3, seed_at=-0.145), pub)
    row = comp.iloc[0]
    assert row["epoch_E"] == 3 and row["E (epoch)"] == "3 (not 10: last available)"
    assert row[SEED_LOSS_COL] == pytest.approx(-0.175)
    assert row[NORM_COL] == pytest.approx(-0.175 * 16 / 8)  # the formula divides by the batch
    assert row["same quantity as published?"].startswith("no: same formula at batch 16")
    assert row["sign vs published"] == "opposite (negative)"
    text = verdict(pub, comp)
    assert "0 of 1 run(s) here use the published per-card batch" in text
    assert "the other 1 run(s)' values are multiplied by batch/8" in text
    assert "None of these runs trained with the seed's objective" in text


def test_same_quantity_only_at_the_published_batch_and_epoch_10_preferred() -> None:
    pub = load_published()
    comp = compare_runs(*_frames("seed_raw_logits", batch=8, epochs=12, seed_at=0.5), pub)
    row = comp.iloc[0]
    assert row["epoch_E"] == 10 and row[SEED_LOSS_COL] == pytest.approx(0.4)
    assert row[NORM_COL] == pytest.approx(0.4) and row["sign vs published"] == "same"
    assert row["same quantity as published?"].startswith("yes")
    assert row["differs from published set-up (cannot be normalised)"] == "none"
    text = verdict(pub, comp)
    assert "trained with the seed objective" in text and "(not the published" not in text


def test_the_experiment_benchmarks_differ_only_in_the_objective() -> None:
    from dataclasses import asdict

    from reference.config import load_config

    bench = PUBLISHED_YAML.parents[1] / "benchmarks"
    seed = asdict(load_config(bench / "seed_objective_lstm.yaml"))
    nll = asdict(load_config(bench / "seed_objective_lstm_nll.yaml"))
    assert (seed["train"]["loss"], nll["train"]["loss"]) == ("seed_raw_logits", "ctc_nll")
    for d in (seed, nll):
        d.pop("name"), d.pop("description"), d["train"].pop("loss")
    assert seed == nll
    t, o, m = seed["train"], seed["optim"], seed["model"]
    assert (m["rnn_type"], m["bidirectional"], t["batch_per_card"], t["epochs"]) == \
        ("lstm", False, 8, 10)
    assert t["target_wer"] is None and t["global_batch"] is None
    assert (o["name"], o["lr"], o["nesterov"], o["lr_scaling"]) == ("sgd", 1e-4, True, "none")
    manifest = PUBLISHED_YAML.parents[1] / seed["data"]["train_manifest"]
    assert sum(1 for _ in manifest.open()) == 1000
