"""Minimal ctypes binding to libespeak-ng from the ``espeakng-loader`` wheel.

Only what the embedded corpus needs: synchronous synthesis of one sentence
into an int16 numpy array at the library's native rate (22 050 Hz).

Determinism quirk: libespeak-ng keeps synthesis state in C statics (wave
phase, flutter index, ...) that neither ``espeak_Terminate`` nor
``espeak_Initialize`` reset, so the same call gives different samples
depending on what was synthesised before.  :func:`synthesize` therefore loads
a fresh copy of the library for every utterance and unloads it afterwards
(``dlclose``; ~7 ms).  Pass a private copy of the ``.so`` (see
:func:`private_library_copy`) so that no other user of the same file keeps it
mapped, which would silently defeat the unload.

Second quirk: ``espeak_Initialize`` seeds espeak's noise generator from the
clock, which changes every sample of variants with aspiration noise
("breath": f2, f3, f5, victor, ...).  :meth:`Espeak.synth` therefore always
calls ``espeak_ng_SetRandSeed`` with an explicit seed.
"""
from __future__ import annotations

import _ctypes
import ctypes
import shutil
from pathlib import Path

import numpy as np

# espeak_AUDIO_OUTPUT
AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_PARAMETER
PARAM_RATE = 1
PARAM_VOLUME = 2
PARAM_PITCH = 3
PARAM_RANGE = 4
PARAM_WORDGAP = 7
# espeak_POSITION_TYPE / flags
POS_CHARACTER = 1
CHARS_UTF8 = 1
EE_OK = 0

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short),
                             ctypes.c_int, ctypes.c_void_p)


class EspeakError(RuntimeError):
    """libespeak-ng could not be loaded or refused a request."""


def library_paths() -> tuple[Path, Path]:
    """Return (shared library, espeak-ng-data directory) from espeakng_loader."""
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise EspeakError("the 'espeakng-loader' package is not installed "
                          "(pip install espeakng-loader==0.2.4)") from exc
    lib = Path(espeakng_loader.get_library_path())
    try:
        data = Path(espeakng_loader.get_data_path())
    except RuntimeError as exc:
        raise EspeakError(f"espeak-ng-data not found: {exc}") from exc
    if not lib.is_file():
        raise EspeakError(f"libespeak-ng not found at {lib}")
    return lib, data


def variant_names() -> list[str]:
    """Names of the voice variants shipped in espeak-ng-data/voices/!v."""
    _, data = library_paths()
    return sorted(p.name for p in (data / "voices" / "!v").iterdir() if p.is_file())


def private_library_copy(dest_dir: Path) -> Path:
    """Copy libespeak-ng.so into ``dest_dir`` (a file only this process tree loads)."""
    lib, _ = library_paths()
    dest = Path(dest_dir) / lib.name
    shutil.copyfile(lib, dest)
    return dest


class Espeak:
    """One loaded instance of libespeak-ng in synchronous mode; ``close()`` unloads it."""

    def __init__(self, lib_path: Path | None = None) -> None:
        default_lib, data_path = library_paths()
        lib_path = Path(lib_path) if lib_path is not None else default_lib
        try:
            self.lib = ctypes.CDLL(str(lib_path))
        except OSError as exc:
            raise EspeakError(f"cannot load libespeak-ng from {lib_path}: {exc}") from exc
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint,
                                     ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        lib.espeak_Terminate.argtypes = []
        lib.espeak_Terminate.restype = ctypes.c_int

        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path).encode(), 0)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {rate}) with data {data_path}")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._callback = _CALLBACK(self._on_samples)  # keep a reference alive
        lib.espeak_SetSynthCallback(self._callback)

    def close(self) -> None:
        """Terminate espeak and unload the library (resets all C state)."""
        lib, self.lib = self.lib, None
        if lib is None:
            return
        lib.espeak_Terminate()
        dlclose = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
        if dlclose is not None:
            dlclose(lib._handle)

    def __enter__(self) -> "Espeak":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_samples(self, wav, numsamples, events) -> int:  # noqa: ARG002 - C signature
        if numsamples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0  # 0 = continue synthesis

    def _check(self, code: int, what: str) -> None:
        if code != EE_OK:
            raise EspeakError(f"{what} failed with espeak error {code}")

    def synth(self, text: str, voice: str, rate: int, pitch: int, word_gap: int,
              pitch_range: int = 50, volume: int = 100, seed: int = 1) -> np.ndarray:
        """Synthesise ``text`` with ``voice`` (e.g. "en-us+m3"); int16 at ``sample_rate``.

        ``rate`` in words per minute, ``pitch`` and ``pitch_range`` 0-100,
        ``word_gap`` in units of 10 ms at the default speed, ``seed`` for the
        noise generator (breathy variants).
        """
        lib = self.lib
        lib.espeak_ng_SetRandSeed(int(seed))
        self._check(lib.espeak_SetVoiceByName(voice.encode()), f"espeak_SetVoiceByName({voice!r})")
        for param, value in ((PARAM_RATE, rate), (PARAM_PITCH, pitch), (PARAM_RANGE, pitch_range),
                             (PARAM_WORDGAP, word_gap), (PARAM_VOLUME, volume)):
            self._check(lib.espeak_SetParameter(param, int(value), 0), f"espeak_SetParameter({param})")
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        self._check(lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None),
                    "espeak_Synth")
        self._check(lib.espeak_Synchronize(), "espeak_Synchronize")
        chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(chunks).astype(np.int16, copy=False)


def synthesize(text: str, voice: str, rate: int, pitch: int, word_gap: int,
               pitch_range: int = 50, volume: int = 100, seed: int = 1,
               lib_path: Path | None = None) -> tuple[np.ndarray, int]:
    """Synthesise with a freshly loaded library: (int16 samples, sample rate).

    The result depends on the arguments only (see the module docstring).
    """
    with Espeak(lib_path) as engine:
        samples = engine.synth(text, voice, rate, pitch, word_gap, pitch_range, volume, seed)
        return samples, engine.sample_rate
