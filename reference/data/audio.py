"""Audio decoding with soundfile: 16 kHz mono float32, with clear errors.

Every failure raises `AudioError` whose `code` is a stable reason code used by
the preflight (`harness verify`) and whose message names the file.
"""
from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000


class AudioError(ValueError):
    """An utterance's audio cannot be used; `code` is a machine-readable reason."""

    def __init__(self, code: str, path: Path | str, detail: str) -> None:
        super().__init__(f"{path}: {code}: {detail}")
        self.code = code
        self.path = str(path)
        self.detail = detail


def read_info(path: Path) -> sf._SoundFileInfo:
    """Header of an audio file (duration, rate, channels) without decoding it."""
    path = Path(path)
    if not path.exists():
        raise AudioError("missing", path, "file does not exist")
    if path.stat().st_size == 0:
        raise AudioError("empty", path, "file has 0 bytes")
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError("not_audio", path, f"libsndfile cannot open it ({err})") from None


def load_audio(path: Path, sample_rate: int = SAMPLE_RATE, resample: bool = False,
               downmix: bool = False) -> np.ndarray:
    """Decode `path` to a float32 mono waveform in [-1, 1] at `sample_rate`.

    Wrong rates or channel counts are errors unless `resample` / `downmix` are
    allowed explicitly (the reference never checked the sample rate at all).
    """
    path = Path(path)
    info = read_info(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError("corrupt", path, f"decoding failed ({err})") from None
    if data.shape[0] == 0:
        raise AudioError("empty", path, "no audio frames")
    if data.shape[1] != 1:
        if not downmix:
            raise AudioError("channels", path, f"{data.shape[1]} channels, expected mono")
        data = data.mean(axis=1, keepdims=True)
    wav = np.ascontiguousarray(data[:, 0])
    if rate != sample_rate:
        if not resample:
            raise AudioError("sample_rate", path, f"{rate} Hz, expected {sample_rate} Hz")
        from scipy.signal import resample_poly  # only needed for foreign audio

        g = gcd(int(rate), sample_rate)
        wav = resample_poly(wav, sample_rate // g, int(rate) // g).astype(np.float32)
    if not np.isfinite(wav).all():
        raise AudioError("corrupt", path, "non-finite samples")
    del info
    return wav
