"""reference.labels: the 29-symbol DS2 alphabet and transcript normalisation."""
import pytest

from reference import labels
from reference.labels import LabelError, decode_ids, encode, min_ctc_frames, normalize


def test_alphabet_layout():
    assert labels.NUM_CLASSES == 29 == len(labels.LABELS)
    assert labels.LABELS == "_'ABCDEFGHIJKLMNOPQRSTUVWXYZ "
    assert labels.BLANK_ID == 0 and labels.LABELS[0] == labels.BLANK == "_"
    assert labels.LABELS.index("'") == 1
    assert labels.LABELS.index("A") == 2 and labels.LABELS.index("Z") == 27
    assert labels.SPACE_ID == 28 == labels.NUM_CLASSES - 1
    assert len(set(labels.LABELS)) == 29


def test_normalize_upper_cases_and_collapses_whitespace():
    assert normalize("  hello   World\t\nagain ") == "HELLO WORLD AGAIN"
    assert normalize("it\u2019s") == "IT'S"
    assert normalize("") == ""


def test_encode_lowercase_equals_uppercase():
    assert encode("hello world") == encode("HELLO WORLD")
    assert encode("ab c") == [2, 3, 28, 4]
    assert encode("don't") == [5, 16, 15, 1, 21]


def test_encode_decode_round_trip():
    text = "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG'S BACK"
    assert decode_ids(encode(text.lower())) == text


@pytest.mark.parametrize("text, bad", [
    ("hello, world", "','"),
    ("caf\u00e9", "'\u00c9'"),
    ("take 5", "'5'"),
    ("under_score", "'_'"),  # the blank symbol is not a transcript character
])
def test_unknown_characters_raise_and_are_named(text, bad):
    with pytest.raises(LabelError) as err:
        encode(text)
    assert bad in str(err.value)


def test_all_unknown_characters_are_listed():
    with pytest.raises(LabelError) as err:
        encode("a1b2!")
    msg = str(err.value)
    for c in ("'1'", "'2'", "'!'"):
        assert c in msg


def test_empty_transcript_is_an_error():
    with pytest.raises(LabelError):
        encode("   \n ")


def test_label_error_is_a_value_error():
    assert issubclass(LabelError, ValueError)


@pytest.mark.parametrize("text, frames", [
    ("A", 1),
    ("AB", 2),
    ("AA", 3),          # a blank between the two As
    ("AAA", 5),
    ("HELLO", 6),       # LL
    ("BOOKKEEPER", 13),  # OO KK EE
    ("A A", 3),         # space separates: no repeat
])
def test_min_ctc_frames_counts_repeats(text, frames):
    assert min_ctc_frames(encode(text)) == frames


def test_min_ctc_frames_empty():
    assert min_ctc_frames([]) == 0
