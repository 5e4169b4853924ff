"""Batches are really pinned for an accelerator, and prefetch keeps the batch order."""
from __future__ import annotations

import pytest
import torch

from reference.config import DataConfig, FeatureConfig
from reference.data.loader import BatchLoader, UtteranceSet
from reference.data.manifest import load_manifest
from reference.labels import encode
from reference.device import decide
from reference.train.step import prefetch


def _loader(corpus, pin):
    utts = load_manifest(corpus / "dev.jsonl")[:6]
    targets = {i: encode(u.read_text()) for i, u in enumerate(utts)}
    return BatchLoader(UtteranceSet(utts, targets, DataConfig(), FeatureConfig(), cache=False), 0, pin)


def test_batches_are_pinned_on_an_accelerator(mini_corpus):
    kind = decide("auto").kind
    if kind == "cpu":
        pytest.skip("no accelerator: pinned memory needs one")
    dev = torch.device(kind, 0)
    batch = next(iter(_loader(mini_corpus, pin=True).iterate([[0, 1, 2]])))
    assert all(t.is_pinned() for t in (batch.wave, batch.lengths, batch.targets, batch.target_lengths))
    got = list(prefetch(_loader(mini_corpus, pin=True).iterate([[0, 1], [2, 3]]), dev))
    assert [b.indices for b in got] == [[0, 1], [2, 3]]
    assert torch.equal(got[1].device_tensors["wave"].cpu(), got[1].wave)


def test_prefetch_on_cpu_passes_batches_through(mini_corpus):
    batches = list(_loader(mini_corpus, pin=False).iterate([[0, 1], [2], [3, 4, 5]]))
    got = list(prefetch(iter(batches), torch.device("cpu")))
    assert [b is a for a, b in zip(batches, got)] == [True] * 3
    assert got[0].on_device("wave", torch.device("cpu")) is got[0].wave
