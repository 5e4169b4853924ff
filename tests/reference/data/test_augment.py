"""reference.data.augment: per-utterance (tempo, gain) as a pure function of (seed, epoch, index)."""
import numpy as np
import pytest
import torch

from reference.data.augment import augment_params
from reference.config import AugmentConfig

CFG = AugmentConfig()  # tempo U(0.85, 1.15), gain U(-6, 8) dB


def test_disabled_gives_none():
    assert augment_params(AugmentConfig(enabled=False), 1, 1, [0, 1, 2]) == (None, None)


def test_shapes_and_dtypes():
    tempo, gain = augment_params(CFG, 1, 1, [3, 1, 4, 1, 5])
    assert isinstance(tempo, torch.Tensor) and isinstance(gain, torch.Tensor)
    assert tempo.shape == gain.shape == (5,)
    assert tempo.dtype == gain.dtype == torch.float32
    assert tempo[1] == tempo[3] and gain[1] == gain[3]  # same index, same draw


def test_deterministic():
    a = augment_params(CFG, 7, 3, list(range(50)))
    b = augment_params(CFG, 7, 3, list(range(50)))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_independent_of_batch_composition_and_order():
    idx = [11, 42, 7, 99, 0, 5]
    tempo, gain = augment_params(CFG, 1, 2, idx)
    for k, i in enumerate(idx):
        t1, g1 = augment_params(CFG, 1, 2, [i])
        assert t1[0] == tempo[k] and g1[0] == gain[k]
    perm = [3, 0, 5, 1, 4, 2]
    t2, g2 = augment_params(CFG, 1, 2, [idx[p] for p in perm])
    assert torch.equal(t2, tempo[perm]) and torch.equal(g2, gain[perm])
    # split across "ranks"
    ta, ga = augment_params(CFG, 1, 2, idx[:3])
    tb, gb = augment_params(CFG, 1, 2, idx[3:])
    assert torch.equal(torch.cat([ta, tb]), tempo) and torch.equal(torch.cat([ga, gb]), gain)


def test_within_ranges_and_spread():
    tempo, gain = augment_params(CFG, 1, 1, list(range(2000)))
    assert tempo.min() >= 0.85 and tempo.max() <= 1.15
    assert gain.min() >= -6.0 and gain.max() <= 8.0
    # roughly uniform: covers the range, mean near the middle
    assert tempo.min() < 0.86 and tempo.max() > 1.14
    assert gain.min() < -5.8 and gain.max() > 7.8
    assert abs(float(tempo.mean()) - 1.0) < 0.01
    assert abs(float(gain.mean()) - 1.0) < 0.3
    # tempo and gain are not the same draw rescaled
    assert abs(np.corrcoef(tempo.numpy(), gain.numpy())[0, 1]) < 0.1


def test_custom_ranges():
    cfg = AugmentConfig(tempo_min=1.0, tempo_max=1.0, gain_db_min=2.0, gain_db_max=3.0)
    tempo, gain = augment_params(cfg, 1, 1, list(range(100)))
    assert torch.all(tempo == 1.0)
    assert gain.min() >= 2.0 and gain.max() <= 3.0


@pytest.mark.parametrize("a, b", [((1, 1), (1, 2)), ((1, 1), (2, 1)), ((0, 5), (5, 0))])
def test_different_epochs_or_seeds_differ(a, b):
    idx = list(range(20))
    ta, ga = augment_params(CFG, a[0], a[1], idx)
    tb, gb = augment_params(CFG, b[0], b[1], idx)
    assert not torch.equal(ta, tb) and not torch.equal(ga, gb)
    assert (ta != tb).sum() == 20  # every utterance gets a new draw
