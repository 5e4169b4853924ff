"""The trainer's event interface: what the harness (logging, timing) subscribes to.

The harness depends on these events, never on the trainer's internals. All
methods are no-ops here; every payload is a plain dict with units in its keys.
Events fire on every rank; loggers decide themselves to write on rank 0 only.
"""
from __future__ import annotations

from typing import Any


class TrainerHooks:
    """Base class: override what you need."""

    def on_setup_done(self, info: dict[str, Any]) -> None:
        """Model built, manifests read (no audio yet): sample counts, parameters."""

    def on_run_start(self) -> None:
        """The timed region begins; audio is read only after this."""

    def on_init_loss(self, values: dict[str, Any]) -> None:
        """Losses of the untrained model on the first training batch."""

    def on_epoch_start(self, epoch: int) -> None:
        """A training epoch (1-based) begins."""

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        """Training part of an epoch done: losses, throughput, timings, `samples_count`;
        `complete` is False when a mid-epoch evaluation reached the target."""

    def on_eval_start(self, epoch_num: int | float) -> None:
        """An evaluation begins. `epoch_num` is the training done in epochs: the
        integer epoch at its end, a fraction at a mid-epoch point
        (`train.eval_every_samples`, see `reference/train/schedule.py`)."""

    def on_eval_end(self, epoch_num: int | float, record: dict[str, Any]) -> None:
        """Evaluation done: reference WER, corpus WER, CER (all in %), `samples_count`
        (global training samples so far), `at_epoch_end`."""

    def on_block_end(self, epoch: int) -> None:
        """Epoch `epoch` and its evaluations are over (also when the target was
        reached at an evaluation inside it, which ends the run)."""

    def on_checkpoint(self, path: str, epoch: int, global_step: int) -> None:
        """A checkpoint was written."""

    def on_run_end(self, status: str, reason: str, summary: dict[str, Any]) -> None:
        """The run is over (always called, also on errors): success or aborted."""


class HookList(TrainerHooks):
    """Fan one event out to several hook objects, in order."""

    def __init__(self, *hooks: TrainerHooks) -> None:
        self.hooks = [h for h in hooks if h is not None]

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):
            targets = object.__getattribute__(self, "hooks")
            return lambda *a, **k: [getattr(h, name)(*a, **k) for h in targets] and None
        return object.__getattribute__(self, name)
