"""Export a manifest in the seed trainer's own data layout, for side-by-side timing.

The seed (MLCommons v0.5 / Cambricon port) reads `libri_<split>_manifest.csv`
files whose lines are `wav_path,txt_path` (absolute paths, no header), one
16-bit PCM WAV and one upper-case transcript file per utterance. Writing the
embedded corpus (or any manifest) in that layout lets the seed's trainer and
ds2bench train on exactly the same utterances; ds2bench reads the exported CSV
back unchanged (`reference.data.manifest`, reference format).

Nothing is resampled or altered: samples are decoded with soundfile and
written as PCM_16 (the corpus is 16-bit FLAC, so this is lossless).
"""
from __future__ import annotations

import csv
from pathlib import Path

import soundfile as sf

from reference.data.manifest import load_manifest


def export_seed_layout(manifest: Path, out_dir: Path, split: str, ordered: bool = True) -> Path:
    """Write `out_dir/<split>/{wav,txt}/` and `out_dir/libri_<split>_manifest.csv`.

    Returns the CSV path. Existing files of the same name are overwritten, so a
    re-export after a corpus rebuild never mixes old and new audio. `ordered`
    sorts the CSV by duration, as the seed's own data preparation does
    (`create_manifest(..., ordered=True)`): its trainer reads the manifest in
    order, so this is the order it trains in.
    """
    utts = load_manifest(manifest)
    if ordered:
        # Stable: equal durations keep the manifest order. Durations come from
        # the manifest or, when absent, from the audio header.
        utts = sorted(utts, key=lambda u: u.duration if u.duration is not None
                      else sf.info(str(u.audio)).duration)
    wav_dir = (out_dir / split / "wav").resolve()
    txt_dir = (out_dir / split / "txt").resolve()
    wav_dir.mkdir(parents=True, exist_ok=True)
    txt_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"libri_{split}_manifest.csv"
    tmp = csv_path.with_suffix(".csv.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        for u in utts:
            audio, rate = sf.read(str(u.audio), dtype="int16", always_2d=False)
            wav = wav_dir / f"{u.id}.wav"
            sf.write(str(wav), audio, rate, subtype="PCM_16", format="WAV")
            txt = txt_dir / f"{u.id}.txt"
            txt.write_text(u.read_text().strip().upper() + "\n", encoding="utf-8")
            writer.writerow([str(wav), str(txt)])
    tmp.replace(csv_path)  # the manifest appears only once every file it names exists
    return csv_path
