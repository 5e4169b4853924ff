"""Manifests: the reference CSV format and ds2bench's JSON-lines format.

* Reference (`.csv`, the seed's `libri_*_manifest.csv`): `audio_path,transcript_path`
  per line; durations come from the audio headers.
* Rich (`.jsonl`): `{"id", "audio", "text", "duration"}` per line; paths are
  relative to the manifest's directory.

Parsing problems raise `ManifestError` naming the file and line.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path


class ManifestError(ValueError):
    """A manifest line cannot be parsed."""


@dataclass(frozen=True)
class Utterance:
    """One utterance: audio path, transcript (inline or in a file), duration in s."""

    id: str
    audio: Path
    text: str | None = None
    transcript_path: Path | None = None
    duration: float | None = None

    def read_text(self) -> str:
        """The raw transcript (not normalised)."""
        if self.text is not None:
            return self.text
        if self.transcript_path is None:
            raise ManifestError(f"{self.id}: no transcript")
        return self.transcript_path.read_text(encoding="utf-8")


def _resolve(base: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else (base / q)


def _load_jsonl(path: Path) -> list[Utterance]:
    out: list[Utterance] = []
    base = path.parent
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{path}:{lineno}: not JSON ({err.msg})") from None
            if not isinstance(rec, dict) or "audio" not in rec:
                raise ManifestError(f"{path}:{lineno}: needs an object with an 'audio' field")
            dur = rec.get("duration")
            if dur is not None and not isinstance(dur, (int, float)):
                raise ManifestError(f"{path}:{lineno}: duration must be a number, got {dur!r}")
            text = rec.get("text")
            tpath = rec.get("transcript")
            if text is None and tpath is None:
                raise ManifestError(f"{path}:{lineno}: needs 'text' or 'transcript'")
            out.append(Utterance(
                id=str(rec.get("id", f"{path.stem}-{lineno}")),
                audio=_resolve(base, str(rec["audio"])),
                text=None if text is None else str(text),
                transcript_path=None if tpath is None else _resolve(base, str(tpath)),
                duration=None if dur is None else float(dur),
            ))
    return out


def _load_csv(path: Path) -> list[Utterance]:
    out: list[Utterance] = []
    base = path.parent
    with path.open(encoding="utf-8", newline="") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2:
                raise ManifestError(
                    f"{path}:{lineno}: expected 'audio_path,transcript_path', got {len(row)} fields")
            audio, trans = (c.strip() for c in row)
            out.append(Utterance(id=Path(audio).stem, audio=_resolve(base, audio),
                                 transcript_path=_resolve(base, trans)))
    return out


def load_manifest(path: Path | str) -> list[Utterance]:
    """Parse a `.csv` (reference) or `.jsonl` (rich) manifest."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    if path.suffix == ".csv":
        utts = _load_csv(path)
    elif path.suffix in (".jsonl", ".json"):
        utts = _load_jsonl(path)
    else:
        raise ManifestError(f"{path}: unknown manifest type (use .csv or .jsonl)")
    if not utts:
        raise ManifestError(f"{path}: manifest has no utterances")
    return utts


def write_jsonl(path: Path, utts: list[Utterance]) -> None:
    """Write a rich manifest atomically, paths relative to its directory when possible."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for u in utts:
            try:
                audio = str(u.audio.resolve().relative_to(path.parent.resolve()))
            except ValueError:
                audio = str(u.audio.resolve())
            rec = {"id": u.id, "audio": audio, "text": u.read_text().strip(),
                   "duration": u.duration}
            f.write(json.dumps(rec) + "\n")
    tmp.replace(path)


def manifest_digest(utts: list[Utterance]) -> str:
    """sha256 of a split's identity: its utterance ids and normalised transcripts.

    Order- and location-independent (sorted by id; audio paths are not part of
    it), so the same LibriSpeech dev set gives the same digest on any machine;
    reads transcripts, never audio. Benchmarks pin it as `dataset.eval_digest`.
    """
    import hashlib

    from reference.labels import normalize

    h = hashlib.sha256()
    for uid, text in sorted((u.id, normalize(u.read_text())) for u in utts):
        h.update(f"{uid}\t{text}\n".encode("utf-8"))
    return h.hexdigest()
