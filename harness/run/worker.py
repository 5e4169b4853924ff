"""One training process (rank): `python -m harness.run.worker` (started by `harness bench`).

Reads the resolved config from the run directory, joins the process group
(torchrun's environment), writes the MLPerf log on rank 0 and always closes it
with `run_stop`: success only when the target was reached. SIGTERM/SIGINT stop
at the next step boundary with a checkpoint.

Exit codes: 0 the run ended by its protocol (see result.json), a signal's
stop included (all ranks stop together, checkpointed), 1 error. `harness
bench` maps result.json to 0 (target reached), 1 (terminated by a signal) or
3 (ended without reaching it).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from pathlib import Path

EXIT_SUCCESS, EXIT_ERROR = 0, 1


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m harness.run.worker")
    p.add_argument("--run-dir", required=True, type=Path)
    p.add_argument("--device", default="auto")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--submission", type=Path, default=Path("submission.yaml"))
    p.add_argument("--timeout", type=float, default=1800.0, help="process-group timeout (s)")
    p.add_argument("--preflight-workers", type=int, default=1)
    return p.parse_args(argv)


def _cache_cleared(run_dir: Path) -> bool:
    """Whether the launcher really flushed the dataset before this run (description.json)."""
    try:
        desc = json.loads((run_dir / "description.json").read_text())
    except (OSError, ValueError):
        return False
    return bool(isinstance(desc.get("cache_clear"), dict) and desc["cache_clear"].get("cleared"))


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    from harness.mlperf.hooks import MLPerfHooks
    from harness.mlperf.log import MLPerfLogger
    from harness.run.rundir import next_log_path
    from harness.mlperf.submission import load_submission, submission_log_values
    from reference.config import load_config
    from reference.device import accelerator_name
    from reference.train.distributed import DistContext
    from reference.train.trainer import Trainer

    run_dir: Path = args.run_dir
    cfg = load_config(run_dir / "config.yaml")
    dist = DistContext.from_env(args.device, timeout_s=args.timeout)
    cards = dist.world_size
    log_path = next_log_path(run_dir) if dist.is_main else None
    log = MLPerfLogger(log_path, rank=dist.rank, barrier=dist.barrier)
    sub = load_submission(args.submission)
    accel = accelerator_name(dist.device)
    submission_keys = submission_log_values(sub, cards, accel)
    # A closed claim needs closed hyper-parameters: open if either side says open.
    if "open" in (cfg.division, sub.division):
        submission_keys["submission_division"] = "open"
    hooks = MLPerfHooks(log, cfg, cards, submission_keys, cache_cleared=_cache_cleared(run_dir))
    trainer = Trainer(cfg, run_dir, hooks=hooks, dist=dist, resume=args.resume,
                      preflight_workers=args.preflight_workers)

    def on_signal(signum: int, _frame) -> None:
        trainer.stop_requested = signal.Signals(signum).name

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = EXIT_ERROR
    failure = "worker error"
    try:
        trainer.prepare_data()  # manifests + verified records only: no audio before run_start
        hooks.log_init_start(resumed_from="checkpoint" if args.resume else None)
        trainer.setup()
        result = trainer.fit()
        # A run that ended by the protocol (target reached, epochs used up, or a
        # signal every rank stopped on together) exits 0 so torchrun does not
        # report it as a crash; the launcher turns result.json into the final
        # exit code (a termination is 1 there).
        code = EXIT_SUCCESS
        if dist.is_main:
            summary = {k: v for k, v in result.__dict__.items() if k != "history"}
            summary["log"] = log_path.name if log_path else None
            (run_dir / "result.json").write_text(json.dumps(summary, indent=1) + "\n")
        # Leave together: a rank that tears its process group down while a peer is
        # still in its last collective can abort in gloo ("terminate called without
        # an active exception", seen on 2-rank CPU runs). Only on this normal path:
        # after a failure the peers may be gone.
        dist.barrier()
    except Exception as err:  # noqa: BLE001 - reported, logged, and turned into an exit code
        failure = f"{type(err).__name__} on rank {dist.rank}: {err}"
        print(f"[rank {dist.rank}] error: {type(err).__name__}: {err}", file=sys.stderr)
        traceback.print_exc()
        if dist.is_main:
            (run_dir / "error.txt").write_text(traceback.format_exc())
    finally:
        if not log.stopped:
            # Failed before the trainer's own run_stop (e.g. bad data in setup):
            # the log must still end honestly. No barrier: peers may be gone.
            log.run_stop("aborted", failure, sync=False)
        log.close()
    return code


if __name__ == "__main__":
    status = main()
    # Leave without tearing the process group down: destroying it, or letting the
    # interpreter's exit destroy it, while gloo's threads still run aborts a rank
    # ("terminate called without an active exception", seen in 1 of ~3 2-rank CPU
    # runs) and torchrun then reports a finished run as crashed. Everything the run
    # writes is closed by now (the log, metrics, result.json, checkpoints).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
