"""Verified manifests: data validation as an offline step of data preparation.

MLPerf: the clock starts before any part of the system touches the dataset.
So a run must not decode, stat or read audio (or transcript files) before
`run_start`. Everything the run needs to know about its data before the clock
- durations, label ids, which utterances are unusable and why - is measured
once by `make data` / `make verify` (and by `harness bench`'s preparation
phase, before the run exists) and written next to the manifest as
`<manifest>.verified` (JSON lines):

* line 1, the header: format version, the sha256 of the manifest's bytes,
  the decode settings (sample rate, resample/downmix), the sha256 of the
  checking code, a stat stamp of every file (for `is_fresh`), counts, and the
  split digest (`manifest_digest`: ids + normalised transcripts);
* then one line per manifest utterance, in order: `[code, detail, samples,
  peak, rms, text]` - the hard error found (missing, corrupt, bad_chars, ...)
  or null, the decoded sample count, peak and RMS level, and the normalised
  transcript (its label ids are `labels.encode(text)`).

The length / level / CTC filters are applied at run time from these facts
(`reference.train.prep.splits`), so one verification serves every benchmark on
the same decode settings. A run reads only the manifest and this file, and
checks that the file belongs to the manifest (`read_verified`); a stale or
missing one is an error that names the command to run.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference.config import DataConfig, FeatureConfig
from reference.data.manifest import Utterance

FORMAT_VERSION = 1
SUFFIX = ".verified"


class NotVerified(RuntimeError):
    """The manifest has no verified record, or a stale one (message names the command)."""


@dataclass(frozen=True)
class Facts:
    """What verification measured for one utterance (code None = usable file)."""

    code: str | None
    detail: str
    samples: int
    peak: float
    rms: float
    text: str


def verified_path(manifest: Path) -> Path:
    return Path(manifest).with_name(Path(manifest).name + SUFFIX)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def code_digest() -> str:
    """sha256 of the code whose verdicts a record holds (a change re-verifies)."""
    root = Path(__file__).resolve().parents[2]  # reference/
    h = hashlib.sha256()
    for name in ("train/prep/preflight.py", "train/prep/verified.py", "data/audio.py", "labels.py"):
        h.update((root / name).read_bytes())
    return h.hexdigest()


def decode_settings(feat: FeatureConfig, data: DataConfig) -> dict[str, Any]:
    return {"sample_rate": feat.sample_rate, "allow_resample": data.allow_resample,
            "allow_downmix": data.allow_downmix}


def stat_stamp(utts: list[Utterance]) -> str:
    """sha256 over (size, mtime, ctime, inode) of every audio and transcript file."""
    h = hashlib.sha256()
    for u in utts:
        for p in (u.audio, u.transcript_path):
            if p is None:
                continue
            try:
                st = os.stat(p)
                h.update(f"{p}\t{st.st_size}\t{st.st_mtime_ns}\t{st.st_ctime_ns}\t{st.st_ino}\n"
                         .encode())
            except OSError:
                h.update(f"{p}\tmissing\n".encode())
    return h.hexdigest()


def split_digest(utts: list[Utterance], facts: list[Facts]) -> str:
    """`reference.data.manifest.manifest_digest`, from the verified texts (no file read)."""
    h = hashlib.sha256()
    for uid, text in sorted((u.id, f.text) for u, f in zip(utts, facts)):
        h.update(f"{uid}\t{text}\n".encode("utf-8"))
    return h.hexdigest()


def write_verified(manifest: Path, utts: list[Utterance], facts: list[Facts],
                   feat: FeatureConfig, data: DataConfig) -> Path:
    """Write `<manifest>.verified` atomically; returns its path."""
    counts: dict[str, int] = {}
    for f in facts:
        if f.code:
            counts[f.code] = counts.get(f.code, 0) + 1
    header = {"format": FORMAT_VERSION, "manifest": Path(manifest).name,
              "manifest_sha256": _sha256_file(manifest), "decode": decode_settings(feat, data),
              "code_sha256": code_digest(), "stat_stamp": stat_stamp(utts),
              "utterances": len(utts), "unusable": counts,
              "digest": split_digest(utts, facts)}
    out = verified_path(manifest)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(header) + "\n")
        for f in facts:
            fh.write(json.dumps([f.code, f.detail, f.samples, f.peak, f.rms, f.text]) + "\n")
    tmp.replace(out)
    return out


def _header(manifest: Path) -> dict[str, Any] | None:
    try:
        with open(verified_path(manifest), encoding="utf-8") as fh:
            return json.loads(fh.readline())
    except (OSError, ValueError):
        return None


def _problem(manifest: Path, header: dict[str, Any] | None, feat: FeatureConfig,
             data: DataConfig) -> str | None:
    if header is None:
        return "has no verified record"
    if header.get("format") != FORMAT_VERSION or header.get("code_sha256") != code_digest():
        return "was verified by another version of the checks"
    if header.get("manifest_sha256") != _sha256_file(manifest):
        return "changed since it was verified"
    if header.get("decode") != decode_settings(feat, data):
        return (f"was verified for decode settings {header.get('decode')}, the run uses "
                f"{decode_settings(feat, data)}")
    return None


def is_fresh(manifest: Path, utts: list[Utterance], feat: FeatureConfig, data: DataConfig) -> bool:
    """True when the record matches the manifest, the settings and every file's stat.

    For the preparation step (it stats every file); a run uses `read_verified`.
    """
    header = _header(manifest)
    return (_problem(manifest, header, feat, data) is None
            and header is not None and header.get("stat_stamp") == stat_stamp(utts))


def read_verified(manifest: Path, n_utts: int, feat: FeatureConfig, data: DataConfig,
                  command: str) -> tuple[dict[str, Any], list[Facts]]:
    """The header and facts of a manifest's record; NotVerified when missing or stale.

    Reads the manifest and the record only (no audio, no transcript file).
    `command` is what the user should run to (re)verify, for the message.
    """
    header = _header(manifest)
    problem = _problem(manifest, header, feat, data)
    if problem is None and header is not None and header.get("utterances") != n_utts:
        problem = "changed since it was verified"
    if problem:
        raise NotVerified(f"{manifest} {problem}: run `{command}` (data preparation, "
                          "outside the timed run) first")
    facts = []
    with open(verified_path(manifest), encoding="utf-8") as fh:
        fh.readline()
        for line in fh:
            code, detail, samples, peak, rms, text = json.loads(line)
            facts.append(Facts(code, detail, int(samples), float(peak), float(rms), text))
    if len(facts) != n_utts:
        raise NotVerified(f"{verified_path(manifest)} is truncated: run `{command}` first")
    return header, facts  # type: ignore[return-value]
