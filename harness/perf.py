"""`python -m harness perf`: training throughput, MFU, data-pipeline rate, logging overhead.

A benchmark, not a test: everything is measured in one process, in one run,
on one device with one thread count, and printed as a table next to the
targets plus a JSON file (``--json``, default ``runs/perf/perf-<UTC>.json``).

Training steps use the real trainer pieces, in the trainer's order
(`reference.trainer.Trainer._train_epoch`): collate (audio already decoded,
as with ``data.cache_audio``) → augmentation parameters → `featurize` (gain +
tempo) → `DeepSpeech2` forward → CTC NLL, per-character NLL and seed loss →
finite-loss check (one host sync) → backward → gradient-norm clip →
optimizer step. Clocks are read after `reference.distributed.synchronize`;
warm-up steps are excluded; throughput = timed utterances / timed wall time.

Batches: real audio from ``data/embedded`` when present — length-sorted
batches (as the bucketed sampler builds them) whose mean duration is closest
to the corpus mean, so every step has the corpus's typical length — else
deterministic noise waveforms of ~2.5 s with random feasible targets. The
JSON says which (``data.source``).

MFU = achieved model training FLOP/s (`harness.flops`, useful frames only)
÷ the best dense fp32 square matmul rate measured in the same run, on the
same device and thread count.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from harness.flops import ModelShape, batch_training_flops, utterance_flops
from reference.augment import augment_params
from reference.config import (AugmentConfig, BenchmarkConfig, DataConfig, FeatureConfig,
                              ModelConfig, OptimConfig, load_config, resolve_cards)
from reference.data import Batch, collate
from reference.distributed import pick_device, synchronize
from reference.features import featurize, frame_counts, num_bins, num_frames
from reference.labels import encode, min_ctc_frames
from reference.loss import ctc_per_utterance, seed_loss
from reference.model import DeepSpeech2, count_parameters, min_input_frames
from reference.optim import build_optimizer

REPO = Path(__file__).resolve().parent.parent
SEED_TRAINER_UTT_S = (19.0, 22.0)  # the seed trainer, GRU 2×256 unidirectional, batch 8, this CPU
SPEEDUP_TARGET = 3.0
MFU_TARGET = 0.60
PIPELINE_TARGET = 10.0
LOGGING_TARGET = 0.01
EVENTS_PER_EPOCH = 20  # MLPerf events the trainer's hooks write per epoch (~12 + spares)
JSON_LINES_PER_EPOCH = 2  # metrics.jsonl: epoch + eval
TYPICAL_DURATION_S = 2.0  # the embedded corpus: mean 1.97 s (train split)
CHARS_PER_S = 15.0  # ~ the embedded corpus's speaking rate (for synthetic targets)
SEED = 1


# ---------------------------------------------------------------- environment
def available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load1() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return float("nan")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def accelerator_name(dev: torch.device) -> str | None:
    if dev.type == "cpu":
        return None
    from reference.distributed import accelerator_name as name
    return name(dev)


def _busy_cpu_s() -> float | None:
    """CPU seconds all processes have used (from /proc/stat), or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    v = [int(x) for x in fields]
    busy = sum(v[:8]) - v[3] - v[4]  # user nice system (idle iowait) irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


class LoadWatch:
    """Load at section boundaries: the 1-min load average (which includes this
    process's own threads and lags by a minute) and, more precisely, the CPU
    used by *other* processes since the previous mark (in cores)."""

    def __init__(self, cores: int) -> None:
        self.cores = cores
        self.samples: dict[str, float] = {}
        self.foreign: dict[str, float] = {}
        self._last = (time.perf_counter(), _busy_cpu_s(), time.process_time())

    def mark(self, where: str) -> float:
        v = load1()
        self.samples[where] = round(v, 2)
        now = (time.perf_counter(), _busy_cpu_s(), time.process_time())
        wall = now[0] - self._last[0]
        if now[1] is not None and self._last[1] is not None and wall > 0.05:
            other = (now[1] - self._last[1]) - (now[2] - self._last[2])
            self.foreign[where] = round(max(0.0, other / wall), 2)
        self._last = now
        return v

    @property
    def worst(self) -> float:
        vals = [v for v in self.samples.values() if v == v]
        return max(vals) if vals else float("nan")

    @property
    def foreign_max(self) -> float:
        return max(self.foreign.values()) if self.foreign else float("nan")

    def contended(self, where: str) -> bool:
        """Other processes used more than a quarter of the cores during a section: with
        every core busy in this benchmark, even that slows OpenMP steps several-fold."""
        return self.foreign.get(where, 0.0) > 0.25 * self.cores

    @property
    def loaded(self) -> bool:
        """The load average before we started exceeded half the cores, or some section
        was contended by other processes."""
        start = self.samples.get("start", float("nan"))
        return start > 0.5 * self.cores or any(self.contended(k) for k in self.foreign)


# ----------------------------------------------------------------------- data
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


def _embedded_source(root: Path) -> DataSource | None:
    from reference.audio import load_audio
    from reference.manifest import load_manifest

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
        cache: dict[int, np.ndarray] = {}
        out = []
        for c in picked:
            items = []
            for i in map(int, c):
                if i not in cache:
                    cache[i] = load_audio(utts[i].audio)
                items.append(Item(cache[i], encode(utts[i].read_text()), i))
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


# ------------------------------------------------------------------- training
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


@dataclass
class TrainMeasure:
    spec: ModelSpec
    parameters: int
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
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)

    def _max_tempo(self, batch: Batch) -> torch.Tensor:
        # The trainer caps each utterance's tempo so that its CTC target stays feasible.
        caps = []
        offsets = torch.cumsum(batch.target_lengths, 0) - batch.target_lengths
        for k in range(len(batch.indices)):
            tgt = batch.targets[offsets[k]:offsets[k] + batch.target_lengths[k]].tolist()
            frames = num_frames(int(batch.lengths[k]), self.feat)
            caps.append(max(frames / min_input_frames(min_ctc_frames(tgt)), 1e-3))
        return torch.tensor(caps, dtype=torch.float32)

    def features(self, batch: Batch, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        tempo, gain = augment_params(self.aug, SEED, epoch, batch.indices)
        if tempo is not None:
            tempo = torch.minimum(tempo, self._max_tempo(batch))
        frames = frame_counts(batch.lengths, self.feat, tempo)  # host, no sync
        wave = batch.wave.to(self.dev, non_blocking=True)
        lengths = batch.lengths.to(self.dev, non_blocking=True)
        with torch.no_grad():
            feats, _ = featurize(wave, lengths, self.feat,
                                 None if gain is None else gain.to(self.dev),
                                 None if tempo is None else tempo.to(self.dev))
        return feats, frames

    def _losses(self, logits, out_lens, batch: Batch):
        targets = batch.targets.to(self.dev, non_blocking=True)
        tlens = batch.target_lengths.to(self.dev, non_blocking=True)
        out_lens = out_lens.to(self.dev)
        per_utt = ctc_per_utterance(logits, out_lens, targets, tlens)
        nll_utt = per_utt.sum() / per_utt.shape[0]
        nll_char = per_utt.sum() / tlens.sum()
        return nll_utt, nll_char, seed_loss(logits, out_lens, targets, tlens)

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

        def at_end(fwd_name: str, bwd_name: str):
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


def measure_training(spec: ModelSpec, source: DataSource, feat: FeatureConfig,
                     aug: AugmentConfig, device: torch.device, log: Callable[[str], None]
                     ) -> TrainMeasure:
    n_batches = spec.warmup + spec.steps + spec.breakdown_steps
    item_lists = source.make_batches(spec.batch, n_batches)  # decoded outside the clock
    runner = StepRunner(spec, feat, aug, device)
    res = TrainMeasure(spec, count_parameters(runner.model))
    log(f"[perf] {spec.label}: {res.parameters / 1e6:.1f} M parameters, batch {spec.batch}, "
        f"{spec.warmup} warm-up + {spec.steps} timed steps")
    epoch = 2  # augmentation of a later epoch (epoch 1 is SortaGrad order, same augmentation)
    for k in range(spec.warmup):
        runner.step(to_batch(item_lists[k]), epoch)
    synchronize(device)
    t0 = time.perf_counter()
    last = t0
    for k in range(spec.warmup, spec.warmup + spec.steps):
        batch = to_batch(item_lists[k])  # collate inside the clock, as the trainer's loader
        frames = runner.step(batch, epoch)
        res.train_flops += batch_training_flops(frames.tolist(), runner.shape)
        res.utterances += len(batch.indices)
        res.audio_s += float(batch.lengths.sum()) / feat.sample_rate
        if device.type == "cpu":  # free on CPU; on accelerators it would add syncs
            now = time.perf_counter()
            res.step_times.append(now - last)
            last = now
    synchronize(device)
    res.time_s = time.perf_counter() - t0
    res.timed_steps = spec.steps
    res.load = load1()
    # Where the time goes: separate, instrumented steps (not part of the throughput).
    parts: list[dict[str, float]] = []
    for k in range(spec.warmup + spec.steps, n_batches):
        parts.append(runner.step_profiled(to_batch(item_lists[k]), epoch))
    if parts:
        res.breakdown = {key: float(np.mean([p.get(key, 0.0) for p in parts])) for key in parts[0]}
    res.skipped = runner.skipped
    del runner
    return res


# ---------------------------------------------------------------------- matmul
def matmul_gflops(device: torch.device, n: int, reps: int) -> dict[str, Any]:
    """Best-of-`reps` dense fp32 n×n×n matmul rate (GFLOP/s) on `device`."""
    g = torch.Generator().manual_seed(SEED)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    c = torch.empty(n, n, device=device)
    torch.matmul(a, b, out=c)  # warm-up
    rates = []
    for _ in range(reps):
        synchronize(device)
        t0 = time.perf_counter()
        torch.matmul(a, b, out=c)
        synchronize(device)
        rates.append(2.0 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return {"n": n, "reps": reps, "best_gflops": max(rates), "median_gflops": float(np.median(rates))}


# -------------------------------------------------------------------- pipeline
def measure_pipeline(source: DataSource, feat: FeatureConfig, aug: AugmentConfig, batch: int,
                     n_batches: int, device: torch.device, workdir: Path) -> dict[str, Any]:
    """utt/s of soundfile decode (no cache) + collate + augmented featurize, in one process."""
    from reference.data import BatchLoader, UtteranceSet
    from reference.manifest import load_manifest
    from reference.sampler import TrainBatches

    if source.manifest is not None:
        utts = load_manifest(source.manifest)
        durations = {i: u.duration for i, u in enumerate(utts)}
        order = TrainBatches(durations, batch, 1, SEED, sortagrad=False).global_batches(2)
        chosen = order[:n_batches]
        targets = {i: encode(utts[i].read_text()) for b in chosen for i in b}
        audio = f"FLAC files of {source.manifest.parent}"
    else:  # write the synthetic utterances as 16-bit FLAC, like the embedded corpus
        import soundfile as sf

        from reference.manifest import Utterance

        items = synthetic_items(batch * n_batches)
        utts, targets = [], {}
        for it in items:
            path = workdir / f"syn-{it.index:05d}.flac"
            sf.write(str(path), it.wave, feat.sample_rate, subtype="PCM_16")
            utts.append(Utterance(f"syn-{it.index}", path, "X", None, len(it.wave) / feat.sample_rate))
            targets[it.index] = it.target
        chosen = [[it.index for it in items[k * batch:(k + 1) * batch]] for k in range(n_batches)]
        audio = "synthetic noise written as 16-bit FLAC"
    dataset = UtteranceSet(utts, targets, DataConfig(), feat, cache=False)
    loader = BatchLoader(dataset, 0, pin_memory=False)
    runner = _FeaturizeOnly(feat, aug, device)
    # Warm-up on one batch (first FFT plan, allocator), then the timed pass.
    first = next(iter(loader.iterate(chosen[:1])))
    runner(first)
    n_utt, t_decode, t_feat = 0, 0.0, 0.0
    synchronize(device)
    t0 = time.perf_counter()
    it = loader.iterate(chosen)
    while True:
        ta = time.perf_counter()
        b = next(it, None)
        tb = time.perf_counter()
        if b is None:
            break
        runner(b)
        synchronize(device)
        tc = time.perf_counter()
        t_decode += tb - ta
        t_feat += tc - tb
        n_utt += len(b.indices)
    elapsed = time.perf_counter() - t0
    return {"utterances": n_utt, "batches": len(chosen), "batch": batch, "time_s": elapsed,
            "utt_s": n_utt / elapsed, "decode_collate_s": t_decode, "featurize_s": t_feat,
            "audio": audio, "workers": 0}


class _FeaturizeOnly:
    def __init__(self, feat: FeatureConfig, aug: AugmentConfig, device: torch.device) -> None:
        self.feat, self.aug, self.dev = feat, aug, device

    def __call__(self, batch: Batch) -> torch.Tensor:
        tempo, gain = augment_params(self.aug, SEED, 2, batch.indices)
        with torch.no_grad():
            feats, _ = featurize(batch.wave.to(self.dev), batch.lengths.to(self.dev), self.feat,
                                 None if gain is None else gain.to(self.dev),
                                 None if tempo is None else tempo.to(self.dev))
        return feats


# --------------------------------------------------------------------- logging
def measure_logging(workdir: Path, device: torch.device, reps: int) -> dict[str, Any]:
    """Seconds per MLPerf event, per metrics.jsonl line, per finite-loss host sync."""
    from harness.mlperf_log import MLPerfLogger

    def per_call(fn: Callable[[int], None], n: int) -> float:
        fn(0)
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        return (time.perf_counter() - t0) / n

    with MLPerfLogger(workdir / "mlperf.log") as log:
        t_event = per_call(lambda i: log.event("ds2_throughput", 123.456 + i,
                                               {"epoch_num": i, "unit": "utt/s"}), reps)
    record = {"kind": "epoch", "epoch": 3, "global_step": 561, "samples": 2992,
              "train_time(s)": 61.2, "throughput(utt/s)": 48.9, "warmup_steps_excluded": 0,
              "loss_ctc_nll_per_utt": 41.23, "loss_ctc_nll_per_char": 1.06,
              "seed_loss_last_iter": -0.0123, "skipped_steps": 0, "allreduce_time(s)": None,
              "lr": 0.00124}
    metrics = workdir / "metrics.jsonl"

    def json_line(i: int) -> None:  # as Trainer._emit: open, append one line, close
        with metrics.open("a") as f:
            f.write(json.dumps(record) + "\n")

    t_json = per_call(json_line, max(50, reps // 4))
    loss = torch.tensor(41.0, device=device)

    def check(i: int) -> None:  # the trainer's per-step finite check (all-reduce is a no-op)
        bad = (~torch.isfinite(loss)).to(torch.float32).reshape(1)
        bad.item()

    t_sync = per_call(check, reps)
    sink = io.StringIO()
    nll = torch.tensor(41.0, device=device)
    t_print = per_call(lambda i: print(f"[train] epoch 1 step {i}/187 loss(nll/utt) "
                                       f"{float(nll):.3f}", file=sink, flush=True), reps)
    return {"event_s": t_event, "json_line_s": t_json, "finite_check_sync_s": t_sync,
            "progress_print_s": t_print, "reps": reps}


# ---------------------------------------------------------------------- report
def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "n/a" if x is None or x != x else format(x, spec)


def _target_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    tr = result["training"]
    rows = []
    seed_hi = SEED_TRAINER_UTT_S[1]
    like = tr.get("gru2x256_b8")
    rows.append({"target": f"GRU 2x256 b8 >= {SPEEDUP_TARGET:g}x seed "
                           f"{SEED_TRAINER_UTT_S[0]:g}-{seed_hi:g} utt/s (>= {SPEEDUP_TARGET * seed_hi:g})",
                 "measured": like["throughput_utt_s"] if like else None,
                 "met": (like["throughput_utt_s"] >= SPEEDUP_TARGET * seed_hi) if like else None,
                 "note": (f"{like['throughput_utt_s'] / seed_hi:.2f}x of 22, "
                          f"{like['throughput_utt_s'] / SEED_TRAINER_UTT_S[0]:.2f}x of 19")
                 if like else "not measured (--quick)"})
    tiny = tr["tiny"]
    rows.append({"target": "tiny (BiGRU 3x256 b16) utt/s, for reference",
                 "measured": tiny["throughput_utt_s"], "met": None,
                 "note": f"{tiny['throughput_utt_s'] / seed_hi:.2f}x the seed's 22 (different model)"})
    ref = tr.get("reference")
    rows.append({"target": f"reference-size MFU >= {MFU_TARGET:.0%}",
                 "measured": ref["mfu"] if ref else None,
                 "met": (ref["mfu"] >= MFU_TARGET) if ref else None,
                 "note": "" if ref else "not measured (--quick)"})
    p = result["pipeline"]
    rows.append({"target": f"pipeline / training >= {PIPELINE_TARGET:g}x",
                 "measured": p["ratio_to_training"], "met": p["ratio_to_training"] >= PIPELINE_TARGET,
                 "note": ""})
    lg = result["logging"]
    rows.append({"target": f"logging <= {LOGGING_TARGET:.0%} of tiny step",
                 "measured": lg["fraction_of_step"], "met": lg["fraction_of_step"] <= LOGGING_TARGET,
                 "note": ""})
    return rows


def _table(result: dict[str, Any]) -> str:
    c = result["config"]
    lines = []
    lines.append(f"ds2bench perf  {result['timestamp_utc']}  device {c['device']}"
                 f"{' (' + c['accelerator'] + ')' if c['accelerator'] else ''}  threads {c['threads']}"
                 f"/{c['cores']} cores  ranks {c['ranks']}")
    lines.append(f"  torch {c['torch']}  numpy {c['numpy']}  python {c['python']}  cpu {c['cpu_model']}")
    lines.append(f"  load average (1 min, incl. this run's threads): {c['load_samples']}")
    lines.append(f"  other processes' CPU use (cores) per section: {c['other_processes_cpu_cores']}")
    if c["loaded"]:
        why = []
        if c["load_samples"].get("start", 0.0) > 0.5 * c["cores"]:
            why.append(f"load average {c['load_samples']['start']} at start > 0.5 x {c['cores']} cores"
                       + ("" if c["contended_sections"] else
                          f" (a lagging 1-min average: other processes then used at most "
                          f"{c['other_processes_cpu_max']:.2f} cores)"))
        if c["contended_sections"]:
            why.append("other processes used > 0.25 x cores during "
                       + ", ".join(c["contended_sections"]))
        lines.append(f"  ** LOADED: {'; '.join(why)}: numbers may be pessimistic **")
    lines.append(f"  data: {result['data']['source']}: {result['data']['detail']}")
    mm = result["matmul"]
    lines.append(f"  dense fp32 matmul {mm['n']}^3: best {mm['best_gflops']:.1f} GFLOP/s "
                 f"(start {mm['start']['best_gflops']:.1f}, end {mm['end']['best_gflops']:.1f})")
    lines.append("")
    lines.append(f"  {'model':<32}{'utt/s':>8}{'step s':>8}{'GFLOP/utt':>10}{'GFLOP/s':>9}"
                 f"{'MFU':>7}{'load':>6}{'other':>6}")
    for r in result["training"].values():
        lines.append(f"  {r['label']:<32}{r['throughput_utt_s']:>8.2f}{r['step_time_s']:>8.3f}"
                     f"{r['train_gflop_per_utt']:>10.2f}{r['achieved_gflops']:>9.1f}"
                     f"{r['mfu']:>7.1%}{r['load']:>6.2f}{_fmt(r['other_processes_cpu_cores'], '.2f'):>6}")
    for r in result["training"].values():
        bd = r.get("breakdown_s") or {}
        if bd:
            tot = bd.get("total", 0.0) or 1.0
            keys = [k for k in bd if k != "total"]
            lines.append(f"  {r['key']} step split ({bd['total']:.3f} s): " + " ".join(
                f"{k.replace('_fwd', '>').replace('_bwd', '<')} {bd[k] / tot:.0%}"
                for k in keys if bd[k] / tot >= 0.005))
    p = result["pipeline"]
    lines.append(f"  pipeline (decode+collate+featurize w/ tempo,gain; 1 process): {p['utt_s']:.0f} "
                 f"utt/s = {p['ratio_to_training']:.1f}x tiny training "
                 f"(decode {p['decode_collate_s'] / p['time_s']:.0%})")
    lg = result["logging"]
    lines.append(f"  logging: event {lg['event_s'] * 1e6:.0f} us, "
                 f"json line {lg['json_line_s'] * 1e6:.0f} us, "
                 f"finite-check sync {lg['finite_check_sync_s'] * 1e6:.1f} us, per step "
                 f"{lg['per_step_s'] * 1e6:.1f} us = {lg['fraction_of_step']:.4%} of tiny step")
    lines.append("")
    lines.append("  targets:")
    for t in result["targets"]:
        met = {True: "MET", False: "NOT MET", None: "-"}[t["met"]]
        m = t["measured"]
        shown = "n/a" if m is None else (f"{m:.2%}" if "MFU" in t["target"] or "logging" in t["target"]
                                         else f"{m:.2f}")
        lines.append(f"    {t['target']:<58} {shown:>9}  {met:<7} {t['note']}")
    return "\n".join(lines)


def _train_record(m: TrainMeasure, peak_gflops: float, feat: FeatureConfig) -> dict[str, Any]:
    s = m.spec
    shape = ModelShape.of(s.model, num_bins(feat))
    per_utt = m.train_flops / m.utterances if m.utterances else float("nan")
    typical = utterance_flops(num_frames(int(TYPICAL_DURATION_S * feat.sample_rate), feat), shape)
    return {
        "key": s.key, "label": s.label, "model": vars(s.model).copy(), "batch": s.batch,
        "optimizer": s.optim.name, "parameters": m.parameters, "warmup_steps": s.warmup,
        "timed_steps": m.timed_steps, "utterances": m.utterances, "time_s": m.time_s,
        "throughput_utt_s": m.utt_s, "step_time_s": m.step_s,
        "step_times_s": m.step_times, "mean_audio_s_per_utt": m.audio_s / max(m.utterances, 1),
        "train_gflop_per_utt": per_utt / 1e9,
        "flops_typical_utt": typical.as_dict(),
        "achieved_gflops": m.gflops, "mfu": m.gflops / peak_gflops,
        "breakdown_s": m.breakdown, "skipped_steps": m.skipped, "load": m.load,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness perf", description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: all available cores)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mlu")
    p.add_argument("--quick", action="store_true", help="tiny model only, few steps (for tests)")
    p.add_argument("--tiny-steps", type=int, default=None,
                   help="timed steps of the small models (default 30; 2 with --quick)")
    p.add_argument("--ref-steps", type=int, default=3, help="timed steps of the reference-size model")
    p.add_argument("--data", type=Path, default=REPO / "data" / "embedded",
                   help="embedded corpus root (synthetic noise when absent)")
    p.add_argument("--json", type=Path, default=None, help="output JSON (default runs/perf/perf-<UTC>.json)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    stamp = datetime.now(timezone.utc)
    out = args.json or Path("runs") / "perf" / f"perf-{stamp:%Y%m%dT%H%M%S}.json"
    cores = available_cores()
    threads = args.threads or cores
    device = pick_device(args.device, 0)
    torch.set_num_threads(threads)
    watch = LoadWatch(cores)
    watch.mark("start")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if watch.samples["start"] > 0.5 * cores:
        log(f"[perf] WARNING: load average {watch.samples['start']:.2f} > 0.5 x {cores} cores: "
            "other processes compete for the CPU; numbers will be pessimistic")
    tiny_cfg: BenchmarkConfig = resolve_cards(load_config(REPO / "benchmarks" / "tiny.yaml"), 1)
    feat, aug = tiny_cfg.features, tiny_cfg.augment
    small_steps = args.tiny_steps or (2 if args.quick else 30)
    specs = [ModelSpec("tiny", "tiny: BiGRU 3x256, b" + str(tiny_cfg.train.batch_per_card),
                       tiny_cfg.model, tiny_cfg.train.batch_per_card, tiny_cfg.optim,
                       1 if args.quick else 3, small_steps, 1 if args.quick else 3)]
    if not args.quick:
        specs.append(ModelSpec("gru2x256_b8", "GRU 2x256 uni, b8 (seed cmp)",
                               ModelConfig("gru", 256, 2, False), 8, OptimConfig(), 3, small_steps, 3))
        specs.append(ModelSpec("reference", "reference: GRU 3x2560 uni, b8", ModelConfig(), 8,
                               OptimConfig(), 1, args.ref_steps, 1))
    source = data_source(args.data)
    log(f"[perf] data: {source.detail}")
    mm_n, mm_reps = (1024, 3) if args.quick else (2048, 5)
    mm_start = matmul_gflops(device, mm_n, mm_reps)
    watch.mark("matmul_start")
    measures = []
    for spec in specs:
        measures.append(measure_training(spec, source, feat, aug, device, log))
        watch.mark(spec.key)
    mm_end = matmul_gflops(device, mm_n, mm_reps)
    watch.mark("matmul_end")
    peak = max(mm_start["best_gflops"], mm_end["best_gflops"])
    with tempfile.TemporaryDirectory(prefix="ds2perf-") as tmp:
        tiny_b = tiny_cfg.train.batch_per_card
        pipe = measure_pipeline(source, feat, aug, tiny_b, 2 if args.quick else 12, device, Path(tmp))
        watch.mark("pipeline")
        lg = measure_logging(Path(tmp), device, 200 if args.quick else 2000)
        watch.mark("logging")
    training = {m.spec.key: _train_record(m, peak, feat) for m in measures}
    for key, rec in training.items():
        rec["other_processes_cpu_cores"] = watch.foreign.get(key)
    tiny = training["tiny"]
    pipe["training_utt_s"] = tiny["throughput_utt_s"]
    pipe["ratio_to_training"] = pipe["utt_s"] / tiny["throughput_utt_s"]
    steps_per_epoch = max(1, source.train_utterances // tiny_b)
    lg["events_per_epoch"] = EVENTS_PER_EPOCH
    lg["json_lines_per_epoch"] = JSON_LINES_PER_EPOCH
    lg["steps_per_epoch"] = steps_per_epoch
    lg["progress_print_every_steps"] = tiny_cfg.train.log_every_steps
    lg["per_step_s"] = ((EVENTS_PER_EPOCH * lg["event_s"] + JSON_LINES_PER_EPOCH * lg["json_line_s"])
                        / steps_per_epoch + lg["finite_check_sync_s"]
                        + lg["progress_print_s"] / tiny_cfg.train.log_every_steps)
    lg["tiny_step_s"] = tiny["step_time_s"]
    lg["fraction_of_step"] = lg["per_step_s"] / tiny["step_time_s"]
    result: dict[str, Any] = {
        "schema": "ds2bench.perf/1",
        "timestamp_utc": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": ["python", "-m", "harness", "perf", *argv],
        "config": {
            "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
            "cores": cores, "ranks": 1, "device": str(device), "accelerator": accelerator_name(device),
            "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "cpu_model": cpu_model(), "platform": platform.platform(),
            "load_samples": watch.samples, "load_max": watch.worst,
            "other_processes_cpu_cores": watch.foreign, "other_processes_cpu_max": watch.foreign_max,
            "contended_sections": [k for k in watch.foreign if watch.contended(k)],
            "loaded": watch.loaded,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "quick": args.quick,
            "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                "CUDA_VISIBLE_DEVICES", "MLU_VISIBLE_DEVICES")
                    if k in os.environ},
        },
        "data": {"source": source.kind, "detail": source.detail},
        "flops_convention": "2 FLOPs per multiply-add; conv + RNN (gates*H*(I+H)) + head; "
                            "training = 2*conv1 + 3*(conv2+rnn+head) (backward = 2x forward, "
                            "no input gradient for conv1); useful frames only (no padding)",
        "matmul": {"n": mm_n, "best_gflops": peak, "start": mm_start, "end": mm_end},
        "training": training,
        "pipeline": pipe,
        "logging": lg,
    }
    result["targets"] = _target_rows(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(_table(result))
    print(f"  json: {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
