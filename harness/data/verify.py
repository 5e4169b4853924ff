"""`python -m harness verify`: preflight-check manifests before a benchmark run.

    python -m harness verify --manifest FILE [--manifest FILE ...] [--workers N]
                             [--benchmark NAME] [--cache-dir DIR] [--json OUT]

Decoding results are written next to each manifest as `<manifest>.verified`
(reference/train/prep/verified.py; `--no-write` to only report): that verified
record is what a benchmark run reads before its clock starts, instead of the
audio. An up-to-date record (same manifest, settings and file stats) is reused.

Every rejected utterance is printed on its own line,
`REJECT <code> <path>: <detail> (id <id>)`, followed by the counts per reason
code and accepted/total for each manifest. An audio file listed in more than
one of the given manifests (e.g. train and dev) is reported as `overlap`.

Exit status: 0 all utterances usable, 1 something was rejected, 2 usage,
configuration or manifest error (the message names file:line).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from reference.config import AugmentConfig, ConfigError, DataConfig, FeatureConfig, load_config
from reference.data.manifest import ManifestError, Utterance, load_manifest
from reference.train.prep.preflight import PreflightReport, Rejection, judge_facts, measure, preflight
from reference.train.prep.verified import is_fresh, read_verified, verified_path, write_verified


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # raise instead of sys.exit so main returns 2
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m harness verify",
                description="Decode and check every utterance of the given manifests.")
    p.add_argument("--manifest", action="append", default=[], metavar="FILE",
                   help="a .jsonl or .csv manifest (repeatable); default: the benchmark's "
                        "train and eval manifests when --benchmark is given")
    p.add_argument("--benchmark", metavar="NAME",
                   help="take features/data/augment settings from this benchmark YAML")
    p.add_argument("--workers", type=int, default=max(1, min(8, os.cpu_count() or 1)),
                   metavar="N", help="decoding processes (default: cores, at most 8)")
    p.add_argument("--cache-dir", type=Path, metavar="DIR",
                   help="reuse reports of unchanged data from this directory")
    p.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                   help="write <manifest>.verified for each manifest (default: yes)")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the full report here")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress lines on stderr (default: when stderr is a terminal)")
    return p


def _settings(args: argparse.Namespace
              ) -> tuple[FeatureConfig, DataConfig, AugmentConfig | None, list[Path]]:
    manifests = [Path(m) for m in args.manifest]
    if args.benchmark is None:
        if not manifests:
            raise _UsageError("give --manifest FILE (or --benchmark NAME)")
        return FeatureConfig(), DataConfig(), None, manifests
    cfg = load_config(args.benchmark)  # ConfigError names the file when it is missing
    if not manifests:
        root = Path(cfg.data.root)
        manifests = [root / cfg.data.train_manifest, root / cfg.data.eval_manifest]
    return cfg.features, cfg.data, cfg.augment, manifests


def verified_facts(manifest: Path, utts: list[Utterance], feat: FeatureConfig, data: DataConfig,
                   workers: int = 1, progress: bool = False, write: bool = True) -> list:
    """The manifest's verified facts: from an up-to-date record, else decoded (and written)."""
    if is_fresh(manifest, utts, feat, data):
        return read_verified(manifest, len(utts), feat, data, "make verify")[1]
    facts = measure(utts, feat, data, workers=workers, progress=progress)
    if write:
        try:
            out = write_verified(manifest, utts, facts, feat, data)
        except OSError as err:
            print(f"verify: cannot write {verified_path(manifest)} ({err.strerror or err})",
                  file=sys.stderr)
        else:
            print(f"verify: wrote {out}", file=sys.stderr)
    return facts


def prepare_for_run(cfg: Any, workers: int = 2) -> str:
    """Data preparation for a benchmark run (outside the run): verified train/eval records.

    Verifies (decodes) a manifest only when its record is missing or stale,
    then checks that the run will accept the records: the eval set must be
    usable whole and the train set must keep some utterances. Raises
    ValueError (NotVerified, EvalSetError, ...) with a message for the user.
    Returns a one-line summary.
    """
    from reference.train.prep.splits import load_split, resolve_manifest
    from reference.train.prep.verified import NotVerified

    parts = []
    for role, name in (("train", cfg.data.train_manifest), ("eval", cfg.data.eval_manifest)):
        m = resolve_manifest(cfg, name)
        utts = load_manifest(m)
        fresh = is_fresh(m, utts, cfg.features, cfg.data)
        if not fresh:
            print(f"[data] verifying {m} ({len(utts)} utterances; data preparation, before the "
                  "run)", file=sys.stderr, flush=True)
            facts = measure(utts, cfg.features, cfg.data, workers=workers)
            try:
                write_verified(m, utts, facts, cfg.features, cfg.data)
            except OSError as err:
                raise NotVerified(f"cannot write {verified_path(m)} ({err.strerror or err}); "
                                  f"run `make verify MANIFEST={m}` where it is writable") from None
        split = load_split(cfg, m, role=role)
        kept = len(split.durations)
        parts.append(f"{role} {kept}/{len(utts)}" + ("" if fresh else " (verified now)"))
    return ", ".join(parts)


def _overlaps(sets: list[tuple[Path, list[Utterance]]]) -> list[tuple[Path, Rejection]]:
    """Audio files present in more than one manifest (train/dev leakage)."""
    first: dict[str, Path] = {}
    out = []
    for mpath, utts in sets:
        seen_here: set[str] = set()
        for i, u in enumerate(utts):
            key = os.path.normcase(os.path.realpath(u.audio))
            if key in first and first[key] != mpath and key not in seen_here:
                out.append((mpath, Rejection(i, u.id, str(u.audio), "overlap",
                                             f"also in {first[key]}")))
            first.setdefault(key, mpath)
            seen_here.add(key)
    return out


def _print_counts(title: str, counts: dict[str, int]) -> None:
    print(f"{title}: {counts['accepted']}/{counts['total']} accepted, "
          f"{counts['rejected']} rejected")
    for code, n in counts.items():
        if code not in ("accepted", "rejected", "total"):
            print(f"  {code:<20} {n}")


def main(argv: list[str]) -> int:
    """Entry point; `argv` are the arguments after `verify`."""
    try:
        args = _parser().parse_args(argv)
        if args.workers < 1:
            raise _UsageError("--workers must be >= 1")
        feat, data, augment, manifests = _settings(args)
        sets = [(m, load_manifest(m)) for m in manifests]
    except _UsageError as err:
        print(f"verify: error: {err}", file=sys.stderr)
        _parser().print_usage(sys.stderr)
        return 2
    except (ManifestError, ConfigError) as err:
        hint = ""
        if isinstance(err, ManifestError) and "not found" in str(err) and not args.manifest:
            hint = " (the benchmark's data: build it with `make corpus` or `make data`)"
        print(f"verify: error: {err}{hint}", file=sys.stderr)
        return 2
    progress = sys.stderr.isatty() if args.progress is None else args.progress

    reports: list[tuple[Path, list[Utterance], PreflightReport]] = []
    for mpath, utts in sets:
        if progress:
            print(f"verify: {mpath}: {len(utts)} utterances", file=sys.stderr)
        if args.cache_dir is not None:  # the report cache of earlier versions; no record
            rep = preflight(utts, feat, data, workers=args.workers, cache_dir=args.cache_dir,
                            progress=progress, augment=augment)
        else:
            facts = verified_facts(mpath, utts, feat, data, args.workers, progress, args.write)
            rep = judge_facts(utts, facts, feat, data, augment)
        reports.append((mpath, utts, rep))
        for r in rep.rejected:
            print(f"REJECT {r.code} {r.path}: {r.detail} (id {r.id})")
    overlaps = _overlaps(sets) if len(sets) > 1 else []
    for mpath, r in overlaps:
        print(f"REJECT {r.code} {r.path}: {r.detail} (id {r.id})")

    total: dict[str, int] = {}
    for mpath, _, rep in reports:
        counts = rep.counts()
        _print_counts(str(mpath), counts)
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
    if len(reports) > 1:
        _print_counts("all manifests", total)
    if overlaps:  # cross-manifest: not part of any one manifest's counts
        total["overlap"] = len(overlaps)
        print(f"  {'overlap':<20} {len(overlaps)} (audio in more than one manifest)")
    bad = total.get("rejected", 0) + len(overlaps)
    print("verify: OK, every utterance is usable" if not bad else
          f"verify: FAILED, {bad} rejected")

    if args.json is not None:
        doc: dict[str, Any] = {
            "manifests": [{"path": str(m), "counts": rep.counts(),
                           "rejected": [r.__dict__ for r in rep.rejected]}
                          for m, _, rep in reports],
            "overlap": [dict(r.__dict__, manifest=str(m)) for m, r in overlaps],
            "total": total,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover - normally run via `python -m harness verify`
    sys.exit(main(sys.argv[1:]))
