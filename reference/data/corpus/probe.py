"""Probe sets: speech that differs from the training data in one named way.

The ``unseen`` split changes voices, an accent, sentence shapes and edge
silence all at once, so its WER says *that* a model fails to generalise, not
*why*. A probe set changes one factor (or all, with more utterances than
``unseen`` has):

* ``shapes``: sentences of the unseen-only templates, spoken by training
  voices and accents with the training edges (~80 ms);
* ``voices``: sentences of the training templates (from the dev bucket, so
  none is a training sentence), spoken by the held-out variants and accent
  with unseen edges (0-0.5 s each side);
* ``both``: made exactly as ``unseen`` is, from utterance indices past the
  split's own.

Utterance k of a kind is a pure function of (kind, k), drawn from indices far
beyond those of the committed splits. Probe sets are for analysis: they are
not checksummed and no benchmark uses them. Each manifest row carries the
voice it was spoken with (``variant``, ``accent``, ``edges_s``), so a set can be
split by voice with any JSON tool and scored with ``python -m harness eval``.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import soundfile

from . import espeak
from .build import MAX_ATTEMPTS, synth_first_fit
from .layout import SAMPLE_RATE, CorpusError, atomic_write_text
from .text import sentence
from .voices import voice_params

KINDS = ("shapes", "voices", "both")
OFFSET = 100_000  # first index drawn: past any split's own utterances


def _draw(kind: str, k: int, attempt: int) -> tuple[str, object]:
    """(transcript, voice parameters) of probe utterance k of `kind` at retry `attempt`."""
    i = OFFSET + k * MAX_ATTEMPTS + attempt
    if kind == "shapes":
        return sentence("unseen", i), voice_params("dev", i)
    if kind == "voices":
        return sentence("dev", i), voice_params("unseen", i)
    return sentence("unseen", i), voice_params("unseen", i)


def build_probe(kind: str, count: int, out_dir: Path) -> Path:
    """Synthesise `count` utterances of `kind` into `out_dir`; return the manifest path."""
    if kind not in KINDS:
        raise CorpusError(f"probe kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if count < 1:
        raise CorpusError(f"probe count must be a positive integer, got {count}")
    out_dir = Path(out_dir)
    audio = out_dir / "audio" / f"probe-{kind}"
    audio.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ds2bench-espeak-") as tmp:
        lib = espeak.private_library_copy(Path(tmp))
        for k in range(count):
            utt = synth_first_fit(lambda attempt, k=k: _draw(kind, k, attempt),
                                  f"probe {kind} {k}", lib)
            text, pcm, p = utt["text"], utt["pcm"], utt["params"]
            uid = f"probe-{kind}-{k + 1:06d}"
            rel = f"audio/probe-{kind}/{uid}.flac"
            soundfile.write(out_dir / rel, pcm, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
            rows.append({"id": uid, "audio": rel, "text": text,
                         "duration": len(pcm) / SAMPLE_RATE, "variant": p.variant,
                         "accent": p.accent, "edges_s": round(p.lead_s + p.trail_s, 2)})
    manifest = out_dir / f"probe-{kind}.jsonl"
    atomic_write_text(manifest, "".join(json.dumps(r) + "\n" for r in rows))
    return manifest
