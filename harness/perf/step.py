"""One training step exactly as the trainer takes it, plus a profiled variant.

`StepRunner.step` calls the trainer's own step, `reference.train.step.train_step`
(augmentation → featurize → forward → CTC losses → backward → clip →
optimizer update, masked on the device when not finite), with the trainer's
per-step bookkeeping, so the throughput measured is the trainer's, not a
simplified loop's. `step_profiled` splits one such step into phases with
module hooks, for the "where the time goes" line of the report.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from harness.perf.flops import ModelShape
from harness.perf.system import SEED
from reference.config import AugmentConfig, FeatureConfig, ModelConfig, OptimConfig
from reference.data.loader import Batch
from reference.device import synchronize
from reference.data.features import num_bins
from reference.model.deepspeech2 import DeepSpeech2
from reference.train.optim import build_optimizer
from reference.train.step import StepFlags, max_tempo, train_step, use_device_step_counts


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
    count_syncs: bool = False  # one extra, instrumented step: the host-syncs-per-step row
    # Features of this model; None: tiny's. The seed's and the reference's models take
    # the linear spectrogram their front-end kernels are sized for.
    features: FeatureConfig | None = None
    # train.fp32_precision the step runs under: "bf16" lets the CPU GRU's large GEMMs
    # take bf16 operands, as tiny trains (CPU only; elsewhere the step stays IEEE).
    fp32_precision: str = "ieee"

    def features_or(self, tiny: FeatureConfig) -> FeatureConfig:
        return self.features or tiny


@dataclass
class TrainMeasure:
    spec: ModelSpec
    parameters: int
    threads: int = 0  # torch threads the steps ran at
    fp32_precision: str = "ieee"  # what the steps ran at (spec's "bf16" is CPU-only)
    timed_steps: int = 0
    utterances: int = 0
    time_s: float = 0.0
    train_flops: int = 0
    audio_s: float = 0.0
    step_times: list[float] = field(default_factory=list)
    breakdown: dict[str, float] = field(default_factory=dict)
    skipped: int = 0
    load: float = float("nan")
    padded_steps: int = 0  # sum of the timed batches' recurrence lengths (output frames)
    syncs: dict = field(default_factory=dict)  # one instrumented step (harness/perf/syncs.py)

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
        self.flags = StepFlags(device)
        # The trainer's choice: the host reads the finite flag on CPU (free), the
        # update is masked on the device elsewhere (reference.train.step.train_step).
        self.host_decides: bool | None = None
        use_device_step_counts(self.optimizer, device)
        self.caps: dict[int, float] = {}  # utterance index → max_tempo
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)

    def caps_of(self, batch: Batch) -> torch.Tensor:
        # Each utterance's tempo cap: the trainer computes it once in setup, so it is
        # memoised here (computed at an utterance's first step, warm-up included).
        missing = [k for k, i in enumerate(batch.indices) if i not in self.caps]
        if missing:
            offsets = (torch.cumsum(batch.target_lengths, 0) - batch.target_lengths).tolist()
            for k in missing:
                target = batch.targets[offsets[k]:offsets[k] + int(batch.target_lengths[k])]
                self.caps[batch.indices[k]] = max_tempo(int(batch.lengths[k]), target.tolist(),
                                                        self.feat)
        return torch.tensor([self.caps[i] for i in batch.indices], dtype=torch.float32)

    def _step(self, batch: Batch, epoch: int, mark: Callable[[str], None] | None = None
              ) -> torch.Tensor:
        # As the trainer's hot loop: no seed-loss pass (it computes that at an epoch's end).
        out = train_step(self.model, self.optimizer, batch, feat=self.feat, aug=self.aug,
                         seed=SEED, epoch=epoch, tempo_cap=self.caps_of(batch), device=self.dev,
                         clip_norm=400.0, host_decides=self.host_decides, mark=mark)
        self.flags.count(out.ok)
        zero = torch.zeros((), dtype=torch.float64, device=self.dev)
        self.loss_sum += torch.where(out.ok, out.nll_utt.detach().to(torch.float64), zero)
        return out.frames

    def step(self, batch: Batch, epoch: int) -> torch.Tensor:
        """One training step; returns the frames per utterance (host) for the FLOP count."""
        self.model.train()
        return self._step(batch, epoch)

    @property
    def skipped(self) -> int:
        return self.flags.poll()[1]

    def count_syncs(self, batch: Batch, epoch: int) -> dict:
        """Host syncs of one step, by instrumentation: the accelerator path (update masked
        on the device) and the CPU path (the host reads the finite flag); on CUDA also
        what `torch.cuda.set_sync_debug_mode` reports for the same step."""
        from harness.perf.syncs import (batch_host_tensors, count_syncs, cuda_sync_warnings,
                                        optimizer_host_tensors)

        self.model.train()
        out: dict = {}
        saved = self.host_decides
        try:
            for key, host_decides in (("device_path", False), ("host_path", True)):
                self.host_decides = host_decides
                cap = self.caps_of(batch)
                host = batch_host_tensors(batch) + [cap] + optimizer_host_tensors(self.optimizer)
                with count_syncs(host=host) as c:
                    self._step(batch, epoch)
                out[key] = c.total
                out[key + "_sites"] = dict(c.sites)
            self.host_decides = False
            out["cuda_sync_debug_warnings"] = cuda_sync_warnings(lambda: self._step(batch, epoch))
        finally:
            self.host_decides = saved
        return out

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
        def loss_end(_mod, _inp, out) -> None:  # the CTC input's gradient: loss backward done
            if out.requires_grad:
                out.register_hook(lambda _g: mark("loss_bwd"))

        handles.append(m.fc.register_forward_hook(loss_end))
        try:
            mark("start")
            self._step(batch, epoch, mark)
        finally:
            for h in handles:
                h.remove()
        order = ["start", "featurize", "conv1_fwd", "conv2_fwd", "rnn_fwd", "head_fwd",
                 "loss_fwd", "loss_bwd", "head_bwd", "rnn_bwd", "conv2_bwd",
                 "backward", "clip", "optimizer"]
        out, prev = {}, t["start"]
        for name in order[1:]:
            if name in t:
                key = "conv1_bwd" if name == "backward" else name
                out[key] = t[name] - prev
                prev = t[name]
        out["total"] = prev - t["start"]
        return out
