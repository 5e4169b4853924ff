"""`python -m results --runs DIR [--out DIR/report]`: tables, plots, published comparison."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from results.report import NoRunsError, build_report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m results", description=__doc__)
    p.add_argument("--runs", type=Path, required=True, help="directory holding run directories")
    p.add_argument("--out", type=Path, help="report directory (default: RUNS/report)")
    p.add_argument("--benchmarks", type=Path, metavar="DIR",
                   help="judge logs against the benchmark definitions in DIR (default: benchmarks/)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--export-experiment", type=Path, metavar="FILE",
                   help="also write the seed-objective runs' curves to FILE (JSON; "
                        "results/data/seed_objective_experiment.json is the committed one)")
    p.add_argument("--command", action="append", default=[], metavar="TEXT",
                   help="with --export-experiment: a command that produced the runs (repeatable)")
    args = p.parse_args(argv)
    if not args.runs.is_dir():
        print(f"[results] {args.runs}: not a directory", file=sys.stderr)
        return 2
    if args.benchmarks is not None and not args.benchmarks.is_dir():
        print(f"[results] --benchmarks {args.benchmarks}: not a directory", file=sys.stderr)
        return 2
    try:
        from results.eligibility import load_checker

        report = build_report(args.runs, args.out, checker=load_checker(args.benchmarks),
                              make_plots=not args.no_plots)
    except NoRunsError as err:
        print(f"[results] {err}", file=sys.stderr)
        return 1
    if args.export_experiment is not None:
        from results.experiment import export

        try:
            export(report.runs, report.epochs, args.export_experiment, args.command)
        except OSError as err:
            print(f"[results] --export-experiment {args.export_experiment}: cannot write "
                  f"({err.strerror or err})", file=sys.stderr)
            return 2
    print(report.markdown)
    print(f"[results] wrote {', '.join(str(f) for f in report.files)}", file=sys.stderr)
    return 0
