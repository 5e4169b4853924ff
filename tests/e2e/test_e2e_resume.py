"""Exact resume: a run killed with SIGKILL after an evaluation and resumed with
`--resume` produces the same per-epoch WERs and final weights as an
uninterrupted run (CPU, same seed)."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import torch

from e2e_util import REPO, _workers_of, bench_cmd, harness_env, metrics, mllog, only_run_dir, run_bench

pytestmark = pytest.mark.e2e
EPOCHS = 3
OVERRIDES = [f"train.epochs={EPOCHS}", "train.target_wer=null", "train.threads=1"]


def _final_weights(run_dir):
    last = sorted((run_dir / "checkpoints").glob("ckpt-*.pt"),
                  key=lambda p: int(p.stem.split("-s")[1]))[-1]
    return torch.load(last, weights_only=False)["model"]


def test_resume_after_sigkill_equals_uninterrupted(mini_corpus, tmp_path):
    ref_runs = tmp_path / "ref"
    ref = run_bench(ref_runs, mini_corpus, overrides=OVERRIDES)
    assert ref.returncode == 3, ref.stderr[-3000:]  # fixed-epoch run: aborted, no target
    ref_dir = only_run_dir(ref_runs)

    runs = tmp_path / "killed"
    proc = subprocess.Popen(bench_cmd(runs, mini_corpus, overrides=OVERRIDES), cwd=REPO,
                            env=harness_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            dirs = [d for d in runs.glob("*") if (d / "metrics.jsonl").exists()] if runs.exists() else []
            if dirs and len(metrics(dirs[0], "eval")) >= 2 and \
                    len(list((dirs[0] / "checkpoints").glob("ckpt-e2-*.pt.sha256"))) == 1:
                break
            time.sleep(0.2)
        else:
            pytest.fail("second evaluation never came")
        workers = _workers_of(proc.pid)
        assert list(workers) == [0], workers
        os.kill(workers[0], signal.SIGKILL)  # the training process, no chance to clean up
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    run_dir = only_run_dir(runs)

    res = subprocess.run([*bench_cmd(runs, mini_corpus)[:3], "bench", "--resume", str(run_dir),
                          "--device", "cpu"], cwd=REPO, env=harness_env(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 3, res.stderr[-3000:]
    # The killed attempt's log was closed honestly, the resumed attempt has its own segment.
    first = mllog(run_dir / "mlperf.log")
    assert first[-1]["key"] == "run_stop" and first[-1]["metadata"]["status"] == "aborted"
    second = mllog(run_dir / "mlperf.resume1.log")
    assert any(r["key"] == "ds2_resumed_from" for r in second)

    want = {r["epoch"]: r["wer_ref(%)"] for r in metrics(ref_dir, "eval")}
    got = {r["epoch"]: r["wer_ref(%)"] for r in metrics(run_dir, "eval")}
    assert got == want
    w_ref, w_got = _final_weights(ref_dir), _final_weights(run_dir)
    assert w_ref.keys() == w_got.keys()
    for k in w_ref:
        assert torch.equal(w_ref[k], w_got[k]), k
