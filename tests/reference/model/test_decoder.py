"""reference.model.decoder: greedy CTC decoding."""
import torch

from reference.model.decoder import greedy_decode
from reference.labels import LABELS, NUM_CLASSES, encode


def _onehot(seqs: list[list[int]]) -> torch.Tensor:
    """Best-path label sequences (B lists of equal length) -> (T, B, C) scores."""
    t = len(seqs[0])
    out = torch.full((t, len(seqs), NUM_CLASSES), -1.0)
    for b, seq in enumerate(seqs):
        for i, s in enumerate(seq):
            out[i, b, s] = 3.0
    return out


def _ids(text: str) -> list[int]:
    return [LABELS.index(c) for c in text]


def test_collapses_repeats_and_drops_blanks():
    seq = _ids("__HHH_E_LL_L__OO_")
    assert greedy_decode(_onehot([seq]), torch.tensor([len(seq)])) == ["HELLO"]


def test_doubled_letter_needs_a_blank():
    a = _ids("AA")
    b = _ids("A_A")
    c = _ids("AA_AA")
    out = greedy_decode(_onehot([a + [0, 0, 0], b + [0, 0], c]), torch.tensor([5, 5, 5]))
    assert out == ["A", "AA", "AA"]


def test_respects_lengths():
    seq = _ids("AB_CD")
    logits = _onehot([seq, seq, seq])
    assert greedy_decode(logits, torch.tensor([5, 2, 0])) == ["ABCD", "AB", ""]


def test_spaces_words_and_stripping():
    seq = _ids("  HI   THERE ")  # repeated spaces collapse, ends are stripped
    assert greedy_decode(_onehot([seq]), torch.tensor([len(seq)])) == ["HI THERE"]
    seq = _ids("HI _ THERE")  # a blank between two spaces keeps both (plain CTC)
    assert greedy_decode(_onehot([seq]), torch.tensor([len(seq)])) == ["HI  THERE"]


def test_argmax_over_real_scores():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 3, NUM_CLASSES, generator=g)
    lens = torch.tensor([40, 25, 7])
    out = greedy_decode(logits, lens)
    for b in range(3):
        best = logits[: lens[b], b].argmax(-1).tolist()
        chars, prev = [], 0
        for s in best:
            if s != prev and s != 0:
                chars.append(LABELS[s])
            prev = s
        assert out[b] == "".join(chars).strip()


def test_round_trip_of_an_encoded_transcript():
    text = "BOOKKEEPER'S BILL"
    ids = encode(text)
    path = []
    for i, s in enumerate(ids):
        if i and ids[i - 1] == s:
            path.append(0)
        path += [s, s]
    assert greedy_decode(_onehot([path]), torch.tensor([len(path)])) == [text]
