"""Device choice, collective backend and the process group, for CPU, CUDA and MLU.

One code path: the device type comes from `torch.accelerator` (MLU appears
once `torch_mlu` is imported), the backend from the device (gloo / nccl /
cncl), and rank information from torchrun's environment variables.
"""
from __future__ import annotations

import datetime
import importlib
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

BACKENDS = {"cpu": "gloo", "cuda": "nccl", "mlu": "cncl", "xpu": "xccl"}


def _import_vendor_plugins() -> None:
    # torch_mlu registers the "mlu" device with torch when imported; never fake it.
    try:
        importlib.import_module("torch_mlu")
    except ImportError:
        pass


def accelerator_type() -> str | None:
    """The accelerator torch can use here ("cuda", "mlu", ...) or None."""
    _import_vendor_plugins()
    acc = getattr(torch, "accelerator", None)
    if acc is not None and acc.is_available():
        return acc.current_accelerator().type
    return None


def pick_device(preference: str, local_rank: int) -> torch.device:
    """'auto' → the accelerator if any, else CPU; or an explicit type."""
    kind = preference
    if preference == "auto":
        kind = accelerator_type() or "cpu"
    elif preference != "cpu":
        _import_vendor_plugins()
        found = accelerator_type()
        if found != preference:
            raise RuntimeError(f"device '{preference}' requested but the available accelerator "
                               f"is {found or 'none'}")
    if kind == "cpu":
        return torch.device("cpu")
    torch.accelerator.set_device_index(local_rank)
    return torch.device(kind, local_rank)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so host clocks measure it."""
    if device.type != "cpu":
        torch.accelerator.synchronize(device)


def accelerator_name(device: torch.device) -> str:
    """Human-readable accelerator model (used in the MLPerf platform name)."""
    if device.type == "cpu":
        return "CPU"
    mod = getattr(torch, device.type, None)
    try:
        return str(mod.get_device_name(device.index or 0)).replace(" ", "-")
    except Exception:  # noqa: BLE001 - vendor modules differ; fall back to the type
        return device.type.upper()


@dataclass
class DistContext:
    """Rank layout and the device of this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, device: str = "auto", timeout_s: float = 120.0) -> "DistContext":
        """Read torchrun's variables; init the process group when world size > 1."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        dev = pick_device(device, local_rank)
        ctx = cls(rank, world, local_rank, local_world, dev, None)
        if world > 1:
            ctx.backend = BACKENDS.get(dev.type, "gloo")
            # A finite timeout turns a dead peer into an error instead of a hang.
            dist.init_process_group(backend=ctx.backend,
                                    timeout=datetime.timedelta(seconds=timeout_s),
                                    device_id=None if dev.type == "cpu" else dev)
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
