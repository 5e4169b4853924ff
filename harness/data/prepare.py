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
    p.add_argument("--seed-layout", type=Path, default=None, metavar="DIR",
                   help="also export the embedded corpus's train/dev splits in the seed "
                        "trainer's layout (WAV + txt + libri_<split>_manifest.csv) under DIR, "
                        "for timing the seed's trainer on the same data")
    args = p.parse_args(argv)
    if args.librispeech is not None:
        from reference.data.librispeech import main as libri_main

        rest = ["--out", str(args.out or Path("data/librispeech")), "--workers", str(args.workers)]
        if args.librispeech:
            rest = ["--librispeech", args.librispeech] + rest
        return libri_main(rest)
    from reference.data.corpus import CorpusError, build_corpus

    try:
        summary = build_corpus(args.out or Path("data/embedded"), workers=args.workers)
    except CorpusError as err:
        print(f"[data] {err}", file=sys.stderr)
        return 1
    print(f"[data] embedded corpus ready: {summary}", file=sys.stderr)
    if args.seed_layout is not None:
        from reference.data.seed_export import export_seed_layout

        root = args.out or Path("data/embedded")
        for split in ("train", "dev"):
            csv_path = export_seed_layout(root / f"{split}.jsonl", args.seed_layout, split)
            print(f"[data] seed layout: {csv_path}", file=sys.stderr)
    return 0
