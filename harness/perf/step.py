"""One training step exactly as the trainer takes it, plus a profiled variant.

`StepRunner.step` follows `reference.train.trainer.Trainer._train_epoch` step for
step (augmentation → featurize → forward → CTC losses → finite check →
backward → clip → optimizer) so the throughput measured is the trainer's, not
a simplified loop's. `step_profiled` splits one such step into phases with
module hooks, for the "where the time goes" line of the report.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from harness.perf.flops import ModelShape
from harness.perf.system import SEED
from reference.config import AugmentConfig, FeatureConfig, ModelConfig, OptimConfig
from reference.data.loader import Batch
from reference.device import synchronize
from reference.data.features import num_bins
from reference.model.deepspeech2 import DeepSpeech2
from reference.train.optim import build_optimizer
from reference.train.step import batch_losses, device_features, max_tempo


@dataclass
class ModelSpec:
    key: str
    label: str
    model: ModelConfig
    batch: int
    optim: OptimConfig
    warmup: int
    steps: int
    breakdown_steps: int
    threads: int | None = None  # torch threads for this measurement; None: the run's
    stock: bool = False  # stock PyTorch kernels only (reference.model.kernels), for the A/B rows


@dataclass
class TrainMeasure:
    spec: ModelSpec
    parameters: int
    threads: int = 0  # torch threads the steps ran at
    timed_steps: int = 0
    utterances: int = 0
    time_s: float = 0.0
    train_flops: int = 0
    audio_s: float = 0.0
    step_times: list[float] = field(default_factory=list)
    breakdown: dict[str, float] = field(default_factory=dict)
    skipped: int = 0
    load: float = float("nan")

    @property
    def utt_s(self) -> float:
        return self.utterances / self.time_s if self.time_s > 0 else float("nan")

    @property
    def step_s(self) -> float:
        return self.time_s / self.timed_steps if self.timed_steps else float("nan")

    @property
    def gflops(self) -> float:
        return self.train_flops / self.time_s / 1e9 if self.time_s > 0 else float("nan")


class StepRunner:
    """One model + optimizer, stepped exactly as `Trainer._train_epoch` steps it."""

    def __init__(self, spec: ModelSpec, feat: FeatureConfig, aug: AugmentConfig,
                 device: torch.device) -> None:
        self.spec, self.feat, self.aug, self.dev = spec, feat, aug, device
        torch.manual_seed(SEED)
        self.model = DeepSpeech2(spec.model, feat).to(device)
        self.optimizer = build_optimizer(spec.optim, self.model.parameters(), spec.batch)
        self.shape = ModelShape.of(spec.model, num_bins(feat))
        self.skipped = 0
        self.caps: dict[int, float] = {}  # utterance index → max_tempo
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)

    def features(self, batch: Batch, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Each utterance's tempo cap: the trainer computes it once in setup, so it is
        # memoised here (computed at an utterance's first step, warm-up included).
        missing = [k for k, i in enumerate(batch.indices) if i not in self.caps]
        if missing:
            offsets = (torch.cumsum(batch.target_lengths, 0) - batch.target_lengths).tolist()
            for k in missing:
                target = batch.targets[offsets[k]:offsets[k] + int(batch.target_lengths[k])]
                self.caps[batch.indices[k]] = max_tempo(int(batch.lengths[k]), target.tolist(),
                                                        self.feat)
        cap = torch.tensor([self.caps[i] for i in batch.indices], dtype=torch.float32)
        return device_features(batch, self.feat, self.aug, SEED, epoch, cap, self.dev)

    def _losses(self, logits: torch.Tensor, out_lens: torch.Tensor, batch: Batch
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        # As the trainer's hot loop: no seed-loss pass (it computes that at an epoch's end).
        return batch_losses(logits, out_lens, batch, self.dev, with_seed=False)

    def _finish(self, nll_utt: torch.Tensor, marks: Callable[[str], None] | None = None) -> bool:
        bad = (~torch.isfinite(nll_utt)).to(torch.float32).reshape(1)
        if bad.item() > 0:  # the trainer's per-step host sync
            self.skipped += 1
            self.optimizer.zero_grad(set_to_none=True)
            return False
        if marks:
            marks("check")
        self.optimizer.zero_grad(set_to_none=True)
        nll_utt.backward()
        if marks:
            marks("backward")
        self.loss_sum += nll_utt.detach().to(torch.float64)  # the trainer's epoch sums
        nn.utils.clip_grad_norm_(self.model.parameters(), 400.0)
        if marks:
            marks("clip")
        self.optimizer.step()
        if marks:
            marks("optimizer")
        return True

    def step(self, batch: Batch, epoch: int) -> torch.Tensor:
        """One training step; returns the frames per utterance (host) for the FLOP count."""
        self.model.train()
        feats, frames = self.features(batch, epoch)
        logits, out_lens = self.model(feats, frames)
        nll_utt, _, _ = self._losses(logits, out_lens, batch)
        self._finish(nll_utt)
        return frames

    def step_profiled(self, batch: Batch, epoch: int) -> dict[str, float]:
        """The same step, with timestamps at module boundaries (forward and backward).

        Forward hooks on the end of the conv1 block (`conv[2]`), of the conv
        front end (`conv[-1]`) and of the last RNN layer mark the forward
        phases and put gradient hooks on those outputs, which mark the backward
        phases as the gradient reaches them. Only the module structure is
        assumed (`conv` Sequential, `rnns` list), not the forward's code.
        Returns {} for a model without that structure.
        """
        dev, m = self.dev, self.model
        m.train()
        t: dict[str, float] = {}

        def mark(name: str) -> None:
            synchronize(dev)
            t[name] = time.perf_counter()

        def at_end(fwd_name: str, bwd_name: str) -> Callable:
            def hook(_mod, _inp, out):
                mark(fwd_name)
                tensor = getattr(out, "data", out) if not isinstance(out, torch.Tensor) else out
                if isinstance(tensor, torch.Tensor) and tensor.requires_grad:
                    tensor.register_hook(lambda _g: mark(bwd_name))
            return hook

        try:
            conv, rnns = m.conv, m.rnns
            handles = [conv[2].register_forward_hook(at_end("conv1_fwd", "conv2_bwd")),
                       conv[len(conv) - 1].register_forward_hook(at_end("conv2_fwd", "rnn_bwd")),
                       rnns[len(rnns) - 1].register_forward_hook(at_end("rnn_fwd", "head_bwd"))]
        except (AttributeError, IndexError, TypeError):
            return {}
        try:
            mark("start")
            feats, frames = self.features(batch, epoch)
            mark("featurize")
            logits, out_lens = m(feats, frames)
            mark("head_fwd")
            logits.register_hook(lambda _g: mark("loss_bwd"))
            nll_utt, _, _ = self._losses(logits, out_lens, batch)
            mark("loss_fwd")
            self._finish(nll_utt, mark)
        finally:
            for h in handles:
                h.remove()
        order = ["start", "featurize", "conv1_fwd", "conv2_fwd", "rnn_fwd", "head_fwd",
                 "loss_fwd", "check", "loss_bwd", "head_bwd", "rnn_bwd", "conv2_bwd",
                 "backward", "clip", "optimizer"]
        out, prev = {}, t["start"]
        for name in order[1:]:
            if name in t:
                key = "conv1_bwd" if name == "backward" else name
                out[key] = t[name] - prev
                prev = t[name]
        out["total"] = prev - t["start"]
        return out
