"""Speaker ("voice") parameters of the embedded corpus.

A voice is an espeak-ng accent (a language file under espeak-ng-data/lang/gmw)
plus a variant (espeak-ng-data/voices/!v), with speed, pitch, pitch range,
word gap and output level.  Parameters are a pure function of
``(split, index, attempt)``.

espeak is run at a fixed low volume (its volume is not linear and above ~30
several variants saturate at int16 full scale); the level is then set by
scaling the resampled signal to an integer target ``peak``.

Some variants are held out: they are used only by the ``unseen`` split, as is
one accent (``UNSEEN_ACCENTS``). v2 adds voice families: more natural
variants and espeak-ng's Klatt-synthesiser variants (klatt, klatt2-6; two held
out). Effect variants (robots, whisper, echo, ...) are not used.

Edge silence: train and dev keep the trimmed ~80 ms (training augmentation
varies it); ``unseen`` utterances get U(0, ``UNSEEN_EDGE_S``) s each side
(none included), which training data never has.
espeak-ng silently falls back to the default variant for an unknown name, so
:func:`check_variants` compares the lists against the installed files.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace

from .text import SEED

# Voice file identifiers understood by espeak_SetVoiceByName (case-insensitive).
ACCENTS: tuple[str, ...] = ("en-us", "en-us-nyc", "en", "en-gb-x-rp", "en-gb-scotland",
                            "en-gb-x-gbclan", "en-029")
UNSEEN_ACCENTS: tuple[str, ...] = ("en-gb-x-gbcwmd",)

TRAIN_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "f4",
    "Alex", "Andy", "Annie", "Denis", "Diogo", "Gene", "Henrique", "Hugo", "Lee", "Mario",
    "Michael", "Mike", "Nguyen", "antonio", "belinda", "benjamin", "david", "ed", "edward2",
    "grandma", "grandpa", "gustave", "iven", "john", "linda", "max", "norbert", "pablo",
    "paul", "pedro", "quincy", "rob", "robert", "steph", "travis", "victor", "zac",
    # v2
    "Alicia", "adam", "anika", "boris", "edward", "ian", "iven3", "mike2",
    "sandro", "shelby", "klatt", "klatt2", "klatt3", "klatt4",
)
UNSEEN_VARIANTS: tuple[str, ...] = (
    "m7", "m8", "f5", "Andrea", "Gene2", "Jacky", "aunty", "iven2", "michel", "miguel",
    "steph2", "marcelo", "klatt5", "klatt6", "Marco", "iven4", "steph3", "announcer",
)

RATE_WPM = (140, 200)
PITCH = (25, 75)
PITCH_RANGE = (30, 70)
WORD_GAP = (0, 2)      # units of 10 ms at the default speed
VOLUME = 20            # espeak volume, fixed: headroom for the loudest variants
PEAK = (8000, 29000)   # target peak sample after normalisation (-12 to -1 dBFS)
EDGE_S = 0.08          # silence kept each side of the speech (train, dev)
UNSEEN_EDGE_S = 0.5    # unseen: U(0, this) each side, in 10 ms steps


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
    lead_s: float = EDGE_S
    trail_s: float = EDGE_S
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
    unseen = split == "unseen"
    p = VoiceParams(
        accent=rng.choice(ACCENTS + UNSEEN_ACCENTS if unseen else ACCENTS),
        variant=rng.choice(variants_for(split)),
        rate=rng.randint(*RATE_WPM),
        pitch=rng.randint(*PITCH),
        pitch_range=rng.randint(*PITCH_RANGE),
        word_gap=rng.randint(*WORD_GAP),
        peak=rng.randint(*PEAK),
        noise_seed=rng.randint(1, 2**31 - 1),
    )
    if unseen:
        steps = int(round(UNSEEN_EDGE_S * 100))
        p = replace(p, lead_s=rng.randint(0, steps) / 100, trail_s=rng.randint(0, steps) / 100)
    return p


def check_variants(installed: list[str]) -> None:
    """Raise ValueError if a configured variant is missing from ``installed``."""
    missing = sorted(set(TRAIN_VARIANTS + UNSEEN_VARIANTS) - set(installed))
    if missing:
        raise ValueError(f"espeak-ng variants not installed: {', '.join(missing)}")
    overlap = (set(TRAIN_VARIANTS) & set(UNSEEN_VARIANTS)) | (set(ACCENTS) & set(UNSEEN_ACCENTS))
    if overlap:  # pragma: no cover - guards edits of the lists above
        raise ValueError(f"variants both seen and unseen: {sorted(overlap)}")
