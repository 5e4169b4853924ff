"""Warm-up before run_start changes nothing: parameters, statistics, optimizer, RNG (issue #13)."""
from __future__ import annotations

import copy
import random

import numpy as np
import torch

from harness.perf.sources import manifest_batches, to_batch
from reference.config import AugmentConfig, FeatureConfig, ModelConfig, OptimConfig
from reference.model.deepspeech2 import DeepSpeech2
from reference.train.optim import build_optimizer
from reference.train.step import train_step
from reference.train.warmup import longest_samples, warm_up

FEAT, AUG, CPU = FeatureConfig(), AugmentConfig(), torch.device("cpu")


def test_warm_up_leaves_the_run_unchanged(mini_corpus):
    torch.manual_seed(2)
    model = DeepSpeech2(ModelConfig("gru", 24, 2, True, conv_channels=8), FEAT).train()
    opt = build_optimizer(OptimConfig(name="adamw"), model.parameters(), 3)
    batches = [to_batch(b) for b in manifest_batches(mini_corpus / "train.jsonl", 3, 2)]
    kw = dict(feat=FEAT, aug=AUG, seed=1, tempo_cap=None, device=CPU, clip_norm=400.0)
    train_step(model, opt, batches[0], epoch=1, **kw)  # optimizer state to protect
    twin = copy.deepcopy(model)
    twin_opt = build_optimizer(OptimConfig(name="adamw"), twin.parameters(), 3)
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # load_state_dict shares tensors
    rng = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    seconds = warm_up(model, model, opt, batch_size=3, samples=longest_samples(1.0, FEAT, AUG),
                      feat=FEAT, aug=AUG, device=CPU, clip_norm=400.0)
    assert seconds > 0
    assert torch.equal(torch.get_rng_state(), rng[0])
    assert np.array_equal(np.random.get_state()[1], rng[1]) and random.getstate() == rng[2]
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), k
    assert all(p.grad is None for p in model.parameters())
    a, b = opt.state_dict()["state"], twin_opt.state_dict()["state"]
    assert a.keys() == b.keys() and all(
        torch.equal(torch.as_tensor(a[k][n]), torch.as_tensor(b[k][n])) for k in a for n in a[k])
    # ... and the next real step is the same as without the warm-up.
    out = train_step(model, opt, batches[1], epoch=1, **kw)
    ref = train_step(twin, twin_opt, batches[1], epoch=1, **kw)
    assert torch.equal(out.nll_utt, ref.nll_utt)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), twin.parameters()))


def test_longest_samples_covers_the_slowest_tempo():
    assert longest_samples(2.0, FEAT, AUG) == int(np.ceil(2.0 * 16000 / 0.85))
    assert longest_samples(2.0, FEAT, AugmentConfig(enabled=False)) == 32000
