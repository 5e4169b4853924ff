"""The process group and rank layout, for CPU, CUDA and MLU.

The device and its backend come from `reference.device` (gloo / nccl / cncl);
rank information from torchrun's environment variables.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from reference.device import BACKENDS, pick_device, process_group_kwargs

# Process-group timeout: how long a collective may wait for the slowest rank.
# Rank 0 writes each checkpoint synchronously (temp file, fsync, SHA-256 re-read)
# while the others wait in the next collective: at the reference size that is
# 1.1 GB (LSTM 3x2560 + SGD momentum), about 4 minutes at a shared filesystem's
# pessimistic 10 MB/s. 30 minutes (torch's own default for gloo) leaves a 7x
# margin and still turns a hung peer into an error; `harness bench --timeout`
# changes it, and the trainer warns when a checkpoint took over a third of it.
DEFAULT_TIMEOUT_S = 1800.0


@dataclass
class DistContext:
    """Rank layout and the device of this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, device: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> "DistContext":
        """Read torchrun's variables; init the process group when world size > 1."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        dev = pick_device(device, local_rank)
        ctx = cls(rank, world, local_rank, local_world, dev, None, timeout_s)
        if world > 1:
            ctx.backend = BACKENDS.get(dev.type, "gloo")
            # A finite timeout turns a dead peer into an error instead of a hang.
            dist.init_process_group(backend=ctx.backend,
                                    timeout=datetime.timedelta(seconds=timeout_s),
                                    **process_group_kwargs(dev))
        return ctx

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()
