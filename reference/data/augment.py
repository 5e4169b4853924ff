"""Seeded, in-process augmentation parameters: tempo U(a, b) and gain U(c, d) dB.

The reference forked the `sox` binary for every sample. Here the parameters are
a pure function of (seed, epoch, utterance index), so they are reproducible
whatever the number of ranks, data workers or a resume point; the signal
processing itself happens on the device in `features.featurize`.
"""
from __future__ import annotations

import numpy as np
import torch

from reference.config import AugmentConfig


def augment_params(cfg: AugmentConfig, seed: int, epoch: int, indices: list[int]
                   ) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
    """Per-utterance (tempo, gain_db) tensors, or (None, None) when disabled."""
    if not cfg.enabled:
        return None, None
    tempo = np.empty(len(indices), dtype=np.float32)
    gain = np.empty(len(indices), dtype=np.float32)
    for k, idx in enumerate(indices):
        rng = np.random.default_rng([seed, epoch, int(idx), 0xA06])
        tempo[k] = rng.uniform(cfg.tempo_min, cfg.tempo_max)
        gain[k] = rng.uniform(cfg.gain_db_min, cfg.gain_db_max)
    return torch.from_numpy(tempo), torch.from_numpy(gain)
