"""A real `harness bench` under strace: no audio file is opened before `run_start`.

The whole process tree is traced (openat/open/execve, with timestamps). The
run's processes are the ones that exec `harness.run.worker`. Checked:

* the run opens audio files only after its `run_start` (log time);
* between the end of the launcher's cache flush (description.json) and
  `run_start`, no process opens an audio file at all;
* the run does open audio after `run_start` (the check is not vacuous).

Before the flush, the launcher's data preparation (verification of a new
corpus) and the flush itself (open + posix_fadvise, no read) may open files:
that is data preparation, outside the run.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from e2e_util import REPO, bench_cmd, harness_env, mllog, only_run_dir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # ~40 s under strace: make test-all

_LINE = re.compile(r'^(?P<pid>\d+)\s+(?P<t>\d+\.\d+)\s+(?P<call>\w+)\((?P<args>.*)')
_PATH = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _trace(path: Path) -> tuple[list[tuple[int, float, str]], set[int]]:
    """(pid, unix time, audio path) of every successful open, and the run's pids."""
    opens, workers = [], set()
    for line in path.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        pid, t, call, args = int(m["pid"]), float(m["t"]), m["call"], m["args"]
        if call == "execve" and "harness.run.worker" in args and "= 0" in args:
            workers.add(pid)
        elif call in ("openat", "open") and not re.search(r"= -1 ", args):
            paths = _PATH.findall(args)
            if paths and paths[0].endswith((".flac", ".wav", ".opus", ".ogg")):
                opens.append((pid, t, paths[0]))
    return opens, workers


def test_no_audio_is_opened_before_run_start(mini_corpus: Path, tmp_path: Path) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    runs, trace = tmp_path / "runs", tmp_path / "trace.txt"
    cmd = [strace, "-f", "-ttt", "-s", "200", "-e", "trace=openat,open,execve", "-o", str(trace),
           *bench_cmd(runs, mini_corpus, overrides=["train.epochs=1", "train.threads=1",
                                                    "train.target_wer=100"])]
    proc = subprocess.run(cmd, cwd=REPO, env=harness_env(), capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip().splitlines()[0]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = only_run_dir(runs)
    run_start = next(r["time_ms"] for r in mllog(run_dir / "mlperf.log")
                     if r["key"] == "run_start") / 1000.0
    flush = json.loads((run_dir / "description.json").read_text())["cache_clear"]
    assert flush["cleared"] is True
    opens, workers = _trace(trace)
    assert workers, "no harness.run.worker process in the trace"
    early = [(pid, t, p) for pid, t, p in opens if pid in workers and t < run_start]
    assert early == [], f"the run opened audio before run_start: {early[:3]}"
    between = [(pid, t, p) for pid, t, p in opens if flush["done_at_unix"] < t < run_start]
    assert between == [], f"audio opened between the cache flush and run_start: {between[:3]}"
    assert any(pid in workers and t >= run_start for pid, t, _ in opens), \
        "the run never opened its audio: the trace sees nothing"
