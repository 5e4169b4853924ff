"""SIGTERM to `harness bench`: forwarded to the worker, which checkpoints and
closes the MLPerf log with `run_stop aborted`; the job exits non-zero."""
from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from e2e_util import REPO, bench_cmd, harness_env, mllog

pytestmark = pytest.mark.e2e


def test_sigterm_checkpoints_and_aborts(mini_corpus, tmp_path):
    proc = subprocess.Popen(bench_cmd(tmp_path, mini_corpus,
                                      overrides=["train.epochs=50", "train.target_wer=1"]),
                            cwd=REPO, env=harness_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        log = None
        while time.time() < deadline and log is None:
            for d in tmp_path.glob("*"):
                if (d / "mlperf.log").exists() and "epoch_start" in (d / "mlperf.log").read_text():
                    log = d / "mlperf.log"
            time.sleep(0.3)
        assert log is not None, "run never started"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    recs = mllog(log)
    assert recs[-1]["key"] == "run_stop"
    assert recs[-1]["metadata"]["status"] == "aborted"
    assert "SIGTERM" in recs[-1]["metadata"]["reason"]
    assert list((log.parent / "checkpoints").glob("ckpt-*.pt"))
    assert json.loads((log.parent / "result.json").read_text())["status"] == "aborted"
