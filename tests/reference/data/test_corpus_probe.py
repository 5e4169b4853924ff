"""Probe sets (reference/data/corpus/probe.py): one factor changed, deterministic, bad input named."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from reference.data.corpus import layout, text, voices
from reference.data.corpus.__main__ import main
from reference.data.corpus.probe import build_probe
from reference.data.manifest import load_manifest


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("kind", ["shapes", "voices", "both"])
def test_probe_changes_the_named_factor_only(tmp_path: Path, kind: str) -> None:
    rows = _rows(build_probe(kind, 4, tmp_path))
    assert len(rows) == 4 and len({r["id"] for r in rows}) == 4
    held_out_voice = {"shapes": False, "voices": True, "both": True}[kind]
    for r in rows:
        text.check_text(r["text"])
        assert (r["variant"] in voices.UNSEEN_VARIANTS) == held_out_voice
        assert (r["variant"] in voices.TRAIN_VARIANTS) != held_out_voice
        if not held_out_voice:
            assert r["accent"] in voices.ACCENTS and r["edges_s"] == 2 * voices.EDGE_S
        pcm, rate = soundfile.read(tmp_path / r["audio"], dtype="int16")
        assert rate == layout.SAMPLE_RATE and len(pcm) / rate == pytest.approx(r["duration"])
    # Sentence shapes: the unseen-only templates for shapes/both, the training ones for voices.
    words_ok = set(text.vocabulary())
    for r in rows:
        assert set(r["text"].split()) <= words_ok  # same vocabulary either way
        bucket = text.bucket(r["text"])
        assert bucket == (0 if kind == "voices" else 1)
    assert len(load_manifest(tmp_path / f"probe-{kind}.jsonl")) == 4  # what `harness eval` reads


def test_probe_is_deterministic(tmp_path: Path) -> None:
    a = _rows(build_probe("both", 3, tmp_path / "a"))
    b = _rows(build_probe("both", 3, tmp_path / "b"))
    assert a == b
    for ra, rb in zip(a, b):
        pa = soundfile.read(tmp_path / "a" / ra["audio"], dtype="int16")[0]
        pb = soundfile.read(tmp_path / "b" / rb["audio"], dtype="int16")[0]
        assert np.array_equal(pa, pb)


def test_probe_bad_input_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["probe", "--kind", "shapes", "--count", "0", "--out", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: probe count must be a positive integer") and err.count("\n") == 1
    assert not (tmp_path / "p").exists()
    with pytest.raises(SystemExit):
        main(["probe", "--kind", "accents", "--out", str(tmp_path / "q")])
