#!/usr/bin/env python3
"""`make device-check`: does ds2bench compute the same on this accelerator, in <= 5 minutes?

On one GPU (or MLU) it checks, with the tolerances stated in TOL:
  * parity with the CPU: features, both CTC definitions (the training NLL and the
    seed's raw-logit quantity), forward and backward of the tiny and the reference
    (GRU 3x2560) model, fp32 with TF32 off on both sides;
  * one-rank process group on the device's backend (NCCL / CNCL) and a DDP step equal
    to the plain step;
  * the RNN's dtype under each AMP setting (what `train.amp` would run; information);
  * throughput and peak memory of the reference LSTM 3x2560 at batch 8 (2 s utterances),
    the trainer's own step, fp32 ieee and tf32 (information);
  * the training step's host synchronisations at the reference size (GRU 3x2560, batch 8):
    the instrumented count (harness/perf/syncs.py) must be 0, and on CUDA the step must
    also run under `torch.cuda.set_sync_debug_mode("error")` with no warning in "warn";
    beside it the step's utt/s before/after: the same step reading the non-finite flag on
    the host every step (the old step's one unavoidable sync) against the masked update;
  * an end-to-end `harness bench` on a few utterances whose MLPerf log passes `harness check`.
Without an accelerator it says so, runs the part that needs none (bad-argument refusals,
the doctor's dependency checks, the CPU's AMP dtypes, the instrumented sync count of a
small step on the CPU) and exits 0 when that passes.

One line per check (PASS / FAIL / INFO); everything also goes to
RUNS/device-check-<UTC>/device_check.json. Exit 1 when any check fails.
Usage: make device-check [RUNS=runs]   or   python scripts/device_check.py --runs runs
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

# Largest allowed CPU-vs-device difference, fp32 with TF32 off on both sides.
TOL = {
    "features_abs": 1e-3,  # features are normalised to unit variance per utterance
    "ctc_rel": 1e-4,  # per-utterance NLL and the seed's quantity
    "logits_rel": {"tiny": 1e-3, "reference": 5e-3},  # max |diff| / max |logit|
    "grad_rel": {"tiny": 1e-3, "reference": 1e-2},  # worst ||g_dev - g_cpu|| / ||g_cpu||
    "ddp_rel": 1e-6,  # DDP on one rank vs the plain step
}


class Report:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, name: str, status: str, detail: str, **values: Any) -> None:
        self.rows.append({"check": name, "status": status, "detail": detail, **values})
        print(f"{status:<5} {name}: {detail}", flush=True)

    def run(self, name: str, fn: Callable[[], tuple[bool, str, dict]]) -> None:
        t0 = time.perf_counter()
        try:
            ok, detail, values = fn()
        except Exception as err:  # noqa: BLE001 - a crash is a failed check, reported
            ok, detail, values = False, f"{type(err).__name__}: {str(err).splitlines()[0]}", {}
        self.add(name, "PASS" if ok else "FAIL", f"{detail} [{time.perf_counter() - t0:.1f} s]",
                 **values)

    @property
    def failed(self) -> int:
        return sum(r["status"] == "FAIL" for r in self.rows)


# ------------------------------------------------------------------ CPU-side part
def check_refusals(runs: Path) -> tuple[bool, str, dict]:
    """Bad values are one-line refusals (exit 2) that leave no run directory."""
    import contextlib
    import io

    from harness.cli import main
    from reference.device import decide

    count = decide("auto").count
    cases = [["--cards", "0"], ["--cards", "abc"], ["--device", "tpu"]]
    if count:
        cases.append(["--cards", str(count + 1)])  # more cards than devices
    else:
        cases.append(["--device", "cuda"])
    bad = []
    for args in cases:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                code = main(["bench", "--runs", str(runs / "refused"), *args])
            except SystemExit as stop:
                code = stop.code
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        if code != 2 or len(lines) != 1 or (runs / "refused").exists():
            bad.append(f"{' '.join(args)} -> exit {code}, {len(lines)} line(s)")
    return not bad, "; ".join(bad) or f"{len(cases)} bad values refused (exit 2, one line, no run dir)", {}


def check_dependencies() -> tuple[bool, str, dict]:
    from harness.run.stack import import_checks

    problems = {k: v for k, v in import_checks().items() if v}
    return not problems, json.dumps(problems) if problems else "all import; torch.from_numpy and FLAC work", {}


def check_step_syncs(dev: torch.device, small: bool = False) -> tuple[bool, str, dict]:
    """Host syncs of one training step and its utt/s with and without the per-step host read.

    `small` (the CPU-side part): a GRU 1x64 at batch 2, enough to run the instrumented
    count through the trainer's step; the reference size is for accelerators.
    """
    from harness.perf.syncs import device_step_check

    size = dict(steps=1, batch=2, hidden=64, layers=1) if small else {}
    rep = device_step_check(dev, **size)
    cuda_ok = rep["cuda_sync_debug_warnings"] in (None, 0) and \
        str(rep.get("error_mode", "ok")).startswith("ok")
    ok = rep["instrumented_syncs"] == 0 and cuda_ok
    model = "GRU 1x64 b2" if small else "GRU 3x2560 b8"
    detail = (f"{model}: instrumented syncs {rep['instrumented_syncs']} (want 0)"
              + ("" if rep["cuda_sync_debug_warnings"] is None else
                 f", set_sync_debug_mode warnings {rep['cuda_sync_debug_warnings']}, "
                 f"error mode {rep.get('error_mode')}")
              + f"; {rep['utt_s_masked_update']:.1f} utt/s masked update vs "
              f"{rep['utt_s_host_reads_flag']:.1f} reading the flag on the host every step")
    if rep["instrumented_sites"]:
        detail += f"; sites {rep['instrumented_sites']}"
    return ok, detail, {k: v for k, v in rep.items() if k != "instrumented_sites"}


def amp_table(device: torch.device, report: Report) -> None:
    """The RNN dtype each train.amp setting runs (information, never a failure)."""
    from reference.config import FeatureConfig, ModelConfig
    from reference.train.precision import PrecisionError, plan_amp

    for rnn in ("gru", "lstm"):
        for amp in ("off", "bf16", "fp16"):
            try:
                info = plan_amp(amp, ModelConfig(rnn_type=rnn), FeatureConfig(), device).info()
                detail = f"RNN computes in {info['rnn_dtype']}, GradScaler {info['grad_scaler']}"
            except PrecisionError as err:
                info, detail = {}, f"refused: {err}"
            report.add(f"amp {device.type} {rnn} {amp}", "INFO", detail, **info)


# ----------------------------------------------------------------- device part
def _waves(batch: int, seconds: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = int(16000 * seconds)
    wave = torch.randn(batch, n, generator=g) * 0.1
    lengths = torch.tensor([n - k * 1600 for k in range(batch)])
    for k, length in enumerate(lengths.tolist()):
        wave[k, length:] = 0
    return wave, lengths


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp(min=1e-30))


def check_features(dev: torch.device) -> tuple[bool, str, dict]:
    from reference.config import FeatureConfig
    from reference.data.features import featurize

    wave, lengths = _waves(4, 2.0)
    cpu, f_cpu = featurize(wave, lengths, FeatureConfig())
    got, f_dev = featurize(wave.to(dev), lengths.to(dev), FeatureConfig())
    diff = float((got.cpu() - cpu).abs().max())
    ok = diff <= TOL["features_abs"] and torch.equal(f_dev.cpu(), f_cpu)
    return ok, f"max |diff| {diff:.2e} (tol {TOL['features_abs']:.0e}), frames equal", {"max_abs": diff}


def check_ctc(dev: torch.device) -> tuple[bool, str, dict]:
    from reference.model.loss import ctc_per_utterance, seed_loss

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(60, 4, 29, generator=g) * 3
    out_lens = torch.tensor([60, 55, 50, 40])
    tlens = torch.tensor([12, 10, 9, 7])
    targets = torch.randint(1, 29, (int(tlens.sum()),), generator=g)
    args_dev = [t.to(dev) for t in (logits, out_lens, targets, tlens)]
    nll = _rel(ctc_per_utterance(*args_dev).cpu(), ctc_per_utterance(logits, out_lens, targets, tlens))
    seed = _rel(seed_loss(*args_dev).cpu().reshape(1),
                seed_loss(logits, out_lens, targets, tlens).reshape(1))
    ok = nll <= TOL["ctc_rel"] and seed <= TOL["ctc_rel"]
    return ok, (f"CTC NLL rel {nll:.1e}, seed raw-logit loss rel {seed:.1e} "
                f"(tol {TOL['ctc_rel']:.0e})"), {"nll_rel": nll, "seed_rel": seed}


def _model_cfg(name: str):
    from reference.config import load_config

    return load_config({"tiny": "tiny", "reference": "mlcommons_v05"}[name])


def _fwd_bwd(model, feats, frames, targets, tlens):
    from reference.model.loss import ctc_per_utterance

    logits, out_lens = model(feats, frames)
    loss = ctc_per_utterance(logits, out_lens.to(logits.device), targets, tlens).mean()
    loss.backward()
    return logits.detach(), {n: p.grad.detach() for n, p in model.named_parameters()}


def check_model(dev: torch.device, name: str) -> tuple[bool, str, dict]:
    import copy

    from reference.data.features import featurize
    from reference.model.deepspeech2 import DeepSpeech2

    cfg = _model_cfg(name)
    torch.manual_seed(0)
    cpu_model = DeepSpeech2(cfg.model, cfg.features).train()
    dev_model = copy.deepcopy(cpu_model).to(dev)
    wave, lengths = _waves(2, 1.0)
    feats, frames = featurize(wave, lengths, cfg.features)
    tlens = torch.tensor([8, 6])
    targets = torch.randint(2, 28, (14,), generator=torch.Generator().manual_seed(2))
    l_cpu, g_cpu = _fwd_bwd(cpu_model, feats, frames, targets, tlens)
    l_dev, g_dev = _fwd_bwd(dev_model, feats.to(dev), frames, targets.to(dev), tlens.to(dev))
    logit_rel = float((l_dev.cpu() - l_cpu).abs().max() / l_cpu.abs().max())
    grad_rel = max(_rel(g_dev[k].cpu(), g_cpu[k]) for k in g_cpu)
    ok = logit_rel <= TOL["logits_rel"][name] and grad_rel <= TOL["grad_rel"][name]
    return ok, (f"{cfg.model.rnn_type.upper()} {cfg.model.layers}x{cfg.model.hidden}: logits rel "
                f"{logit_rel:.1e} (tol {TOL['logits_rel'][name]:.0e}), worst gradient rel "
                f"{grad_rel:.1e} (tol {TOL['grad_rel'][name]:.0e})"), \
        {"logits_rel": logit_rel, "grad_rel": grad_rel}


def check_ddp(dev: torch.device) -> tuple[bool, str, dict]:
    import copy

    import torch.distributed as dist

    from reference.data.features import featurize
    from reference.device import BACKENDS, process_group_kwargs
    from reference.model.deepspeech2 import DeepSpeech2

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = BACKENDS[dev.type]
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
                            **process_group_kwargs(dev))
    try:
        t = torch.full((4,), 3.0, device=dev)
        dist.all_reduce(t)
        cfg = _model_cfg("tiny")
        torch.manual_seed(0)
        plain = DeepSpeech2(cfg.model, cfg.features).to(dev).train()
        ddp = torch.nn.parallel.DistributedDataParallel(
            copy.deepcopy(plain), device_ids=None if dev.type == "cpu" else [dev.index])
        wave, lengths = _waves(2, 1.0)
        feats, frames = featurize(wave.to(dev), lengths.to(dev), cfg.features)
        tl = torch.tensor([8, 6], device=dev)
        tg = torch.randint(2, 28, (14,), device=dev)
        _, g_plain = _fwd_bwd(plain, feats, frames.cpu(), tg, tl)
        _, g_ddp = _fwd_bwd(ddp, feats, frames.cpu(), tg, tl)
        worst = max(_rel(g_ddp["module." + k], g_plain[k]) for k in g_plain)
    finally:
        dist.destroy_process_group()
    ok = float(t[0]) == 3.0 and worst <= TOL["ddp_rel"]
    return ok, (f"{backend}: all_reduce ok, DDP step vs plain step worst gradient rel {worst:.1e} "
                f"(tol {TOL['ddp_rel']:.0e})"), {"backend": backend, "grad_rel": worst}


def lstm_throughput(dev: torch.device, report: Report) -> None:
    """Reference LSTM 3x2560, batch 8, 2 s utterances: the trainer's step (harness.perf)."""
    from harness.perf.step import ModelSpec, StepRunner
    from reference.config import AugmentConfig, FeatureConfig, ModelConfig, OptimConfig
    from reference.data.loader import Batch
    from reference.device import device_module, synchronize
    from reference.train.precision import apply_fp32_precision

    mod = device_module(dev.type)
    wave, _ = _waves(8, 2.0)
    lengths = torch.full((8,), wave.shape[1])
    tl = torch.full((8,), 25)
    batch = Batch(wave, lengths, torch.randint(2, 28, (200,)), tl, list(range(8)))
    for mode in ("ieee", "tf32"):
        apply_fp32_precision(mode)
        spec = ModelSpec("lstm", "reference LSTM 3x2560", ModelConfig(rnn_type="lstm"), 8,
                         OptimConfig(), warmup=3, steps=10, breakdown_steps=0)
        runner = StepRunner(spec, FeatureConfig(), replace(AugmentConfig(), enabled=False), dev)
        if hasattr(mod, "reset_peak_memory_stats"):
            mod.reset_peak_memory_stats(dev)
        for _ in range(spec.warmup):
            runner.step(batch, 1)
        synchronize(dev)
        t0 = time.perf_counter()
        for _ in range(spec.steps):
            runner.step(batch, 1)
        synchronize(dev)
        took = time.perf_counter() - t0
        peak = mod.max_memory_allocated(dev) / 2**30 if hasattr(mod, "max_memory_allocated") else None
        report.add(f"throughput lstm3x2560 b8 fp32={mode}", "INFO",
                   f"{8 * spec.steps / took:.1f} utt/s ({took / spec.steps * 1e3:.0f} ms/step, "
                   f"2.0 s utterances), peak memory "
                   f"{'n/a' if peak is None else f'{peak:.2f} GiB'}",
                   utt_s=8 * spec.steps / took, peak_gib=peak)
        del runner
    apply_fp32_precision("ieee")


def check_e2e(dev: torch.device, out: Path) -> tuple[bool, str, dict]:
    from reference.data.corpus import build_corpus

    corpus = out / "corpus" / "embedded"
    build_corpus(corpus, limit=32, workers=min(8, os.cpu_count() or 1), progress=False)
    runs = out / "runs"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "harness", "bench", "--benchmark", "tiny", "--device", dev.type,
           "--runs", str(runs), "--set", f"data.root={corpus}", "--set", "train.epochs=1",
           "--set", "train.target_wer=100", "--set", "data.eval_batch=16"]
    bench = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    (out / "e2e_bench.log").write_text(bench.stdout + bench.stderr)
    logs = sorted(runs.glob("*/mlperf.log"))
    # Target WER 100: reached after epoch 1 by any model, so the run ends "success" (exit 0).
    if bench.returncode != 0 or not logs:
        return False, f"bench exit {bench.returncode} (want 0), see {out / 'e2e_bench.log'}", {}
    check = subprocess.run([sys.executable, "-m", "harness", "check", "--log", str(logs[0])],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    verdict = (check.stdout.strip().splitlines() or ["no verdict"])[0]
    keys = {}
    for line in logs[0].read_text().splitlines():
        if line.startswith(":::MLLOG ") and '"key": "ds2_' in line:
            rec = json.loads(line[len(":::MLLOG "):])
            if rec["key"] in ("ds2_fp32_precision", "ds2_rnn_dtype", "ds2_run_throughput"):
                keys[rec["key"]] = rec["value"]
    ok = check.returncode == 0 and verdict.startswith("PASS")
    return ok, f"{logs[0].parent.name}: {verdict[:120]}; {keys}", keys


# ------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/device_check.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--device", default="auto", help="auto (default) | cuda | mlu | xpu")
    args = p.parse_args(argv)
    from reference.device import DeviceError, decide
    from reference.train.precision import apply_fp32_precision

    out = args.runs / f"device-check-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    out.mkdir(parents=True, exist_ok=True)
    report = Report()
    t0 = time.perf_counter()
    try:
        d = decide(args.device)
    except DeviceError as err:
        report.add("device", "FAIL", str(err))
        d = None
    print(f"[device-check] torch {torch.__version__}; device: "
          f"{'none usable' if d is None else f'{d.kind} ({d.reason})'}", flush=True)
    report.run("refusals", lambda: check_refusals(out))
    report.run("dependencies", check_dependencies)
    amp_table(torch.device("cpu"), report)
    report.run("step syncs (instrumented, CPU)", lambda: check_step_syncs(torch.device("cpu"),
                                                                          small=True))
    if d is not None and d.kind == "cpu":
        print("[device-check] no accelerator here: the GPU checks are skipped "
              "(the part above needs none)", flush=True)
    elif d is not None:
        dev = torch.device(d.kind, 0)
        from reference.device import device_module

        device_module(d.kind).set_device(0)
        apply_fp32_precision("ieee")
        report.run("features cpu-vs-device", lambda: check_features(dev))
        report.run("ctc cpu-vs-device", lambda: check_ctc(dev))
        report.run("tiny model fwd/bwd cpu-vs-device", lambda: check_model(dev, "tiny"))
        report.run("reference model fwd/bwd cpu-vs-device", lambda: check_model(dev, "reference"))
        report.run("one-rank process group + DDP", lambda: check_ddp(dev))
        amp_table(dev, report)
        try:
            lstm_throughput(dev, report)
        except Exception as err:  # noqa: BLE001
            report.add("throughput lstm3x2560 b8", "FAIL", f"{type(err).__name__}: {err}")
        report.run("step syncs + throughput before/after", lambda: check_step_syncs(dev))
        report.run("e2e bench + harness check", lambda: check_e2e(dev, out))
    summary = {"torch": torch.__version__, "device": None if d is None else d.kind,
               "tolerances": TOL, "seconds": time.perf_counter() - t0, "checks": report.rows}
    (out / "device_check.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"[device-check] {len(report.rows)} lines, {report.failed} failed, "
          f"{summary['seconds']:.0f} s; {out / 'device_check.json'}", flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
