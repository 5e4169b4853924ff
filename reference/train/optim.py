"""Optimizer and the per-epoch learning-rate annealing of the reference.

lr(epoch) = base_lr × scale / anneal^(epoch-1), where `scale` is 1 ("none",
as the seed did on 16 cards) or global_batch / reference_batch ("linear").
With `anneal_every: step` the exponent is the fractional epochs done, updated
every step (a pure function of epoch and step, so a resumed run matches).
"""
from __future__ import annotations

import functools
from typing import Iterable

import torch

from reference.config import OptimConfig


def base_lr(cfg: OptimConfig, global_batch: int) -> float:
    scale = global_batch / cfg.reference_batch if cfg.lr_scaling == "linear" else 1.0
    return cfg.lr * scale


def epoch_lr(cfg: OptimConfig, global_batch: int, epoch: int) -> float:
    """Learning rate for 1-based `epoch`."""
    return base_lr(cfg, global_batch) / (cfg.anneal ** (epoch - 1))


def step_lr(cfg: OptimConfig, global_batch: int, epoch: int, step: int,
            steps_per_epoch: int) -> float:
    """Learning rate for 0-based `step` of 1-based `epoch`: `epoch_lr` when annealing
    per epoch, else the same decay continued to the fraction of the epoch done."""
    if cfg.anneal_every == "epoch":
        return epoch_lr(cfg, global_batch, epoch)
    done = (epoch - 1) + step / max(steps_per_epoch, 1)
    return base_lr(cfg, global_batch) / (cfg.anneal ** done)


def build_optimizer(cfg: OptimConfig, params: Iterable[torch.nn.Parameter],
                    global_batch: int) -> torch.optim.Optimizer:
    lr = base_lr(cfg, global_batch)
    params = list(params)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    kwargs = dict(lr=lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if params and params[0].device.type == "cpu" and cpu_fused_adamw():
        # On CPU, torch's default AdamW is a Python loop of ~10 operators per
        # parameter tensor (its multi-tensor path is for accelerators): ~7 ms of
        # tiny's ~110 ms step on two cores. The fused kernel (torch >= 2.4 on CPU)
        # is one pass over each tensor, the same update up to rounding.
        return torch.optim.AdamW(params, fused=True, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


@functools.lru_cache(maxsize=None)
def cpu_fused_adamw() -> bool:
    """Whether this torch has the fused AdamW kernel for CPU tensors (torch >= 2.4);
    torch 2.1-2.3 refuse `fused=True` for CPU parameters when it is built."""
    try:
        torch.optim.AdamW([torch.zeros(1, requires_grad=True)], fused=True)
    except (RuntimeError, ValueError):
        return False
    return True


def optimizer_impl(opt: torch.optim.Optimizer) -> str:
    """Which torch implementation runs the update: "fused", "foreach", "for-loop", or
    "torch default" (left to torch: multi-tensor on accelerators). Recorded with a
    run: the same algorithm, with different rounding and speed."""
    group = opt.param_groups[0] if opt.param_groups else {}
    if group.get("fused"):
        return "fused"
    if group.get("foreach"):
        return "foreach"
    if group.get("foreach") is False:
        return "for-loop"
    cpu = all(p.device.type == "cpu" for p in group.get("params", []))
    return "for-loop" if cpu else "torch default"


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr
