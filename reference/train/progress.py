"""Per-epoch training progress on rank 0: a live tqdm bar on a terminal, plain lines otherwise.

On a terminal (the stream is a TTY) the bar shows steps, utterances per second
and the ETA of the epoch, with the last logged loss. In CI, in a log file or
behind a pipe, a bar's carriage returns would only make noise: then one plain
line every `every` steps carries the same facts.

The loss is read from the device only every `every` steps (the caller passes
None otherwise), so the progress display adds no per-step synchronisation.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


class EpochProgress:
    """Progress of one epoch's steps; `enabled=False` (other ranks) prints nothing."""

    def __init__(self, epoch: int, total_steps: int, start_step: int, global_batch: int,
                 every: int, enabled: bool = True, stream: TextIO | None = None,
                 bar: bool | None = None) -> None:
        self.epoch, self.total, self.gb = epoch, total_steps, global_batch
        self.every = max(1, every)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.step = start_step
        self._start_step = start_step
        self._t0 = time.perf_counter()
        self._bar = None
        self._paused: float | None = None
        if enabled and (is_terminal(self.stream) if bar is None else bar):
            from tqdm import tqdm  # only where a bar is drawn

            self._bar = tqdm(total=total_steps, initial=start_step, desc=f"epoch {epoch}",
                             unit="step", file=self.stream, dynamic_ncols=True, leave=True,
                             mininterval=0.5, bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                             "{n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]")
            self._bar.set_postfix_str(self._rate_text(), refresh=False)

    @property
    def is_bar(self) -> bool:
        return self._bar is not None

    def _rate(self) -> float | None:
        dt = time.perf_counter() - self._t0
        done = self.step - self._start_step
        return done * self.gb / dt if dt > 0 and done > 0 else None

    def _rate_text(self) -> str:
        rate = self._rate()
        return "? utt/s" if rate is None else f"{rate:.1f} utt/s"

    def update(self, loss: float | None = None) -> None:
        """One global step done; `loss` (NLL per utterance) when it was read this step."""
        self.step += 1
        if not self.enabled:
            return
        if self._bar is not None:
            post = self._rate_text() + ("" if loss is None else f", loss {loss:.3f}")
            self._bar.set_postfix_str(post, refresh=False)
            self._bar.update(1)
        elif self.step % self.every == 0 or self.step == self.total:
            rate = self._rate()
            left = self.total - self.step
            eta = _clock(left * self.gb / rate) if rate else "?"
            text = (f"[train] epoch {self.epoch} step {self.step}/{self.total} "
                    f"({100.0 * self.step / max(self.total, 1):.0f}%) {self._rate_text()} ETA {eta}")
            if loss is not None:
                text += f" loss(nll/utt) {loss:.3f}"
            print(text, file=self.stream, flush=True)

    def write(self, text: str) -> None:
        """A message that must not tear the bar (evaluation results, warnings)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def pause(self) -> None:
        """Leave a pause (an evaluation inside the epoch) out of the rate and the ETA."""
        self._paused = time.perf_counter()

    def resume(self) -> None:
        paused, self._paused = self._paused, None
        if paused is not None:
            self._t0 += time.perf_counter() - paused
            if self._bar is not None:
                self._bar.unpause()  # tqdm's clock skips the time since its last print

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
