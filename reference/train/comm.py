"""Gradient all-reduce with a clock: a DDP communication hook that times buckets.

DDP all-reduces gradients in buckets while backward is still running, so the
communication cost is not a separate phase of the step. This hook does what
DDP's default hook does (average over ranks) and records, per bucket, the wall
time from launch to completion. Their sum per epoch is logged as
``allreduce_time(s)``: it overlaps backward and includes waiting for the
slowest rank, so it is an upper bound of the time communication adds.

Only installed where a future's completion means the data has arrived (gloo on
CPU). With NCCL/CNCL the future completes when the collective is queued on a
device stream, so a host clock would measure the launch, not the transfer, and
a Python hook would cost time on every bucket: there no hook is installed and
the value is ``None`` rather than a wrong number.
"""
# No `from __future__ import annotations`: DDP compares the hook's annotations
# with the real classes (a string annotation is rejected).
import threading
import time
import torch
import torch.distributed as dist


class AllReduceTimer:
    """Accumulates per-bucket all-reduce wall time; `take()` returns and resets it."""

    def __init__(self, world_size: int, measured: bool) -> None:
        self.world_size = world_size
        self.measured = measured
        self._lock = threading.Lock()  # completions run on the backend's thread
        self._seconds = 0.0
        self._buckets = 0

    def add(self, seconds: float) -> None:
        with self._lock:
            self._seconds += seconds
            self._buckets += 1

    def take(self) -> tuple[float | None, int]:
        """(seconds, buckets) since the last call; seconds is None when not measured."""
        with self._lock:
            secs, n = self._seconds, self._buckets
            self._seconds, self._buckets = 0.0, 0
        return (secs if self.measured else None), n


def timed_allreduce_hook(state: AllReduceTimer, bucket: dist.GradBucket
                         ) -> torch.futures.Future[torch.Tensor]:
    """DDP comm hook: mean over ranks (as the default hook), timed launch → completion."""
    t0 = time.perf_counter()
    buf = bucket.buffer().div_(state.world_size)
    fut = dist.all_reduce(buf, async_op=True).get_future()

    def done(f: torch.futures.Future[list[torch.Tensor]]) -> torch.Tensor:
        state.add(time.perf_counter() - t0)
        return f.value()[0]

    return fut.then(done)


def install(ddp: torch.nn.parallel.DistributedDataParallel, device: torch.device,
            world_size: int, backend: str | None = None) -> AllReduceTimer | None:
    """Register the timed hook on `ddp` on gloo only; None elsewhere.

    On NCCL/CNCL a Python hook would only add its own overhead to every bucket
    and measure the launch, so DDP keeps its built-in C++ all-reduce there and
    the epoch's ``allreduce_time(s)`` is null (a device-event measurement is a
    possible extension, not done).
    """
    if (backend or ("gloo" if device.type == "cpu" else None)) != "gloo":
        return None
    timer = AllReduceTimer(world_size, measured=True)
    ddp.register_comm_hook(timer, timed_allreduce_hook)
    return timer
