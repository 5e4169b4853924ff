"""The machine under the benchmark: cores, thread count, load, CPU model, peak matmul rate.

The load figures let a reader discount numbers taken while other processes
competed for the CPU; the matmul rate is the denominator of MFU, so it is
measured in the same run, on the same device and at the same thread count as
the training rows it is compared with.
"""
from __future__ import annotations

import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from harness.run.describe import busy_cpu_s
from reference.device import synchronize

SEED = 1  # every random draw of the benchmark (weights, data, augmentation, matmul operands)


def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load1() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return float("nan")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def accelerator_name(dev: torch.device) -> str | None:
    if dev.type == "cpu":
        return None
    from reference.device import accelerator_name as name
    return name(dev)


@contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run a section at `n` torch intra-op threads (None: leave as is); yields the count
    in effect and restores the previous count afterwards, even on error, so that the
    sections measured after it keep the run's thread count."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class LoadWatch:
    """Load at section boundaries: the 1-min load average (which includes this
    process's own threads and lags by a minute) and, more precisely, the CPU
    used by *other* processes since the previous mark (in cores)."""

    def __init__(self, cores: int) -> None:
        self.cores = cores
        self.samples: dict[str, float] = {}
        self.foreign: dict[str, float] = {}
        self._last = (time.perf_counter(), busy_cpu_s(), time.process_time())

    def mark(self, where: str) -> float:
        v = load1()
        self.samples[where] = round(v, 2)
        now = (time.perf_counter(), busy_cpu_s(), time.process_time())
        wall = now[0] - self._last[0]
        if now[1] is not None and self._last[1] is not None and wall > 0.05:
            other = (now[1] - self._last[1]) - (now[2] - self._last[2])
            self.foreign[where] = round(max(0.0, other / wall), 2)
        self._last = now
        return v

    @property
    def worst(self) -> float:
        vals = [v for v in self.samples.values() if v == v]
        return max(vals) if vals else float("nan")

    @property
    def foreign_max(self) -> float:
        return max(self.foreign.values()) if self.foreign else float("nan")

    def contended(self, where: str) -> bool:
        """Other processes used more than a quarter of the cores during a section: with
        every core busy in this benchmark, even that slows OpenMP steps several-fold."""
        return self.foreign.get(where, 0.0) > 0.25 * self.cores

    @property
    def loaded(self) -> bool:
        """The load average before we started exceeded half the cores, or some section
        was contended by other processes."""
        start = self.samples.get("start", float("nan"))
        return start > 0.5 * self.cores or any(self.contended(k) for k in self.foreign)


def matmul_gflops(device: torch.device, n: int, reps: int) -> dict[str, Any]:
    """Best-of-`reps` dense fp32 n×n×n matmul rate (GFLOP/s) on `device`, at the
    current torch thread count (recorded as ``threads``)."""
    g = torch.Generator().manual_seed(SEED)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    c = torch.empty(n, n, device=device)
    torch.matmul(a, b, out=c)  # warm-up
    rates = []
    for _ in range(reps):
        synchronize(device)
        t0 = time.perf_counter()
        torch.matmul(a, b, out=c)
        synchronize(device)
        rates.append(2.0 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return {"n": n, "reps": reps, "threads": torch.get_num_threads(),
            "best_gflops": max(rates), "median_gflops": float(np.median(rates))}
