"""Training batches for the benchmark: the embedded corpus's real audio, else synthetic noise.

Real audio is preferred because step time depends on utterance length and on
the target lengths CTC sees; the batches are length-sorted (as the bucketed
sampler builds them) and chosen nearest the corpus's mean duration so every
timed step has the typical length. Without the corpus, deterministic noise of
the typical duration with random feasible targets stands in.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from harness.perf.system import SEED
from reference.data.loader import Batch, collate
from reference.labels import encode

TYPICAL_DURATION_S = 2.0  # the embedded corpus: mean 1.97 s (train split)
CHARS_PER_S = 15.0  # ~ the embedded corpus's speaking rate (for synthetic targets)


@dataclass
class Item:
    wave: np.ndarray
    target: list[int]
    index: int


@dataclass
class DataSource:
    kind: str  # "embedded" (real audio) | "synthetic" (noise)
    detail: str
    train_utterances: int  # for steps per epoch
    make_batches: Callable[[int, int], list[list[Item]]]
    manifest: Path | None = None


def _item(utt, index: int) -> Item:
    """One manifest utterance decoded and encoded (outside any clock)."""
    from reference.data.audio import load_audio

    return Item(load_audio(utt.audio), encode(utt.read_text()), index)


def manifest_batches(manifest: Path, batch: int, n: int) -> list[list[Item]]:
    """The first `n` batches of `manifest`, in its own order."""
    from reference.data.manifest import load_manifest

    utts = load_manifest(manifest)[:n * batch]
    items = [_item(u, i) for i, u in enumerate(utts)]
    return [items[k:k + batch] for k in range(0, len(items), batch)]


def _embedded_source(root: Path) -> DataSource | None:
    from reference.data.manifest import load_manifest

    manifest = root / "train.jsonl"
    if not manifest.is_file():
        return None
    utts = load_manifest(manifest)
    if not utts or any(u.duration is None for u in utts) or not utts[0].audio.is_file():
        return None
    durations = np.array([u.duration for u in utts], dtype=np.float64)
    mean = float(durations.mean())
    order = np.argsort(durations, kind="stable")

    def make(batch: int, n: int) -> list[list[Item]]:
        chunks = [order[i:i + batch] for i in range(0, len(order) - batch + 1, batch)]
        chunks.sort(key=lambda c: (abs(float(durations[c].mean()) - mean), int(c[0])))
        picked = [chunks[k % len(chunks)] for k in range(n)]
        cache: dict[int, Item] = {}
        out = []
        for c in picked:
            items = []
            for i in map(int, c):
                if i not in cache:
                    cache[i] = _item(utts[i], i)
                items.append(cache[i])
            out.append(items)
        return out

    return DataSource("embedded", f"real audio, {manifest} ({len(utts)} utterances, "
                      f"mean {mean:.2f} s); length-sorted batches nearest the mean length",
                      len(utts), make, manifest)


def synthetic_items(n: int, seed: int = SEED, duration_s: float = TYPICAL_DURATION_S,
                    sample_rate: int = 16000) -> list[Item]:
    """Deterministic noise utterances of ~`duration_s` (±5 %) with random feasible targets."""
    rng = np.random.default_rng([seed, 0x5EF])
    items = []
    for i in range(n):
        samples = int(round(duration_s * rng.uniform(0.95, 1.05) * sample_rate))
        wave = (0.1 * rng.standard_normal(samples)).astype(np.float32)
        chars = max(1, int(round(samples / sample_rate * CHARS_PER_S)))
        target = [int(x) for x in rng.integers(1, 29, size=chars)]
        items.append(Item(wave, target, i))
    return items


def _synthetic_source(train_utterances: int = 3000) -> DataSource:
    def make(batch: int, n: int) -> list[list[Item]]:
        items = synthetic_items(batch * n)
        return [items[k * batch:(k + 1) * batch] for k in range(n)]

    return DataSource("synthetic", f"deterministic noise waveforms of ~{TYPICAL_DURATION_S} s "
                      "(no data/embedded corpus found)", train_utterances, make)


def data_source(root: Path) -> DataSource:
    return _embedded_source(root) or _synthetic_source()


def to_batch(items: list[Item]) -> Batch:
    return collate([(it.wave, it.target, it.index) for it in items])
