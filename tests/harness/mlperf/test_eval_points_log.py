"""Mid-epoch evaluations in the real MLPerf log of a real short run (mini corpus).

The trainer, `MLPerfHooks` and `MLPerfLogger` are the ones a run uses; only the
process launch is left out. The log must put the evaluations where
`train.eval_every_samples` says, and MLPerf's own rcp_checker must read the
(fractional) epochs to converge from it.
"""
from __future__ import annotations

import json

from harness.mlperf import rcp
from harness.mlperf.hooks import MLPerfHooks
from harness.mlperf.log import MLPerfLogger
from reference.config import load_config
from reference.train.trainer import Trainer

SMALL = ["model.hidden=16", "model.layers=1", "model.bidirectional=false", "model.conv_channels=8",
         "train.global_batch=null", "train.batch_per_card=8", "data.eval_batch=32",
         "train.log_every_steps=1000", "train.threads=1", "train.epochs=2",
         "train.eval_every_samples=32"]


def _run(corpus, run_dir, extra):
    cfg = load_config("tiny", [f"data.root={corpus}", *SMALL, *extra])
    run_dir.mkdir(parents=True)
    log = MLPerfLogger(run_dir / "mlperf.log", rank=0, barrier=lambda: None)
    hooks = MLPerfHooks(log, cfg, 1, {"submission_benchmark": "deepspeech2",
                                       "submission_division": "open"})
    tr = Trainer(cfg, run_dir, hooks=hooks)
    tr.prepare_data()
    hooks.log_init_start()
    tr.setup()
    res = tr.fit()
    log.close()
    recs = [json.loads(l.split(":::MLLOG ", 1)[1])
            for l in (run_dir / "mlperf.log").read_text().splitlines() if ":::MLLOG " in l]
    return res, recs


def _keys(recs, *keys):
    return [(r["key"], r["metadata"].get("epoch_num"), r["metadata"].get("samples_count"))
            for r in recs if r["key"] in keys]


def test_log_has_mid_epoch_evals_and_stops_at_target(mini_corpus, tmp_path):
    res, recs = _run(mini_corpus, tmp_path / "full", ["train.target_wer=null"])
    assert [r["value"] for r in recs if r["key"] == "ds2_eval_every_samples"] == [32]
    # 8 steps of 8 per epoch: evaluations after steps 4 and 8 of each epoch.
    evals = _keys(recs, "eval_accuracy")
    assert [(e, s) for _, e, s in evals] == [(0.5, 32), (1, 64), (1.5, 96), (2, 128)]
    seq = [k for k, *_ in _keys(recs, "epoch_start", "epoch_stop", "eval_start", "eval_stop",
                                  "block_start", "block_stop")]
    one_epoch = ["block_start", "epoch_start", "eval_start", "eval_stop", "epoch_stop",
                 "eval_start", "eval_stop", "block_stop"]
    assert seq == one_epoch * 2
    # Target reached at the first (mid-epoch) evaluation: the epoch ends there.
    res, recs = _run(mini_corpus, tmp_path / "early", ["train.target_wer=100"])
    assert res.status == "success"
    tail = _keys(recs, "eval_accuracy", "epoch_stop", "block_stop", "run_stop")
    assert tail == [("eval_accuracy", 0.5, 32), ("epoch_stop", 1, 32), ("block_stop", None, None),
                    ("run_stop", None, None)]
    c = rcp.convergence(tmp_path / "early" / "mlperf.log")
    assert c["converged"] and c["epochs"] == 0.5 and c["samples"] == 32 and c["bs"] == 8
