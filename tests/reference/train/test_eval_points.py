"""Evaluation points inside epochs (`train.eval_every_samples`), on real corpus audio.

The schedule's arithmetic is checked against hand-computed cases; a real short
run checks that the evaluations land where the schedule says (in metrics.jsonl,
in the hook events and so in the MLPerf log), that a run stops at the first
evaluation at target even inside an epoch, and that a resume from a mid-epoch
evaluation's checkpoint continues exactly.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reference.train.hooks import TrainerHooks
from reference.train.schedule import epoch_position, eval_steps
from reference.train.trainer import Trainer

import small_trainer  # noqa: E402  (this folder is on sys.path under pytest)



@pytest.mark.parametrize("spe,gb,every,want", [
    (8, 8, 16, [2, 4, 6]),       # a quarter epoch: 3 inside, the 4th is the epoch end
    (8, 8, 20, [3, 5]),          # not a multiple of the batch: first step reaching k x E
    (8, 8, 4, [1, 2, 3, 4, 5, 6, 7]),  # finer than a step: once per step, no repeats
    (8, 8, 64, []),              # one epoch: epoch ends only
    (8, 8, 0, []),               # 0 = per epoch
    (187, 16, 748, [47, 94, 141]),  # tiny: 2992 samples an epoch, quarters
])
def test_eval_steps(spe, gb, every, want):
    assert eval_steps(spe, gb, every) == want


@pytest.mark.parametrize("epoch,start,want", [
    (1, 0, [2, 4, 6]),     # no offset: the whole grid
    (1, 40, [6]),          # grid steps 2, 4, 6 (16, 32, 48 samples): only 48 >= 40
    (1, 64, []),           # nothing inside epoch 1 (64 samples an epoch)
    (2, 64, [2, 4, 6]),    # epoch 2 starts at 64 samples: all of it
    (2, 90, [4, 6]),       # 64 + 4 x 8 = 96 >= 90; 64 + 2 x 8 = 80 is not
])
def test_eval_steps_with_an_offset(epoch, start, want):
    assert eval_steps(8, 8, 16, epoch, start) == want


def test_epoch_end_evaluated_from_the_offset_and_always_last():
    from reference.train.schedule import evaluates_epoch_end

    # 64 samples an epoch, 5 epochs, offset 150: ends at 64, 128 skipped; 192 on.
    assert [evaluates_epoch_end(e, 5, 8, 8, 150) for e in range(1, 6)] == \
        [False, False, True, True, True]
    assert evaluates_epoch_end(2, 2, 8, 8, 10_000)  # the last epoch, whatever the offset
    assert all(evaluates_epoch_end(e, 5, 8, 8, 0) for e in range(1, 6))


def test_epoch_position():
    assert epoch_position(3, 8, 8) == 3 and isinstance(epoch_position(3, 8, 8), int)
    assert epoch_position(3, 2, 8) == 2.25
    assert epoch_position(1, 1, 3) == 0.333333


class Recorder(TrainerHooks):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_epoch_start(self, epoch):
        self.events.append(("epoch_start", epoch))

    def on_epoch_end(self, epoch, record):
        self.events.append(("epoch_end", epoch, record["samples_count"], record["complete"]))

    def on_eval_start(self, epoch_num):
        self.events.append(("eval_start", epoch_num))

    def on_eval_end(self, epoch_num, record):
        self.events.append(("eval_end", epoch_num, record["samples_count"]))

    def on_block_end(self, epoch):
        self.events.append(("block_end", epoch))


def _trainer(corpus: Path, run_dir: Path, extra: list[str], resume: bool = False) -> Trainer:
    return small_trainer.make(corpus, run_dir, [*small_trainer.SMALL, *extra], resume=resume,
                              hooks=Recorder())


def _evals(tr: Trainer) -> list[dict]:
    return [r for r in tr.result.history if r["kind"] == "eval"]


def test_eval_points_land_on_the_schedule(mini_corpus, tmp_path):
    # Waves from epoch 1: both epochs train on the same augmented distribution.
    tr = _trainer(mini_corpus, tmp_path / "a", ["train.epochs=2", "train.eval_every_samples=20",
                                               "augment.waves_from_epoch=1",
                                               "augment.noise_prob=0.5"])  # tiny's noise is off
    assert tr.cfg.augment.silence_trim_s > 0 and tr.cfg.augment.silence_max_s > 0  # tiny's
    spe, gb = tr.batches.steps_per_epoch, tr.batches.global_batch
    assert (spe, gb) == (8, 8), "the mini corpus changed: recompute the expected points"
    res = tr.fit()
    assert res.status == "aborted" and res.epochs_completed == 2  # no target: runs out
    evs = _evals(tr)
    # Steps 3 and 5 of each epoch (first step with samples >= 20, 40), then the epoch end.
    assert [e["samples_count"] for e in evs] == [24, 40, 64, 88, 104, 128]
    assert [e["epoch_num"] for e in evs] == [0.375, 0.625, 1, 1.375, 1.625, 2]
    assert [e["at_epoch_end"] for e in evs] == [False, False, True, False, False, True]
    ev = tr.hooks.events
    assert ev[:9] == [("epoch_start", 1), ("eval_start", 0.375), ("eval_end", 0.375, 24),
                      ("eval_start", 0.625), ("eval_end", 0.625, 40), ("epoch_end", 1, 64, True),
                      ("eval_start", 1), ("eval_end", 1, 64), ("block_end", 1)]
    # A mid-epoch evaluation's time is not training time.
    epochs = [r for r in res.history if r["kind"] == "epoch"]
    assert all(r["eval_time_in_epoch(s)"] > 0 for r in epochs)
    assert res.train_samples == 128
    # With tiny's augmentation (edge silence, noise) the real audio still trains:
    # the same 64 utterances cost less after an epoch.
    losses = [r["loss_ctc_nll_per_utt"] for r in epochs]
    assert losses[1] < 0.97 * losses[0], losses


def test_stops_at_first_eval_reaching_target_and_resumes_exactly(mini_corpus, tmp_path):
    common = ["train.epochs=2", "train.eval_every_samples=16"]
    # Reference: the same run without a target, all the way.
    full = _trainer(mini_corpus, tmp_path / "full", common)
    full.fit()
    # The untrained model decodes (next to) nothing, WER 100: the first evaluation (after 2 of 8 steps) ends the run.
    early = _trainer(mini_corpus, tmp_path / "early", [*common, "train.target_wer=100"])
    res = early.fit()
    assert res.status == "success" and res.global_step == 2
    assert res.epochs_completed == 0 and res.epochs_trained == 0.25
    rec = [r for r in res.history if r["kind"] == "epoch"][-1]
    assert rec["complete"] is False and rec["samples"] == 16
    assert early.hooks.events[-3:] == [("eval_end", 0.25, 16), ("epoch_end", 1, 16, False),
                                       ("block_end", 1)]
    # Resume that run from its mid-epoch checkpoint, now without a target.
    resumed = _trainer(mini_corpus, tmp_path / "early", common, resume=True)
    assert (resumed.start_epoch, resumed.start_step) == (1, 2)
    resumed.fit()
    a = [(e["samples_count"], e["wer_ref(%)"], e["cer(%)"]) for e in _evals(full)]
    b = [(e["samples_count"], e["wer_ref(%)"], e["cer(%)"]) for e in _evals(resumed)]
    assert b[0] == a[0] and b == a  # the restored history holds the first evaluation
    for (name, p), q in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_step_annealing_is_continuous_and_meets_the_epoch_schedule():
    from reference.config import OptimConfig
    from reference.train.optim import epoch_lr, step_lr

    per_epoch = OptimConfig(name="adamw", lr=2e-3, anneal=2.0)
    per_step = OptimConfig(name="adamw", lr=2e-3, anneal=2.0, anneal_every="step")
    # Per epoch: constant inside an epoch (the reference's schedule).
    assert step_lr(per_epoch, 8, 2, 0, 375) == step_lr(per_epoch, 8, 2, 374, 375) == epoch_lr(per_epoch, 8, 2)
    # Per step: equal at every epoch start, halfway (in log) in the middle, decreasing.
    for e in (1, 2, 3):
        assert abs(step_lr(per_step, 8, e, 0, 375) - epoch_lr(per_epoch, 8, e)) < 1e-15
    mid = step_lr(per_step, 8, 1, 187, 374)
    assert abs(mid - 2e-3 / 2 ** 0.5) < 1e-12
    lrs = [step_lr(per_step, 8, 1 + k // 10, k % 10, 10) for k in range(40)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
