"""Argument parsing and dispatch for `python -m harness`. Work happens in the modules.

Exit codes of `python -m harness bench|scaling` (and of `./ds2bench`, which runs it):
0 target reached, 3 the run ended without reaching it (or had no target),
2 bad input (nothing was run, no run directory), 1 any other error or a
terminated run. `make` itself always exits 2 when a recipe fails (its
message names the code: `Error 3`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class _Parser(argparse.ArgumentParser):
    """A bad argument is one line naming it and what is allowed, exit 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def cards_value(text: str) -> int:
    """--cards: a whole number >= 1 (checked against the visible devices later)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a card count (choices: a whole number >= 1)") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is not a card count (choices: a whole number >= 1)")
    return n


def _sweep(text: str) -> list[int]:
    return [cards_value(c) for c in text.split()] or [cards_value(text)]


def _bench_args(p: argparse.ArgumentParser) -> None:
    from reference.device import CHOICES as DEVICES
    p.add_argument("--benchmark", default=os.environ.get("BENCH", "tiny"),
                   help="name under benchmarks/ or a YAML path (default: tiny)")
    p.add_argument("--cards", type=cards_value, default=None, help="processes per node (default 1)")
    p.add_argument("--nnodes", type=int, default=int(os.environ.get("NNODES", "1")))
    p.add_argument("--node-rank", type=int, default=int(os.environ.get("NODE_RANK", "0")))
    p.add_argument("--rdzv-endpoint", default=os.environ.get("RDZV_ENDPOINT"))
    p.add_argument("--runs", type=Path, default=Path(os.environ.get("RUNS", "runs")))
    p.add_argument("--device", default=os.environ.get("DEVICE", "auto"), choices=DEVICES,
                   help="auto (default: the accelerator torch has, else CPU) | cpu | cuda | mlu | xpu")
    p.add_argument("--seed", default=None, help="integer, or 'random'; default: the benchmark's")
    p.add_argument("--repeat", type=int, default=1, help="runs with seeds seed, seed+1, ...")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a config field, e.g. train.epochs=3")
    p.add_argument("--resume", type=Path, default=None, help="continue this run directory")
    p.add_argument("--submission", type=Path, default=REPO / "submission.yaml")
    p.add_argument("--division", default=os.environ.get("DIVISION") or None,
                   choices=("open", "closed"),
                   help="open: run a changed closed benchmark in the open division; default: "
                        "closed where submission.yaml and the benchmark say closed")
    p.add_argument("--timeout", type=float, default=1800.0,
                   help="process-group timeout in s (default 1800: covers rank 0's checkpoint "
                        "write at the reference size on a slow filesystem)")


def build_parser() -> argparse.ArgumentParser:
    from reference.device import CHOICES as DEVICES
    p = _Parser(prog="python -m harness", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    _bench_args(sub.add_parser("bench", help="run a benchmark (set-up of the corpus included)"))
    sc = sub.add_parser("scaling", help="run the same benchmark for several card counts")
    _bench_args(sc)
    sc.add_argument("--sweep", type=_sweep, default=[1, 2], help="card counts, e.g. '1 2 4'")
    ev = sub.add_parser("eval", help="WER/CER of a checkpoint on a manifest (JSON)")
    ev.add_argument("--checkpoint", type=Path, required=True)
    ev.add_argument("--manifest", type=Path, required=True)
    ev.add_argument("--device", default="auto", choices=DEVICES)
    ev.add_argument("--threads", type=int, default=0,
                    help="CPU threads (use the run's threads per rank to reproduce it exactly)")
    sub.add_parser("check", help="MLPerf compliance check", add_help=False)
    sub.add_parser("verify", help="data preflight of manifests", add_help=False)
    sub.add_parser("data", help="build the embedded corpus or LibriSpeech manifests", add_help=False)
    sub.add_parser("perf", help="performance benchmark", add_help=False)
    sub.add_parser("seedcmp", help="the seed's trainer and ds2bench side by side", add_help=False)
    sub.add_parser("rcp", help="reference convergence points: run, collect, check a set",
                   add_help=False)
    dr = sub.add_parser("doctor", help="the stack a run would use; non-zero with the fix when "
                                       "something will not work")
    dr.add_argument("--device", default=os.environ.get("DEVICE", "auto"), choices=DEVICES)
    dr.add_argument("--cards", type=cards_value, default=1, help="processes per node")
    dr.add_argument("--runs", type=Path, default=Path(os.environ.get("RUNS", "runs")))
    dr.add_argument("--json", action="store_true", help="the facts as JSON on stdout")
    return p


def main(argv: list[str]) -> int:
    # Sub-tools with their own parsers get the rest of the command line untouched.
    if argv and argv[0] in ("check", "verify", "data", "perf", "seedcmp", "rcp"):
        return _forward(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "doctor":
        from harness.run.doctor import run_doctor

        return run_doctor(args.device, args.cards, args.runs, as_json=args.json)
    if args.command == "eval":
        from reference.train.evaluate import evaluate_checkpoint

        try:
            result = evaluate_checkpoint(args.checkpoint, args.manifest, args.device,
                                         threads=args.threads)
        except (FileNotFoundError, ValueError) as err:  # a wrong path or file: one line
            print(f"eval: {err}", file=sys.stderr)
            return 2
        print(json.dumps(result, indent=1))
        return 0
    from harness.run.bench import run_bench, run_scaling
    from harness.run.launch import Terminated

    try:
        if args.command == "scaling":
            return run_scaling(args, args.sweep)
        return run_bench(args)
    except Terminated as stop:  # the run's log is closed and its summary printed
        return stop.code


def _forward(cmd: str, rest: list[str]) -> int:
    if cmd == "check":
        from harness.mlperf.compliance import main as check_main
        return check_main(rest)
    if cmd == "verify":
        from harness.data.verify import main as verify_main
        return verify_main(rest)
    if cmd == "data":
        from harness.data.prepare import main as data_main
        return data_main(rest)
    if cmd == "rcp":
        from harness.mlperf.rcp import main as rcp_main
        return rcp_main(rest)
    if cmd == "seedcmp":
        from harness.perf.seedcmp import main as seedcmp_main
        return seedcmp_main(rest)
    from harness.perf import main as perf_main
    return perf_main(rest)
