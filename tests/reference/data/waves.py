"""Test helper: a padded batch of seeded uniform-noise waveforms."""
import numpy as np
import torch


def noise_batch(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, max length) float32 waves, zero after each length, and the lengths."""
    rng = np.random.default_rng(seed)
    wave = torch.zeros(len(lengths), max(lengths))
    for k, n in enumerate(lengths):
        wave[k, :n] = torch.from_numpy(rng.uniform(-0.5, 0.5, n).astype(np.float32))
    return wave, torch.tensor(lengths)
