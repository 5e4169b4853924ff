"""The three measurements: training steps, the data pipeline, the logging overhead.

Each returns plain numbers; `harness.perf.report` turns them into records and
compares them with the targets. Work that is not part of what is measured
(decoding the training batches, building the model, warm-up) stays outside
the clocks.
"""
from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from harness.perf.flops import batch_training_flops
from harness.perf.sources import DataSource, Item, synthetic_items, to_batch
from harness.perf.step import ModelSpec, StepRunner, TrainMeasure
from harness.perf.system import SEED, load1, torch_threads
from reference.data.augment import augment_params
from reference.config import AugmentConfig, DataConfig, FeatureConfig
from reference.data.loader import Batch
from reference.device import synchronize
from reference.data.features import featurize
from reference.model.kernels import bf16_gemm, set_bf16_gemm, stock_kernels
from reference.labels import encode
from reference.model.deepspeech2 import count_parameters, output_frames
from reference.train.step import POLL_EVERY_STEPS, StepFlags

EVENTS_PER_EPOCH = 20  # MLPerf events the trainer's hooks write per epoch (~12 + spares)
JSON_LINES_PER_EPOCH = 2  # metrics.jsonl: epoch + eval


# -------------------------------------------------------------------- training
def measure_training(spec: ModelSpec, source: DataSource, feat: FeatureConfig,
                     aug: AugmentConfig, device: torch.device, log: Callable[[str], None]
                     ) -> TrainMeasure:
    """Warm-up, timed and profiled steps of `spec`, at `spec.threads` torch threads
    (the run's count when None; restored afterwards)."""
    n_batches = spec.warmup + spec.steps + spec.breakdown_steps
    item_lists = source.make_batches(spec.batch, n_batches)  # decoded outside the clock
    kernels = stock_kernels() if spec.stock else contextlib.nullcontext()
    with torch_threads(spec.threads) as threads, kernels, \
            step_precision(spec.fp32_precision, device) as precision:
        runner = StepRunner(spec, feat, aug, device)
        res = TrainMeasure(spec, count_parameters(runner.model), threads=threads,
                           fp32_precision=precision)
        log(f"[perf] {spec.label}: {res.parameters / 1e6:.1f} M parameters, batch {spec.batch}, "
            f"{threads} thread{'s' if threads != 1 else ''}, "
            f"{spec.warmup} warm-up + {spec.steps} timed steps")
        _run_steps(runner, res, item_lists, feat, device)
    return res


@contextlib.contextmanager
def step_precision(fp32_precision: str, device: torch.device) -> Iterator[str]:
    """The CPU GRU's bf16 GEMMs on for a "bf16" spec on the CPU (what the trainer's
    `apply_fp32_precision` switches for it), restored afterwards; nothing elsewhere.
    Yields the precision the steps run at ("bf16" or "ieee")."""
    previous = bf16_gemm()
    on = fp32_precision == "bf16" and device.type == "cpu"
    set_bf16_gemm(on)
    try:
        yield "bf16" if on else "ieee"
    finally:
        set_bf16_gemm(previous)


def _run_steps(runner: StepRunner, res: TrainMeasure, item_lists: list[list[Item]],
               feat: FeatureConfig, device: torch.device) -> None:
    spec = runner.spec
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
        res.padded_steps += max(1, int(output_frames(int(frames.max()))))
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
    for k in range(spec.warmup + spec.steps, len(item_lists)):
        parts.append(runner.step_profiled(to_batch(item_lists[k]), epoch))
    if parts:
        res.breakdown = {key: float(np.mean([p.get(key, 0.0) for p in parts])) for key in parts[0]}
    res.skipped = runner.skipped
    if spec.count_syncs:  # after the clocks: the counter slows the step it watches
        res.syncs = runner.count_syncs(to_batch(item_lists[-1]), epoch)


# -------------------------------------------------------------------- pipeline
def measure_pipeline(source: DataSource, feat: FeatureConfig, aug: AugmentConfig, batch: int,
                     n_batches: int, device: torch.device, workdir: Path) -> dict[str, Any]:
    """utt/s of soundfile decode (no cache) + collate + augmented featurize, in one process."""
    from reference.data.loader import BatchLoader, UtteranceSet
    from reference.data.manifest import load_manifest
    from reference.data.sampler import TrainBatches

    if source.manifest is not None:
        utts = load_manifest(source.manifest)
        durations = {i: u.duration for i, u in enumerate(utts)}
        order = TrainBatches(durations, batch, 1, SEED, sortagrad=False).global_batches(2)
        chosen = order[:n_batches]
        targets = {i: encode(utts[i].read_text()) for b in chosen for i in b}
        audio = f"FLAC files of {source.manifest.parent}"
    else:  # write the synthetic utterances as 16-bit FLAC, like the embedded corpus
        import soundfile as sf

        from reference.data.manifest import Utterance

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
            # Lengths, gain and tempo stay on the host, as in the trainer's step.
            feats, _ = featurize(batch.on_device("wave", self.dev), batch.lengths, self.feat,
                                 gain, tempo)
        return feats


# --------------------------------------------------------------------- logging
def measure_logging(workdir: Path, device: torch.device, reps: int) -> dict[str, Any]:
    """Seconds per MLPerf event, per metrics.jsonl line, per finite-loss host sync."""
    from harness.mlperf.log import MLPerfLogger

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
    flags = StepFlags(device)

    def check(i: int) -> None:  # the trainer's poll point: one read (the all-reduce is a no-op)
        flags.poll()

    t_sync = per_call(check, reps)
    sink = io.StringIO()
    nll = torch.tensor(41.0, device=device)
    t_print = per_call(lambda i: print(f"[train] epoch 1 step {i}/187 loss(nll/utt) "
                                       f"{float(nll):.3f}", file=sink, flush=True), reps)
    return {"event_s": t_event, "json_line_s": t_json, "finite_check_sync_s": t_sync,
            "progress_print_s": t_print, "reps": reps}


def add_logging_per_step(lg: dict[str, Any], steps_per_epoch: int, log_every_steps: int,
                         step_time_s: float) -> None:
    """Spread the per-epoch logging costs over the epoch's steps and add the per-step
    total and its fraction of a training step to `lg` (in place)."""
    lg["events_per_epoch"] = EVENTS_PER_EPOCH
    lg["json_lines_per_epoch"] = JSON_LINES_PER_EPOCH
    lg["steps_per_epoch"] = steps_per_epoch
    lg["progress_print_every_steps"] = log_every_steps
    lg["poll_every_steps"] = POLL_EVERY_STEPS  # the finite/stop flags' read, no longer per step
    lg["per_step_s"] = ((EVENTS_PER_EPOCH * lg["event_s"] + JSON_LINES_PER_EPOCH * lg["json_line_s"])
                        / steps_per_epoch + lg["finite_check_sync_s"] / POLL_EVERY_STEPS
                        + lg["progress_print_s"] / log_every_steps)
    lg["tiny_step_s"] = step_time_s
    lg["fraction_of_step"] = lg["per_step_s"] / step_time_s
