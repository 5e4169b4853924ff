"""One training step, shared by the trainer and `make perf`, with no host synchronisation.

`Trainer` steps a model with `train_step`; `harness.perf` times the same
function instead of keeping its own copy, so the throughput it measures is
the trainer's: tempo cap → augmentation → features on the device → forward →
CTC losses → backward → clip → (masked) optimizer update.

On an accelerator every value the host needs to launch the step is known on
the host before the step starts: frame counts, the padded lengths, the
valid-frame index of the model's batch norm and the CTC lengths are computed
from the batch's sample and target counts (host tensors) and only copied to
the device, from pinned memory, without waiting. What used to need a device
read-back each step is decided on the device instead:

* the non-finite skip: a non-finite loss seeds NaN into its rank's gradients
  (`backward(gradient=nan)`), DDP's gradient all-reduce spreads it, so the
  clipped gradient norm — identical on every rank — is non-finite on all of
  them; the optimizer update is then masked on the device (`masked_step`).
  The skips are counted on the device (`StepFlags`) and read at poll points;
* the stop request (a signal): a device flag all-reduced together with that
  count at poll points (`StepFlags.poll`), so every rank stops at the same step.

On CPU the values are the same bits as before (tests/reference/train/
test_step_equivalence.py pins losses, gradients and updates to the old step).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterable, Iterator

import torch
from torch import nn

from reference.data.augment import augment_params, augment_waves, spectral_params
from reference.config import AugmentConfig, FeatureConfig
from reference.data.loader import Batch
from reference.data.features import featurize, frame_counts, num_bins, num_frames, stft_bins, to_device
from reference.labels import min_ctc_frames
from reference.model.loss import ctc_per_utterance, seed_loss
from reference.model.deepspeech2 import min_input_frames

POLL_EVERY_STEPS = 10  # a stop request is seen within this many steps (and at log points)


def max_tempo(samples: int, target: list[int], feat: FeatureConfig) -> float:
    """Highest tempo that keeps an utterance's CTC target feasible (frames shrink with tempo)."""
    frames = num_frames(samples, feat)
    return max(frames / min_input_frames(min_ctc_frames(target)), 1e-3)


def device_features(batch: Batch, feat: FeatureConfig, aug: AugmentConfig, seed: int,
                    epoch: int | None, tempo_cap: torch.Tensor | None,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(features on `device`, frames per utterance on the host); no augmentation when
    `epoch` is None. `tempo_cap` holds each utterance's `max_tempo`."""
    tempo = gain = spectral = None
    wave, lengths = batch.wave, batch.lengths
    if epoch is not None:
        tempo, gain = augment_params(aug, seed, epoch, batch.indices)
        # Edge silence, noise and echo on the host (the same tensors when off); the
        # warp and EQ positions and gains, also from the host, apply on the device.
        new_lengths = lengths
        if epoch >= aug.waves_from_epoch:
            wave, new_lengths = augment_waves(aug, seed, epoch, batch.indices, wave, lengths,
                                              feat.sample_rate)
            spectral = spectral_params(aug, seed, epoch, batch.indices, stft_bins(feat))
        if tempo is not None and tempo_cap is not None:
            # The cap holds for the original length; added silence only adds frames
            # (the cap stays), a cut edge removes some: the cap is frames / the
            # CTC minimum, so it shrinks with the frames.
            before, after = num_frames(lengths, feat), num_frames(new_lengths, feat)
            # (1 - 1e-5): float rounding of cap × ratio must not lose the last frame.
            ratio = after.to(torch.float32) / before.to(torch.float32) * (1 - 1e-5)
            scale = torch.where(after < before, ratio, torch.ones_like(ratio))
            tempo = torch.minimum(tempo, tempo_cap * scale)
        lengths = new_lengths
    frames = frame_counts(lengths, feat, tempo)  # host, no sync
    # The prefetched copy serves unless augmentation made a new waveform on the host.
    wave = batch.on_device("wave", device) if wave is batch.wave else to_device(wave, device)
    with torch.no_grad():
        # lengths, gain and tempo stay host tensors: featurize copies what it needs.
        feats, _ = featurize(wave, lengths, feat, gain, tempo, spectral)
    return feats, frames


def batch_losses(logits: torch.Tensor, out_lens: torch.Tensor, batch: Batch,
                 device: torch.device, with_seed: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(CTC NLL per utterance, per character, the seed's raw-logit quantity or None).

    The CTC lengths go to `F.ctc_loss` as host tensors (what its kernels read
    on the host anyway); only the targets and the per-character divisor are
    device copies.
    """
    targets = batch.on_device("targets", device)
    tlens_d = batch.on_device("target_lengths", device)
    per_utt = ctc_per_utterance(logits, out_lens, targets, batch.target_lengths)
    nll_utt = per_utt.sum() / per_utt.shape[0]
    nll_char = per_utt.sum() / tlens_d.sum()
    seed = seed_loss(logits, out_lens, targets, batch.target_lengths) if with_seed else None
    return nll_utt, nll_char, seed


# ------------------------------------------------------------- masked update
def use_device_step_counts(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Keep optimizer step counters on the device where the optimizer can (Adam/AdamW
    ``capturable``), so that `masked_step` can mask them without a host read.

    Call before loading optimizer state. No-op on CPU (nothing to gain) and for
    optimizers without step counters (SGD).
    """
    if device.type == "cpu":
        return
    for group in optimizer.param_groups:
        if "capturable" in group:
            group["capturable"] = True
    if "capturable" in optimizer.defaults:
        optimizer.defaults["capturable"] = True


def match_step_counts(saved: dict[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """`saved` (an optimizer state dict, e.g. from a checkpoint) with each group's
    ``capturable`` (and ``fused``/``foreach``) set as in the live `optimizer`, so that `load_state_dict` puts
    the step counts where `use_device_step_counts` wants them (a checkpoint from
    a CPU run would otherwise switch it off again)."""
    groups = []
    for g, live in zip(saved.get("param_groups", []), optimizer.param_groups):
        g = dict(g)
        # Also how the update runs, which is this process's choice, not the
        # checkpoint's: a fused CPU AdamW's state resumed under a torch without
        # that kernel (< 2.4) would otherwise ask for it and fail at the first step.
        for key in ("capturable", "fused", "foreach"):
            if key in g and key in live:
                g[key] = live[key]
        groups.append(g)
    return {**saved, "param_groups": groups}


def masked_step(optimizer: torch.optim.Optimizer, ok: torch.Tensor) -> None:
    """`optimizer.step()` whose effect is kept only where the device flag `ok` is true.

    Parameters and optimizer state are restored on the device with
    `torch.where(ok, new, old)`: exactly the old values when `ok` is false and
    exactly the stepped ones when true. State created by this step (the first
    one) is reset to zeros when `ok` is false, which is what the optimizers
    initialise it to (SGD's momentum buffer then starts as 0·m + g = g, as a
    fresh one). A state tensor on the host (Adam's step count without
    ``capturable``) needs `ok` on the host: one read-back, counted by the sync
    counter; `use_device_step_counts` avoids it.
    """
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    old_params = [p.detach().clone() for p in params]
    old_state: list[dict[str, torch.Tensor]] = []
    for p in params:
        st = optimizer.state.get(p, {})
        old_state.append({k: v.clone() for k, v in st.items() if isinstance(v, torch.Tensor)})
    optimizer.step()
    ok_host: torch.Tensor | None = None
    with torch.no_grad():
        for p, old in zip(params, old_params):
            p.copy_(torch.where(ok, p, old))
        for p, saved in zip(params, old_state):
            for k, v in optimizer.state.get(p, {}).items():
                if not isinstance(v, torch.Tensor):
                    continue
                before = saved.get(k)
                if before is None:
                    before = torch.zeros_like(v)
                flag = ok
                if v.device.type == "cpu" and v.dim() == 0:
                    # A host-side counter (Adam's step without `capturable`): the
                    # host must know `ok`. One read-back per step, not per tensor.
                    if ok_host is None:
                        ok_host = ok.cpu()
                    flag = ok_host
                v.copy_(torch.where(flag, v, before))


@dataclass
class StepOutput:
    """What one step leaves on the device (nothing here has been read back)."""

    nll_utt: torch.Tensor
    nll_char: torch.Tensor
    seed: torch.Tensor | None
    ok: torch.Tensor  # bool, 0-dim: the update was applied
    frames: torch.Tensor  # host: feature frames per utterance


def train_step(net: nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, *,
               feat: FeatureConfig, aug: AugmentConfig, seed: int, epoch: int,
               tempo_cap: torch.Tensor | None, device: torch.device, clip_norm: float,
               loss_kind: str = "ctc_nll", with_seed: bool = False,
               autocast: Callable[[], ContextManager[Any]] = nullcontext,
               host_decides: bool | None = None,
               mark: Callable[[str], None] | None = None,
               scaler: Any | None = None) -> StepOutput:
    """One training step of `net` (a model or its DDP wrapper).

    `host_decides`: read the finite flag on the host and skip `optimizer.step()`
    (free on CPU, where there is no device to wait for: the default there), or
    mask the update on the device (`masked_step`, the default on accelerators).
    Both give the same parameters and optimizer state. `mark(phase)`, when given,
    is called at the phase boundaries (`make perf`'s profiled step). `scaler`: a
    GradScaler (`train.amp: fp16`, reference/train/precision.py); its `step` skips
    a non-finite update itself and reads its inf flag on the host (one sync per
    step, the price of fp16 loss scaling).
    """
    mark = mark or (lambda _phase: None)
    if host_decides is None:
        host_decides = device.type == "cpu"
    feats, frames = device_features(batch, feat, aug, seed, epoch, tempo_cap, device)
    mark("featurize")
    with autocast():
        logits, out_lens = net(feats, frames)
    mark("head_fwd")
    nll_utt, nll_char, seed_q = batch_losses(logits, out_lens, batch, device,
                                             with_seed=with_seed or loss_kind != "ctc_nll")
    mark("loss_fwd")
    loss = nll_utt if loss_kind == "ctc_nll" else seed_q
    finite = torch.isfinite(loss)
    optimizer.zero_grad(set_to_none=True)
    # 1 where the loss is finite (the same gradients as loss.backward()), NaN
    # where not: every gradient of this rank, hence after DDP's all-reduce of
    # every rank, is then NaN, and the norm below says so on all ranks alike.
    seed_grad = torch.where(finite, torch.ones_like(loss), torch.full_like(loss, float("nan")))
    (loss if scaler is None else scaler.scale(loss)).backward(seed_grad)
    mark("backward")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if scaler is not None:
        scaler.unscale_(optimizer)  # clip the true gradients
    norm = nn.utils.clip_grad_norm_(params, clip_norm)
    ok = finite & torch.isfinite(norm)
    mark("clip")
    if scaler is not None:
        scaler.step(optimizer)  # skipped by the scaler when a gradient is inf/NaN
        scaler.update()
    elif host_decides:
        if bool(ok):
            optimizer.step()
        else:
            optimizer.zero_grad(set_to_none=True)
    else:
        masked_step(optimizer, ok)
    mark("optimizer")
    return StepOutput(nll_utt, nll_char, seed_q, ok, frames)


# --------------------------------------------------------- flags and polling
class StepFlags:
    """Device-side counters of a run, read only at poll points.

    `skipped` counts masked (non-finite) steps without a host read. A stop
    request (`request_stop`, e.g. from a signal handler: it only sets a host
    attribute) is folded into the same small all-reduce as that count at each
    `poll`, so all ranks learn of it at the same step and stop together.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.skipped = torch.zeros((), dtype=torch.long, device=device)
        self.stop_reason: str | None = None

    def count(self, ok: torch.Tensor) -> None:
        self.skipped += (~ok).to(torch.long)

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason

    def poll(self, all_reduce_sum: Callable[[torch.Tensor], Any] | None = None,
             world_size: int = 1) -> tuple[bool, int]:
        """(some rank asked to stop, skipped steps so far): one all-reduce, one read.

        A stop asked for by a signal on another rank becomes this rank's reason
        too (SIGTERM before SIGINT), so every rank's log says what happened.
        """
        slots = ("SIGTERM", "SIGINT")
        stop = torch.zeros(len(slots) + 1, dtype=torch.long)
        if self.stop_reason:
            stop[slots.index(self.stop_reason) if self.stop_reason in slots else len(slots)] = 1
        both = torch.cat([to_device(stop, self.device), self.skipped.reshape(1)])
        if all_reduce_sum is not None:
            all_reduce_sum(both)
        *asked, skipped = both.tolist()
        if not self.stop_reason:
            self.stop_reason = next((s for s, n in zip(slots, asked) if n > 0), None)
        stop_n = sum(asked)
        return stop_n > 0, skipped // max(1, world_size)


# ---------------------------------------------------------------- prefetch
def _stream_module(device: torch.device):
    """torch.cuda / torch.mlu / ... when it has streams, else None (CPU)."""
    if device.type == "cpu":
        return None
    mod = getattr(torch, device.type, None)
    needed = ("Stream", "stream", "current_stream")
    return mod if mod is not None and all(hasattr(mod, n) for n in needed) else None


def prefetch(batches: Iterable[Batch | None], device: torch.device) -> Iterator[Batch | None]:
    """Yield `batches` with their device copies already under way.

    While step k runs, batch k+1's tensors are copied to the device (from pinned
    memory, on a side stream where the device has streams); the compute stream
    waits for that copy only when it uses the batch. On CPU the batches pass
    through unchanged (the DataLoader's workers already overlap loading).
    """
    if device.type == "cpu":
        yield from batches
        return
    mod = _stream_module(device)
    side = mod.Stream(device=device) if mod is not None else None
    it = iter(batches)

    def start(b):
        if isinstance(b, Batch):
            with (mod.stream(side) if side is not None else nullcontext()):
                b.copy_to(device)
        return b

    end = object()
    nxt = start(next(it, end))
    while nxt is not end:
        cur = nxt
        nxt = start(next(it, end))
        if side is not None and cur is not None:
            compute = mod.current_stream(device)
            compute.wait_stream(side)
            for t in cur.device_tensors.values():
                t.record_stream(compute)  # the copy belongs to the compute stream now
        yield cur
