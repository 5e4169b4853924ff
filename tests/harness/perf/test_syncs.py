"""The host-sync counter, and the training step's count on real data (issue #13)."""
from __future__ import annotations

import pytest
import torch

from harness.perf.sources import manifest_batches, to_batch
from harness.perf.syncs import (batch_host_tensors, count_syncs, cuda_sync_warnings,
                                optimizer_host_tensors)
from reference.config import AugmentConfig, FeatureConfig, ModelConfig, OptimConfig
from reference.model.deepspeech2 import DeepSpeech2
from reference.train.optim import build_optimizer
from reference.train.step import StepFlags, max_tempo, train_step

CPU = torch.device("cpu")


def _reads(host: torch.Tensor) -> None:
    n = int(host.max())  # host value: free
    dev = host.to(CPU, non_blocking=True)  # an async copy: free
    assert dev is not host  # the counter keeps the two sides apart
    _ = (dev * 2).sum().item()  # device read: 1
    _ = dev.nonzero()  # data-dependent shape: 1
    _ = host.to(CPU)  # blocking copy: 1
    _ = torch.tensor([1.0], device=CPU)  # blocking creation: 1
    _ = f"{dev.sum():.1f}"  # format reads: 1
    if dev.sum() > 0:  # bool: 1
        pass
    _ = dev[dev > 1]  # boolean mask index: 1
    dev[dev > 2] = 0  # boolean mask assignment: 1
    _ = host[host > 1]  # a host mask on a host tensor: free
    _ = torch.arange(n, device=CPU)  # creation from a host int: free


def test_counter_tells_device_reads_from_host_reads():
    host = torch.tensor([3, 1, 2])
    with count_syncs(host=[host]) as c:
        _reads(host)
    assert c.total == 8, dict(c.counts)


def test_counter_sees_mask_indexing_where_torch_bypasses_modes(monkeypatch):
    # torch 2.1 runs Tensor.__getitem__/__setitem__ without consulting modes; the
    # counter then routes them through itself. Forced here on any torch.
    import harness.perf.syncs as syncs

    before = {k: torch.Tensor.__dict__.get(k) for k in ("__getitem__", "__setitem__")}
    monkeypatch.setattr(syncs, "_indexing_reaches_modes", lambda: False)
    host = torch.tensor([3, 1, 2])
    with count_syncs(host=[host]) as c:
        assert torch.Tensor.__dict__.get("__getitem__") is not before["__getitem__"]
        _reads(host)
    assert c.total == 8 and c.counts["bool-mask index"] == 2, dict(c.counts)
    assert {k: torch.Tensor.__dict__.get(k) for k in before} == before  # restored
    x = torch.arange(5)
    x[x > 3] = 0
    assert x[x > 1].tolist() == [2, 3]


def _setup(corpus, optim):
    batches = [to_batch(b) for b in manifest_batches(corpus / "train.jsonl", 3, 2)]
    torch.manual_seed(0)
    model = DeepSpeech2(ModelConfig("gru", 32, 2, True, conv_channels=8), FeatureConfig()).train()
    return batches, model, build_optimizer(optim, model.parameters(), 3)


def _cap(batch, feat):
    offs = (torch.cumsum(batch.target_lengths, 0) - batch.target_lengths).tolist()
    return torch.tensor([max_tempo(int(batch.lengths[k]),
                                   batch.targets[o:o + int(batch.target_lengths[k])].tolist(), feat)
                         for k, o in enumerate(offs)], dtype=torch.float32)


@pytest.mark.parametrize("optim,expected", [
    (OptimConfig(name="sgd", momentum=0.9), 0),
    # Adam's step count is a host tensor unless `capturable` (set on accelerators by
    # use_device_step_counts; unsupported on CPU): one read-back to mask it.
    (OptimConfig(name="adamw"), 1)])
def test_training_step_syncs_at_most_once(mini_corpus, optim, expected):
    feat, aug = FeatureConfig(), AugmentConfig()
    batches, model, opt = _setup(mini_corpus, optim)
    flags = StepFlags(CPU)
    sums = torch.zeros((), dtype=torch.float64)
    kw = dict(feat=feat, aug=aug, seed=1, device=CPU, clip_norm=400.0, host_decides=False)
    train_step(model, opt, batches[0], epoch=2, tempo_cap=_cap(batches[0], feat), **kw)  # state exists
    batch = batches[1]
    cap = _cap(batch, feat)
    with count_syncs(host=batch_host_tensors(batch) + [cap] + optimizer_host_tensors(opt)) as c:
        out = train_step(model, opt, batch, epoch=2, tempo_cap=cap, **kw)
        flags.count(out.ok)  # the trainer's per-step bookkeeping, on the device
        sums += torch.where(out.ok, out.nll_utt.detach().to(torch.float64), torch.zeros_like(sums))
    assert c.total == expected, (dict(c.counts), dict(c.sites))
    with count_syncs() as c:
        assert flags.poll() == (False, 0)  # a poll point: the one read
    assert c.total == 1


def test_cpu_path_reads_the_flag_once(mini_corpus):
    """On CPU the trainer reads the finite flag itself (free there): exactly one read."""
    feat = FeatureConfig()
    batches, model, opt = _setup(mini_corpus, OptimConfig(name="sgd", momentum=0.9))
    batch = batches[0]
    with count_syncs(host=batch_host_tensors(batch)) as c:
        train_step(model, opt, batch, feat=feat, aug=AugmentConfig(), seed=1, epoch=None,
                   tempo_cap=None, device=CPU, clip_norm=400.0)
    assert dict(c.counts) == {"bool": 1}


def test_cuda_cross_check_is_none_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present: exercised by make device-check")
    assert cuda_sync_warnings(lambda: None) is None


def test_device_step_check_runs_on_cpu():
    from harness.perf.syncs import device_step_check

    rep = device_step_check(CPU, steps=1, batch=2, hidden=16, layers=1)
    assert rep["instrumented_syncs"] == 0 and rep["cuda_sync_debug_warnings"] is None
    assert rep["utt_s_masked_update"] > 0 and rep["utt_s_host_reads_flag"] > 0
