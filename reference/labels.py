"""The 29-symbol DS2 label set and transcript normalisation.

The reference silently dropped characters outside the label set (a lowercase
transcript became an empty target). Here normalisation is explicit: upper-case,
whitespace collapsed, and anything still outside the alphabet is an error that
names the offending characters.
"""
from __future__ import annotations

import re

BLANK = "_"
LABELS = "_'ABCDEFGHIJKLMNOPQRSTUVWXYZ "
BLANK_ID = 0
SPACE_ID = LABELS.index(" ")
NUM_CLASSES = len(LABELS)  # 29
_INDEX = {c: i for i, c in enumerate(LABELS)}
_WS = re.compile(r"\s+")
# Typographic apostrophes are the same symbol as the ASCII one in transcripts.
_EQUIVALENTS = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})


class LabelError(ValueError):
    """A transcript cannot be expressed in the 29 DS2 labels."""


def normalize(text: str) -> str:
    """Upper-case, map apostrophe variants, collapse whitespace, strip."""
    return _WS.sub(" ", text.translate(_EQUIVALENTS).upper()).strip()


def invalid_chars(text: str) -> list[str]:
    """Characters of the normalised `text` that are not labels (sorted, unique)."""
    return sorted({c for c in text if c not in _INDEX or c == BLANK})


def encode(text: str) -> list[int]:
    """Normalise and map a transcript to label ids; raises `LabelError`."""
    norm = normalize(text)
    bad = invalid_chars(norm)
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise LabelError(f"characters outside the DS2 labels: {shown}")
    if not norm:
        raise LabelError("empty transcript")
    return [_INDEX[c] for c in norm]


def decode_ids(ids: list[int]) -> str:
    """Map label ids back to text (no CTC collapsing; see `decoder`)."""
    return "".join(LABELS[i] for i in ids)


def min_ctc_frames(ids: list[int]) -> int:
    """Frames CTC needs for this target: its length plus one blank between repeats."""
    repeats = sum(1 for a, b in zip(ids, ids[1:]) if a == b)
    return len(ids) + repeats
