"""Word and character error rates, in both definitions (reference-notes §3).

* reference WER: mean over utterances of word edits / reference words × 100
  (the MLCommons reference; its target 23.0 uses this definition);
* corpus WER: total word edits / total reference words × 100 (Kaldi/NIST);
* CER: total character edits / total reference characters × 100 (spaces count).

Edit distances use the bit-parallel algorithm of Myers/Hyyrö, so evaluating
thousands of LibriSpeech utterances stays cheap in pure Python.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence


def edit_distance(ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> int:
    """Levenshtein distance (unit costs) between two token sequences."""
    m = len(ref)
    if m == 0:
        return len(hyp)
    peq: dict[Hashable, int] = {}
    for i, tok in enumerate(ref):
        peq[tok] = peq.get(tok, 0) | (1 << i)
    mask = (1 << m) - 1
    high = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for tok in hyp:
        eq = peq.get(tok, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & high:
            score += 1
        elif mh & high:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = (mh | ~(xv | ph)) & mask
        mv = ph & xv
    return score


@dataclass(frozen=True)
class UttErrors:
    """Error counts of one utterance (integers, so sums are exact on any rank layout)."""

    index: int
    word_edits: int
    words: int
    char_edits: int
    chars: int


def utterance_errors(index: int, ref: str, hyp: str) -> UttErrors:
    rw, hw = ref.split(), hyp.split()
    return UttErrors(index, edit_distance(rw, hw), len(rw), edit_distance(ref, hyp), len(ref))


def summarize(errors: list[UttErrors]) -> dict[str, float]:
    """Metrics from per-utterance counts, accumulated in index order (deterministic)."""
    errs = sorted(errors, key=lambda e: e.index)
    if not errs:
        raise ValueError("no utterances to score")
    ref_wer = 0.0
    for e in errs:
        ref_wer += e.word_edits / max(e.words, 1)
    words = sum(e.words for e in errs)
    chars = sum(e.chars for e in errs)
    return {
        "wer_ref(%)": 100.0 * ref_wer / len(errs),
        "wer_corpus(%)": 100.0 * sum(e.word_edits for e in errs) / max(words, 1),
        "cer(%)": 100.0 * sum(e.char_edits for e in errs) / max(chars, 1),
        "utterances": len(errs),
        "words": words,
    }
