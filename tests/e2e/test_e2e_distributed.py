"""Real multi-process runs: torchrun, gloo, 2 ranks on CPU.

Pins: the same global batch on 1 and 2 ranks gives the same loss curve (within
a stated tolerance: batch-norm statistics are per rank), distributed eval
equals single-process eval exactly, both ranks stop at the target together,
and a killed rank ends the whole job with `run_stop aborted` in bounded time.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from e2e_util import REPO, _workers_of, bench_cmd, harness_env, metrics, mllog, only_run_dir, run_bench

pytestmark = pytest.mark.e2e
# Relative tolerance on per-epoch mean training loss between 1x16 and 2x8:
# the gradients are the same global-batch average, but BatchNorm normalises
# with per-rank batch statistics, so the curves agree closely, not bit-exactly.
LOSS_RTOL = 0.05
# The runs every test here compares. Waves from epoch 1 (tiny starts them at epoch
# 2): both epochs then train on the same augmented distribution, so their losses
# compare (test_loss_falls).
COMMON = ["train.epochs=2", "train.target_wer=null", "augment.enabled=true",
          "augment.waves_from_epoch=1"]


@pytest.fixture(scope="module")
def pair(mini_corpus, tmp_path_factory):
    common = COMMON
    r1 = tmp_path_factory.mktemp("one")
    p1 = run_bench(r1, mini_corpus, cards=1, overrides=common + ["train.batch_per_card=16"])
    r2 = tmp_path_factory.mktemp("two")
    p2 = run_bench(r2, mini_corpus, cards=2, overrides=common + ["train.batch_per_card=8"])
    return (p1, only_run_dir(r1)), (p2, only_run_dir(r2))


def test_two_ranks_one_log_and_platform(pair):
    _, (p2, d2) = pair
    assert p2.returncode == 3, p2.stderr[-3000:]  # fixed-epoch run without target: aborted
    recs = mllog(d2 / "mlperf.log")
    assert [r["value"] for r in recs if r["key"] == "submission_platform"] == ["2xCPU"]
    assert [r["value"] for r in recs if r["key"] == "global_batch_size"] == [16]
    assert sum(r["key"] == "run_start" for r in recs) == 1  # rank 0 only
    assert not list(d2.glob("mlperf.log.*"))


def test_same_loss_curve_with_same_global_batch(pair):
    (_, d1), (_, d2) = pair
    e1, e2 = metrics(d1, "epoch"), metrics(d2, "epoch")
    assert [r["samples"] for r in e1] == [r["samples"] for r in e2]
    for a, b in zip(e1, e2):
        rel = abs(a["loss_ctc_nll_per_utt"] - b["loss_ctc_nll_per_utt"]) / a["loss_ctc_nll_per_utt"]
        assert rel < LOSS_RTOL, (a, b)
    i1, i2 = metrics(d1, "init")[0], metrics(d2, "init")[0]
    assert abs(i1["ctc_nll_per_utt"] - i2["ctc_nll_per_utt"]) / i1["ctc_nll_per_utt"] < LOSS_RTOL


def test_gradient_allreduce_is_timed(pair):
    """2 ranks: every epoch logs a measured all-reduce time; 1 card has none to time."""
    (_, d1), (_, d2) = pair
    for rec in metrics(d2, "epoch"):
        assert rec["allreduce_buckets"] > 0
        assert 0.0 < rec["allreduce_time(s)"] < rec["train_time(s)"]
    assert all(r["allreduce_time(s)"] is None for r in metrics(d1, "epoch"))


def test_loss_falls(pair):
    (_, d1), _ = pair
    e = metrics(d1, "epoch")
    init = metrics(d1, "init")[0]
    # Per-character NLL over the same utterances, epoch against epoch. The init
    # loss is one unaugmented batch (the shortest utterances), the epoch means are
    # augmented (edge silence, from epoch 1 here) and epoch 1 includes CTC's
    # early rise: it is only checked to be a finite, positive baseline.
    assert e[1]["loss_ctc_nll_per_char"] < 0.95 * e[0]["loss_ctc_nll_per_char"]
    assert 0 < init["ctc_nll_per_char"] < float("inf")


def test_distributed_eval_equals_single_process(pair, mini_corpus):
    _, (_, d2) = pair
    ev = metrics(d2, "eval")[-1]
    ckpt = sorted((d2 / "checkpoints").glob("ckpt-*.pt"))[-1]
    proc = subprocess.run([sys.executable, "-m", "harness", "eval", "--checkpoint", str(ckpt),
                           "--manifest", str(mini_corpus / "dev.jsonl"), "--device", "cpu",
                           "--threads", "1"],  # the ranks' threads: same float summation order
                          cwd=REPO, env=harness_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert got["utterances"] == ev["utterances"] == 64
    for key in ("wer_ref(%)", "wer_corpus(%)", "cer(%)"):
        assert got[key] == ev[key], key


def test_results_report_over_card_counts(pair, tmp_path):
    """`python -m results` on a 1-card and a 2-card run: tables, CSV row per card count, plots."""
    import shutil

    (_, d1), (_, d2) = pair
    runs = tmp_path / "runs"
    runs.mkdir()
    for d in (d1, d2):
        shutil.copytree(d, runs / d.name, ignore=shutil.ignore_patterns("checkpoints"))
    proc = subprocess.run([sys.executable, "-m", "results", "--runs", str(runs)], cwd=REPO,
                          env=harness_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = runs / "report"
    md = (report / "results.md").read_text()
    assert "0.3443" in md and "raw logits" in md  # the published number with its definition
    import csv

    rows = list(csv.DictReader((report / "results.csv").open()))
    assert sorted(int(r["cards"]) for r in rows) == [1, 2]
    assert len(list(report.glob("*.png"))) >= 2


def test_early_stop_on_both_ranks(mini_corpus, tmp_path):
    proc = run_bench(tmp_path, mini_corpus, cards=2,
                     overrides=["train.epochs=4", "train.target_wer=100"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = only_run_dir(tmp_path)
    recs = mllog(run_dir / "mlperf.log")
    assert recs[-1]["key"] == "run_stop" and recs[-1]["metadata"]["status"] == "success"
    stopped_at = max(r["metadata"]["epoch_num"] for r in recs if r["key"] == "eval_accuracy")
    assert stopped_at < 4
    # Both ranks left the loop at the same epoch: the job ended cleanly (exit 0, no timeout).
    assert json.loads((run_dir / "result.json").read_text())["epochs_completed"] == stopped_at


@pytest.mark.parametrize("victim", [1, 0])
def test_killed_rank_aborts_whole_job(mini_corpus, tmp_path, victim):
    env = harness_env()
    cmd = bench_cmd(tmp_path, mini_corpus, cards=2,
                    overrides=["train.epochs=50", "train.target_wer=1"])
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        log = None
        while time.time() < deadline:
            dirs = [d for d in tmp_path.iterdir() if (d / "mlperf.log").exists()]
            if dirs and "epoch_start" in (dirs[0] / "mlperf.log").read_text():
                log = dirs[0] / "mlperf.log"
                break
            time.sleep(0.5)
        assert log is not None, "run never started"
        pids = _workers_of(proc.pid)
        assert set(pids) == {0, 1}, pids
        os.kill(pids[victim], signal.SIGKILL)
        t_kill = time.time()
        proc.wait(timeout=90)
        elapsed = time.time() - t_kill
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert elapsed < 60, f"job took {elapsed:.0f}s to end after the kill"
    recs = mllog(log)
    assert recs[-1]["key"] == "run_stop", recs[-1]
    assert recs[-1]["metadata"]["status"] == "aborted"
    assert sum(r["key"] == "run_stop" for r in recs) == 1


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_through_c10d_rendezvous_equal_one_node_two_ranks(pair, mini_corpus, tmp_path):
    """`--nnodes 2` as on a cluster: two launchers (node ranks 0 and 1, one card each) meet
    at a c10d rendezvous and share one run directory; the job trains exactly as the
    one-node 2-rank run of `pair` (same ranks, data shards and threads per rank)."""
    _, (_, d2) = pair
    env = harness_env()
    env["RDZV_ID"] = f"e2e{os.getpid()}"
    common = COMMON + ["train.batch_per_card=8", "train.threads=1"]  # as `pair`
    endpoint = f"127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen(bench_cmd(tmp_path, mini_corpus, "--nnodes", "2", "--node-rank", str(n),
                                        "--rdzv-endpoint", endpoint, cards=1, overrides=common),
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True) for n in (0, 1)]
    try:
        outs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    assert [p.returncode for p in procs] == [3, 3], outs[0][-3000:] + outs[1][-3000:]
    run_dir = only_run_dir(tmp_path)
    assert run_dir.name.startswith("tiny-2xcpu-job" + env["RDZV_ID"])
    recs = mllog(run_dir / "mlperf.log")
    assert sum(r["key"] == "run_start" for r in recs) == 1
    assert recs[-1]["key"] == "run_stop" and recs[-1]["metadata"]["status"] == "aborted"
    desc = json.loads((run_dir / "description.json").read_text())
    assert desc["nodes"] == 2 and desc["cards"] == 2
    # Same world, same shards, same threads per rank: the same numbers as one node.
    for a, b in zip(metrics(d2, "epoch"), metrics(run_dir, "epoch")):
        assert a["loss_ctc_nll_per_utt"] == pytest.approx(b["loss_ctc_nll_per_utt"], rel=1e-5)
    assert metrics(d2, "eval")[-1]["wer_ref(%)"] == pytest.approx(
        metrics(run_dir, "eval")[-1]["wer_ref(%)"], abs=1e-9)
