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
         "train.eval_every_samples=32", "train.eval_start_samples=0"]


def _run(corpus, run_dir, extra):
    cfg = load_config("tiny", [f"data.root={corpus}", *SMALL, *extra])
    run_dir.mkdir(parents=True)
    log = MLPerfLogger(run_dir / "mlperf.log", rank=0, barrier=lambda: None)
    hooks = MLPerfHooks(log, cfg, 1, {"submission_benchmark": "deepspeech2",
                                       "submission_division": "open", "submission_org": "ds2bench",
                                       "submission_status": "research",
                                       "submission_platform": "1xCPU"})
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


def test_no_evaluation_before_the_eval_offset(mini_corpus, tmp_path):
    """train.eval_start_samples: the real log has no evaluation before it (neither inside
    nor at the end of epoch 1), every grid point from it on, and the real compliance
    engine passes it against the rules of the benchmark as run."""
    import yaml

    from harness.mlperf.compliance import check_log

    extra = ["train.eval_start_samples=72"]
    res, recs = _run(mini_corpus, tmp_path / "all", ["train.target_wer=null", *extra])
    assert [r["value"] for r in recs if r["key"] == "ds2_eval_start_samples"] == [72]
    # Grid 32, 64 | 96, 128: only the points at >= 72 samples are evaluated.
    assert [(e, s) for _, e, s in _keys(recs, "eval_accuracy")] == [(1.5, 96), (2, 128)]
    assert res.epochs_completed == 2
    # Epoch 1 still left its checkpoint (a resume point) without an evaluation.
    assert (tmp_path / "all" / "checkpoints" / "ckpt-e1-s8.pt").exists()
    # A run that stops at its first evaluation (target WER 100), judged by the rules of a
    # benchmark defined as run: it passes; without that evaluation (at 96 samples, a
    # grid point past the offset) it fails.
    extra.append("train.target_wer=100")
    res, recs = _run(mini_corpus, tmp_path / "off", extra)
    assert res.status == "success" and res.global_step == 12
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    raw = load_config("tiny", [f"data.root={mini_corpus}", *SMALL, *extra]).to_dict()
    raw["name"], raw["dataset"] = "tiny", {}
    (bench / "tiny.yaml").write_text(yaml.safe_dump(raw))
    log = tmp_path / "off" / "mlperf.log"
    assert check_log(log, bench).failures == []
    lines = log.read_text().splitlines()
    at_96 = [i for i, l in enumerate(lines) if '"eval_' in l and '"samples_count": 96' in l
             or ('"eval_start"' in l and '"epoch_num": 1.5' in l)
             or ('"eval_stop"' in l and '"epoch_num": 1.5' in l)]
    assert at_96
    cut = tmp_path / "cut.log"
    cut.write_text("\n".join(l for i, l in enumerate(lines) if i not in set(at_96)) + "\n")
    failures = check_log(cut, bench).failures
    assert any("an evaluation is missing at an eval point" in f for f in failures), failures
