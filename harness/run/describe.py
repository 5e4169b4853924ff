"""What a run ran on: hardware, software versions, git state, command line."""
from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ENV_KEYS = ("MLU_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "PYTORCH_TRAIN_DATASET", "LIBRISPEECH",
            "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE", "SLURM_JOB_ID",
            "SLURM_NNODES", "MASTER_ADDR", "MASTER_PORT")
PACKAGES = ("torch", "torch_mlu", "numpy", "scipy", "soundfile", "mlperf-logging", "pandas",
            "espeakng-loader")


def git_state(repo: Path) -> dict[str, Any]:
    def run(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def _affinity() -> set[int] | None:
    return set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def busy_cpu_s(stat: str | None = None, cpus: set[int] | None = None) -> float | None:
    """CPU seconds used so far on the CPUs this process may run on (from /proc/stat).

    Only those CPUs count: a run pinned with taskset, or given a cpuset by SLURM,
    is not slowed by work on the machine's other cores. `stat` (the file's text)
    and `cpus` (default: this process's affinity) are for tests. None off Linux.
    """
    try:
        lines = (stat if stat is not None else Path("/proc/stat").read_text()).splitlines()
    except OSError:
        return None
    cpus = _affinity() if cpus is None else cpus

    def busy(fields: list[str]) -> int:
        v = [int(x) for x in fields[:8]]
        return sum(v) - v[3] - v[4]  # user nice system (idle iowait) irq softirq steal

    per_cpu = {int(f[0][3:]): busy(f[1:]) for f in (line.split() for line in lines)
               if len(f) > 8 and f[0].startswith("cpu") and f[0][3:].isdigit()}
    if per_cpu and cpus is not None and cpus & per_cpu.keys():
        total = sum(v for k, v in per_cpu.items() if k in cpus)
    elif lines and lines[0].startswith("cpu "):
        total = busy(lines[0].split()[1:])  # no per-CPU lines: the whole machine
    else:
        return None
    return total / os.sysconf("SC_CLK_TCK")


def busy_cores(window_s: float = 1.0) -> float | None:
    """Cores of this process's CPU set that others keep busy right now (it sleeps meanwhile).

    Unlike the 1-minute load average, this does not remember a job that ended
    seconds ago, so it says whether the machine is free *now*.
    """
    a = busy_cpu_s()
    if a is None:
        return None
    time.sleep(window_s)
    b = busy_cpu_s()
    return None if b is None else max(0.0, (b - a) / window_s)


def describe(cards: int, nodes: int, device: str, accelerator: str, threads: int | None,
             repo: Path, stack: dict[str, Any] | None = None) -> dict[str, Any]:
    """What this run runs on; `stack` is `harness.run.stack.stack_facts` (the vendor stack,
    devices, backend, precision switches, NCCL_*/CNCL_* environment), as `make doctor` prints."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "host": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": {"model": cpu_model(), "cores_available": cores, "arch": platform.machine()},
        "memory(GiB)": memory_gib(),
        "load_average_at_start": load_average(),
        "busy_cores_at_start": busy_cores(),
        "device": device,
        "accelerator": accelerator,
        "cards": cards,
        "nodes": nodes,
        "threads_per_rank": threads,
        "software": versions(),
        "git": git_state(repo),
        "command": sys.argv,
        "env": {k: os.environ[k] for k in ENV_KEYS if k in os.environ},
        "stack": stack,
    }
