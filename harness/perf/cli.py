"""The `python -m harness perf` command: arguments, the order of the measurements, the JSON.

Sections run one after another in one process, each followed by a load mark
so that contention by other processes is attributed to the section it hit.
The matmul peak is taken before and after the training runs (the better of
the two is the MFU denominator), and once more at 1 thread for the 1-thread
seed comparison, whose MFU must not be divided by an all-threads peak.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import harness.perf as package
from harness.perf.measure import (add_logging_per_step, measure_logging, measure_pipeline,
                                  measure_training)
from harness.perf.report import SEED_TRAINER_THREADS, table, target_rows, train_record
from harness.perf.sources import data_source
from harness.perf.peaks import (copy_bandwidth_gbs, model_gemm_shapes, precision_peaks,
                                precisions_to_measure, run_precision,
                                unmeasured_precisions)
from harness.perf.sources import TYPICAL_DURATION_S
from harness.perf.step import ModelSpec, TrainMeasure
from harness.perf.system import (LoadWatch, accelerator_name, available_cores, cpu_model,
                                 matmul_gflops, torch_threads)
from reference.config import (BenchmarkConfig, FeatureConfig, ModelConfig, OptimConfig, load_config,
                              resolve_cards)
from reference.data.features import num_bins, num_frames
from reference.device import pick_device
from reference.train.host_malloc import tune_host_malloc

REPO = Path(__file__).resolve().parents[2]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness perf",
                                description=(package.__doc__ or "").split("\n\n")[0])
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


def model_label(m: ModelConfig) -> str:
    """e.g. 'BiGRU 3x256 c16' (conv channels shown when not the reference's 32)."""
    kind = ("Bi" if m.bidirectional else "") + m.rnn_type.upper()
    conv = "" if m.conv_channels == 32 else f" c{m.conv_channels}"
    return f"{kind} {m.layers}x{m.hidden}{conv}"


def model_specs(tiny_cfg: BenchmarkConfig, quick: bool, small_steps: int,
                ref_steps: int) -> list[ModelSpec]:
    """What to train: the tiny benchmark; in a full run also the seed's model (GRU 2×256
    uni, batch 8) at the run's thread count and at the seed's, and the reference size."""
    b = tiny_cfg.train.batch_per_card
    mel = tiny_cfg.features.mel_bins
    label = "tiny: " + model_label(tiny_cfg.model) + (f", mel{mel}" if mel else "") + f", b{b}"
    # The seed's and the reference's models have the reference front end: linear bins.
    linear = dataclasses.replace(tiny_cfg.features, mel_bins=0)
    # tiny as it trains: its train.fp32_precision (bf16 GEMMs in the CPU GRU).
    specs = [ModelSpec("tiny", label, tiny_cfg.model,
                       b, tiny_cfg.optim,
                       1 if quick else 3, small_steps, 1 if quick else 3, count_syncs=True,
                       fp32_precision=tiny_cfg.train.fp32_precision)]
    if not quick:
        seed_model = ModelConfig("gru", 256, 2, False)
        specs.append(ModelSpec("gru2x256_b8", "GRU 2x256 uni, b8", seed_model, 8,
                               OptimConfig(), 3, small_steps, 3, features=linear))
        specs.append(ModelSpec("gru2x256_b8_t1", "GRU 2x256 uni, b8 (seed cmp)", seed_model, 8,
                               OptimConfig(), 3, small_steps, 3, threads=SEED_TRAINER_THREADS,
                               features=linear))
        specs.append(ModelSpec("reference", "reference: GRU 3x2560 uni, b8", ModelConfig(), 8,
                               OptimConfig(), 1, ref_steps, 1, count_syncs=True, features=linear))
        # The same two models on the stock PyTorch kernels: the fast paths' gain,
        # measured in this run rather than remembered from another.
        specs.append(ModelSpec("tiny_stock", specs[0].label + " stock", tiny_cfg.model, b,
                               tiny_cfg.optim, 3, small_steps, 0, stock=True))
        specs.append(ModelSpec("reference_stock", "reference, stock kernels", ModelConfig(), 8,
                               OptimConfig(), 1, max(1, ref_steps - 1), 0, stock=True,
                               features=linear))
    return specs


def _records(measures: list[TrainMeasure], peaks: dict[int, float], fallback: float,
             feat: FeatureConfig, watch: LoadWatch, bandwidth_gbs: float | None = None,
             precision: str = "ieee", bf16_peak: float | None = None
             ) -> dict[str, dict[str, Any]]:
    # Each row's MFU is against the matmul peak at its own thread count and at the
    # fastest arithmetic its kernels may use: a row that lets the CPU GRU's GEMMs
    # take bf16 operands (tiny as it trains) is divided by the bf16 rate where that
    # is the faster one (measured at the run's thread count, where such rows run).
    training = {}
    for m in measures:
        peak, used = peaks.get(m.threads, fallback), precision
        if m.fp32_precision == "bf16" and m.spec.threads is None and (bf16_peak or 0) > peak:
            peak, used = bf16_peak, "bf16"
        rec = train_record(m, peak, m.spec.features_or(feat), bandwidth_gbs)
        rec["mfu_peak_precision"] = used
        training[m.spec.key] = rec
    for key, rec in training.items():
        rec["other_processes_cpu_cores"] = watch.foreign.get(key)
    return training


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    stamp = datetime.now(timezone.utc)
    out = args.json or Path("runs") / "perf" / f"perf-{stamp:%Y%m%dT%H%M%S}.json"
    cores = available_cores()
    threads = args.threads or cores
    device = pick_device(args.device, 0)
    torch.set_num_threads(threads)
    # The allocator settings a training run makes (train.host_malloc's default),
    # so the step measured here is the step a run takes.
    host_malloc = tune_host_malloc()
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
    specs = model_specs(tiny_cfg, args.quick, small_steps, args.ref_steps)
    source = data_source(args.data)
    log(f"[perf] data: {source.detail}")
    mm_n, mm_reps = (1024, 3) if args.quick else (2048, 5)
    mm_start = matmul_gflops(device, mm_n, mm_reps)
    watch.mark("matmul_start")
    mm_one = _one_thread_matmul(specs, device, mm_n, mm_reps, watch)
    measures = []
    for spec in specs:
        measures.append(measure_training(spec, source, spec.features_or(feat), aug, device, log))
        watch.mark(spec.key)
    mm_end = matmul_gflops(device, mm_n, mm_reps)
    watch.mark("matmul_end")
    # The MFU denominator: the best rate at the precision the model runs, over the
    # squares above and the measured models' own GEMM shapes (harness/perf/peaks.py).
    precision = run_precision(device)
    reps = 1 if args.quick else 3
    measured = precisions_to_measure(device)
    by_precision = precision_peaks(device, _gemm_shapes(specs, feat), measured, reps)
    watch.mark("gemm_shapes")
    square = max(mm_start["best_gflops"], mm_end["best_gflops"])  # fp32 as the device runs it
    peak = max(by_precision[precision]["best_gflops"] or 0.0,
               square if precision == "ieee" else 0.0)
    peaks = {threads: peak}
    if mm_one is not None:  # with --threads 1 both were measured at 1 thread: take the best
        with torch_threads(1):
            one = precision_peaks(device, _gemm_shapes([s for s in specs if s.threads == 1], feat),
                                  [precision], reps)
        mm_one["shapes_best_gflops"] = one[precision]["best_gflops"]
        peaks[1] = max(peaks.get(1, 0.0), mm_one["best_gflops"], mm_one["shapes_best_gflops"] or 0.0)
    bandwidth = copy_bandwidth_gbs(device, 64 if args.quick else 256)
    watch.mark("bandwidth")
    with tempfile.TemporaryDirectory(prefix="ds2perf-") as tmp:
        tiny_b = tiny_cfg.train.batch_per_card
        pipe = measure_pipeline(source, feat, aug, tiny_b, 2 if args.quick else 12, device, Path(tmp))
        watch.mark("pipeline")
        lg = measure_logging(Path(tmp), device, 200 if args.quick else 2000)
        watch.mark("logging")
    bf16_peak = (by_precision.get("bf16") or {}).get("best_gflops") if precision == "ieee" else None
    training = _records(measures, peaks, peak, feat, watch, bandwidth, precision, bf16_peak)
    tiny = training["tiny"]
    pipe["training_utt_s"] = tiny["throughput_utt_s"]
    pipe["ratio_to_training"] = pipe["utt_s"] / tiny["throughput_utt_s"]
    add_logging_per_step(lg, max(1, source.train_utterances // tiny_b),
                         tiny_cfg.train.log_every_steps, tiny["step_time_s"])
    result: dict[str, Any] = {
        "schema": "ds2bench.perf/1",
        "timestamp_utc": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": ["python", "-m", "harness", "perf", *argv],
        "config": _config(args, cores, device, watch, host_malloc),
        "data": {"source": source.kind, "detail": source.detail},
        "flops_convention": "2 FLOPs per multiply-add; conv + RNN (gates*H*(I+H)) + head; "
                            "training = 2*conv1 + 3*(conv2+rnn+head) (backward = 2x forward, "
                            "no input gradient for conv1); useful frames only (no padding)",
        "matmul": {"n": mm_n, "best_gflops": peak, "precision": precision,
                   "square_fp32_gflops": square, "start": mm_start, "end": mm_end,
                   "one_thread": mm_one, "by_precision": by_precision,
                   "not_measured": unmeasured_precisions(device, measured)},
        "memory_bandwidth_gbs": bandwidth,
        "training": training,
        "pipeline": pipe,
        "logging": lg,
    }
    from harness.perf.seedcmp import latest as latest_seedcmp

    result["seedcmp"] = latest_seedcmp(Path("runs"))  # runs/seedcmp, when make seed-cmp was run
    result["seedcmp_reference"] = latest_seedcmp(Path("runs"), "reference")
    result["targets"] = target_rows(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"  json: {out}")
    return 0


def _gemm_shapes(specs: list[ModelSpec], feat: FeatureConfig) -> list[tuple[str, int, int, int]]:
    """Squares plus each measured model's GEMMs at its batch, for typical utterances."""
    frames = num_frames(int(TYPICAL_DURATION_S * feat.sample_rate), feat)
    shapes = [("square 1024", 1024, 1024, 1024), ("square 2048", 2048, 2048, 2048)]
    seen = set()
    for s in specs:
        key = (s.model.rnn_type, s.model.hidden, s.model.conv_channels, s.model.layers, s.batch)
        if s.stock or key in seen:
            continue
        seen.add(key)
        shapes += model_gemm_shapes(s.model, num_bins(s.features_or(feat)), s.batch, frames)
    return shapes


def _one_thread_matmul(specs: list[ModelSpec], device: torch.device, n: int, reps: int,
                       watch: LoadWatch) -> dict[str, Any] | None:
    """The matmul peak at 1 thread (same n and reps as the run's), when a spec runs at 1 thread."""
    if not any(s.threads == 1 for s in specs):
        return None  # --quick: no 1-thread row, and quick mode stays quick
    with torch_threads(1):
        rate = matmul_gflops(device, n, reps)
    watch.mark("matmul_one_thread")
    return rate


def _config(args: argparse.Namespace, cores: int, device: torch.device,
            watch: LoadWatch, host_malloc: dict[str, Any]) -> dict[str, Any]:
    return {
        "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
        "host_malloc": host_malloc,
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
    }


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
