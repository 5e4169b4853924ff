"""SIGTERM to a run: it checkpoints and closes the MLPerf log with `run_stop aborted
(terminated by SIGTERM)`; the job exits non-zero.

* to `harness bench` of a run with DataLoader workers (as the closed benchmarks
  use): the signal reaches the whole process group; the workers ignore it and
  the trainer stops at its step boundary (not `DataLoader worker ... killed`);
* to `harness bench --repeat 2` during its first run: that run ends as above and
  the second never starts (a set is stopped, not shortened silently);
* to one rank of two: the ranks decide together (the flag rides on the step's
  all-reduce), so both stop at the same step and nobody waits for a peer that left.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from e2e_util import REPO, _workers_of, bench_cmd, harness_env, mllog

pytestmark = pytest.mark.e2e


def _started_log(runs: Path, timeout: float = 120) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for d in runs.glob("*"):
            if (d / "mlperf.log").exists() and "epoch_start" in (d / "mlperf.log").read_text():
                return d / "mlperf.log"
        time.sleep(0.3)
    raise AssertionError("run never started")


def _signalled_run(runs: Path, corpus: Path, cards: int, overrides: list[str],
                   target: str, extra: tuple[str, ...] = ()) -> tuple[int, str, Path, float]:
    """Start a long run, SIGTERM `target` ("launcher" or "rank1") once it trains;
    (exit code, output, log, seconds from the signal to the end)."""
    proc = subprocess.Popen(bench_cmd(runs, corpus, *extra, cards=cards,
                                      overrides=["train.epochs=50", "train.target_wer=1",
                                                 "train.threads=1", *overrides]),
                            cwd=REPO, env=harness_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        log = _started_log(runs)
        if target == "launcher":
            proc.send_signal(signal.SIGTERM)
        else:
            pids = _workers_of(proc.pid)
            assert set(pids) == set(range(cards)), pids
            os.kill(pids[1], signal.SIGTERM)
        t0 = time.time()
        out = proc.communicate(timeout=90)[0]
        return proc.returncode, out, log, time.time() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _assert_terminated(code: int, out: str, log: Path) -> list[dict]:
    assert code == 1, out[-3000:]
    recs = mllog(log)
    assert recs[-1]["key"] == "run_stop", recs[-1]
    assert recs[-1]["metadata"]["status"] == "aborted"
    assert recs[-1]["metadata"]["reason"] == "terminated by SIGTERM", recs[-1]
    assert sum(r["key"] == "run_stop" for r in recs) == 1
    assert list((log.parent / "checkpoints").glob("ckpt-*.pt"))
    assert json.loads((log.parent / "result.json").read_text())["status"] == "aborted"
    return recs


def test_sigterm_with_dataloader_workers_checkpoints_and_aborts(mini_corpus, tmp_path):
    code, out, log, _ = _signalled_run(tmp_path, mini_corpus, 1, ["data.num_workers=4"],
                                       "launcher")
    _assert_terminated(code, out, log)
    assert "DataLoader worker" not in out and "Traceback" not in out, out[-3000:]


def test_sigterm_to_one_rank_stops_both_at_the_same_step(mini_corpus, tmp_path):
    code, out, log, took = _signalled_run(tmp_path, mini_corpus, 2, [], "rank1")
    _assert_terminated(code, out, log)
    assert took < 60, f"job took {took:.0f}s to end after the signal"
    # Rank 0 never got the signal: it stopped because rank 1 said so, at the same step,
    # and left through the trainer (checkpoint, result.json), not through torchrun's kill.
    assert "Traceback" not in out, out[-3000:]


def test_sigterm_to_a_repeat_set_stops_the_set(mini_corpus, tmp_path):
    code, out, log, _ = _signalled_run(tmp_path, mini_corpus, 1, [], "launcher",
                                       extra=("--repeat", "2"))
    _assert_terminated(code, out, log)
    assert "launcher received SIGTERM: the set stops; runs 2-2 of 2 not started" in out, out[-3000:]
    assert [d for d in tmp_path.iterdir() if d.is_dir()] == [log.parent]
    assert "Traceback" not in out, out[-3000:]
