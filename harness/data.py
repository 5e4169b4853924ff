"""`harness data`: build the embedded corpus, or manifests from a local LibriSpeech copy."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m harness data")
    p.add_argument("--librispeech", nargs="?", const="", default=None,
                   help="LibriSpeech root (default: $LIBRISPEECH or $PYTORCH_TRAIN_DATASET/LibriSpeech_dataset)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    if args.librispeech is not None:
        from reference.librispeech import main as libri_main

        rest = ["--out", str(args.out or Path("data/librispeech")), "--workers", str(args.workers)]
        if args.librispeech:
            rest = ["--librispeech", args.librispeech] + rest
        return libri_main(rest)
    from reference.corpus import CorpusError, build_corpus

    try:
        summary = build_corpus(args.out or Path("data/embedded"), workers=args.workers)
    except CorpusError as err:
        print(f"[data] {err}", file=sys.stderr)
        return 1
    print(f"[data] embedded corpus ready: {summary}", file=sys.stderr)
    return 0
