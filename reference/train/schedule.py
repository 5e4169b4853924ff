"""Where in training the evaluations happen (`train.eval_every_samples`).

The rule, which the trainer, the MLPerf log and the compliance rules share:

* an evaluation follows the last training step of every epoch;
* with ``eval_every_samples = E > 0``, also inside each epoch, after the first
  step at which the epoch's global samples reach k × E (k = 1, 2, ...), as long
  as that step is not the epoch's last (that one is the epoch-end evaluation).

With ``eval_start_samples = S0 > 0`` no point (mid-epoch or epoch end) before
S0 global training samples is evaluated, except the last epoch's end: a run
whose target cannot be reached that early does not pay for evaluations that
cannot stop it (MLPerf ResNet's ``eval_offset``).

The grid restarts at every epoch, so each epoch is cut the same way (a quarter
epoch stays a quarter epoch whatever the remainder), and samples are global
(all ranks' steps: one step = one global batch), so the points do not depend on
the number of cards for a fixed global batch.

In the MLPerf log an evaluation's ``epoch_num`` is the training done so far in
epochs: ``epoch - 1 + steps_done / steps_per_epoch`` inside an epoch (fractional,
as MLPerf allows for sub-epoch evaluation), the integer ``epoch`` at its end;
``samples_count`` is the global samples trained since the start of the run.
"""
from __future__ import annotations


def eval_steps(steps_per_epoch: int, global_batch: int, every_samples: int,
               epoch: int = 1, start_samples: int = 0) -> list[int]:
    """Steps done in 1-based `epoch` (1-based counts) after which a mid-epoch eval
    runs: the grid points, less those before `start_samples` global samples."""
    if every_samples <= 0 or steps_per_epoch <= 0:
        return []
    before = (epoch - 1) * steps_per_epoch * global_batch  # samples of the earlier epochs
    points: list[int] = []
    k = 1
    while True:
        step = -(-k * every_samples // global_batch)  # first step with step*gb >= k*E
        if step >= steps_per_epoch:
            return points
        if (not points or step > points[-1]) and before + step * global_batch >= start_samples:
            points.append(step)
        k += 1


def evaluates_epoch_end(epoch: int, last_epoch: int, steps_per_epoch: int, global_batch: int,
                        start_samples: int = 0) -> bool:
    """Whether the end of 1-based `epoch` is evaluated (always the last epoch's)."""
    return epoch >= last_epoch or epoch * steps_per_epoch * global_batch >= start_samples


def epoch_position(epoch: int, steps_done: int, steps_per_epoch: int) -> int | float:
    """Training done in epochs at an eval point: an int at the epoch end, else a fraction."""
    if steps_done >= steps_per_epoch:
        return epoch
    return round(epoch - 1 + steps_done / steps_per_epoch, 6)
