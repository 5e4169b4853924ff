"""Command line: ``python -m reference.data.corpus {build,verify,probe} --out DIR``.

build   synthesise (or keep an already complete) corpus and verify it
verify  decode every FLAC file and compare with the committed checksums
probe   synthesise a probe set that differs from training in one way
        (``--kind shapes|voices|both``, see reference/data/corpus/probe.py)
Exit status 0 on success, 1 with a one-line message on any failure.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m reference.data.corpus", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the embedded corpus (idempotent)")
    b.add_argument("--out", type=Path, default=Path("data/embedded"))
    b.add_argument("--limit", type=int, default=None, help="first N utterances of each split")
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--force", action="store_true", help="rebuild even if complete")
    b.add_argument("--verify", dest="verify", action="store_true", default=True,
                   help="verify decoded audio after building (default)")
    b.add_argument("--no-verify", dest="verify", action="store_false")
    b.add_argument("--verify-only", action="store_true", help="only verify an existing corpus")
    b.add_argument("--write-checksums", action="store_true",
                   help="maintainers: rewrite reference/data/corpus/checksums.sha256 from this build")
    b.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    v = sub.add_parser("verify", help="verify an existing corpus against the checksums")
    v.add_argument("--out", type=Path, default=Path("data/embedded"))
    v.add_argument("--workers", type=int, default=2)
    pr = sub.add_parser("probe", help="a probe set: unseen shapes, unseen voices, or both")
    pr.add_argument("--kind", required=True, choices=("shapes", "voices", "both"))
    pr.add_argument("--count", type=int, default=400)
    pr.add_argument("--out", type=Path, default=Path("data/probe"))
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .layout import CorpusError
    try:
        if args.command == "probe":
            from .probe import build_probe
            print(build_probe(args.kind, args.count, args.out))
            return 0
        if args.command == "verify" or args.verify_only:
            from .verify import verify_corpus
            verify_corpus(args.out, workers=args.workers)
            print(f"corpus at {args.out} verified OK")
            return 0
        from .build import build_corpus
        summary = build_corpus(args.out, limit=args.limit, workers=args.workers,
                               force=args.force, verify=args.verify,
                               write_reference_checksums=args.write_checksums,
                               progress=not args.quiet)
        print(json.dumps(summary, sort_keys=True))
        return 0
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; the corpus is incomplete (no stamp written)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
