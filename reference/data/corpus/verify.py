"""Verification of a built corpus against the committed checksum list.

Like MLPerf's ``verify_dataset``: every FLAC file is decoded back with
soundfile and its samples (plus id and transcript) hashed; any difference is a
:class:`CorpusError` naming the first few utterance ids and the count.
"""
from __future__ import annotations

import multiprocessing
from pathlib import Path

import soundfile

from .layout import (CHECKSUMS_PATH, SAMPLE_RATE, SPLITS, VERSION, CorpusError, file_sha256,
                     manifest_path, pcm_digest, read_checksums, read_manifest, read_stamp,
                     utterance_id)
from .text import check_text

SHOW_IDS = 5


def _decode_digest(job: tuple[str, str, str, float]) -> tuple[str, str]:
    """(id, digest) or (id, 'error: ...') for one manifest row."""
    uid, path, text, duration = job
    try:
        pcm, rate = soundfile.read(path, dtype="int16", always_2d=False)
    except Exception as exc:  # noqa: BLE001 - any decode failure is reported per id
        return uid, f"error: cannot decode {path}: {exc}"
    if rate != SAMPLE_RATE or pcm.ndim != 1:
        return uid, f"error: {path} is {rate} Hz with shape {pcm.shape}, expected 16 kHz mono"
    if abs(len(pcm) / SAMPLE_RATE - float(duration)) > 1e-3:
        return uid, f"error: manifest duration {duration} != audio {len(pcm) / SAMPLE_RATE}"
    return uid, pcm_digest(uid, text, pcm)


def _summarise(problems: list[tuple[str, str]], total: int, out_dir: Path) -> str:
    shown = ", ".join(f"{uid} ({why})" for uid, why in problems[:SHOW_IDS])
    more = f" and {len(problems) - SHOW_IDS} more" if len(problems) > SHOW_IDS else ""
    return (f"corpus verification failed for {out_dir}: {len(problems)} of {total} utterances "
            f"do not match {CHECKSUMS_PATH.name}: {shown}{more}. Rebuild with "
            f"`python -m reference.data.corpus build --out {out_dir} --force`.")


def collect_jobs(out_dir: Path) -> list[tuple[str, str, str, float]]:
    """Check manifest structure; return (id, absolute audio path, text, duration) jobs."""
    out_dir = Path(out_dir)
    stamp = read_stamp(out_dir)
    jobs = []
    for split in SPLITS:
        path = manifest_path(out_dir, split)
        if not path.is_file():
            raise CorpusError(f"no corpus at {out_dir}: {path.name} is missing "
                              f"(build it with `python -m reference.data.corpus build --out {out_dir}`)")
        rows = read_manifest(path)
        expected = [utterance_id(split, i) for i in range(len(rows))]
        if [r["id"] for r in rows] != expected:
            raise CorpusError(f"{path}: ids are not {expected[:1]}..{expected[-1:]} in order")
        if stamp is not None and stamp.get("counts", {}).get(split) not in (None, len(rows)):
            raise CorpusError(f"{path}: {len(rows)} utterances, stamp says {stamp['counts'][split]}")
        for r in rows:
            try:
                check_text(r["text"])
            except ValueError as exc:
                raise CorpusError(f"{path}: {r['id']}: {exc}") from exc
            audio = Path(r["audio"])
            audio = audio if audio.is_absolute() else out_dir / audio
            jobs.append((r["id"], str(audio), r["text"], float(r["duration"])))
    return jobs


def verify_corpus(out_dir: Path, workers: int = 2) -> None:
    """Decode every utterance and compare with the committed checksums.

    Raises :class:`CorpusError` on any mismatch, missing or undecodable file.
    """
    out_dir = Path(out_dir)
    committed = read_checksums()
    jobs = collect_jobs(out_dir)
    if workers > 1 and len(jobs) > 64:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_decode_digest, jobs, chunksize=32)
    else:
        results = [_decode_digest(j) for j in jobs]
    problems = []
    for uid, got in results:
        want = committed.get(uid)
        if got.startswith("error: "):
            problems.append((uid, got[7:]))
        elif want is None:
            problems.append((uid, "no committed checksum"))
        elif got != want:
            problems.append((uid, "checksum mismatch"))
    if problems:
        raise CorpusError(_summarise(problems, len(jobs), out_dir))


def is_complete(out_dir: Path, limit: int | None) -> bool:
    """Cheap check that ``out_dir`` holds a finished, verified build for ``limit``.

    Compares the stamp with the current checksum list and manifests and checks
    that every audio file exists (no decoding: that is :func:`verify_corpus`).
    """
    out_dir = Path(out_dir)
    stamp = read_stamp(out_dir)
    if stamp is None or stamp.get("version") != VERSION or stamp.get("limit") != limit:
        return False
    if not stamp.get("verified") or not CHECKSUMS_PATH.is_file():
        return False
    if stamp.get("checksums_sha256") != file_sha256(CHECKSUMS_PATH):
        return False
    for split in SPLITS:
        path = manifest_path(out_dir, split)
        if not path.is_file() or stamp.get("manifests", {}).get(split) != file_sha256(path):
            return False
        if not all((out_dir / r["audio"]).is_file() for r in read_manifest(path)):
            return False
    return True
