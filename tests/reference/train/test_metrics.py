"""reference.train.metrics: bit-parallel edit distance vs plain DP; reference vs corpus WER; CER."""
import random

import pytest

from reference.train.metrics import UttErrors, edit_distance, summarize, utterance_errors


def _dp(a, b) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


@pytest.mark.parametrize("a, b, d", [
    ("", "", 0), ("", "abc", 3), ("abc", "", 3), ("kitten", "sitting", 3),
    ("flaw", "lawn", 2), ("abc", "abc", 0), ("ab", "ba", 2), ("a", "b", 1),
])
def test_known_distances(a, b, d):
    assert edit_distance(a, b) == d
    assert edit_distance(b, a) == d


def test_random_strings_match_dp():
    rng = random.Random(1234)
    for _ in range(400):
        alphabet = "ab" if rng.random() < 0.3 else "abcdefg '"
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        b = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert edit_distance(a, b) == _dp(a, b), (a, b)


def test_long_sequences_beyond_machine_words():
    # > 64 and > 128 tokens: the bit vectors are arbitrary-precision integers
    rng = random.Random(7)
    for n in (63, 64, 65, 130, 300):
        a = [rng.choice("abcd") for _ in range(n)]
        b = list(a)
        for _ in range(n // 5):
            k = rng.randrange(len(b))
            op = rng.random()
            if op < 0.33:
                b[k] = rng.choice("abcde")
            elif op < 0.66:
                del b[k]
            else:
                b.insert(k, rng.choice("abcde"))
        assert edit_distance(a, b) == _dp(a, b)


def test_random_word_lists_match_dp():
    rng = random.Random(99)
    vocab = ["THE", "A", "CAT", "SAT", "ON", "MAT", "DOG", "RAN", "HELLO", "WORLD"]
    for _ in range(300):
        a = [rng.choice(vocab) for _ in range(rng.randint(0, 15))]
        b = [rng.choice(vocab) for _ in range(rng.randint(0, 15))]
        assert edit_distance(a, b) == _dp(a, b)
        # words are atomic tokens: distance on word lists differs from characters
    assert edit_distance(["HELLO"], ["HELLP"]) == 1
    assert edit_distance(["HELLO", "WORLD"], ["WORLD"]) == 1


def test_utterance_errors():
    e = utterance_errors(3, "THE CAT SAT", "THE BAT SAT DOWN")
    assert e == UttErrors(index=3, word_edits=2, words=3,
                          char_edits=_dp("THE CAT SAT", "THE BAT SAT DOWN"), chars=11)
    assert e.char_edits == 1 + 5


def test_reference_wer_differs_from_corpus_wer():
    errs = [utterance_errors(0, "HELLO", "YELLOW"),
            utterance_errors(1, "ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE",
                             "ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE")]
    s = summarize(errs)
    assert s["wer_ref(%)"] == pytest.approx(50.0)     # mean of 100 % and 0 %
    assert s["wer_corpus(%)"] == pytest.approx(10.0)  # 1 edit / 10 words
    assert s["utterances"] == 2 and s["words"] == 10


def test_cer_counts_spaces():
    s = summarize([utterance_errors(0, "A B", "AB")])
    assert s["cer(%)"] == pytest.approx(100 / 3)  # one deleted space out of 3 characters
    assert s["wer_ref(%)"] == pytest.approx(100.0)  # 2 words -> 1 word "AB": 1 sub + 1 del
    assert s["wer_corpus(%)"] == pytest.approx(100.0)


def test_cer_is_corpus_level():
    s = summarize([utterance_errors(0, "AB", "AC"), utterance_errors(1, "ABCDEFGH", "ABCDEFGH")])
    assert s["cer(%)"] == pytest.approx(10.0)


def test_empty_hypothesis_and_insertions():
    s = summarize([utterance_errors(0, "A B C", "")])
    assert s["wer_ref(%)"] == 100.0 and s["cer(%)"] == 100.0
    s = summarize([utterance_errors(0, "A", "A B C D")])
    assert s["wer_ref(%)"] == 300.0  # WER is not capped at 100


def test_order_independence():
    rng = random.Random(5)
    words = ["A", "BB", "CCC", "DD", "E"]
    errs = []
    for i in range(60):
        ref = " ".join(rng.choice(words) for _ in range(rng.randint(1, 9)))
        hyp = " ".join(rng.choice(words) for _ in range(rng.randint(0, 9)))
        errs.append(utterance_errors(i, ref, hyp))
    base = summarize(errs)
    for _ in range(5):
        rng.shuffle(errs)
        assert summarize(errs) == base  # exactly equal, not just close
    # split into "ranks" and gathered in any order
    assert summarize(errs[1::2] + errs[0::2]) == base


def test_empty_list_is_an_error():
    with pytest.raises(ValueError):
        summarize([])
