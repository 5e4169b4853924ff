"""`harness bench` / `harness scaling`: resolve the benchmark, prepare data, run, summarise."""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

from harness.run.launch import LaunchSpec, Terminated, launch
from harness.run.rundir import create_run_dir


EXIT_BAD_INPUT = 2  # nothing was run, no run directory was made


def resolve_device(preference: str, cards: int) -> str:
    """The device type every rank of this node uses; DeviceError when it cannot.

    Decided once here, before any run directory exists, and passed to the
    workers explicitly, so a bad device or too many cards is a one-line error
    and all ranks agree. `auto` says on stderr what it chose and why.
    """
    from reference.device import check_cards, decide

    d = decide(preference)
    check_cards(d, cards)
    if preference == "auto":
        print(f"[device] auto: {d.kind} ({d.reason}), backend {d.backend}", file=sys.stderr,
              flush=True)
    return d.kind


def _prepare_data(cfg) -> None:
    """The offline data-preparation phase: corpus present, verified records up to date.

    Runs before any run directory exists; decoding here (a new or changed
    corpus) is data preparation, not part of a run. A run itself only reads
    the manifests and their `.verified` records before `run_start`.
    """
    from harness.data.verify import prepare_for_run
    from reference.data.manifest import ManifestError

    _ensure_data(cfg)
    try:
        summary = prepare_for_run(cfg)
    except (ValueError, RuntimeError, ManifestError) as err:
        raise SystemExit(f"[harness] {cfg.name}: {err}") from None
    print(f"[data] {cfg.name}: verified manifests, usable utterances {summary}", file=sys.stderr)


def _ensure_data(cfg) -> None:
    root = Path(cfg.data.root)
    if cfg.data.corpus == "embedded":
        from reference.data.corpus import build_corpus

        custom = root.resolve() != (Path(__file__).resolve().parents[2] / "data/embedded")
        if custom and (root / cfg.data.train_manifest).is_file():
            return  # a corpus built elsewhere (e.g. a --limit build for tests): use as is
        build_corpus(root)  # no-op when already built and verified
    else:
        missing = [m for m in (cfg.data.train_manifest, cfg.data.eval_manifest)
                   if not (Path(m) if Path(m).is_absolute() else root / m).is_file()]
        if missing:
            raise SystemExit(f"[harness] {cfg.name}: manifests {missing} not found under {root}; "
                             f"run `make data LIBRISPEECH=/path/to/LibriSpeech` first")


def _write_run_files(run_dir: Path, cfg, spec: LaunchSpec, device: str, sub_path: Path) -> None:
    from harness.run.describe import describe
    from harness.mlperf.submission import load_submission, system_description
    from reference.config import dump_config
    import torch

    from reference.device import accelerator_name
    from reference.train.trainer import default_threads

    (run_dir / "config.yaml").write_text(dump_config(cfg))
    accel = accelerator_name(torch.device(device, 0)) if device != "cpu" else "CPU"
    threads = (cfg.train.threads or default_threads(spec.cards)) if device == "cpu" else None
    from harness.run.stack import stack_facts

    desc = describe(spec.world_size, spec.nnodes, device, accel, threads,
                    Path(__file__).resolve().parents[2],
                    stack=stack_facts(device, spec.cards, run_dir.parent))
    # What the run is asked to compute in; the MLPerf log records what ran (ds2_rnn_dtype).
    desc["precision"] = {"fp32_precision": cfg.train.fp32_precision, "amp": cfg.train.amp}
    emulated = bf16_emulation_warning(cfg.train.fp32_precision, device)
    if cfg.train.fp32_precision == "bf16" and device == "cpu":
        desc["precision"]["cpu_native_bf16"] = emulated is None
    (run_dir / "description.json").write_text(json.dumps(desc, indent=1) + "\n")
    _warn_if_loaded(desc, threads, spec.cards)
    if emulated:
        print(emulated, file=sys.stderr)
    sub = load_submission(sub_path)
    sysdesc = system_description(sub, spec.world_size, spec.nnodes, accel, _host_info(desc))
    (run_dir / "system_desc.json").write_text(json.dumps(sysdesc, indent=1) + "\n")


def bf16_emulation_warning(fp32_precision: str, device: str,
                           cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """A warning line when `train.fp32_precision: bf16` runs on a CPU without bf16 hardware.

    tiny's GRU GEMMs and conv2 then take bf16 operands that oneDNN can only
    emulate (no amx_bf16 / avx512_bf16 flag): the run is still correct, but
    nothing then makes bf16 faster (it may well be slower than IEEE fp32), and
    its times are not comparable with a machine that has the hardware. None
    when nothing is to be said.
    """
    from harness.perf.peaks import cpu_has_native_bf16

    if fp32_precision != "bf16" or device != "cpu" or cpu_has_native_bf16(cpuinfo):
        return None
    return ("[harness] WARNING: train.fp32_precision bf16 on a CPU without bf16 hardware (no "
            "amx_bf16 or avx512_bf16 in its flags): oneDNN emulates the bf16 GEMMs and "
            "convolution, so this run may be slower than in fp32 and its times are not comparable "
            "with a CPU that has it (recorded in description.json); --set "
            "train.fp32_precision=ieee runs them in fp32.")


def _warn_if_loaded(desc: dict, threads: int | None, ranks: int) -> None:
    """Say so when other processes already use the cores this run's threads need.

    On CPU, threads × ranks = cores by default; any other busy process then
    over-subscribes the machine and steps slow down several-fold (measured:
    2 threads on 2 cores lose 35 % or more beside one busy process). The run
    goes on (the load is recorded in description.json), but its times are not
    comparable with an idle machine's.
    """
    busy = desc.get("busy_cores_at_start")
    cores = desc.get("cpu", {}).get("cores_available")
    if threads is None or busy is None or not cores:
        return
    if cores - busy < threads * ranks - 0.5:
        print(f"[harness] WARNING: other processes keep {busy:.1f} of {cores} cores busy, this run "
              f"wants {threads} thread(s) x {ranks} rank(s): they will compete for the CPU, so "
              "its time to train and throughput will be pessimistic (recorded in "
              "description.json). Set train.threads (--set train.threads=N) or free the machine.",
              file=sys.stderr)


def _host_info(desc: dict) -> dict[str, str]:
    """Detected host facts under MLPerf system-description field names."""
    sw = desc["software"]
    stack = ", ".join(f"{k} {v}" for k, v in sw.items() if v and k != "torch")
    return {
        "host_processor_model_name": desc["cpu"]["model"],
        "host_processor_core_count": str(desc["cpu"]["cores_available"]),
        "host_processor_vcpu_count": str(desc["cpu"]["cores_available"]),
        "host_processors_per_node": "1",
        "host_memory_capacity": f"{desc['memory(GiB)']} GiB",
        "framework": f"PyTorch {sw.get('torch')}",
        "operating_system": desc["os"],
        "other_software_stack": stack,
    }


def _print_summary(run_dir: Path, code: int) -> None:
    res = run_dir / "result.json"
    if res.is_file():
        r = json.loads(res.read_text())
        thr = r.get("throughput")
        print(f"[harness] {run_dir}: {r['status']} ({r['reason']}); epochs {r['epochs_completed']}, "
              f"best reference WER {r['best_wer']}, throughput "
              f"{'n/a' if thr is None else f'{thr:.1f}'} utt/s", file=sys.stderr)
    else:
        print(f"[harness] {run_dir}: no result (exit code {code}); see error.txt and mlperf.log",
              file=sys.stderr)


def _shared_run_dir(runs: Path, cfg, spec: LaunchSpec, device: str, sub: Path) -> Path:
    """Multi-node: one run directory on the shared filesystem, named by the job.

    Node 0 creates it; the other nodes wait for its config. Whichever node ends
    up hosting global rank 0 writes the log there.
    """
    import time

    if not spec.rdzv_id or spec.rdzv_id == "ds2bench":
        raise SystemExit("[harness] multi-node runs need a unique job id: set RDZV_ID "
                         "(SLURM_JOB_ID is used under SLURM)")
    run_dir = runs / f"{cfg.name}-{spec.world_size}x{device}-job{spec.rdzv_id}-s{cfg.train.seed}"
    if spec.node_rank == 0:
        runs.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir()  # fails if the job id was used before: never share a directory
        (run_dir / "checkpoints").mkdir()
        _write_run_files(run_dir, cfg, spec, device, sub)
    else:
        deadline = time.time() + 300
        while not (run_dir / "system_desc.json").exists():
            if time.time() > deadline:
                raise SystemExit(f"[harness] {run_dir}: node 0 never created it (shared RUNS?)")
            time.sleep(1)
    return run_dir


class _Refused(Exception):
    """A run that must not start (message for the user; exit status 2)."""


def _run_division(args: argparse.Namespace, cfg, cards: int) -> str:
    """The division this run will log; refuses closed-pinned overrides of a closed benchmark.

    Closed only when the submitter declares it (submission.yaml), the
    benchmark defines it, and the run keeps every value the closed rules pin.
    `--division open` (make DIVISION=open) runs a changed closed benchmark in
    the open division instead. Decided before any run directory exists.
    """
    from harness.mlperf.pinned import closed_overrides
    from harness.mlperf.submission import load_submission
    from reference.config import load_config, resolve_cards

    wanted = getattr(args, "division", None)
    if wanted not in (None, "", "open", "closed"):
        raise _Refused(f"--division must be open or closed (got {wanted!r})")
    declared = load_submission(args.submission).division
    if wanted == "open" or declared == "open" or cfg.division == "open":
        if wanted == "closed":
            who = (f"{args.submission} declares division: open" if declared == "open"
                   else f"benchmark {cfg.name} defines no closed division")
            raise _Refused(f"cannot run closed: {who}")
        return "open"
    changed = closed_overrides(resolve_cards(load_config(args.benchmark), cards), cfg)
    if changed:
        raise _Refused(
            f"{cfg.name} is a closed-division benchmark and {args.submission} declares closed: "
            f"the overrides change what the closed rules pin ({', '.join(changed)}). Run it as "
            "open (make DIVISION=open / --division open) or drop those --set overrides")
    return "closed"


def _flush_cache(run_dir: Path, cfg, record: bool = True) -> None:
    """Flush the dataset from the page cache; record how in description.json (cache_clear).

    Every node flushes its own cache; only node 0 (`record`) writes the record
    (the run directory is shared).
    """
    from harness.run.cache import flush_dataset
    from reference.train.prep.splits import resolve_manifest

    manifests = [resolve_manifest(cfg, cfg.data.train_manifest),
                 resolve_manifest(cfg, cfg.data.eval_manifest)]
    result = flush_dataset(manifests)
    print(f"[harness] cache_clear: {'done' if result['cleared'] else 'NOT done'} "
          f"({result.get('method')}, {result.get('files')} files)", file=sys.stderr)
    if not record:
        return
    desc_path = run_dir / "description.json"
    desc = json.loads(desc_path.read_text()) if desc_path.is_file() else {}
    desc["cache_clear"] = result
    desc_path.write_text(json.dumps(desc, indent=1) + "\n")


def run_bench(args: argparse.Namespace, cards: int | None = None) -> int:
    from reference.config import ConfigError, load_config, resolve_cards
    from reference.device import DeviceError
    from reference.train.precision import PrecisionError, check_fp32_precision

    spec = LaunchSpec(cards=cards or args.cards or 1, nnodes=args.nnodes, node_rank=args.node_rank,
                      rdzv_endpoint=args.rdzv_endpoint, device=args.device, timeout_s=args.timeout,
                      preflight_workers=2,
                      rdzv_id=os.environ.get("RDZV_ID") or os.environ.get("SLURM_JOB_ID") or "ds2bench")
    try:
        spec.device = resolve_device(args.device, spec.cards)
        if args.resume:
            run_dir = args.resume
            if not (run_dir / "config.yaml").is_file():
                print(f"[harness] --resume {run_dir}: not a run directory (no config.yaml)",
                      file=sys.stderr)
                return EXIT_BAD_INPUT
            from reference.config import load_config as _load

            resumed_cfg = _load(run_dir / "config.yaml")
            try:
                _prepare_data(resumed_cfg)  # the records may need refreshing; outside the run
            except SystemExit as err:
                print(err, file=sys.stderr)
                return EXIT_BAD_INPUT
            _flush_cache(run_dir, resumed_cfg)
            return _launch_and_report(spec, run_dir, args, resume=True)
        overrides = list(args.overrides)
        base = resolve_cards(load_config(args.benchmark, overrides), spec.world_size)
        division = _run_division(args, base, spec.world_size)
        # Before any run directory: bf16 fp32 math is a CPU setting.
        check_fp32_precision(base.train.fp32_precision, spec.device)
        if division == "open" and base.division == "closed":
            overrides.append("division=open")  # what config.yaml, and so the log, will say
            base.division = "open"
    except DeviceError as err:
        print(f"[harness] {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ConfigError as err:
        print(f"[harness] config error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (_Refused, PrecisionError) as err:
        print(f"[harness] {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    seed0 = base.train.seed
    if args.seed == "random":
        seed0 = secrets.randbelow(2**31)
    elif args.seed is not None:
        seed0 = int(args.seed)
    try:
        _prepare_data(base)
    except SystemExit as err:
        print(err, file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"[harness] {base.name}: {division} division", file=sys.stderr)
    device = spec.device
    runs = args.runs
    worst = 0
    for k in range(args.repeat):
        cfg = resolve_cards(load_config(args.benchmark, overrides + [f"train.seed={seed0 + k}"]),
                            spec.world_size)
        if spec.nnodes > 1:
            run_dir = _shared_run_dir(runs, cfg, spec, device, args.submission)
        else:
            run_dir = create_run_dir(runs, cfg.name, spec.world_size, device, cfg.train.seed)
            _write_run_files(run_dir, cfg, spec, device, args.submission)
        _flush_cache(run_dir, cfg, record=spec.node_rank == 0)
        print(f"[harness] run {k + 1}/{args.repeat}: {run_dir} ({spec.world_size} x {device}, "
              f"seed {cfg.train.seed})", file=sys.stderr, flush=True)
        try:
            code = _launch_and_report(spec, run_dir, args)
        except Terminated as stop:
            if k + 1 < args.repeat:  # every run of a set counts: none starts after a stop
                print(f"[harness] {stop}: the set stops; runs {k + 2}-{args.repeat} of "
                      f"{args.repeat} not started", file=sys.stderr)
            raise
        worst = worst or code
    return worst


def _launch_and_report(spec: LaunchSpec, run_dir: Path, args: argparse.Namespace,
                       resume: bool = False) -> int:
    """Launch one run and print its summary line, also when the launcher is signalled
    (`Terminated` then goes on up: no further run of a set or sweep starts)."""
    try:
        code = launch(spec, run_dir, resume=resume, submission=args.submission)
    except Terminated as stop:
        _print_summary(run_dir, stop.code)
        raise
    _print_summary(run_dir, code)
    return code


def run_scaling(args: argparse.Namespace, sweep: list[int]) -> int:
    worst = 0
    for cards in sweep:
        worst = run_bench(args, cards=cards) or worst
    return worst
