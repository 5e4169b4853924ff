"""Optimizer and the per-epoch learning-rate annealing of the reference.

lr(epoch) = base_lr × scale / anneal^(epoch-1), where `scale` is 1 ("none",
as the seed did on 16 cards) or global_batch / reference_batch ("linear").
With `anneal_every: step` the exponent is the fractional epochs done, updated
every step (a pure function of epoch and step, so a resumed run matches).
"""
from __future__ import annotations

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
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr
