"""The closed division cannot be changed silently (real `harness data` + `harness bench`).

A LibriSpeech-layout tree of real audio (FLAC files of the embedded corpus
under `LibriSpeech/{train-clean-100,dev-clean}/<speaker>/<chapter>/` with
`.trans.txt` transcripts) is prepared with `harness data --librispeech`
(`make data`), which writes verified manifests. With a submission.yaml that
declares the closed division:

* `mlcommons_v05` with a changed target or hyper-parameter is refused before a
  run directory exists (exit 2, the message names what changed);
* the same change with `--division open` (make DIVISION=open) runs and logs open;
* the unchanged benchmark starts and logs closed (stopped right after
  `run_start`: its reference model takes hours on a CPU).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from e2e_util import REPO, SMALL, _workers_of, harness_env, mllog

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def closed_setup(mini_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("closed")
    tree = base / "LibriSpeech"
    for split, manifest, count in (("train-clean-100", "train.jsonl", 32), ("dev-clean", "dev.jsonl", 12)):
        rows = [json.loads(x) for x in (mini_corpus / manifest).read_text().splitlines()][:count]
        for k, r in enumerate(rows):
            spk, chap = 100 + k % 2, 200 + k % 3
            d = tree / split / str(spk) / str(chap)
            d.mkdir(parents=True, exist_ok=True)
            uid = f"{spk}-{chap}-{k:04d}"
            os.link(mini_corpus / r["audio"], d / f"{uid}.flac")  # the real FLAC, not a copy
            with open(d / f"{spk}-{chap}.trans.txt", "a", encoding="utf-8") as f:
                f.write(f"{uid} {r['text'].upper()}\n")
    data = base / "data" / "librispeech"
    proc = subprocess.run([sys.executable, "-m", "harness", "data", "--librispeech", str(tree),
                           "--out", str(data), "--workers", "1"], cwd=REPO, env=harness_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (data / "train.jsonl.verified").is_file() and (data / "dev.jsonl.verified").is_file()
    sub = yaml.safe_load((REPO / "submission.yaml").read_text())
    sub["division"] = "closed"
    (base / "submission.yaml").write_text(yaml.safe_dump(sub))
    return {"base": base, "data": data, "submission": base / "submission.yaml"}


def _bench(s: dict[str, Path], runs: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness", "bench", "--benchmark", "mlcommons_v05",
            "--runs", str(runs), "--cards", "1", "--device", "cpu",
            "--submission", str(s["submission"]), "--set", f"data.root={s['data']}",
            "--set", "data.num_workers=0", "--set", "train.threads=1", *extra]


@pytest.mark.parametrize("change, named", [
    ("train.target_wer=100", "ds2_target_wer"),
    ("optim.lr=0.001", "opt_base_learning_rate"),
    ("train.epochs=1", "ds2_max_epochs"),
    ("data.max_duration_s=5", "ds2_max_duration_s"),
])
def test_closed_override_is_refused_before_a_run_exists(closed_setup, tmp_path: Path,
                                                        change: str, named: str) -> None:
    runs = tmp_path / "runs"
    proc = subprocess.run(_bench(closed_setup, runs, "--set", change), cwd=REPO,
                          env=harness_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "closed-division benchmark" in err[0] and named in err[0], err
    assert "DIVISION=open" in err[0] and "Traceback" not in proc.stderr
    assert not runs.exists() or not any(runs.iterdir())


def test_changed_closed_benchmark_runs_and_logs_open(closed_setup, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    extra = [x for ov in SMALL + ["train.epochs=1", "train.target_wer=100"] for x in ("--set", ov)]
    proc = subprocess.run(_bench(closed_setup, runs, "--division", "open", *extra), cwd=REPO,
                          env=harness_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 3), proc.stderr[-3000:]  # 3: ran, target not reached
    (run_dir,) = [d for d in runs.iterdir() if (d / "mlperf.log").is_file()]
    recs = mllog(run_dir / "mlperf.log")
    value = {r["key"]: r["value"] for r in recs}
    assert value["submission_division"] == "open" and value["ds2_benchmark"] == "mlcommons_v05"
    assert value["eval_samples"] == 12 and value["train_samples"] == 32
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["division"] == "open"


@pytest.mark.slow
def test_unchanged_closed_benchmark_starts_and_logs_closed(closed_setup, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = subprocess.Popen(_bench(closed_setup, runs), cwd=REPO, env=harness_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = None
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            logs = list(runs.glob("*/mlperf.log")) if runs.exists() else []
            if logs and '"run_start"' in logs[0].read_text():
                log = logs[0]
                break
            time.sleep(0.5)
        assert log is not None, f"the closed run never reached run_start: {proc.poll()}"
        # Stop it early, the way a crash would: kill the worker; the launcher closes the log.
        for pid in _workers_of(proc.pid).values():
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    recs = mllog(log)
    value = {r["key"]: r["value"] for r in recs}
    assert value["submission_division"] == "closed" and value["ds2_benchmark"] == "mlcommons_v05"
    assert value["ds2_rnn_hidden"] == 2560 and value["opt_base_learning_rate"] == 1e-4
    assert value["cache_clear"] is True
    assert recs[-1]["key"] == "run_stop" and recs[-1]["metadata"]["status"] == "aborted"
