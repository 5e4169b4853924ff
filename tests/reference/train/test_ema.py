"""reference.train.ema: the weight average evaluation scores (`train.ema_decay`).

The arithmetic is checked against the recurrence written out by hand; a real
short run on corpus audio checks that the run's evaluations score the average
(not the live weights), that `harness eval` of its checkpoint scores the same
weights, and that a resume continues the same average.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reference.config import ConfigError, load_config
from reference.train.checkpoint import list_checkpoints, load_checkpoint
from reference.train.ema import WeightAverage, effective_decay, load_average_into
from reference.train.evaluate import evaluate_checkpoint
from reference.train.trainer import Trainer

import small_trainer  # noqa: E402  (this folder is on sys.path under pytest)



def test_effective_decay_warms_up_then_holds():
    assert effective_decay(0.99, 1) == pytest.approx(2 / 11)
    assert effective_decay(0.99, 80) == pytest.approx(81 / 90)
    assert effective_decay(0.99, 10_000) == 0.99  # capped at the configured decay
    assert effective_decay(0.5, 1) == pytest.approx(2 / 11)


def test_update_follows_the_recurrence():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    ema = WeightAverage(model, 0.9)
    expect = [p.detach().clone() for p in model.parameters()]
    for n in range(1, 40):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update()
        d = effective_decay(0.9, n)
        expect = [d * e + (1 - d) * p.detach() for e, p in zip(expect, model.parameters())]
    assert ema.updates == 39
    for a, e in zip(ema.avg, expect):
        torch.testing.assert_close(a, e, rtol=1e-5, atol=1e-6)
    # The average lags the moving weights: it is not the live model.
    assert not torch.allclose(ema.avg[0], model.weight)


def test_swapped_evaluates_the_average_and_restores_the_live_weights():
    torch.manual_seed(1)
    model = torch.nn.Linear(4, 3)
    ema = WeightAverage(model, 0.5)
    with torch.no_grad():
        model.weight.mul_(3.0)
    live = [p.detach().clone() for p in model.parameters()]
    x = torch.randn(5, 4)
    reference = torch.nn.Linear(4, 3)
    load_average_into(reference, ema.state_dict())
    with ema.swapped():
        inside = model(x)
    torch.testing.assert_close(inside, reference(x))
    for p, w in zip(model.parameters(), live):
        assert torch.equal(p, w)
    # Restored even when the evaluation fails.
    with pytest.raises(RuntimeError), ema.swapped():
        raise RuntimeError("eval died")
    for p, w in zip(model.parameters(), live):
        assert torch.equal(p, w)


def test_state_round_trip_and_mismatch():
    torch.manual_seed(2)
    a = WeightAverage(torch.nn.Linear(3, 2), 0.9)
    with torch.no_grad():
        a.params[0].add_(1.0)
    a.update()
    b = WeightAverage(torch.nn.Linear(3, 2), 0.9)
    b.load_state_dict(a.state_dict())
    assert b.updates == 1 and all(torch.equal(x, y) for x, y in zip(a.avg, b.avg))
    with pytest.raises(ValueError, match="does not match"):
        WeightAverage(torch.nn.Linear(4, 2), 0.9).load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="does not match"):
        load_average_into(torch.nn.Linear(4, 2), a.state_dict())
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        WeightAverage(torch.nn.Linear(3, 2), 1.0)


def test_config_names_the_field():
    with pytest.raises(ConfigError, match="ema_decay"):
        load_config("tiny", ["train.ema_decay=1.0"])
    assert load_config("tiny", ["train.ema_decay=0.99"]).train.ema_decay == 0.99


def _trainer(corpus: Path, run_dir: Path, extra: list[str], resume: bool = False) -> Trainer:
    return small_trainer.make(corpus, run_dir, [*small_trainer.SMALL, *extra], resume=resume)


def test_run_scores_the_average_and_its_checkpoint_scores_the_same(mini_corpus, tmp_path):
    common = ["train.epochs=2", "train.ema_decay=0.9", "train.eval_every_samples=32"]
    tr = _trainer(mini_corpus, tmp_path / "a", common)
    tr.fit()
    last = [r for r in tr.result.history if r["kind"] == "eval"][-1]
    assert tr.ema is not None and tr.ema.updates == tr.global_step == 16
    # The logged evaluation is the average's, not the live weights'.
    live = tr._evaluate()["loss_ctc_nll_per_utt"]
    averaged = tr.evaluate()["loss_ctc_nll_per_utt"]
    assert averaged == pytest.approx(last["loss_ctc_nll_per_utt"], rel=1e-6)
    assert abs(live - averaged) > 1e-3 * abs(live), (live, averaged)
    # `harness eval` of the run's last checkpoint reproduces the logged numbers.
    ckpt = list_checkpoints(tmp_path / "a" / "checkpoints")[-1]
    got = evaluate_checkpoint(ckpt, Path(tr.cfg.data.root) / tr.cfg.data.eval_manifest,
                              device="cpu", threads=1)
    assert got["loss_ctc_nll_per_utt"] == pytest.approx(last["loss_ctc_nll_per_utt"], rel=1e-6)
    assert got["wer_ref(%)"] == last["wer_ref(%)"]


def test_resume_continues_the_same_average(mini_corpus, tmp_path):
    common = ["train.epochs=2", "train.ema_decay=0.9"]
    full = _trainer(mini_corpus, tmp_path / "full", common)
    full.fit()
    first = _trainer(mini_corpus, tmp_path / "cut", [*common, "train.epochs=1"])
    first.fit()
    assert load_checkpoint(list_checkpoints(tmp_path / "cut" / "checkpoints")[-1])["ema"]["updates"] == 8
    resumed = _trainer(mini_corpus, tmp_path / "cut", common, resume=True)
    assert resumed.ema.updates == 8
    resumed.fit()
    for a, b in zip(full.ema.avg, resumed.ema.avg):
        assert torch.equal(a, b)
    # A checkpoint without an average cannot continue a run that evaluates one.
    plain = _trainer(mini_corpus, tmp_path / "plain", ["train.epochs=1", "train.ema_decay=0"])
    plain.fit()
    with pytest.raises(ValueError, match="no weight average"):
        _trainer(mini_corpus, tmp_path / "plain", common, resume=True)
