"""An exponential moving average (EMA) of the model's weights, for evaluation.

Training at batch 8 with Adam moves the weights noisily; the average of the
last few hundred steps' weights decodes better than the last step's. MLPerf's
RNN-T reference evaluates such an average (its `model_eval_ema_factor`); here
it is `train.ema_decay` (0 = off), logged as `model_eval_ema_factor`.

After every optimizer step ``avg ← avg + (1 − d)·(w − avg)`` with
``d = min(decay, (1 + n) / (10 + n))`` at update n (counted from 1): the
usual warm-up, so the first averages are not dominated by the random
initial weights. Only the parameters are averaged; batch-norm running
statistics stay the live model's (they are themselves running averages).

Evaluation swaps the average into the model (`swapped`) and swaps the live
weights back afterwards, so training continues from the live weights. The
average travels in checkpoints, so a resumed run evaluates the same weights
and `harness eval` of a checkpoint scores what the run scored.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import nn

WARMUP_OFFSET = 10  # d_n = (1 + n) / (WARMUP_OFFSET + n) caps the decay early on


def effective_decay(decay: float, updates: int) -> float:
    """The decay applied at update number `updates` (1-based)."""
    return min(decay, (1.0 + updates) / (WARMUP_OFFSET + updates))


class WeightAverage:
    """EMA of `model`'s parameters, on the parameters' device and dtype."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.params = [p for p in model.parameters()]
        with torch.no_grad():
            self.avg = [p.detach().clone() for p in self.params]
        self.updates = 0

    def update(self) -> None:
        """Fold the current weights in (no host sync: one foreach op on the device)."""
        self.updates += 1
        weight = 1.0 - effective_decay(self.decay, self.updates)
        with torch.no_grad():  # torch >= 2.0 has the foreach lerp (the oldest supported: 2.1)
            torch._foreach_lerp_(self.avg, [p.detach() for p in self.params], weight)

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """The average in the model's parameters for the block; the live weights after."""
        with torch.no_grad():
            live = [p.detach().clone() for p in self.params]
            for p, a in zip(self.params, self.avg):
                p.copy_(a)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, w in zip(self.params, live):
                    p.copy_(w)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates,
                "avg": [a.detach().cpu() for a in self.avg]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _copy_checked(self.avg, state["avg"])
        self.updates = int(state["updates"])


def _copy_checked(dst: list[torch.Tensor], src: list[torch.Tensor]) -> None:
    if len(src) != len(dst) or any(a.shape != b.shape for a, b in zip(src, dst)):
        raise ValueError("checkpoint's weight average does not match the model's parameters")
    with torch.no_grad():
        for d, s in zip(dst, src):
            d.copy_(s)


def load_average_into(model: nn.Module, state: dict[str, Any]) -> None:
    """Put a checkpoint's averaged weights into `model`'s parameters (for evaluation)."""
    _copy_checked(list(model.parameters()), state["avg"])
