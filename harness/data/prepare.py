"""`harness data`: build the embedded corpus, or manifests from a local LibriSpeech copy.

Either way the manifests a benchmark uses are then verified (every file
decoded once, `<manifest>.verified` written, see reference/train/prep/verified.py):
data validation is part of data preparation, so a run reads no audio before
its clock starts.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def verify_manifests(root: Path, names: tuple[str, ...], workers: int) -> int:
    """Write (or keep, when up to date) the verified record of each manifest under root."""
    from harness.data.verify import verified_facts
    from reference.config import DataConfig, FeatureConfig
    from reference.data.manifest import load_manifest
    from reference.train.prep.verified import verified_path

    feat, data = FeatureConfig(), DataConfig()  # decode settings: 16 kHz mono, as every benchmark
    for name in names:
        m = Path(root) / name
        if not m.is_file():
            continue
        utts = load_manifest(m)
        facts = verified_facts(m, utts, feat, data, workers=workers)
        unusable = sum(f.code is not None for f in facts)
        if not verified_path(m).is_file():
            print(f"[data] could not write {verified_path(m)}", file=sys.stderr)
            return 1
        print(f"[data] {m}: {len(utts)} utterances verified ({unusable} unusable) -> "
              f"{verified_path(m).name}", file=sys.stderr)
    return 0


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

        out = args.out or Path("data/librispeech")
        rest = ["--out", str(out), "--workers", str(args.workers)]
        if args.librispeech:
            rest = ["--librispeech", args.librispeech] + rest
        code = libri_main(rest)
        return code or verify_manifests(out, ("train.jsonl", "dev.jsonl"), args.workers)
    from reference.data.corpus import CorpusError, build_corpus

    try:
        summary = build_corpus(args.out or Path("data/embedded"), workers=args.workers)
    except CorpusError as err:
        print(f"[data] {err}", file=sys.stderr)
        return 1
    print(f"[data] embedded corpus ready: {summary}", file=sys.stderr)
    code = verify_manifests(args.out or Path("data/embedded"),
                            ("train.jsonl", "dev.jsonl", "unseen.jsonl"), args.workers)
    if code:
        return code
    if args.seed_layout is not None:
        from reference.data.seed_export import export_seed_layout

        root = args.out or Path("data/embedded")
        for split in ("train", "dev"):
            csv_path = export_seed_layout(root / f"{split}.jsonl", args.seed_layout, split)
            print(f"[data] seed layout: {csv_path}", file=sys.stderr)
    return 0
