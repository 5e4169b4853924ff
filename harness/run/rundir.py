"""Run directories: one new, self-describing directory per run, never shared.

`RUNS/<benchmark>-<cards>x<device>-<UTC time>-s<seed>[-k]` is created with an
exclusive mkdir, so two runs started at the same second get different
directories. Before anything runs, `check_writable` makes sure the runs
directory can take files and has free space (a full disk is a clear error
before training, not a lost checkpoint later).
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

MIN_FREE_BYTES = 512 * 1024 * 1024


class RunDirError(RuntimeError):
    """The runs directory cannot be used."""


def check_writable(runs: Path, min_free: int = MIN_FREE_BYTES) -> None:
    try:
        runs.mkdir(parents=True, exist_ok=True)
        probe = runs / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as err:
        raise RunDirError(f"{runs}: cannot write there ({err.strerror or err})") from None
    free = shutil.disk_usage(runs).free
    if free < min_free:
        raise RunDirError(f"{runs}: only {free / 2**20:.0f} MiB free; a run needs at least "
                          f"{min_free / 2**20:.0f} MiB for logs and checkpoints")


def create_run_dir(runs: Path, benchmark: str, cards: int, device: str, seed: int) -> Path:
    """Make a fresh run directory; never reuses an existing one."""
    check_writable(runs)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    base = f"{benchmark}-{cards}x{device}-{stamp}-s{seed}"
    for k in range(1000):
        path = runs / (base if k == 0 else f"{base}-{k}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        (path / "checkpoints").mkdir()
        return path
    raise RunDirError(f"{runs}: could not create a unique run directory for {base}")


def log_segments(run_dir: Path) -> list[Path]:
    """The run's MLPerf log segments in order: mlperf.log, mlperf.resume1.log, ..."""
    segs = [run_dir / "mlperf.log"] if (run_dir / "mlperf.log").exists() else []
    resumed = sorted(run_dir.glob("mlperf.resume*.log"),
                     key=lambda p: int(p.stem.removeprefix("mlperf.resume") or 0))
    return segs + resumed


def next_log_path(run_dir: Path) -> Path:
    """Where the next attempt of this run writes its MLPerf log."""
    segs = log_segments(run_dir)
    if not segs:
        return run_dir / "mlperf.log"
    return run_dir / f"mlperf.resume{len(segs)}.log"
