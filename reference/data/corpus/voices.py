"""Speaker ("voice") parameters of the embedded corpus.

A voice is an espeak-ng accent (a language file under espeak-ng-data/lang/gmw)
plus a variant (espeak-ng-data/voices/!v), with speed, pitch, pitch range,
word gap and output level.  Parameters are a pure function of
``(split, index, attempt)``.

espeak is run at a fixed low volume (its volume is not linear and above ~30
several variants saturate at int16 full scale); the level is then set by
scaling the resampled signal to an integer target ``peak``.

Twelve variants are held out: they are used only by the ``unseen`` split.
Effect variants (robots, whisper, echo, klatt test voices, ...) are not used.
espeak-ng silently falls back to the default variant for an unknown name, so
:func:`check_variants` compares the lists against the installed files.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .text import SEED

# Voice file identifiers understood by espeak_SetVoiceByName (case-insensitive).
ACCENTS: tuple[str, ...] = ("en-us", "en-us-nyc", "en", "en-gb-x-rp", "en-gb-scotland",
                            "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")

TRAIN_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "f4",
    "Alex", "Andy", "Annie", "Denis", "Diogo", "Gene", "Henrique", "Hugo", "Lee", "Mario",
    "Michael", "Mike", "Nguyen", "antonio", "belinda", "benjamin", "david", "ed", "edward2",
    "grandma", "grandpa", "gustave", "iven", "john", "linda", "max", "norbert", "pablo",
    "paul", "pedro", "quincy", "rob", "robert", "steph", "travis", "victor", "zac",
)
UNSEEN_VARIANTS: tuple[str, ...] = (
    "m7", "m8", "f5", "Andrea", "Gene2", "Jacky", "aunty", "iven2", "michel", "miguel",
    "steph2", "marcelo",
)

RATE_WPM = (140, 200)
PITCH = (25, 75)
PITCH_RANGE = (30, 70)
WORD_GAP = (0, 2)      # units of 10 ms at the default speed
VOLUME = 20            # espeak volume, fixed: headroom for the loudest variants
PEAK = (8000, 29000)   # target peak sample after normalisation (-12 to -1 dBFS)


@dataclass(frozen=True)
class VoiceParams:
    """Everything espeak needs for one synthesis besides the text."""

    accent: str
    variant: str
    rate: int
    pitch: int
    pitch_range: int
    word_gap: int
    peak: int
    noise_seed: int
    volume: int = VOLUME

    @property
    def voice(self) -> str:
        """The name given to espeak_SetVoiceByName, e.g. ``en-us+m3``."""
        return f"{self.accent}+{self.variant}"


def variants_for(split: str) -> tuple[str, ...]:
    """Variants a split may use (unseen: the held-out ones only)."""
    return UNSEEN_VARIANTS if split == "unseen" else TRAIN_VARIANTS


def voice_params(split: str, index: int, attempt: int = 0) -> VoiceParams:
    """Deterministic voice of utterance ``index`` of ``split`` at retry ``attempt``."""
    rng = random.Random(f"{SEED}/voice/{split}/{index}/{attempt}")
    return VoiceParams(
        accent=rng.choice(ACCENTS),
        variant=rng.choice(variants_for(split)),
        rate=rng.randint(*RATE_WPM),
        pitch=rng.randint(*PITCH),
        pitch_range=rng.randint(*PITCH_RANGE),
        word_gap=rng.randint(*WORD_GAP),
        peak=rng.randint(*PEAK),
        noise_seed=rng.randint(1, 2**31 - 1),
    )


def check_variants(installed: list[str]) -> None:
    """Raise ValueError if a configured variant is missing from ``installed``."""
    missing = sorted(set(TRAIN_VARIANTS + UNSEEN_VARIANTS) - set(installed))
    if missing:
        raise ValueError(f"espeak-ng variants not installed: {', '.join(missing)}")
    overlap = set(TRAIN_VARIANTS) & set(UNSEEN_VARIANTS)
    if overlap:  # pragma: no cover - guards edits of the lists above
        raise ValueError(f"variants both seen and unseen: {sorted(overlap)}")
