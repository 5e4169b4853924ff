"""`harness bench`: create the run directory, start the ranks, make the log honest.

One card runs one worker process; N cards run `torchrun` (standalone on one
node, c10d rendezvous across nodes). The launcher stays alive as a supervisor:
it forwards SIGTERM/SIGINT, and when the workers are gone it makes sure the
MLPerf log ends with `run_stop` (appending `aborted` if rank 0 died before
writing it), so no log is left open and no failure exits 0.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.run.rundir import create_run_dir, log_segments

EXIT_NOT_CONVERGED = 3  # the run ended without reaching its target (or had none)


@dataclass
class LaunchSpec:
    cards: int = 1  # processes per node
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None  # host:port for multi-node c10d rendezvous
    rdzv_id: str = "ds2bench"
    device: str = "auto"
    timeout_s: float = 1800.0  # reference.train.distributed.DEFAULT_TIMEOUT_S
    preflight_workers: int = 1

    @property
    def world_size(self) -> int:
        return self.cards * self.nnodes


def worker_command(spec: LaunchSpec, run_dir: Path, resume: bool, submission: Path) -> list[str]:
    args = ["-m", "harness.run.worker", "--run-dir", str(run_dir), "--device", spec.device,
            "--submission", str(submission), "--timeout", str(spec.timeout_s),
            "--preflight-workers", str(spec.preflight_workers)]
    if resume:
        args.append("--resume")
    if spec.world_size == 1:
        return [sys.executable, *args]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={spec.cards}",
           "--max-restarts=0", "--monitor-interval=1"]
    if spec.nnodes == 1:
        cmd.append("--standalone")
    else:
        if not spec.rdzv_endpoint:
            raise ValueError("multi-node runs need a rendezvous endpoint (RDZV_ENDPOINT=host:port)")
        cmd += [f"--nnodes={spec.nnodes}", f"--node-rank={spec.node_rank}",
                "--rdzv-backend=c10d", f"--rdzv-endpoint={spec.rdzv_endpoint}",
                f"--rdzv-id={spec.rdzv_id}"]
    return cmd + args


def _close_log_if_open(run_dir: Path, reason: str) -> bool:
    from harness.mlperf.log import append_run_stop_aborted

    segs = log_segments(run_dir)
    return bool(segs) and append_run_stop_aborted(segs[-1], reason)


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the launcher dies (even by SIGKILL).

    The worker (or torchrun, which forwards it) then stops at the next step
    boundary with a checkpoint and an honest `run_stop aborted`, instead of
    training on as an orphan.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Terminated(Exception):
    """The launcher itself got SIGTERM/SIGINT (Ctrl-C, a scheduler's preemption): the
    run's log is closed; whoever started it must not start another (a REPEAT set or
    a scaling sweep stops). `code` is the run's exit code."""

    def __init__(self, signum: int, code: int) -> None:
        super().__init__(f"launcher received {signal.Signals(signum).name}")
        self.code = code


def supervise(cmd: list[str], run_dir: Path, env: dict[str, str]) -> int:
    """Run the workers; on any exit, leave a log that ends in run_stop. Returns the exit
    code; raises `Terminated` (after that) when the launcher was signalled."""
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_die_with_parent)
    got_signal: list[int] = []

    def forward(signum: int, _frame) -> None:
        got_signal.append(signum)
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    # Workers of a dead torchrun may linger for a moment; never leave them behind.
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    result = run_dir / "result.json"
    if code == 0:
        if result.is_file():
            import json

            res = json.loads(result.read_text())
            code = (0 if res.get("status") == "success"
                    else 1 if str(res.get("reason", "")).startswith("terminated")
                    else EXIT_NOT_CONVERGED)
        else:
            code = 1  # exited "cleanly" without a result: something is wrong
    why = (f"launcher received {signal.Signals(got_signal[0]).name}" if got_signal
           else f"workers exited with code {code} before run_stop (a rank died)")
    if _close_log_if_open(run_dir, why):
        print(f"[harness] {run_dir}: log closed with run_stop aborted ({why})", file=sys.stderr)
        code = code or 1
    if got_signal:
        raise Terminated(got_signal[0], code or 1)
    return code


def launch(spec: LaunchSpec, run_dir: Path, resume: bool = False,
           submission: Path = Path("submission.yaml")) -> int:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if spec.world_size > 1 and spec.device in ("auto", "cpu"):
        # CPU ranks split the cores; torchrun would otherwise leave OMP at 1 or all.
        env.pop("OMP_NUM_THREADS", None)
    repo = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")
    (run_dir / "result.json").unlink(missing_ok=True)  # written anew by this attempt
    if resume and _close_log_if_open(run_dir, "attempt interrupted (resumed later)"):
        print(f"[harness] {run_dir}: closed the interrupted attempt's log with run_stop aborted",
              file=sys.stderr)
    return supervise(worker_command(spec, run_dir, resume, submission), run_dir, env)


def new_run(runs: Path, benchmark: str, cards: int, device_label: str, seed: int) -> Path:
    return create_run_dir(runs, benchmark, cards, device_label, seed)
