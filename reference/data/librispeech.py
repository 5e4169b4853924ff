"""Manifests from a local LibriSpeech copy (nothing is downloaded).

Two layouts are understood:

* standard (openslr tarballs): `<root>/<split>/<speaker>/<chapter>/<spk>-<ch>-<utt>.flac`
  with `<spk>-<ch>.trans.txt` holding `ID TEXT` lines;
* the MLCommons reference's converted copy (the seed's
  `$PYTORCH_TRAIN_DATASET/LibriSpeech_dataset`): `<root>/<set>/wav/<id>.wav` and
  `<root>/<set>/txt/<id>.txt`, sets `train`, `val`, `test_clean`, `test_other`.

`build_manifests` writes, under `out_dir`, a rich manifest `<split>.jsonl` per
split (absolute audio paths, durations from the headers), `train.jsonl` (all
train splits) and `dev.jsonl` (dev-clean + dev-other, the MLCommons validation
set), and the reference CSV format `libri_<split>_manifest.csv` (plus the
seed's `libri_train_manifest.csv` / `libri_val_manifest.csv`) whose transcript
files are written to `out_dir/transcripts/<split>/<id>.txt`.

Audio without a transcript line, and transcript lines without audio, are
reported (in the returned summary and by `main`, which then exits 1), never
dropped silently.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile as sf

_SPLIT = re.compile(r"^(train|dev|test)-[a-z0-9-]+$")
_CONVERTED = {"train": "train", "val": "dev", "test_clean": "test-clean",
              "test_other": "test-other"}  # reference set name → split name used here
_DEV = ("dev-clean", "dev-other")


class LibriSpeechError(FileNotFoundError):
    """No usable LibriSpeech copy where one was looked for."""


def _layout(path: Path) -> str | None:
    """'standard', 'converted' or None for a candidate root directory."""
    if not path.is_dir():
        return None
    names = [p.name for p in path.iterdir() if p.is_dir()]
    if any(_SPLIT.match(n) for n in names):
        return "standard"
    if any(n in _CONVERTED and (path / n / "wav").is_dir() for n in names):
        return "converted"
    return None


def find_root(arg: str | None) -> Path:
    """Locate a LibriSpeech copy: `arg`, else $LIBRISPEECH, else $PYTORCH_TRAIN_DATASET.

    Each candidate is tried as given and with a `LibriSpeech/` subfolder (where
    the openslr tarballs unpack). An explicit `arg` is the only candidate.
    """
    tried: list[str] = []
    bases: list[tuple[Path, str]] = []
    if arg is not None:
        bases.append((Path(arg).expanduser(), "--librispeech"))
    else:
        env = os.environ.get("LIBRISPEECH")
        if env:
            bases.append((Path(env).expanduser(), "$LIBRISPEECH"))
        else:
            tried.append("$LIBRISPEECH (not set)")
        ptd = os.environ.get("PYTORCH_TRAIN_DATASET")
        if ptd:
            bases.append((Path(ptd).expanduser() / "LibriSpeech_dataset", "$PYTORCH_TRAIN_DATASET"))
        else:
            tried.append("$PYTORCH_TRAIN_DATASET/LibriSpeech_dataset (not set)")
    for base, origin in bases:
        for cand in (base, base / "LibriSpeech"):
            if _layout(cand):
                return cand.resolve()
            why = "does not exist" if not cand.exists() else "no split directories"
            tried.append(f"{cand} (from {origin}): {why}")
    raise LibriSpeechError("no LibriSpeech copy found; tried:\n  " + "\n  ".join(tried) +
                           "\nPass --librispeech PATH or set LIBRISPEECH (expects e.g. "
                           "PATH/dev-clean/<speaker>/<chapter>/*.flac).")


def _scan_standard(split_dir: Path, problems: list[str]) -> list[tuple[str, Path, str | None]]:
    """(id, audio, text or None) for one split, sorted by id."""
    audio = {p.stem: p for p in split_dir.glob("*/*/*.flac")}
    texts: dict[str, str] = {}
    for trans in sorted(split_dir.glob("*/*/*.trans.txt")):
        for lineno, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            uid, _, text = line.strip().partition(" ")
            if not text.strip():
                problems.append(f"{trans}:{lineno}: {uid} has an empty transcript")
            texts[uid] = text.strip()
            if uid not in audio:
                problems.append(f"{trans}:{lineno}: {uid} has no audio file")
    return [(uid, audio[uid], texts.get(uid)) for uid in sorted(audio)]


def _scan_converted(set_dir: Path, problems: list[str]) -> list[tuple[str, Path, str | None]]:
    audio = {p.stem: p for p in (set_dir / "wav").glob("*.wav")}
    txt_dir = set_dir / "txt"
    for t in sorted(txt_dir.glob("*.txt")):
        if t.stem not in audio:
            problems.append(f"{t}: transcript has no audio file")
    out = []
    for uid in sorted(audio):
        t = txt_dir / f"{uid}.txt"
        out.append((uid, audio[uid], t.read_text(encoding="utf-8").strip() if t.is_file() else None))
    return out


def _duration(path: Path) -> float | None:
    try:
        return sf.info(str(path)).duration
    except (sf.LibsndfileError, RuntimeError):
        return None  # kept with duration null: `harness verify` will name the problem


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    tmp.replace(path)


def _write_csv(path: Path, rows: list[dict], trans: dict[str, Path]) -> None:
    """Reference CSV; `trans` maps id → transcript file (written by `_write_transcripts`)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in rows:
            # Paths contain no commas in LibriSpeech; the reference wrote them unquoted.
            f.write(f"{r['audio']},{trans[r['id']]}\n")
    tmp.replace(path)


def _write_transcripts(rows: list[dict], trans_dir: Path, trans: dict[str, Path]) -> None:
    """One .txt per utterance (rewritten only when its text changed)."""
    trans_dir.mkdir(parents=True, exist_ok=True)
    trans_dir = trans_dir.resolve()
    for r in rows:
        t = trans_dir / f"{r['id']}.txt"
        if not t.is_file() or t.read_text(encoding="utf-8") != r["text"]:
            t.write_text(r["text"], encoding="utf-8")
        trans[r["id"]] = t


def build_manifests(root: Path, out_dir: Path, workers: int = 2) -> dict:
    """Write all manifests for the copy at `root`; returns a summary dict.

    Summary: `{"root", "layout", "splits": {name: {"utterances", "hours", "jsonl", "csv"}},
    "missing_transcripts": [audio paths], "problems": [messages]}`.
    """
    root, out_dir = Path(root).resolve(), Path(out_dir)
    layout = _layout(root)
    if layout is None:
        raise LibriSpeechError(f"{root}: not a LibriSpeech copy (no split directories)")
    out_dir.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    scanned: dict[str, list[tuple[str, Path, str | None]]] = {}
    if layout == "standard":
        for d in sorted(p for p in root.iterdir() if p.is_dir() and _SPLIT.match(p.name)):
            scanned[d.name] = _scan_standard(d, problems)
    else:
        for name, split in _CONVERTED.items():
            if (root / name / "wav").is_dir():
                scanned[split] = _scan_converted(root / name, problems)
    missing = [str(a) for rows in scanned.values() for _, a, t in rows if t is None]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:  # libsndfile releases the GIL
        paths = [a for rows in scanned.values() for _, a, t in rows if t is not None]
        durs = dict(zip(paths, ex.map(_duration, paths)))
    manifests: dict[str, list[dict]] = {}
    for split, rows in scanned.items():
        manifests[split] = [{"id": uid, "audio": str(a), "text": t, "duration": durs[a]}
                            for uid, a, t in rows if t is not None]
    combined = {"train": [s for s in manifests if s.startswith("train")],
                "dev": [s for s in _DEV if s in manifests]}
    if layout == "converted":
        combined = {"train": [], "dev": []}  # the converted sets already are train / dev
    for name, parts in combined.items():
        if parts:
            manifests[name] = [r for s in parts for r in manifests[s]]
    summary: dict = {"root": str(root), "layout": layout, "splits": {},
                     "missing_transcripts": missing, "problems": problems}
    seed_csv = {"train": "train", "dev": "val"}  # the seed's combined CSV names
    trans: dict[str, Path] = {}
    for split in scanned:  # combined sets reuse their splits' transcript files
        _write_transcripts(manifests[split], out_dir / "transcripts" / split, trans)
    for name, rows in manifests.items():
        jsonl = out_dir / f"{name}.jsonl"
        _write_jsonl(jsonl, rows)
        csv = out_dir / f"libri_{seed_csv.get(name, name)}_manifest.csv"
        _write_csv(csv, rows, trans)
        summary["splits"][name] = {
            "utterances": len(rows), "jsonl": str(jsonl), "csv": str(csv),
            "hours": round(sum(r["duration"] or 0.0 for r in rows) / 3600, 3)}
    return summary


def main(argv: list[str]) -> int:
    """`python -m harness data --librispeech PATH --out DIR [--workers N]`."""
    p = argparse.ArgumentParser(prog="python -m harness data",
                                description="Write manifests for a local LibriSpeech copy.")
    p.add_argument("--librispeech", metavar="PATH",
                   help="LibriSpeech root (default: $LIBRISPEECH or "
                        "$PYTORCH_TRAIN_DATASET/LibriSpeech_dataset)")
    p.add_argument("--out", type=Path, default=Path("data/librispeech"), metavar="DIR")
    p.add_argument("--workers", type=int, default=4, metavar="N")
    args = p.parse_args(argv)
    try:
        root = find_root(args.librispeech)
        summary = build_manifests(root, args.out, workers=args.workers)
    except LibriSpeechError as err:
        print(f"data: error: {err}", file=sys.stderr)
        return 2
    print(f"LibriSpeech at {summary['root']} ({summary['layout']} layout) -> {args.out}")
    for name, s in summary["splits"].items():
        print(f"  {name:<16} {s['utterances']:>7} utterances {s['hours']:>8.2f} h  {s['jsonl']}")
    for a in summary["missing_transcripts"][:20]:
        print(f"MISSING transcript line for {a}")
    for msg in summary["problems"][:20]:
        print(f"PROBLEM {msg}")
    n = len(summary["missing_transcripts"]) + len(summary["problems"])
    if n:
        print(f"data: {n} problems (first 20 of each kind shown); audio without a transcript "
              "line is left out of the manifests")
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
