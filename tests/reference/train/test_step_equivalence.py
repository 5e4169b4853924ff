"""The sync-free training step gives exactly the old step's results (issue #13).

Real audio (the mini corpus), the real model, CTC and optimizers; the old step
is kept verbatim in `legacy_step.py`. Losses, gradients, parameters and
optimizer state must be bit-identical after each step, for the host-decided
(CPU) and the device-masked (accelerator) update, and for a step whose loss
is non-finite (the update skipped, state untouched).
"""
from __future__ import annotations

import copy

import pytest
import torch

from harness.perf.sources import manifest_batches, to_batch
from reference.config import AugmentConfig, FeatureConfig, ModelConfig, OptimConfig
from reference.model.deepspeech2 import DeepSpeech2
from reference.train.optim import build_optimizer
from reference.train.step import StepFlags, masked_step, max_tempo, train_step
import legacy_step  # noqa: E402  (this folder is on sys.path under pytest)

FEAT, AUG = FeatureConfig(), AugmentConfig()


def _batches(corpus, n=3, size=3):
    return [to_batch(items) for items in manifest_batches(corpus / "train.jsonl", size, n)]


def _cap(batch):
    offs = (torch.cumsum(batch.target_lengths, 0) - batch.target_lengths).tolist()
    return torch.tensor([max_tempo(int(batch.lengths[k]),
                                   batch.targets[o:o + int(batch.target_lengths[k])].tolist(), FEAT)
                         for k, o in enumerate(offs)], dtype=torch.float32)


def _pair(model_cfg, optim_cfg):
    torch.manual_seed(5)
    a = DeepSpeech2(model_cfg, FEAT)
    b = copy.deepcopy(a)
    return (a, build_optimizer(optim_cfg, a.parameters(), 8)), (b, build_optimizer(optim_cfg, b.parameters(), 8))


def _assert_same(old, new, grads=True):
    """Parameters, buffers, optimizer state (and gradients, unless `grads` is False)."""
    (ma, oa), (mb, ob) = old, new
    for (name, p), q in zip(ma.named_parameters(), mb.parameters()):
        assert torch.equal(p, q), f"parameter {name} differs"
        if not grads:
            continue
        assert (p.grad is None) == (q.grad is None), f"gradient of {name}: None on one side"
        if p.grad is not None:
            assert torch.equal(p.grad, q.grad), f"gradient of {name} differs"
    for (name, x), y in zip(ma.named_buffers(), mb.buffers()):
        # NaN input poisons batch-norm statistics in the old step as in the new one.
        assert torch.equal(x, y) or torch.equal(x.isnan(), y.isnan()) and torch.equal(
            x.nan_to_num(), y.nan_to_num()), f"buffer {name} differs"
    sa, sb = oa.state_dict()["state"], ob.state_dict()["state"]
    assert sa.keys() <= sb.keys()
    for k in sb:
        for key, v in sb[k].items():
            ref = sa.get(k, {}).get(key)
            if ref is None:  # created by a masked first step: must be the optimizer's zero init
                assert torch.count_nonzero(v) == 0, f"state {k}.{key} created non-zero"
            else:
                assert torch.equal(torch.as_tensor(ref), torch.as_tensor(v)), f"state {k}.{key} differs"


MODELS = {
    "bigru": ModelConfig("gru", 32, 2, True, conv_channels=8),  # CPU fast GRU path, two directions
    "lstm": ModelConfig("lstm", 24, 2, False, conv_channels=8),  # vendor RNN kernels
}
OPTIMS = {"adamw": OptimConfig(name="adamw", lr=1e-3, weight_decay=1e-5),
          "sgd": OptimConfig(name="sgd", lr=1e-3, momentum=0.9, nesterov=True, weight_decay=1e-5)}


@pytest.mark.parametrize("model_key,optim_key,host_decides",
                         [("bigru", "adamw", True), ("bigru", "adamw", False),
                          ("lstm", "sgd", False)])
def test_new_step_equals_old_step(mini_corpus, model_key, optim_key, host_decides):
    old, new = _pair(MODELS[model_key], OPTIMS[optim_key])
    old[0].train(), new[0].train()
    for epoch, batch in enumerate(_batches(mini_corpus, n=2), start=1):
        cap = _cap(batch)
        skipped, nll_u, nll_c, seed = legacy_step.train_step(*old, batch, FEAT, AUG, 1, epoch, cap,
                                                             400.0, with_seed=True)
        out = train_step(*new, batch, feat=FEAT, aug=AUG, seed=1, epoch=epoch, tempo_cap=cap,
                         device=torch.device("cpu"), clip_norm=400.0, with_seed=True,
                         host_decides=host_decides)
        assert not skipped and bool(out.ok)
        assert torch.equal(nll_u, out.nll_utt) and torch.equal(nll_c, out.nll_char)
        assert torch.equal(seed, out.seed)
        _assert_same(old, new)


@pytest.mark.parametrize("host_decides,first", [(True, False), (False, False), (False, True)])
def test_nonfinite_step_is_skipped_like_the_old_one(mini_corpus, host_decides, first):
    old, new = _pair(MODELS["bigru"], OPTIMS["adamw"])
    batches = _batches(mini_corpus)
    flags = StepFlags(torch.device("cpu"))
    kw = dict(feat=FEAT, aug=AUG, seed=1, tempo_cap=None, device=torch.device("cpu"),
              clip_norm=400.0, host_decides=host_decides)
    if not first:  # one good step first, so that the optimizer has state to protect
        legacy_step.train_step(*old, batches[0], FEAT, AUG, 1, 1, None, 400.0)
        flags.count(train_step(*new, batches[0], epoch=1, **kw).ok)
    bad = copy.deepcopy(batches[1])
    bad.wave[1, 200] = float("nan")
    skipped, *_ = legacy_step.train_step(*old, bad, FEAT, AUG, 1, 2, None, 400.0)
    out = train_step(*new, bad, epoch=2, **kw)
    flags.count(out.ok)
    assert skipped and not bool(out.ok)
    # The masked update leaves the discarded (NaN) gradients in place, the old step
    # None: the next step's zero_grad drops both, so only the rest is compared.
    _assert_same(old, new, grads=host_decides)
    assert flags.poll() == (False, 1)
    # ... and training goes on exactly as the old step's after the skip.
    legacy_step.train_step(*old, batches[2], FEAT, AUG, 1, 3, None, 400.0)
    train_step(*new, batches[2], epoch=3, **kw)
    _assert_same(old, new)


def test_masked_step_keeps_or_applies_exactly():
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 3)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
    lin(torch.randn(4, 6)).sum().backward()
    before = [p.detach().clone() for p in lin.parameters()]
    masked_step(opt, torch.tensor(False))
    assert all(torch.equal(a, b) for a, b in zip(before, lin.parameters()))
    twin = copy.deepcopy(lin)  # a fresh optimizer: no state, as if the masked step never ran
    for a, b in zip(twin.parameters(), lin.parameters()):
        a.grad = b.grad.clone()
    topt = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    masked_step(opt, torch.tensor(True))
    topt.step()
    assert all(torch.equal(a, b) for a, b in zip(twin.parameters(), lin.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(before, lin.parameters()))


def test_stop_request_is_polled():
    flags = StepFlags(torch.device("cpu"))
    assert flags.poll() == (False, 0)
    flags.request_stop("SIGTERM")
    seen = []
    assert flags.poll(lambda t: (seen.append(t.clone()), t.mul_(2)), world_size=2) == (True, 0)
    assert seen[0].tolist() == [1, 0, 0, 0]  # [SIGTERM, SIGINT, other stop, skipped]
    # A peer's signal becomes this rank's reason, so every rank logs the same cause.
    peer = StepFlags(torch.device("cpu"))
    assert peer.poll(lambda t: t.add_(torch.tensor([0, 1, 0, 0]))) == (True, 0)
    assert peer.stop_reason == "SIGINT"


def test_checkpointed_optimizer_keeps_the_live_step_count_placement():
    from reference.train.step import match_step_counts

    lin = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(lin.parameters())
    lin(torch.randn(2, 3)).sum().backward()
    opt.step()
    saved = opt.state_dict()  # as a CPU run's checkpoint holds it: capturable False
    live = torch.optim.AdamW(lin.parameters())
    live.param_groups[0]["capturable"] = True  # what use_device_step_counts sets on a device
    fixed = match_step_counts(saved, live)
    assert fixed["param_groups"][0]["capturable"] is True
    assert saved["param_groups"][0]["capturable"] is False  # the checkpoint is not modified
    assert fixed["state"] is saved["state"]


def test_cut_edges_keep_every_ctc_target_feasible(mini_corpus):
    """With edges cut (silence_trim_s), tempo is capped on the shortened length."""
    from reference.data.features import frame_counts
    from reference.labels import min_ctc_frames
    from reference.model.deepspeech2 import output_frames
    from reference.train.step import device_features

    # A tempo so high that the cap always binds: only a cap on the cut length holds.
    aug = AugmentConfig(tempo_min=5.0, tempo_max=5.0, silence_max_s=0.1, silence_trim_s=0.1)
    for batch in _batches(mini_corpus, n=3, size=3):
        cap = _cap(batch)
        for epoch in range(1, 6):
            _, frames = device_features(batch, FEAT, aug, 1, epoch, cap, torch.device("cpu"))
            offs = (torch.cumsum(batch.target_lengths, 0) - batch.target_lengths).tolist()
            for k, o in enumerate(offs):
                need = min_ctc_frames(batch.targets[o:o + int(batch.target_lengths[k])].tolist())
                assert output_frames(int(frames[k])) >= need  # CTC: model steps >= labels
            # The cut really shortened some utterance below its uncut frame count.
            uncut = frame_counts(batch.lengths, FEAT, cap)
            assert (frames <= uncut).all()


def test_waves_start_at_their_epoch(mini_corpus):
    """Before `waves_from_epoch` the features are the clean ones; from it, augmented."""
    from reference.train.step import device_features

    batch = _batches(mini_corpus, n=1, size=3)[0]
    cpu = torch.device("cpu")
    clean = AugmentConfig()  # tempo and gain only
    waves = AugmentConfig(silence_max_s=0.3, noise_prob=1.0, waves_from_epoch=3)
    for epoch in (1, 2):
        a, fa = device_features(batch, FEAT, clean, 1, epoch, None, cpu)
        b, fb = device_features(batch, FEAT, waves, 1, epoch, None, cpu)
        assert torch.equal(fa, fb) and torch.equal(a, b)
    a, fa = device_features(batch, FEAT, clean, 1, 3, None, cpu)
    b, fb = device_features(batch, FEAT, waves, 1, 3, None, cpu)
    assert (fb > fa).any()  # added silence: more frames


@pytest.mark.parametrize("voice", [dict(warp_min=0.9, warp_max=1.1), dict(eq_db=6.0),
                                   dict(echo_prob=1.0)])
def test_voice_augmentation_starts_at_its_epoch_and_is_deterministic(mini_corpus, voice):
    """Warp, EQ and echo follow `waves_from_epoch` too, and repeat for the same draw."""
    from reference.train.step import device_features

    batch = _batches(mini_corpus, n=1, size=3)[0]
    cpu = torch.device("cpu")
    clean = AugmentConfig()
    aug = AugmentConfig(waves_from_epoch=2, **voice)
    a, fa = device_features(batch, FEAT, clean, 1, 1, None, cpu)
    b, fb = device_features(batch, FEAT, aug, 1, 1, None, cpu)
    assert torch.equal(fa, fb) and torch.equal(a, b)
    a, fa = device_features(batch, FEAT, clean, 1, 2, None, cpu)
    b, fb = device_features(batch, FEAT, aug, 1, 2, None, cpu)
    c, fc = device_features(batch, FEAT, aug, 1, 2, None, cpu)
    assert torch.equal(b, c) and torch.equal(fb, fc)
    if "echo_prob" in voice:
        assert (fb > fa).all()  # the echo's tail adds frames
    else:
        assert torch.equal(fa, fb) and (a - b).abs().max() > 0.05  # same frames, other spectrum
