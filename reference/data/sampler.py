"""Length-aware, sharded batching that is identical for any number of ranks.

Training: the global batch sequence of an epoch is a pure function of
(seed, epoch, durations): epoch 1 in length order when SortaGrad is on (DS2
paper), later epochs shuffled within buckets of similar length and then in
batch order. Each global batch is cut into `world_size` contiguous per-card
slices, so 1 rank × batch 16 and 2 ranks × batch 8 see the same utterances in
the same steps. A trailing partial global batch is dropped (counted).

Evaluation: utterances are sorted by length and cut into batches; batch i goes
to rank i mod world_size, so every utterance is scored exactly once, in the
same batch composition whatever the rank count (no padding, no drops).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _sorted_indices(durations: dict[int, float] | list[float]) -> list[int]:
    items = durations.items() if isinstance(durations, dict) else enumerate(durations)
    return [i for i, _ in sorted(items, key=lambda kv: (kv[1], kv[0]))]


@dataclass
class TrainBatches:
    """Global batch order of each epoch and each rank's share of it."""

    durations: dict[int, float]
    batch_per_card: int
    world_size: int
    seed: int
    sortagrad: bool = True
    bucket_batches: int = 8

    @property
    def global_batch(self) -> int:
        return self.batch_per_card * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return len(self.durations) // self.global_batch

    @property
    def dropped_per_epoch(self) -> int:
        return len(self.durations) - self.steps_per_epoch * self.global_batch

    def global_batches(self, epoch: int) -> list[list[int]]:
        """The epoch's global batches (epoch numbers start at 1)."""
        order = _sorted_indices(self.durations)
        g = self.global_batch
        if not (self.sortagrad and epoch == 1):
            rng = np.random.default_rng([self.seed, epoch, 0x5A3])
            bucket = g * self.bucket_batches
            shuffled: list[int] = []
            for start in range(0, len(order), bucket):
                chunk = order[start:start + bucket]
                shuffled.extend(chunk[j] for j in rng.permutation(len(chunk)))
            order = shuffled
        batches = [order[i * g:(i + 1) * g] for i in range(len(order) // g)]
        if not (self.sortagrad and epoch == 1):
            batches = [batches[j] for j in rng.permutation(len(batches))]
        return batches

    def rank_batches(self, epoch: int, rank: int, start_step: int = 0) -> list[list[int]]:
        """This rank's per-card batches from `start_step` on (for resume mid-epoch)."""
        b = self.batch_per_card
        return [gb[rank * b:(rank + 1) * b] for gb in self.global_batches(epoch)[start_step:]]


def eval_batches(durations: dict[int, float], batch: int, rank: int, world_size: int
                 ) -> list[list[int]]:
    """This rank's evaluation batches (length-sorted batches dealt round-robin)."""
    order = _sorted_indices(durations)
    batches = [order[i:i + batch] for i in range(0, len(order), batch)]
    return batches[rank::world_size]
