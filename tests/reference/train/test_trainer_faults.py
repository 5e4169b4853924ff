"""Runtime faults inside the trainer, on real data: non-finite losses and stop requests.

Faults are injected by corrupting the features of chosen steps (a NaN in the
input is what a bad utterance or an overflow produces); the model, CTC and
optimizer are the real ones.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import reference.train.step as step_mod  # where the trainer featurizes a batch
from reference.train.checkpoint import list_checkpoints
from reference.train.hooks import TrainerHooks
from reference.train.trainer import Trainer

import small_trainer  # noqa: E402  (this folder is on sys.path under pytest)

SMALL = ["model.hidden=16", "model.layers=1", "model.bidirectional=false",
         "train.global_batch=null", "train.batch_per_card=8", "train.target_wer=null", "train.epochs=1",
         "data.eval_batch=32", "train.log_every_steps=1000", "train.threads=1"]


def _trainer(corpus: Path, run_dir: Path, extra: list[str] = (), hooks=None) -> Trainer:
    return small_trainer.make(corpus, run_dir, [*SMALL, *extra], hooks=hooks)


def _poison_steps(monkeypatch, tr: Trainer, steps: set[int]) -> None:
    real = step_mod.featurize
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        feats, frames = real(*args, **kwargs)
        if tr.model.training and tr.global_step in steps:
            feats = feats.clone()
            feats[0, 0, 0, 0] = float("nan")
        calls["n"] += 1
        return feats, frames

    monkeypatch.setattr(step_mod, "featurize", poisoned)


def test_nonfinite_loss_skips_step(mini_corpus, tmp_path, monkeypatch):
    tr = _trainer(mini_corpus, tmp_path / "run", ["train.max_nonfinite_fraction=0.5"])
    _poison_steps(monkeypatch, tr, {2})
    res = tr.fit()
    assert res.skipped_steps == 1
    assert res.history[1]["skipped_steps"] == 1
    assert all(torch.isfinite(p).all() for p in tr.model.parameters()), "NaN reached the weights"
    assert res.global_step == tr.batches.steps_per_epoch


def test_too_many_nonfinite_losses_abort(mini_corpus, tmp_path, monkeypatch):
    tr = _trainer(mini_corpus, tmp_path / "run", ["train.max_nonfinite_fraction=0.1"])
    _poison_steps(monkeypatch, tr, set(range(100)))
    res = tr.fit()
    assert res.status == "aborted"
    assert "non-finite" in res.reason


class _StopAfterFirstEpochStart(TrainerHooks):
    def __init__(self) -> None:
        self.trainer: Trainer | None = None
        self.ended: tuple[str, str] | None = None

    def on_epoch_start(self, epoch: int) -> None:
        self.trainer.stop_requested = "SIGTERM"

    def on_run_end(self, status, reason, summary) -> None:
        self.ended = (status, reason)


def test_stop_request_checkpoints_and_aborts(mini_corpus, tmp_path):
    hooks = _StopAfterFirstEpochStart()
    tr = _trainer(mini_corpus, tmp_path / "run", hooks=hooks)
    hooks.trainer = tr
    res = tr.fit()
    assert res.status == "aborted" and "SIGTERM" in res.reason
    assert hooks.ended == ("aborted", res.reason)
    ckpts = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert len(ckpts) == 1 and ckpts[0].name == "ckpt-e1-s0.pt"


def test_unusable_train_set_is_a_clear_error(mini_corpus, tmp_path):
    with pytest.raises(ValueError, match="fewer than one global batch"):
        _trainer(mini_corpus, tmp_path / "run", ["train.batch_per_card=1000"])
