"""Preflight: decode and check every utterance of a manifest before training.

The reference trainer silently dropped characters it could not map, never
checked the sample rate, and back-propagated NaN when a target was longer than
the model output. Here every utterance is decoded once, up front, and either
accepted (with its true duration and label ids) or rejected with a stable
reason code and a short, specific detail:

===================  ==================================================
duplicate            same audio file (links resolved) or id seen earlier
missing              audio file does not exist
not_file             audio path is a directory or not a regular file
empty                0-byte file, or (after decoding) 0 frames
unreadable           audio file exists but cannot be opened
transcript_missing   no transcript, or its file is missing / unreadable
transcript_encoding  transcript file is not UTF-8
transcript_empty     transcript is empty after normalisation
bad_chars            characters outside the 29 labels (named)
not_audio            libsndfile cannot open it
corrupt              truncated / undecodable / non-finite samples
sample_rate          wrong rate (unless data.allow_resample)
channels             not mono (unless data.allow_downmix)
duration_mismatch    manifest duration differs from the audio by > 0.5 s
too_short            < one analysis window, or < 1 model output frame
too_long             longer than data.max_duration_s
silence              peak < -60 dBFS or RMS < -70 dBFS
ctc_infeasible       target needs more CTC frames than the model outputs
===================  ==================================================

Each utterance gets the first applicable code in this order: duplicates are
decided before anything is read, cheap file and transcript checks come before
decoding, length / level / CTC checks after it.

Decoding runs in worker processes (spawned, so they never import torch); the
length checks that need `features.num_frames` / `model.output_frames` run in
the calling process on the measured sample counts. Results are in manifest
order whatever the number of workers. Reports can be cached (see `_cache_key`).
"""
from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from reference import labels
from reference.data.audio import AudioError, load_audio
from reference.config import AugmentConfig, DataConfig, FeatureConfig
from reference.data.manifest import Utterance

PREFLIGHT_VERSION = 1  # bump when the meaning of a check changes (invalidates caches)
SILENCE_PEAK_DBFS = -60.0
SILENCE_RMS_DBFS = -70.0
DURATION_TOLERANCE_S = 0.5

CODES = ("duplicate", "missing", "not_file", "empty", "unreadable", "transcript_missing",
         "transcript_encoding", "transcript_empty", "bad_chars", "not_audio", "corrupt",
         "sample_rate", "channels", "duration_mismatch", "too_short", "too_long", "silence",
         "ctc_infeasible")


@dataclass(frozen=True)
class Rejection:
    """One rejected utterance: its manifest index, id, audio path, reason code, detail."""

    index: int
    id: str
    path: str
    code: str
    detail: str


@dataclass
class PreflightReport:
    """Outcome of `preflight`; indices refer to the utterance list it was given."""

    accepted: list[int] = field(default_factory=list)
    durations: dict[int, float] = field(default_factory=dict)
    targets: dict[int, list[int]] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Rejections per reason code (known codes first), then accepted/rejected/total."""
        per: dict[str, int] = {}
        for r in self.rejected:
            per[r.code] = per.get(r.code, 0) + 1
        order = {c: i for i, c in enumerate(CODES)}
        out = {c: per[c] for c in sorted(per, key=lambda c: (order.get(c, len(order)), c))}
        out.update(accepted=len(self.accepted), rejected=len(self.rejected),
                   total=len(self.accepted) + len(self.rejected))
        return out


@dataclass(frozen=True)
class _Probe:
    """What a worker measured for one utterance (or the first failure it found)."""

    code: str | None = None
    detail: str = ""
    samples: int = 0
    peak: float = 0.0
    rms: float = 0.0
    target: tuple[int, ...] = ()


def _wav_truncation(path: Path, head: bytes, size: int) -> str | None:
    """Detail if a RIFF/WAVE file's data chunk is longer than the file.

    libsndfile silently shortens such files to what is there, so a cut-off
    download would otherwise pass as a shorter utterance.
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    with path.open("rb") as f:
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            hdr = f.read(8)
            cid, clen = hdr[:4], int.from_bytes(hdr[4:8], "little")
            if cid == b"data":
                if clen in (0, 0xFFFFFFFF):  # streaming writers leave the size unset
                    return None
                have = size - pos - 8
                return None if clen <= have else \
                    f"truncated WAV: data chunk declares {clen} bytes, file holds {have}"
            pos += 8 + clen + (clen & 1)
    return None


def _read_target(u: Utterance) -> _Probe:
    """Transcript → label ids, or the transcript_* / bad_chars failure."""
    if u.text is not None:
        text = u.text
    elif u.transcript_path is None:
        return _Probe("transcript_missing", "no transcript text or file given")
    else:
        tp = u.transcript_path
        if not tp.exists():
            return _Probe("transcript_missing", f"{tp} does not exist")
        if not tp.is_file():
            return _Probe("transcript_missing", f"{tp} is not a regular file")
        try:
            raw = tp.read_bytes()
        except OSError as err:
            return _Probe("transcript_missing", f"cannot read {tp} ({err.strerror})")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            return _Probe("transcript_encoding",
                          f"{tp} is not UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start})")
    norm = labels.normalize(text)
    if not norm:
        return _Probe("transcript_empty", "transcript is only whitespace" if text
                      else "transcript is empty")
    bad = labels.invalid_chars(norm)
    if bad:
        return _Probe("bad_chars", "characters outside the 29 labels: " + ", ".join(map(repr, bad)))
    return _Probe(target=tuple(labels.encode(text)))


def _probe(u: Utterance, sample_rate: int, resample: bool, downmix: bool) -> _Probe:
    """Cheap file checks, transcript, then decoding; runs in a worker process."""
    path = Path(u.audio)
    try:
        st = path.stat()
    except FileNotFoundError:
        return _Probe("missing", "file does not exist")
    except OSError as err:
        return _Probe("unreadable", f"cannot stat ({err.strerror})")
    if path.is_dir():
        return _Probe("not_file", "is a directory")
    if not path.is_file():
        return _Probe("not_file", "not a regular file")
    if st.st_size == 0:
        return _Probe("empty", "file has 0 bytes")
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError as err:
        return _Probe("unreadable", f"cannot open ({err.strerror})")
    text = _read_target(u)
    if text.code is not None:
        return text
    truncated = _wav_truncation(path, head, st.st_size)
    if truncated:
        return _Probe("corrupt", truncated)
    try:
        wav = load_audio(path, sample_rate, resample=resample, downmix=downmix)
        info = sf.info(str(path))
    except AudioError as err:  # libsndfile repeats the path; the report already has it
        return _Probe(err.code, err.detail.replace(f"Error opening {str(path)!r}: ", ""))
    except Exception as err:  # noqa: BLE001 - any decoder failure is a property of the file
        return _Probe("corrupt", f"decoding failed ({type(err).__name__}: {err})")
    # A decoder that stops early without an error must not pass as a shorter file.
    expected = info.frames
    if info.samplerate != sample_rate:
        g = math.gcd(int(info.samplerate), sample_rate)
        expected = -(-info.frames * (sample_rate // g) // (int(info.samplerate) // g))
    if len(wav) < expected:
        return _Probe("corrupt", f"truncated: decoded {len(wav)} of {expected} samples")
    x = wav.astype(np.float64)
    return _Probe(samples=len(wav), peak=float(np.abs(x).max()),
                  rms=float(np.sqrt(np.mean(x * x))), target=text.target)


def _probe_chunk(chunk: list[Utterance], sample_rate: int, resample: bool,
                 downmix: bool) -> list[_Probe]:
    """One worker task: a contiguous chunk of utterances."""
    return [_probe(u, sample_rate, resample, downmix) for u in chunk]


# Filters that may drop training utterances only. MLPerf allows dropping or
# truncating training data, never evaluation data: an eval utterance that is
# too long, quiet or CTC-infeasible is scored like any other (decoding works;
# only its CTC loss would be infinite).
TRAINING_ONLY = ("too_long", "silence", "ctc_infeasible")


def _judge(u: Utterance, p: _Probe, feat: FeatureConfig, data: DataConfig,
           augment: AugmentConfig | None, training: bool = True) -> tuple[str, str] | None:
    """Length, level and CTC checks on a successful probe; None = accepted.

    `training=False` (an eval split) applies only the checks that make an
    utterance unusable at all (`TRAINING_ONLY` filters are skipped).
    """
    from reference.data.features import num_frames, stft_params  # imports torch: parent only
    from reference.model.deepspeech2 import output_frames

    dur = p.samples / feat.sample_rate
    if u.duration is not None and abs(u.duration - dur) > DURATION_TOLERANCE_S:
        return "duration_mismatch", f"manifest says {u.duration:.2f} s, audio is {dur:.2f} s"
    n_fft, _ = stft_params(feat)
    if p.samples < n_fft:
        return "too_short", (f"{p.samples} samples, fewer than one {feat.window_ms:g} ms "
                             f"analysis window ({n_fft})")
    frames = int(num_frames(p.samples, feat))
    out = int(output_frames(frames))
    if out < 1:
        return "too_short", f"{dur:.3f} s gives {frames} feature frames, {out} model output frames"
    if not training:
        return None
    if dur > data.max_duration_s:
        return "too_long", f"{dur:.2f} s > max_duration_s {data.max_duration_s:g} s"
    if p.peak == 0:
        return "silence", "every sample is zero"
    peak_db, rms_db = 20 * math.log10(p.peak), 20 * math.log10(max(p.rms, 1e-30))
    if peak_db < SILENCE_PEAK_DBFS:
        return "silence", f"peak {peak_db:.1f} dBFS < {SILENCE_PEAK_DBFS:g} dBFS"
    if rms_db < SILENCE_RMS_DBFS:
        return "silence", f"RMS {rms_db:.1f} dBFS < {SILENCE_RMS_DBFS:g} dBFS"
    need = labels.min_ctc_frames(list(p.target))
    if need > out:
        return "ctc_infeasible", (f"target needs {need} CTC frames, {dur:.2f} s of audio gives "
                                  f"{out} model output frames")
    if augment is not None and augment.enabled and augment.tempo_max > 1:
        # Tempo augmentation shortens the input; the worst case must still fit.
        out_fast = int(output_frames(max(1, int(frames / augment.tempo_max))))
        if need > out_fast:
            return "ctc_infeasible", (f"target needs {need} CTC frames, only {out_fast} model "
                                      f"output frames at tempo {augment.tempo_max:g}")
    return None


def _duplicates(utts: list[Utterance]) -> dict[int, str]:
    """Index → detail for every later occurrence of an audio file or id."""
    by_audio: dict[str, int] = {}
    by_id: dict[str, int] = {}
    dup: dict[int, str] = {}
    for i, u in enumerate(utts):
        key = os.path.normcase(os.path.realpath(u.audio))
        if key in by_audio:
            j = by_audio[key]
            dup[i] = f"same audio file as utterance #{j} ({utts[j].id!r})"
        elif u.id in by_id:
            j = by_id[u.id]
            dup[i] = f"same id as utterance #{j} ({utts[j].audio})"
        by_audio.setdefault(key, i)
        by_id.setdefault(u.id, i)
    return dup


def _stat(p: Path | None) -> list[int] | None:
    if p is None:
        return None
    try:
        st = os.stat(p)
    except OSError:
        return None
    # ctime cannot be set back by tools that preserve mtime (cp -p, touch -d, rsync -t).
    return [st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _cache_key(utts: list[Utterance], feat: FeatureConfig, data: DataConfig,
               augment: AugmentConfig | None) -> str:
    """sha256 over everything the report depends on.

    Manifest entries; stat of every audio and transcript file (mode, size,
    mtime, ctime, inode); the config fields the checks read; thresholds; the
    source of the checking code and the libsndfile version.
    """
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[2]  # reference/
    for name in ("train/prep/preflight.py", "data/audio.py", "labels.py", "data/features.py",
                 "model/deepspeech2.py"):
        h.update((root / name).read_bytes())
    tempo = augment.tempo_max if augment is not None and augment.enabled else None
    h.update(json.dumps({
        "version": PREFLIGHT_VERSION, "libsndfile": sf.__libsndfile_version__,
        "features": asdict(feat), "max_duration_s": data.max_duration_s,
        "allow_resample": data.allow_resample, "allow_downmix": data.allow_downmix,
        "tempo_max": tempo, "thresholds": [SILENCE_PEAK_DBFS, SILENCE_RMS_DBFS,
                                           DURATION_TOLERANCE_S],
    }, sort_keys=True).encode())
    for u in utts:
        tp = u.transcript_path
        h.update(json.dumps([u.id, str(u.audio), u.text, None if tp is None else str(tp),
                             u.duration, _stat(Path(u.audio)), _stat(tp)]).encode() + b"\n")
    return h.hexdigest()


def report_key(utts: list[Utterance], feat: FeatureConfig, data: DataConfig,
               augment: AugmentConfig | None = None) -> str:
    """The cache key of a report (cheap: stats files, decodes nothing)."""
    return _cache_key(utts, feat, data, augment)


def _load_cached(path: Path, key: str, utts: list[Utterance]) -> PreflightReport | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("key") != key:
            return None
        rep = PreflightReport(accepted=[int(i) for i in raw["accepted"]],
                              durations={int(k): float(v) for k, v in raw["durations"].items()},
                              rejected=[Rejection(**r) for r in raw["rejected"]])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable or foreign cache file: just recompute
    # Targets are not stored (hundreds of MB for LibriSpeech); transcripts are
    # part of the key, so re-encoding them gives the same ids.
    for i in rep.accepted:
        t = _read_target(utts[i])
        if t.code is not None:
            return None
        rep.targets[i] = list(t.target)
    return rep


def _save_cached(path: Path, key: str, rep: PreflightReport) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({
        "key": key, "accepted": rep.accepted,
        "durations": {str(k): v for k, v in rep.durations.items()},
        "rejected": [asdict(r) for r in rep.rejected]}), encoding="utf-8")
    tmp.replace(path)  # atomic: a concurrent reader sees the old or the new file


def _probes(todo: list[int], utts: list[Utterance], feat: FeatureConfig, data: DataConfig,
            workers: int) -> Iterator[tuple[int, _Probe]]:
    """Yield (index, probe) in order; decoding is spread over `workers` processes."""
    args = (feat.sample_rate, data.allow_resample, data.allow_downmix)
    if workers <= 1 or len(todo) < 2:
        for i in todo:
            yield i, _probe(utts[i], *args)
        return
    size = max(1, min(64, math.ceil(len(todo) / (workers * 4))))
    chunks = [todo[k:k + size] for k in range(0, len(todo), size)]
    # spawn, not fork: the parent may hold torch threads; workers need no torch.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=ctx) as ex:
        results = ex.map(_probe_chunk, [[utts[i] for i in c] for c in chunks],
                         *([a] * len(chunks) for a in args))
        for idx, res in zip(chunks, results):
            yield from zip(idx, res)


def preflight(utts: list[Utterance], feat: FeatureConfig, data: DataConfig, workers: int = 1,
              cache_dir: Path | None = None, progress: bool = False,
              augment: AugmentConfig | None = None, key: str | None = None) -> PreflightReport:
    """Decode and check every utterance; see the module docstring for the codes.

    `augment`, when given and enabled, also requires CTC feasibility at the
    fastest tempo the augmentation can pick. `key` is `report_key(...)` when the
    caller already computed it (it stats every file: not worth doing twice).
    """
    cache_file = None
    if cache_dir is not None:
        key = key or _cache_key(utts, feat, data, augment)
        cache_file = Path(cache_dir) / f"preflight-{key[:32]}.json"
        cached = _load_cached(cache_file, key, utts)
        if cached is not None:
            if progress:
                print(f"preflight: {len(utts)} utterances, report from cache {cache_file}",
                      file=sys.stderr)
            return cached
    rep = PreflightReport()
    dup = _duplicates(utts)
    rejected = {i: Rejection(i, u.id, str(u.audio), "duplicate", dup[i])
                for i, u in enumerate(utts) if i in dup}
    todo = [i for i in range(len(utts)) if i not in dup]
    start, next_pct = time.monotonic(), 10
    for done, (i, p) in enumerate(_probes(todo, utts, feat, data, workers), 1):
        u = utts[i]
        verdict = (p.code, p.detail) if p.code is not None else _judge(u, p, feat, data, augment)
        if verdict is None:
            rep.accepted.append(i)
            rep.durations[i] = p.samples / feat.sample_rate
            rep.targets[i] = list(p.target)
        else:
            rejected[i] = Rejection(i, u.id, str(u.audio), *verdict)
        if progress and done * 100 >= next_pct * len(todo):
            print(f"preflight: {done}/{len(todo)} decoded ({100 * done // len(todo)}%), "
                  f"{len(rejected)} rejected, {time.monotonic() - start:.1f} s", file=sys.stderr)
            next_pct = 100 * done // len(todo) // 10 * 10 + 10
    rep.accepted.sort()
    rep.rejected = [rejected[i] for i in sorted(rejected)]
    if cache_file is not None and key is not None:
        try:
            _save_cached(cache_file, key, rep)
        except OSError as err:  # a read-only cache dir must not fail the check itself
            print(f"preflight: cannot write cache {cache_file}: {err}", file=sys.stderr)
    return rep


def measure(utts: list[Utterance], feat: FeatureConfig, data: DataConfig, workers: int = 1,
            progress: bool = False) -> list:
    """Decode every utterance once: the facts a verified manifest stores (`verified.Facts`).

    Hard errors (duplicate ... channels) are recorded with their code; the
    length / level / CTC filters are not applied here (they depend on the
    benchmark and on the split's role, see `judge_facts`).
    """
    from reference.train.prep.verified import Facts

    dup = _duplicates(utts)
    facts: dict[int, Facts] = {i: Facts("duplicate", dup[i], 0, 0.0, 0.0, "") for i in dup}
    todo = [i for i in range(len(utts)) if i not in dup]
    start, next_pct = time.monotonic(), 10
    for done, (i, p) in enumerate(_probes(todo, utts, feat, data, workers), 1):
        text = labels.decode_ids(list(p.target)) if p.code is None else ""
        facts[i] = Facts(p.code, p.detail, p.samples, p.peak, p.rms, text)
        if progress and done * 100 >= next_pct * len(todo):
            print(f"verify: {done}/{len(todo)} decoded ({100 * done // len(todo)}%), "
                  f"{time.monotonic() - start:.1f} s", file=sys.stderr)
            next_pct = 100 * done // len(todo) // 10 * 10 + 10
    return [facts[i] for i in range(len(utts))]


def judge_facts(utts: list[Utterance], facts: list, feat: FeatureConfig, data: DataConfig,
                augment: AugmentConfig | None = None, training: bool = True) -> PreflightReport:
    """The preflight verdicts from verified facts, without touching a file.

    Same codes as `preflight`; `training=False` keeps every usable eval
    utterance (see `TRAINING_ONLY`).
    """
    rep = PreflightReport()
    for i, (u, f) in enumerate(zip(utts, facts)):
        if f.code is not None:
            rep.rejected.append(Rejection(i, u.id, str(u.audio), f.code, f.detail))
            continue
        target = tuple(labels.encode(f.text))
        verdict = _judge(u, _Probe(samples=f.samples, peak=f.peak, rms=f.rms, target=target),
                         feat, data, augment, training)
        if verdict is None:
            rep.accepted.append(i)
            rep.durations[i] = f.samples / feat.sample_rate
            rep.targets[i] = list(target)
        else:
            rep.rejected.append(Rejection(i, u.id, str(u.audio), *verdict))
    return rep
