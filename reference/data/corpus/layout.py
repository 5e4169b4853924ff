"""On-disk layout of the embedded corpus: ids, paths, manifests, checksums, stamp.

::

    <out>/train.jsonl, dev.jsonl, unseen.jsonl    rich manifests (DESIGN.md)
    <out>/audio/<split>/<id>.flac                 16 kHz mono 16-bit FLAC
    <out>/.complete                               JSON stamp, written last

``reference/data/corpus/checksums.sha256`` (committed) holds one line per utterance,
``<sha256 hex>  <id>``, where the digest covers ``id NUL text NUL`` followed by
the decoded samples as little-endian int16.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

VERSION = 3  # v2: more voices (Klatt), shapes, unseen-only shapes/accent/edges; v3: free-word training sentences
SPLITS: dict[str, int] = {"train": 3000, "dev": 200, "unseen": 200}
SAMPLE_RATE = 16_000
MIN_DURATION_S, MAX_DURATION_S = 1.0, 4.0
STAMP_NAME = ".complete"
CHECKSUMS_PATH = Path(__file__).with_name("checksums.sha256")
CHECKSUMS_HEADER = ("# ds2bench embedded corpus v3: sha256(id NUL text NUL int16-LE PCM) "
                    "per utterance; written by `python -m reference.data.corpus build --write-checksums`")
MANIFEST_KEYS = ("id", "audio", "text", "duration")


class CorpusError(RuntimeError):
    """The corpus cannot be built or does not match the committed checksums."""


def utterance_id(split: str, index: int) -> str:
    """``train-000001`` for index 0 of ``train``."""
    return f"{split}-{index + 1:06d}"


def split_counts(limit: int | None) -> dict[str, int]:
    """Utterances per split for a build limited to the first ``limit`` of each."""
    if limit is not None and limit < 1:
        raise CorpusError(f"limit must be a positive integer, got {limit}")
    return {s: n if limit is None else min(n, limit) for s, n in SPLITS.items()}


def audio_relpath(split: str, uid: str) -> str:
    """Audio path relative to the manifest directory."""
    return f"audio/{split}/{uid}.flac"


def manifest_path(out_dir: Path, split: str) -> Path:
    return Path(out_dir) / f"{split}.jsonl"


def pcm_digest(uid: str, text: str, pcm: np.ndarray) -> str:
    """SHA-256 of id, transcript and int16 samples (see module docstring)."""
    h = hashlib.sha256(uid.encode() + b"\0" + text.encode() + b"\0")
    h.update(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_manifest(path: Path, rows: list[dict]) -> None:
    lines = [json.dumps({k: row[k] for k in MANIFEST_KEYS}, ensure_ascii=True) for row in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_manifest(path: Path) -> list[dict]:
    """Parse a rich manifest; CorpusError on a malformed line."""
    rows = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{lineno}: not JSON ({exc})") from exc
        if not isinstance(row, dict) or any(k not in row for k in MANIFEST_KEYS):
            raise CorpusError(f"{path}:{lineno}: expected keys {MANIFEST_KEYS}")
        rows.append(row)
    return rows


def read_checksums(path: Path = CHECKSUMS_PATH) -> dict[str, str]:
    """id → hex digest from a checksum list ('#' lines are comments)."""
    if not Path(path).is_file():
        raise CorpusError(f"checksum list {path} is missing")
    out: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            digest, uid = line.split()
            out[uid] = digest
    return out


def write_checksums(digests: dict[str, str], path: Path = CHECKSUMS_PATH) -> None:
    """Write the committed checksum list (ids in split then index order)."""
    order = {s: i for i, s in enumerate(SPLITS)}
    ids = sorted(digests, key=lambda u: (order[u.rsplit("-", 1)[0]], u))
    atomic_write_text(path, CHECKSUMS_HEADER + "\n" + "".join(f"{digests[u]}  {u}\n" for u in ids))


def read_stamp(out_dir: Path) -> dict | None:
    """The stamp of a completed build, or None when absent or unreadable."""
    try:
        stamp = json.loads((Path(out_dir) / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return stamp if isinstance(stamp, dict) else None


def write_stamp(out_dir: Path, stamp: dict) -> None:
    atomic_write_text(Path(out_dir) / STAMP_NAME, json.dumps(stamp, indent=1, sort_keys=True) + "\n")
