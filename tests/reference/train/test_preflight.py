"""Preflight: one utterance of every bad kind is rejected with its code, good ones pass."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import reference.train.prep.preflight as pf
from reference.config import AugmentConfig, DataConfig, FeatureConfig
from reference.data.manifest import load_manifest

SR = 16000


def noise(seconds: float, seed: int = 0, level: float = 0.1) -> np.ndarray:
    """Band-limited noise (moving average of white noise)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(seconds * SR) + 8)
    return (np.convolve(x, np.ones(8) / 8, mode="valid")[: int(seconds * SR)] * level * 3
            ).astype(np.float32)


def chirp(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * (200 * t + 900 * t * t))).astype(np.float32)


def build_corpus(root: Path) -> tuple[Path, dict[str, str], list[str]]:
    """A manifest with good utterances and one of each bad kind.

    Returns (manifest path, {id: expected code} for the bad ones, good ids).
    """
    a = root / "audio"
    a.mkdir(parents=True)
    recs: list[dict] = []
    bad: dict[str, str] = {}

    def add(uid: str, audio: Path | str, code: str | None = None, **kw) -> None:
        rec = {"id": uid, "audio": str(audio), "text": "hello world"}
        rec.update(kw)
        recs.append({k: v for k, v in rec.items() if v is not None})
        if code:
            bad[uid] = code

    def w(name: str, data: np.ndarray, sr: int = SR, **kw) -> Path:
        p = a / name
        sf.write(str(p), data, sr, **kw)
        return p

    # good ones
    add("g1", w("g1.flac", noise(2.0, 1)), duration=2.0)
    add("g2", w("g2.wav", chirp(1.5), subtype="PCM_16"), text="Don\u2019t  stop\tnow")
    (root / "g3.txt").write_text("the quick brown fox\n", encoding="utf-8")
    add("g3", w("g3.flac", noise(2.5, 3)), text=None, transcript="g3.txt")
    add("g4", w("g4.wav", noise(3.0, 4), subtype="FLOAT"), text="it's ok")
    # bad ones
    add("missing", a / "nope.flac", "missing")
    (a / "adir.wav").mkdir()
    add("dir", a / "adir.wav", "not_file")
    (a / "zero.wav").write_bytes(b"")
    add("zero", a / "zero.wav", "empty")
    add("noframes", w("noframes.wav", np.zeros(0, np.float32), subtype="PCM_16"), "empty")
    (a / "text.flac").write_text("this is not audio at all\n" * 10)
    add("notaudio", a / "text.flac", "not_audio")
    full = w("cutflac.flac", noise(2.0, 5)).read_bytes()
    (a / "cutflac.flac").write_bytes(full[: len(full) // 2])
    add("cutflac", a / "cutflac.flac", "corrupt")
    full = w("cutwav.wav", noise(2.0, 6), subtype="PCM_16").read_bytes()
    (a / "cutwav.wav").write_bytes(full[: len(full) // 2])
    add("cutwav", a / "cutwav.wav", "corrupt")
    x = noise(1.0, 7)
    x[100] = np.nan
    add("nan", w("nan.wav", x, subtype="FLOAT"), "corrupt")
    add("rate", w("rate.flac", noise(2.0, 8)[:16000], sr=8000), "sample_rate")
    add("stereo", w("stereo.flac", np.stack([noise(2.0, 9), noise(2.0, 10)], 1)), "channels")
    add("durmis", w("durmis.flac", noise(2.0, 11)), "duration_mismatch", duration=5.0)
    add("tiny", w("tiny.wav", noise(0.01, 12), subtype="PCM_16"), "too_short")
    add("short", w("short.flac", noise(0.1, 13)), "too_short")
    add("long", w("long.flac", noise(17.0, 14)), "too_long")
    add("silent", w("silent.flac", np.zeros(SR * 2, np.float32)), "silence")
    add("quiet", w("quiet.wav", noise(2.0, 15, level=1e-5), subtype="FLOAT"), "silence")
    add("notrans", w("notrans.flac", noise(2.0, 16)), "transcript_missing", text=None,
        transcript="missing.txt")
    add("emptytext", w("emptytext.flac", noise(2.0, 17)), "transcript_empty", text="  \t")
    (root / "latin1.txt").write_bytes("caf\u00e9 au lait".encode("latin-1"))
    add("latin1", w("latin1.flac", noise(2.0, 18)), "transcript_encoding", text=None,
        transcript="latin1.txt")
    add("digits", w("digits.flac", noise(2.0, 19)), "bad_chars", text="room 101 is café")
    add("ctc", w("ctc.flac", noise(0.5, 20)), "ctc_infeasible",
        text="this transcript is far too long for half a second")
    add("dupaudio", a / "g1.flac", "duplicate")
    add("g2", w("dupid.flac", noise(2.0, 21)), None)  # same id as g2: the later one is rejected
    bad["#dupid"] = "duplicate"
    m = root / "mixed.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return m, bad, ["g1", "g2", "g3", "g4"]


def _codes(rep: pf.PreflightReport, utts) -> dict[str, str]:
    out = {}
    for r in rep.rejected:
        key = "#dupid" if r.path.endswith("dupid.flac") else r.id
        out[key] = r.code
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def serial_report(corpus):
    m, _, _ = corpus
    utts = load_manifest(m)
    return utts, pf.preflight(utts, FeatureConfig(), DataConfig())


def test_every_bad_kind_is_rejected_with_its_code(corpus, serial_report):
    _, bad, good = corpus
    utts, rep = serial_report
    assert _codes(rep, utts) == bad
    assert sorted(utts[i].id for i in rep.accepted) == good
    for r in rep.rejected:
        assert r.detail and "\n" not in r.detail and len(r.detail) < 200
        assert utts[r.index].id == r.id and str(utts[r.index].audio) == r.path


def test_accepted_durations_and_targets(serial_report):
    utts, rep = serial_report
    by_id = {utts[i].id: i for i in rep.accepted}
    assert rep.durations[by_id["g1"]] == pytest.approx(2.0)
    assert rep.durations[by_id["g2"]] == pytest.approx(1.5)
    from reference.labels import decode_ids
    assert decode_ids(rep.targets[by_id["g2"]]) == "DON'T STOP NOW"
    assert decode_ids(rep.targets[by_id["g3"]]) == "THE QUICK BROWN FOX"
    assert set(rep.durations) == set(rep.targets) == set(rep.accepted)


def test_details_are_specific(serial_report):
    utts, rep = serial_report
    d = {r.id: r.detail for r in rep.rejected}
    assert "'1'" in d["digits"] and "'É'" in d["digits"]
    assert "8000 Hz" in d["rate"]
    assert "5.00 s" in d["durmis"]
    assert "truncated" in d["cutwav"]
    assert "non-finite" in d["nan"]
    assert "g1" in d["dupaudio"]


def test_counts(serial_report):
    _, rep = serial_report
    c = rep.counts()
    assert c["accepted"] == 4 and c["total"] == c["accepted"] + c["rejected"]
    assert c["corrupt"] == 3 and c["too_short"] == 2 and c["duplicate"] == 2
    assert list(c)[-3:] == ["accepted", "rejected", "total"]


def test_workers_give_the_same_report(corpus, serial_report):
    m, _, _ = corpus
    utts, rep = serial_report
    assert pf.preflight(utts, FeatureConfig(), DataConfig(), workers=2) == rep


def test_allow_resample_and_downmix(corpus):
    m, _, _ = corpus
    utts = [u for u in load_manifest(m) if u.id in ("rate", "stereo")]
    rep = pf.preflight(utts, FeatureConfig(), DataConfig(allow_resample=True, allow_downmix=True))
    assert rep.rejected == [] and rep.durations[0] == pytest.approx(2.0, abs=1e-3)


def test_tempo_augmentation_tightens_ctc(tmp_path):
    # 1.0 s gives 101 frames -> 36 output frames; 34 characters fit, but not at tempo 1.15.
    sf.write(str(tmp_path / "a.flac"), noise(1.0), SR)
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"id": "a", "audio": "a.flac", "text": "abcdefghijklmnopqrstuvwxyzabcdefgh"}))
    utts = load_manifest(m)
    assert pf.preflight(utts, FeatureConfig(), DataConfig()).rejected == []
    rep = pf.preflight(utts, FeatureConfig(), DataConfig(), augment=AugmentConfig())
    assert [r.code for r in rep.rejected] == ["ctc_infeasible"]
    assert "tempo 1.15" in rep.rejected[0].detail


def test_cache_is_reused_and_invalidated(tmp_path, monkeypatch, capsys):
    a = tmp_path / "a.flac"
    sf.write(str(a), noise(2.0, 1), SR)
    sf.write(str(tmp_path / "b.wav"), noise(2.0, 2), SR, subtype="PCM_16")
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"id": "a", "audio": "a.flac", "text": "a"}) + "\n"
                 + json.dumps({"id": "b", "audio": "b.wav", "text": "b"}) + "\n")
    utts = load_manifest(m)
    cache = tmp_path / "cache"
    first = pf.preflight(utts, FeatureConfig(), DataConfig(), cache_dir=cache)
    assert first.accepted == [0, 1] and len(list(cache.glob("preflight-*.json"))) == 1

    def boom(*a, **k):
        raise AssertionError("decoded although the cache is valid")

    with monkeypatch.context() as mp:
        mp.setattr(pf, "_probe", boom)
        again = pf.preflight(utts, FeatureConfig(), DataConfig(), cache_dir=cache, progress=True)
        assert again == first
        assert "from cache" in capsys.readouterr().err
        # a different config is a different key
        with pytest.raises(AssertionError):
            pf.preflight(utts, FeatureConfig(), DataConfig(max_duration_s=1.0), cache_dir=cache)
    # Same size, same mtime: only ctime/inode reveal the change.
    st = os.stat(tmp_path / "b.wav")
    sf.write(str(tmp_path / "b.wav"), np.zeros(SR * 2, np.float32), SR, subtype="PCM_16")
    os.utime(tmp_path / "b.wav", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(tmp_path / "b.wav").st_size == st.st_size
    changed = pf.preflight(utts, FeatureConfig(), DataConfig(), cache_dir=cache)
    assert [(r.id, r.code) for r in changed.rejected] == [("b", "silence")]
    a.unlink()
    gone = pf.preflight(utts, FeatureConfig(), DataConfig(), cache_dir=cache)
    assert [(r.id, r.code) for r in gone.rejected] == [("a", "missing"), ("b", "silence")]


def test_progress_lines(tmp_path, capsys):
    for k in range(20):
        sf.write(str(tmp_path / f"{k}.flac"), noise(1.0, k), SR)
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps({"id": str(k), "audio": f"{k}.flac", "text": "x"}) + "\n"
                         for k in range(20)))
    pf.preflight(load_manifest(m), FeatureConfig(), DataConfig(), progress=True)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("preflight:")]
    assert 9 <= len(lines) <= 11 and "20/20" in lines[-1]
