"""Synthesis of the embedded corpus with espeak-ng (see docs/DESIGN.md).

Utterance ``k`` of a split depends on ``(split, k)`` only: its transcript
(:mod:`.text`), voice (:mod:`.voices`) and, for an utterance outside 1-4 s
after trimming, the retries ``attempt = 1, 2, ...`` with a new sentence and
voice.  Each synthesis loads a fresh libespeak-ng (see :mod:`.espeak`), so the
audio is the same for any worker count and for ``limit`` builds.
"""
from __future__ import annotations

import functools
import json
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from . import espeak
from .layout import (CHECKSUMS_PATH, MAX_DURATION_S, MIN_DURATION_S, SAMPLE_RATE, VERSION,
                     CorpusError, audio_relpath, file_sha256, manifest_path, pcm_digest,
                     read_checksums, split_counts, utterance_id, write_checksums,
                     write_manifest, write_stamp)
from .text import sentence
from .verify import is_complete, verify_corpus
from .voices import check_variants, voice_params

MAX_ATTEMPTS = 20
PAD_S = 0.08                 # silence kept before and after speech
FRAME_S = 0.01
ENERGY_RATIO = 3.1622776601683795e-05  # 10**-4.5 (-45 dB) as a literal: no libm pow
ABS_FLOOR_RMS = 20           # int16 RMS below which a frame is silence anyway
FILTER_GRID = 2.0 ** -32     # resampling filter coefficients are rounded to this grid

_LIB_PATH: Path | None = None   # per-process private copy of libespeak-ng
_OUT_DIR: Path | None = None


@functools.cache
def resample_filter() -> np.ndarray:
    """scipy's default 22050→16000 anti-aliasing filter, rounded to ``FILTER_GRID``.

    firwin uses numpy transcendental functions whose last bits differ between
    CPUs (e.g. SVML on AVX-512); rounding makes the coefficients, and hence the
    checksummed samples, identical everywhere.
    """
    from scipy.signal import firwin  # lazy: 1 s import, not needed for a no-op build

    h = firwin(2 * 10 * 441 + 1, 1.0 / 441, window=("kaiser", 5.0))
    return np.round(h / FILTER_GRID) * FILTER_GRID


def to_16k(pcm: np.ndarray, rate: int, peak: int) -> np.ndarray:
    """Resample espeak's 22 050 Hz int16 output to 16 kHz int16 peaking at ``peak``."""
    if rate != 22050:
        raise CorpusError(f"libespeak-ng produced {rate} Hz, expected 22050")
    from scipy.signal import resample_poly

    y = resample_poly(pcm.astype(np.float64), 320, 441, window=resample_filter())
    top = float(np.max(np.abs(y))) if y.size else 0.0
    if top > 0:
        y = y * (peak / top)
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def trim_silence(pcm: np.ndarray, rate: int = SAMPLE_RATE, lead_s: float = PAD_S,
                 trail_s: float = PAD_S) -> np.ndarray | None:
    """Keep speech plus ``lead_s``/``trail_s`` of context (zero-padded past espeak's own
    output) before/after it; None if silent.

    Frame energies are exact integer sums, so the cut points are platform independent.
    """
    frame = int(rate * FRAME_S)
    n = len(pcm) // frame
    if n == 0:
        return None
    energy = (pcm[: n * frame].astype(np.int64).reshape(n, frame) ** 2).sum(axis=1)
    floor = max(float(energy.max()) * ENERGY_RATIO, float(ABS_FLOOR_RMS ** 2 * frame))
    active = np.nonzero(energy.astype(np.float64) > floor)[0]
    if active.size == 0:
        return None
    lead, trail = int(round(rate * lead_s)), int(round(rate * trail_s))
    start, end = int(active[0]) * frame, min(len(pcm), (int(active[-1]) + 1) * frame)
    lo, hi = max(0, start - lead), min(len(pcm), end + trail)
    out = np.zeros(end - start + lead + trail, dtype=np.int16)
    out[lead - (start - lo): lead - (start - lo) + hi - lo] = pcm[lo:hi]
    return out


def synth_first_fit(draw, name: str, lib_path: Path | None = None) -> dict:
    """Synthesise ``draw(attempt)`` = (text, voice parameters) for attempt 0, 1, ... until
    the speech (its usual edges counted) lasts 1-4 s; CorpusError naming ``name`` if none does."""
    for attempt in range(MAX_ATTEMPTS):
        text, p = draw(attempt)
        raw, rate = espeak.synthesize(text, p.voice, p.rate, p.pitch, p.word_gap,
                                      p.pitch_range, p.volume, p.noise_seed, lib_path=lib_path)
        pcm = trim_silence(to_16k(raw, rate, p.peak), SAMPLE_RATE, p.lead_s, p.trail_s)
        # The 1-4 s bounds hold for the speech with the usual edges; unseen's own
        # edges (up to 2 x 0.5 s) come on top.
        core = 0.0 if pcm is None else len(pcm) / SAMPLE_RATE - p.lead_s - p.trail_s + 2 * PAD_S
        if pcm is not None and MIN_DURATION_S <= core <= MAX_DURATION_S:
            return {"text": text, "pcm": pcm, "params": p, "attempt": attempt}
    raise CorpusError(f"{name}: no 1-4 s utterance in {MAX_ATTEMPTS} attempts")


def synth_utterance(split: str, index: int, lib_path: Path | None = None) -> dict:
    """Transcript, 16 kHz samples and parameters of utterance ``index`` of ``split``."""
    return synth_first_fit(lambda attempt: (sentence(split, index, attempt),
                                            voice_params(split, index, attempt)),
                           utterance_id(split, index), lib_path)


def _init_worker(lib_path: Path, out_dir: Path) -> None:
    global _LIB_PATH, _OUT_DIR
    _LIB_PATH, _OUT_DIR = lib_path, out_dir


def _work(task: tuple[str, int]) -> dict:
    """Synthesise one utterance and write its FLAC (atomically)."""
    split, index = task
    uid = utterance_id(split, index)
    utt = synth_utterance(split, index, _LIB_PATH)
    rel = audio_relpath(split, uid)
    path = _OUT_DIR / rel
    tmp = path.with_name(f".{path.name}.tmp")
    soundfile.write(tmp, utt["pcm"], SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    tmp.replace(path)
    return {"split": split, "id": uid, "audio": rel, "text": utt["text"],
            "duration": len(utt["pcm"]) / SAMPLE_RATE, "attempt": utt["attempt"],
            "digest": pcm_digest(uid, utt["text"], utt["pcm"])}


def _self_check(tmp_dir: Path) -> Path:
    """Copy the library into ``tmp_dir``; fail early if espeak cannot load or keeps state."""
    try:
        lib_path = espeak.private_library_copy(tmp_dir)
        check_variants(espeak.variant_names())
        args = ("HELLO THERE", "en-us+f2", 175, 50, 1)  # f2: breath noise
        first = espeak.synthesize(*args, lib_path=lib_path)[0]
        espeak.synthesize("SOMETHING ELSE", "en+f4", 150, 30, 0, lib_path=lib_path)
        again = espeak.synthesize(*args, lib_path=lib_path)[0]
    except (espeak.EspeakError, ValueError, OSError, AttributeError) as exc:
        raise CorpusError(f"cannot use libespeak-ng: {exc}") from exc
    if first.size == 0 or not np.array_equal(first, again):
        raise CorpusError("libespeak-ng output depends on earlier calls although the library "
                          "is reloaded each time (is it loaded elsewhere in this process?)")
    return lib_path


def _progress(msg: str, enabled: bool) -> None:
    if enabled:
        print(f"[corpus] {msg}", file=sys.stderr, flush=True)


def _prepare(out_dir: Path, counts: dict[str, int]) -> None:
    """Drop the stamp and previous outputs of this generator, create directories."""
    (out_dir / ".complete").unlink(missing_ok=True)
    for split in counts:
        manifest_path(out_dir, split).unlink(missing_ok=True)
        shutil.rmtree(out_dir / "audio" / split, ignore_errors=True)
        (out_dir / "audio" / split).mkdir(parents=True, exist_ok=True)


def build_corpus(out_dir: Path, limit: int | None = None, workers: int = 2, force: bool = False,
                 verify: bool = True, write_reference_checksums: bool = False,
                 progress: bool = True) -> dict:
    """Build (or keep) the corpus in ``out_dir``; return a summary dict.

    ``limit`` builds the first N utterances of each split.  An existing
    complete build for the same ``limit`` is kept unless ``force``.
    ``write_reference_checksums`` (maintainers, full builds only) rewrites
    the committed ``checksums.sha256`` from this build.
    """
    out_dir = Path(out_dir)
    counts = split_counts(limit)
    if write_reference_checksums and limit is not None:
        raise CorpusError("--write-checksums needs a full build (no --limit)")
    if not force and not write_reference_checksums and is_complete(out_dir, limit):
        stamp = json.loads((out_dir / ".complete").read_text(encoding="utf-8"))
        _progress(f"{out_dir} is complete and verified; nothing to do", progress)
        return {"out_dir": str(out_dir), "counts": stamp["counts"], "hours": stamp["hours"],
                "seconds": 0.0, "skipped": True, "verified": True, "limit": limit}
    committed = {} if write_reference_checksums else read_checksums()
    t0 = time.monotonic()
    tasks = [(s, i) for s, n in counts.items() for i in range(n)]
    rows: dict[str, list[dict]] = {s: [] for s in counts}
    with tempfile.TemporaryDirectory(prefix="ds2bench-espeak-") as tmp:
        lib_path = _self_check(Path(tmp))  # before touching an existing corpus
        out_dir.mkdir(parents=True, exist_ok=True)
        _prepare(out_dir, counts)
        _progress(f"synthesising {len(tasks)} utterances into {out_dir} with {workers} worker(s)",
                  progress)
        if workers > 1:
            pool = multiprocessing.get_context("spawn").Pool(
                workers, initializer=_init_worker, initargs=(lib_path, out_dir))
            results = pool.imap(_work, tasks, chunksize=8)
        else:
            pool = None
            _init_worker(lib_path, out_dir)
            results = map(_work, tasks)
        try:
            next_report, seconds = 0.1, 0.0
            for done, row in enumerate(results, 1):
                rows[row["split"]].append(row)
                seconds += row["duration"]
                if done / len(tasks) >= next_report - 1e-9 or done == len(tasks):
                    per = " ".join(f"{s} {len(r)}/{counts[s]}" for s, r in rows.items())
                    _progress(f"{done}/{len(tasks)} ({100 * done // len(tasks)}%) {per}; "
                              f"{seconds / 3600:.2f} h audio; {time.monotonic() - t0:.1f} s",
                              progress)
                    next_report += 0.1
        finally:
            if pool is not None:
                pool.close()
                pool.join()
    for split, split_rows in rows.items():
        write_manifest(manifest_path(out_dir, split), split_rows)
    digests = {r["id"]: r["digest"] for split_rows in rows.values() for r in split_rows}
    if write_reference_checksums:
        write_checksums(digests)
        committed = read_checksums()
    bad = [uid for uid, d in digests.items() if committed.get(uid) != d]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise CorpusError(f"synthesis differs from {CHECKSUMS_PATH.name} for {len(bad)} of "
                          f"{len(digests)} utterances: {shown} (different libespeak-ng/scipy "
                          f"build, or the generator changed without --write-checksums)")
    if verify:
        _progress("verifying decoded FLAC files against the checksums", progress)
        verify_corpus(out_dir, workers=workers)
    elapsed = time.monotonic() - t0
    summary = {"out_dir": str(out_dir), "counts": {s: len(r) for s, r in rows.items()},
               "hours": round(seconds / 3600, 4), "seconds": round(elapsed, 2),
               "skipped": False, "verified": verify, "limit": limit,
               "retries": sum(r["attempt"] for split_rows in rows.values() for r in split_rows)}
    if verify:
        write_stamp(out_dir, {
            "version": VERSION, "limit": limit, "counts": summary["counts"],
            "hours": summary["hours"], "build_seconds": summary["seconds"], "verified": True,
            "checksums_sha256": file_sha256(CHECKSUMS_PATH),
            "manifests": {s: file_sha256(manifest_path(out_dir, s)) for s in counts}})
    _progress(f"done: {summary['counts']}, {summary['hours']:.2f} h, {elapsed:.1f} s", progress)
    return summary
