"""Greedy (best-path) CTC decoding: argmax per frame, collapse repeats, drop blanks."""
from __future__ import annotations

import torch

from reference.labels import BLANK_ID, LABELS


def greedy_decode(logits: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    """(T, B, C) scores + valid lengths (B,) → one transcript per utterance."""
    best = logits.argmax(dim=-1).t().cpu().tolist()  # (B, T)
    lens = lengths.cpu().tolist()
    out = []
    for seq, n in zip(best, lens):
        chars = []
        prev = BLANK_ID
        for s in seq[:n]:
            if s != prev and s != BLANK_ID:
                chars.append(LABELS[s])
            prev = s
        out.append("".join(chars).strip())
    return out
