"""reference.data.manifest: JSONL and reference CSV manifests, errors naming file:line."""
import json
from pathlib import Path

import pytest

from reference.data.manifest import ManifestError, Utterance, load_manifest, write_jsonl


def _jsonl(path: Path, lines: list) -> Path:
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
    return path


def test_jsonl_relative_paths_resolve_against_the_manifest_dir(tmp_path, monkeypatch):
    d = tmp_path / "corpus"
    d.mkdir()
    m = _jsonl(d / "train.jsonl", [
        {"id": "u1", "audio": "audio/u1.flac", "text": "hello world", "duration": 1.25},
        {"id": "u2", "audio": str(tmp_path / "abs.flac"), "text": "Hi", "duration": 2},
        {"audio": "u3.flac", "transcript": "txt/u3.txt"},
    ])
    monkeypatch.chdir(tmp_path)  # the cwd must not matter
    utts = load_manifest("corpus/train.jsonl")
    assert [u.id for u in utts] == ["u1", "u2", "train-3"]
    assert utts[0].audio.resolve() == (d / "audio" / "u1.flac").resolve()
    assert utts[1].audio == tmp_path / "abs.flac"
    assert utts[0].text == "hello world" and utts[0].duration == 1.25
    assert utts[1].duration == 2.0 and isinstance(utts[1].duration, float)
    assert utts[2].text is None and utts[2].duration is None
    assert utts[2].transcript_path.resolve() == (d / "txt" / "u3.txt").resolve()
    (d / "txt").mkdir()
    (d / "txt" / "u3.txt").write_text("FROM A FILE\n")
    assert utts[2].read_text() == "FROM A FILE\n"
    assert utts[0].read_text() == "hello world"
    assert m.exists()


def test_csv_reference_manifest(tmp_path):
    d = tmp_path / "libri"
    d.mkdir()
    (d / "t").mkdir()
    (d / "t" / "84-121123-0000.txt").write_text("GO DO YOU HEAR")
    m = d / "libri_val_manifest.csv"
    m.write_text("wav/84-121123-0000.wav,t/84-121123-0000.txt\n\n"
                 f" {tmp_path}/x/abc.wav , {tmp_path}/x/abc.txt \n")
    utts = load_manifest(m)
    assert len(utts) == 2
    a, b = utts
    assert a.id == "84-121123-0000"
    assert a.audio.resolve() == (d / "wav" / "84-121123-0000.wav").resolve()
    assert a.text is None and a.duration is None
    assert a.read_text() == "GO DO YOU HEAR"
    assert b.id == "abc" and b.audio == tmp_path / "x" / "abc.wav"  # stripped, absolute
    assert b.transcript_path == tmp_path / "x" / "abc.txt"


def _error(path) -> str:
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    return str(err.value)


def test_bad_json_names_file_and_line(tmp_path):
    m = _jsonl(tmp_path / "m.jsonl", [{"audio": "a.flac", "text": "A"}, "", "{not json"])
    assert f"{m}:3:" in _error(m)  # blank lines still count


@pytest.mark.parametrize("rec, why", [
    ({"text": "A"}, "audio"),
    (["a.flac", "A"], "audio"),
    ({"audio": "a.flac"}, "transcript"),
    ({"audio": "a.flac", "text": "A", "duration": "1.0"}, "duration"),
])
def test_bad_records_name_file_and_line(tmp_path, rec, why):
    m = _jsonl(tmp_path / "m.jsonl", [{"audio": "a.flac", "text": "A"}, rec])
    msg = _error(m)
    assert f"{m}:2:" in msg and why in msg


def test_csv_wrong_field_count(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("a.wav,a.txt\nb.wav,b.txt,extra\n")
    msg = _error(m)
    assert f"{m}:2:" in msg and "3 fields" in msg


def test_csv_one_field(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("a.wav\n")
    assert f"{m}:1:" in _error(m)


@pytest.mark.parametrize("name, content", [("m.jsonl", "\n\n"), ("m.csv", ""), ("m.jsonl", "")])
def test_empty_manifest(tmp_path, name, content):
    m = tmp_path / name
    m.write_text(content)
    assert "no utterances" in _error(m)


def test_unknown_extension(tmp_path):
    m = tmp_path / "m.txt"
    m.write_text("a.wav,a.txt\n")
    msg = _error(m)
    assert str(m) in msg and "unknown manifest type" in msg


def test_missing_manifest(tmp_path):
    assert "not found" in _error(tmp_path / "nope.jsonl")


def test_read_text_without_transcript():
    with pytest.raises(ManifestError):
        Utterance(id="x", audio=Path("x.flac")).read_text()


def test_write_jsonl_round_trip(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    (tmp_path / "t.txt").write_text("  text from a file \n")
    utts = [
        Utterance("a", d / "audio" / "a.flac", text="HELLO", duration=1.5),
        Utterance("b", tmp_path / "elsewhere" / "b.flac", transcript_path=tmp_path / "t.txt",
                  duration=None),
    ]
    m = d / "m.jsonl"
    write_jsonl(m, utts)
    lines = [json.loads(l) for l in m.read_text().splitlines()]
    assert lines[0]["audio"] == "audio/a.flac"  # relative to the manifest's directory
    assert Path(lines[1]["audio"]).is_absolute()  # outside it: absolute
    assert not list(d.glob("*.tmp"))
    back = load_manifest(m)
    assert [u.id for u in back] == ["a", "b"]
    assert [u.audio.resolve() for u in back] == [u.audio.resolve() for u in utts]
    assert [u.text for u in back] == ["HELLO", "text from a file"]
    assert [u.duration for u in back] == [1.5, None]
    # writing what was read gives the same file
    m2 = d / "m2.jsonl"
    write_jsonl(m2, back)
    assert m2.read_text() == m.read_text()
