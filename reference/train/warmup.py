"""Warm-up before `run_start`: one step at the longest batch, then everything put back.

MLPerf lets a submission initialise before the clock starts; on an accelerator
the first step at a new, larger shape pays for allocator growth, kernel
selection (cuDNN heuristics, `cudnn.benchmark`) and lazy initialisation, none
of which is training. `warm_up` runs the trainer's own step (`train_step`, the
masked-update path) once on a synthetic batch — silent waveforms of the
longest training utterance, stretched by the slowest tempo augmentation can
apply, so that no later batch is larger — without touching the training data,
and then restores parameters, batch-norm statistics, optimizer state, gradients
and every RNG exactly: the run that follows is the same as without it (pinned
by tests/reference/train/test_warmup.py).
"""
from __future__ import annotations

import copy
import math
import time
from contextlib import nullcontext
from typing import Any, Callable, ContextManager

import torch
from torch import nn

from reference.config import AugmentConfig, FeatureConfig
from reference.data.loader import Batch
from reference.labels import BLANK_ID, NUM_CLASSES
from reference.train.checkpoint import rng_state, set_rng_state
from reference.device import synchronize
from reference.train.step import train_step


def longest_samples(longest_s: float, feat: FeatureConfig, aug: AugmentConfig) -> int:
    """Samples of a waveform whose features are as long as any training batch's can be."""
    slowest = aug.tempo_min if aug.enabled else 1.0
    return int(math.ceil(longest_s * feat.sample_rate / min(1.0, slowest)))


def synthetic_batch(batch_size: int, samples: int) -> Batch:
    """Silent utterances of `samples` samples with a one-character target each."""
    label = (BLANK_ID + 1) % NUM_CLASSES
    return Batch(torch.zeros(batch_size, samples), torch.full((batch_size,), samples),
                 torch.full((batch_size,), label), torch.ones(batch_size, dtype=torch.long),
                 list(range(batch_size)))


def warm_up(net: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer, *,
            batch_size: int, samples: int, feat: FeatureConfig, aug: AugmentConfig,
            device: torch.device, clip_norm: float, loss_kind: str = "ctc_nll",
            autocast: Callable[[], ContextManager[Any]] = nullcontext) -> float:
    """One full training step on a synthetic longest batch, its effects undone; seconds."""
    t0 = time.perf_counter()
    saved_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
    saved_optim = copy.deepcopy(optimizer.state_dict())
    saved_rng = rng_state(device)
    try:
        batch = synthetic_batch(batch_size, samples)
        batch.copy_to(device)
        # epoch=None: no augmentation draw; the batch is already as long as the longest.
        train_step(net, optimizer, batch, feat=feat, aug=aug, seed=0, epoch=None,
                   tempo_cap=None, device=device, clip_norm=clip_norm, loss_kind=loss_kind,
                   with_seed=True, autocast=autocast, host_decides=False)
        synchronize(device)
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optim)
        optimizer.zero_grad(set_to_none=True)
        set_rng_state(saved_rng, device)
    return time.perf_counter() - t0
