"""LibriSpeech manifests from a tiny fake tree of real FLAC files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from reference.data import librispeech as ls
from reference.data.manifest import load_manifest

SR = 16000


def _flac(path: Path, seconds: float, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).standard_normal(int(seconds * SR)) * 0.05
    sf.write(str(path), x.astype(np.float32), SR, subtype="PCM_16")


def make_tree(base: Path, missing_line: bool = True) -> tuple[Path, dict[str, dict]]:
    """`base/LibriSpeech/{train-clean-100,dev-clean}`: 2 speakers x 1 chapter x 2 utterances."""
    root = base / "LibriSpeech"
    expect: dict[str, dict] = {}
    seed = 0
    for split, speakers in (("train-clean-100", ("19", "26")), ("dev-clean", ("84", "174"))):
        for spk in speakers:
            ch = "1000" + spk
            d = root / split / spk / ch
            lines = []
            for k in range(2):
                uid = f"{spk}-{ch}-{k:04d}"
                seed += 1
                _flac(d / f"{uid}.flac", 1.0 + 0.25 * k, seed)
                text = f"WORD {spk} NUMBER {k} IT'S FINE".replace(spk, "SPEAKER")
                expect[uid] = {"split": split, "text": text, "duration": 1.0 + 0.25 * k,
                               "audio": (d / f"{uid}.flac").resolve()}
                lines.append(f"{uid} {text}")
            if missing_line and split.startswith("train") and spk == "26":
                lines.pop()  # audio 26-100026-0001 has no transcript line
            (d / f"{spk}-{ch}.trans.txt").write_text("\n".join(lines) + "\n")
    return root, expect


def test_find_root(tmp_path, monkeypatch):
    root, _ = make_tree(tmp_path)
    monkeypatch.delenv("LIBRISPEECH", raising=False)
    monkeypatch.delenv("PYTORCH_TRAIN_DATASET", raising=False)
    assert ls.find_root(str(tmp_path)) == root.resolve()  # descends into LibriSpeech/
    assert ls.find_root(str(root)) == root.resolve()
    monkeypatch.setenv("LIBRISPEECH", str(root))
    assert ls.find_root(None) == root.resolve()
    monkeypatch.delenv("LIBRISPEECH")
    seed_dir = tmp_path / "datasets"
    (seed_dir / "LibriSpeech_dataset").mkdir(parents=True)
    (seed_dir / "LibriSpeech_dataset" / "LibriSpeech").symlink_to(root)
    monkeypatch.setenv("PYTORCH_TRAIN_DATASET", str(seed_dir))
    assert ls.find_root(None) == root.resolve()


def test_find_root_error_lists_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.delenv("LIBRISPEECH", raising=False)
    monkeypatch.setenv("PYTORCH_TRAIN_DATASET", str(tmp_path / "ptd"))
    with pytest.raises(ls.LibriSpeechError) as err:
        ls.find_root(None)
    msg = str(err.value)
    assert "$LIBRISPEECH (not set)" in msg
    assert str(tmp_path / "ptd" / "LibriSpeech_dataset") in msg and "does not exist" in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(ls.LibriSpeechError, match="no split directories"):
        ls.find_root(str(tmp_path / "empty"))


def test_build_manifests_both_formats_round_trip(tmp_path):
    root, expect = make_tree(tmp_path / "src")
    out = tmp_path / "out"
    summary = ls.build_manifests(root, out, workers=2)
    assert summary["missing_transcripts"] == [str(expect["26-100026-0001"]["audio"])]
    assert set(summary["splits"]) == {"train-clean-100", "dev-clean", "train", "dev"}
    assert summary["splits"]["train"]["utterances"] == 3
    assert summary["splits"]["dev"]["utterances"] == 4
    for name, split in (("train-clean-100", "train-clean-100"), ("train", "train-clean-100"),
                        ("dev-clean", "dev-clean"), ("dev", "dev-clean")):
        want = {k: v for k, v in expect.items() if v["split"] == split and k != "26-100026-0001"}
        csv_name = {"train": "train", "dev": "val"}.get(name, name)
        for path in (out / f"{name}.jsonl", out / f"libri_{csv_name}_manifest.csv"):
            utts = load_manifest(path)
            assert [u.id for u in utts] == sorted(want)
            for u in utts:
                e = want[u.id]
                assert u.audio.is_absolute() and u.audio == e["audio"]
                assert u.read_text() == e["text"]
                if path.suffix == ".jsonl":
                    assert u.duration == pytest.approx(e["duration"])
                else:
                    assert u.transcript_path.parent.parent == (out / "transcripts").resolve()
    # idempotent: a second run writes the same files
    before = (out / "train.jsonl").read_text()
    ls.build_manifests(root, out, workers=1)
    assert (out / "train.jsonl").read_text() == before


def test_converted_reference_layout(tmp_path, monkeypatch):
    # The MLCommons reference's own copy: <set>/wav/<id>.wav + <set>/txt/<id>.txt
    base = tmp_path / "ptd" / "LibriSpeech_dataset"
    for s, ids in (("train", ("1-2-0001", "1-2-0002")), ("val", ("3-4-0001",))):
        for uid in ids:
            (base / s / "wav").mkdir(parents=True, exist_ok=True)
            (base / s / "txt").mkdir(parents=True, exist_ok=True)
            sf.write(str(base / s / "wav" / f"{uid}.wav"), np.full(SR, 0.1, np.float32), SR)
            (base / s / "txt" / f"{uid}.txt").write_text(f"TEXT OF {uid[-1]}\n")
    monkeypatch.delenv("LIBRISPEECH", raising=False)
    monkeypatch.setenv("PYTORCH_TRAIN_DATASET", str(tmp_path / "ptd"))
    root = ls.find_root(None)
    summary = ls.build_manifests(root, tmp_path / "out")
    assert summary["layout"] == "converted"
    assert {k: v["utterances"] for k, v in summary["splits"].items()} == {"train": 2, "dev": 1}
    dev = load_manifest(tmp_path / "out" / "libri_val_manifest.csv")
    assert [(u.id, u.read_text()) for u in dev] == [("3-4-0001", "TEXT OF 1")]


def test_main(tmp_path, capsys, monkeypatch):
    root, _ = make_tree(tmp_path / "src")
    assert ls.main(["--librispeech", str(root), "--out", str(tmp_path / "o")]) == 1
    out = capsys.readouterr().out
    assert "MISSING transcript line" in out and "26-100026-0001.flac" in out
    root2, _ = make_tree(tmp_path / "src2", missing_line=False)
    assert ls.main(["--librispeech", str(root2), "--out", str(tmp_path / "o2")]) == 0
    rec = json.loads((tmp_path / "o2" / "dev.jsonl").read_text().splitlines()[0])
    assert set(rec) == {"id", "audio", "text", "duration"}
    assert ls.main(["--librispeech", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o3")]) == 2
