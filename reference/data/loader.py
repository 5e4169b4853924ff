"""Utterance loading and batch collation for training and evaluation.

Audio is decoded with soundfile (via `reference.data.audio`) in the data workers or,
with `data.cache_audio`, once per process and then kept in RAM (a small corpus
decoded once costs less than re-reading it every epoch). Batches are padded
waveforms plus sample counts; features are computed later, on the device.
"""
from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from reference.data.audio import AudioError, load_audio
from reference.config import DataConfig, FeatureConfig
from reference.data.features import to_device
from reference.data.manifest import Utterance


# The batch tensors a training step reads on the device; the others (lengths)
# are read on the host, where they are free.
DEVICE_FIELDS = ("wave", "targets", "target_lengths")


@dataclass
class Batch:
    """A collated batch; `indices` refer to the manifest's utterance list.

    Its tensors live on the host. `pin_memory()` (which the DataLoader calls
    when `pin_memory=True`) page-locks them, so that copies to an accelerator
    can run without stalling the host; `copy_to` starts those copies and
    `on_device` returns them (or the host tensor itself on CPU).
    """

    wave: torch.Tensor  # (B, S) float32, zero padded
    lengths: torch.Tensor  # (B,) samples
    targets: torch.Tensor  # concatenated label ids
    target_lengths: torch.Tensor  # (B,)
    indices: list[int]
    device_tensors: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def pin_memory(self) -> "Batch":
        """The DataLoader's pinning protocol: a Batch whose tensors are page-locked."""
        return Batch(self.wave.pin_memory(), self.lengths.pin_memory(),
                     self.targets.pin_memory(), self.target_lengths.pin_memory(),
                     list(self.indices))

    def copy_to(self, device: torch.device) -> None:
        """Start the non-blocking copies of `DEVICE_FIELDS` to `device` (no-op on CPU)."""
        if device.type == "cpu":
            return
        for name in DEVICE_FIELDS:
            if name not in self.device_tensors:
                self.device_tensors[name] = to_device(getattr(self, name), device)

    def on_device(self, name: str, device: torch.device) -> torch.Tensor:
        """Field `name` on `device`: the prefetched copy, else a copy started now."""
        t = self.device_tensors.get(name)
        if t is not None and t.device == device:
            return t
        return to_device(getattr(self, name), device)


class UtteranceSet(Dataset):
    """Index → (waveform, target ids, index); bad audio yields None and is counted."""

    def __init__(self, utts: list[Utterance], targets: dict[int, list[int]],
                 data: DataConfig, feat: FeatureConfig, cache: bool) -> None:
        self.utts = utts
        self.targets = targets
        self.data = data
        self.feat = feat
        self.cache: dict[int, np.ndarray] | None = {} if cache else None
        self.load_errors = 0

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, i: int) -> tuple[np.ndarray, list[int], int] | None:
        wav = self.cache.get(i) if self.cache is not None else None
        if wav is None:
            try:
                wav = load_audio(self.utts[i].audio, self.feat.sample_rate,
                                 resample=self.data.allow_resample, downmix=self.data.allow_downmix)
            except AudioError as err:
                # Training never dies on one bad utterance: skip it, say which.
                self.load_errors += 1
                print(f"[data] skipping {err}", file=sys.stderr)
                return None
            if self.cache is not None:
                self.cache[i] = wav
        return wav, self.targets[i], i


def collate(items: list[tuple[np.ndarray, list[int], int] | None]) -> Batch | None:
    items = [it for it in items if it is not None]
    if not items:
        return None
    longest = max(len(w) for w, _, _ in items)
    wave = torch.zeros(len(items), longest, dtype=torch.float32)
    for k, (w, _, _) in enumerate(items):
        wave[k, :len(w)] = torch.from_numpy(w)
    lengths = torch.tensor([len(w) for w, _, _ in items], dtype=torch.long)
    targets = torch.tensor([t for _, tgt, _ in items for t in tgt], dtype=torch.long)
    target_lengths = torch.tensor([len(tgt) for _, tgt, _ in items], dtype=torch.long)
    return Batch(wave, lengths, targets, target_lengths, [i for _, _, i in items])


class _ListSampler:
    """A batch sampler whose batch list can be replaced between epochs.

    With persistent workers the DataLoader keeps its workers; only this list
    (read in the main process) changes per epoch.
    """

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def ignore_stop_signals(_worker_id: int) -> None:
    """DataLoader worker start: leave SIGTERM/SIGINT to the training process.

    A launcher's or torchrun's signal reaches the whole process group; torch's
    worker handler would die of it and the loader would fail the run
    ("DataLoader worker ... killed by signal") before the trainer checkpoints
    and stops at its step boundary. The parent shuts its workers down itself
    (`BatchLoader.close`).
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class BatchLoader:
    """Iterates given per-rank batches of a dataset, with optional persistent workers."""

    def __init__(self, dataset: UtteranceSet, num_workers: int, pin_memory: bool) -> None:
        self.sampler = _ListSampler()
        self.dataset = dataset
        self.loader = DataLoader(dataset, batch_sampler=self.sampler, collate_fn=collate,
                                 num_workers=num_workers, pin_memory=pin_memory,
                                 persistent_workers=num_workers > 0,
                                 worker_init_fn=ignore_stop_signals if num_workers > 0 else None)

    def iterate(self, batches: list[list[int]]):
        self.sampler.batches = batches
        return iter(self.loader)

    def close(self) -> None:
        """Stop the persistent workers now. They ignore SIGTERM, so the terminate() that
        multiprocessing sends its children at interpreter exit would not end them, and its
        join would wait forever."""
        it = getattr(self.loader, "_iterator", None)
        if it is None:
            return
        shutdown = getattr(it, "_shutdown_workers", None)  # torch's own clean shutdown
        if shutdown is not None:
            shutdown()
        for w in getattr(it, "_workers", []):
            if w.is_alive():  # stuck past shutdown's join: end it for good
                w.kill()
                w.join()
        self.loader._iterator = None
