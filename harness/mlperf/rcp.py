"""Reference convergence points (RCPs) for a DS2 benchmark, with MLPerf's own `rcp_checker`.

An RCP is the distribution of "epochs to converge" of a benchmark's reference
recipe over several seeds at one global batch size. MLPerf's `rcp_checker`
compares a set of runs with it: a set whose olympic mean (fastest and slowest
run dropped) converges significantly faster than the RCP's (one-sided t-test,
alpha 0.05) is rejected, a sign of a changed recipe. Here:

* "epochs to converge" is read by the engine's own `read_submission_file`: the
  `epoch_num` of the last `eval_accuracy` before a successful `run_stop`
  (fractional at a mid-epoch evaluation, `train.eval_every_samples`); the
  RCP file also keeps the samples to target (`samples_count`) for reading;
* the RCP file has MLPerf's format (one record per batch size: `Benchmark`,
  `BS`, `Hyperparams`, `Epochs to converge`), so the engine loads it as given;
* MLPerf has no DS2 entry in its table of required runs: `register` adds
  `deepspeech2` with the benchmark's `scoring.required_runs` before use.

    python -m harness rcp run --benchmark tiny --seeds 5 --batches 8 16   # make the data
    python -m harness rcp collect --runs runs/rcp --out benchmarks/rcp/tiny.json
    python -m harness rcp check --set runs/myset --rcp benchmarks/rcp/tiny.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from harness.mlperf.log import BENCHMARK_NAME

USAGE, RULESET = "training", "4.1.0"
HYPERPARAMS = ("opt_name", "opt_base_learning_rate", "opt_weight_decay",
               "opt_learning_rate_decay_factor", "ds2_eval_every_samples")


def register(required_runs: int) -> None:
    """Give the engine DS2's number of runs per set (it has no entry of its own)."""
    from mlperf_logging.rcp_checker import rcp_checker

    rcp_checker.submission_runs[USAGE][BENCHMARK_NAME] = required_runs


def _records(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(":::MLLOG "):
            try:
                out.append(json.loads(line[len(":::MLLOG "):]))
            except json.JSONDecodeError:
                continue
    return out


def convergence(log: Path) -> dict[str, Any]:
    """Batch size, epochs (engine's reading) and samples to target of one run's log."""
    from mlperf_logging.rcp_checker.rcp_checker import read_submission_file

    not_converged, epochs, bs, _ = read_submission_file(str(log), RULESET, False)
    recs = _records(log)
    evals = [r for r in recs if r.get("key") == "eval_accuracy"]
    hp = {r["key"]: r["value"] for r in recs if r.get("key") in HYPERPARAMS}
    samples = evals[-1]["metadata"].get("samples_count") if evals and not not_converged else None
    return {"log": str(log), "bs": bs, "converged": not not_converged,
            "epochs": None if not_converged else epochs, "samples": samples, "hyperparams": hp}


def find_logs(root: Path) -> list[Path]:
    root = Path(root)
    return [root] if root.is_file() else sorted(root.rglob("mlperf.log"))


def _provenance(logs: list[Path]) -> tuple[str, str]:
    """(Platform, When) of the runs, from their run directories' description.json:
    the distinct "cards x CPU/accelerator, threads, torch" and the UTC dates; empty where
    a log has no description beside it (a copied log)."""
    platforms, dates = set(), set()
    for log in logs:
        desc_file = Path(log).parent / "description.json"
        if not desc_file.is_file():
            continue
        d = json.loads(desc_file.read_text())
        hw = d.get("accelerator") if d.get("device") != "cpu" else d.get("cpu", {}).get("model")
        threads = d.get("threads_per_rank")
        platforms.add(f"{d.get('cards')}x {hw}"
                      + (f", {threads} thread(s) per rank" if threads else "")
                      + f", torch {d.get('software', {}).get('torch')}")
        stamp = Path(log).parent.name.split("-")[-2:-1]  # <bench>-<n>x<dev>-<UTC>-s<seed>
        if stamp and len(stamp[0]) >= 8 and stamp[0][:8].isdigit():
            dates.add(f"{stamp[0][:4]}-{stamp[0][4:6]}-{stamp[0][6:8]}")
    return "; ".join(sorted(platforms)), ", ".join(sorted(dates))


def build_rcps(logs: list[Path], name: str, platform: str = "") -> dict[str, Any]:
    """MLPerf-format RCP records, one per global batch size, from converged runs only."""
    by_bs: dict[int, list[dict[str, Any]]] = {}
    for log in logs:
        c = convergence(log)
        if c["converged"] and c["bs"] != -1:
            by_bs.setdefault(int(c["bs"]), []).append(c)
    out = {}
    for bs, runs in sorted(by_bs.items()):
        found, dates = _provenance([Path(r["log"]) for r in runs])
        out[f"{name}_ref_{bs}"] = {
            "Benchmark": BENCHMARK_NAME, "Creator": "ds2bench", "Platform": platform or found,
            "When": f"runs of {dates}, collected by `python -m harness rcp`" if dates
            else "produced by `python -m harness rcp`", "BS": bs,
            "Hyperparams": runs[0]["hyperparams"],
            "Epochs to converge": sorted(r["epochs"] for r in runs),
            "Samples to converge": sorted(r["samples"] for r in runs),
        }
    return out


def check_set(logs: list[Path], rcp_file: Path, required_runs: int) -> tuple[bool, str]:
    """MLPerf's RCP test of one set of runs (same batch size) against `rcp_file`."""
    from mlperf_logging.rcp_checker.rcp_checker import check_directory

    register(required_runs)
    with tempfile.TemporaryDirectory(prefix="ds2bench-rcp-") as tmp:
        for k, log in enumerate(logs):  # the engine reads result_*.txt of one folder
            Path(tmp, f"result_{k}.txt").symlink_to(Path(log).resolve())
        with open(rcp_file) as f:
            ok, msg, norm = check_directory(tmp, USAGE, RULESET, False, False, rcp_file=f,
                                            rcp_pass="full_rcps")
    return bool(ok), f"{msg} (score normalisation {norm:.3f})"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness rcp", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="train the seeds at each batch size, then collect")
    run.add_argument("--benchmark", default="tiny")
    run.add_argument("--seeds", type=int, default=5)
    run.add_argument("--batches", type=int, nargs="+", default=[8, 16])
    run.add_argument("--runs", type=Path, default=Path("runs/rcp"))
    run.add_argument("--out", type=Path, default=None, help="default benchmarks/rcp/<name>.json")
    col = sub.add_parser("collect", help="RCP file from the runs under a folder")
    col.add_argument("--runs", type=Path, required=True)
    col.add_argument("--name", default="tiny")
    col.add_argument("--out", type=Path, required=True)
    chk = sub.add_parser("check", help="MLPerf's RCP test of a set of runs")
    chk.add_argument("--set", dest="set_dir", type=Path, required=True)
    chk.add_argument("--rcp", type=Path, required=True)
    chk.add_argument("--required-runs", type=int, default=5)
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "check":
        logs = find_logs(args.set_dir)
        if not logs or not args.rcp.is_file():
            print(f"[rcp] error: no mlperf.log under {args.set_dir} or no file {args.rcp}",
                  file=sys.stderr)
            return 2
        ok, msg = check_set(logs, args.rcp, args.required_runs)
        print(f"[rcp] {'PASS' if ok else 'FAIL'} {len(logs)} runs: {msg}")
        return 0 if ok else 1
    if args.cmd == "run":
        for bs in args.batches:
            cmd = [sys.executable, "-m", "harness", "bench", "--benchmark", args.benchmark,
                   "--runs", str(args.runs / f"bs{bs}"), "--repeat", str(args.seeds),
                   "--set", f"train.global_batch={bs}"]
            print(f"[rcp] {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
            subprocess.run(cmd, check=False)
        name, root = Path(args.benchmark).stem, args.runs
        out = args.out or Path("benchmarks/rcp") / f"{name}.json"
    else:
        name, root, out = args.name, args.runs, args.out
    logs = find_logs(root)
    rcps = build_rcps(logs, name)
    if not rcps:
        print(f"[rcp] error: no converged run under {root}", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rcps, indent=1) + "\n")
    for key, rec in rcps.items():
        print(f"[rcp] {key}: {len(rec['Epochs to converge'])} runs, epochs {rec['Epochs to converge']}")
    print(f"[rcp] wrote {out}")
    return 0
