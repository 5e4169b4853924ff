"""Tests of the embedded espeak-ng corpus (reference/data/corpus); fast (limit=5 builds)."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from reference.data.corpus import build, espeak, layout, text, voices
from reference.data.corpus.__main__ import main as cli_main
from reference.data.corpus.layout import SPLITS, CorpusError
from reference.data.corpus.verify import is_complete, verify_corpus

LIMIT = 5


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A limit=5 corpus built in-process (workers=1)."""
    out = tmp_path_factory.mktemp("corpus") / "embedded"
    summary = build.build_corpus(out, limit=LIMIT, workers=1, progress=False)
    assert summary["counts"] == {s: LIMIT for s in SPLITS}
    assert summary["verified"] and not summary["skipped"]
    return out


def _pcm(out: Path) -> dict[str, np.ndarray]:
    got = {}
    for split in SPLITS:
        for row in layout.read_manifest(out / f"{split}.jsonl"):
            got[row["id"]], _ = soundfile.read(out / row["audio"], dtype="int16")
    return got


def test_text_constraints() -> None:
    train = [text.sentence("train", i) for i in range(SPLITS["train"])]
    dev = [text.sentence("dev", i) for i in range(SPLITS["dev"])]
    unseen = [text.sentence("unseen", i) for i in range(SPLITS["unseen"])]
    for s in train + dev + unseen:
        text.check_text(s)  # A-Z, apostrophe, single spaces; 3-10 words
    assert not set(train) & set(dev) and not set(train) & set(unseen) and not set(dev) & set(unseen)
    train_vocab = {w for s in train for w in s.split()}
    assert {w for s in dev + unseen for w in s.split()} <= train_vocab
    assert train_vocab == set(text.vocabulary())
    assert 450 <= len(text.vocabulary()) <= 600
    assert any("'" in w for w in train_vocab)


def test_vocabulary_coverage_survives_retries() -> None:
    # Retries (attempt > 0) must keep the forced word, whatever audio durations do.
    vocab = text.vocabulary()
    for i in range(0, len(vocab), 7):
        for attempt in (0, 1, 5):
            assert vocab[i] in text.sentence("train", i, attempt).split()
    assert text.sentence("dev", 3, 1) == text.sentence("dev", 3, 1)


def test_unseen_shapes_are_new_but_use_training_words() -> None:
    assert not set(text.TEMPLATES) & set(text.UNSEEN_TEMPLATES)
    assert set(text.vocabulary(unseen=True)) <= set(text.vocabulary())
    # Each unseen sentence comes from an unseen-only template: the first words
    # of the 200 cover shapes that no train template starts with (e.g. DID, WILL).
    starts = {text.sentence("unseen", i).split()[0] for i in range(SPLITS["unseen"])}
    assert {"DID", "WILL"} <= starts
    # Templated training sentences never take an unseen shape (free ones may start anyhow).
    templated = [i for i in range(SPLITS["train"])
                 if text.forced_word("train", i) is not None or not text.is_free(i)]
    train_starts = {text.sentence("train", i).split()[0] for i in templated}
    assert not {"DID", "WILL"} & train_starts


def test_free_sentences_share_words_and_no_shape(monkeypatch) -> None:
    # v3: about FREE_SHARE of the unforced training sentences are free word
    # sequences over the training vocabulary; forced ones stay templated.
    vocab = set(text.vocabulary())
    unforced = [i for i in range(SPLITS["train"]) if text.forced_word("train", i) is None]
    free = [i for i in unforced if text.is_free(i)]
    assert abs(len(free) / len(unforced) - text.FREE_SHARE) < 0.05
    sents = [text.sentence("train", i) for i in free[:300]]
    for s_ in sents:
        text.check_text(s_)
        assert set(s_.split()) <= vocab
    # Free sequences start with any word, including the unseen shapes' first words.
    assert len({s_.split()[0] for s_ in sents}) > 100
    # Only training sentences can be free: with every index free, dev, unseen and
    # the forced training sentences are what they were.
    before = {(sp, i): text.sentence(sp, i) for sp in ("dev", "unseen") for i in range(20)}
    forced_before = text.sentence("train", 0)
    monkeypatch.setattr(text, "FREE_SHARE", 1.0)
    assert {(sp, i): text.sentence(sp, i) for sp, i in before} == before
    assert text.forced_word("train", 0) is not None and text.sentence("train", 0) == forced_before


def test_voices() -> None:
    voices.check_variants(espeak.variant_names())
    assert not set(voices.TRAIN_VARIANTS) & set(voices.UNSEEN_VARIANTS)
    assert not set(voices.ACCENTS) & set(voices.UNSEEN_ACCENTS)
    assert len(voices.UNSEEN_VARIANTS) >= 10
    assert {"klatt", "klatt2"} <= set(voices.TRAIN_VARIANTS)  # Klatt family in training
    assert {"klatt5", "klatt6"} <= set(voices.UNSEEN_VARIANTS)
    unseen = [voices.voice_params("unseen", i) for i in range(SPLITS["unseen"])]
    assert any(p.accent in voices.UNSEEN_ACCENTS for p in unseen)
    leads = [p.lead_s for p in unseen] + [p.trail_s for p in unseen]
    assert min(leads) == 0.0 and max(leads) >= 0.45 and all(0 <= x <= 0.5 for x in leads)
    train = [voices.voice_params("train", i) for i in range(200)]
    assert all(p.lead_s == p.trail_s == voices.EDGE_S for p in train)
    assert all(p.accent in voices.ACCENTS for p in train)
    for i in range(50):
        p = voices.voice_params("unseen", i)
        assert p.variant in voices.UNSEEN_VARIANTS
        assert 140 <= p.rate <= 200 and 25 <= p.pitch <= 75 and 0 <= p.word_gap <= 2
        q = voices.voice_params("train", i)
        assert q.variant in voices.TRAIN_VARIANTS and q == voices.voice_params("train", i)


def test_espeak_reload_is_stateless(tmp_path: Path) -> None:
    lib = espeak.private_library_copy(tmp_path)
    args = ("HELLO THERE MY FRIEND", "en-us+m3", 150, 40, 0)
    first, rate = espeak.synthesize(*args, lib_path=lib)
    espeak.synthesize("SOMETHING ELSE", "en+f4", 190, 60, 2, lib_path=lib)
    assert rate == 22050 and first.size > 0
    assert np.array_equal(first, espeak.synthesize(*args, lib_path=lib)[0])


def test_every_variant_is_deterministic(tmp_path: Path) -> None:
    # Some installed variants (e.g. Reed, caleb) vary from call to call even with
    # a fresh library and a fixed seed: none of them may be in the corpus.
    lib = espeak.private_library_copy(tmp_path)
    for v in voices.TRAIN_VARIANTS + voices.UNSEEN_VARIANTS:
        args = ("WE WALKED YESTERDAY", f"en-us+{v}", 151, 51, 2, 60, 20, 953656633)
        first = espeak.synthesize(*args, lib_path=lib)[0]
        for _ in range(2):
            assert np.array_equal(first, espeak.synthesize(*args, lib_path=lib)[0]), v


def test_espeak_breath_noise_is_seeded(tmp_path: Path) -> None:
    # espeak seeds its noise generator from time(NULL); "f2" has breath noise.
    lib = espeak.private_library_copy(tmp_path)
    args = ("HELLO THERE MY FRIEND", "en-gb-x-rp+f2", 160, 50, 1)
    first = espeak.synthesize(*args, seed=11, lib_path=lib)[0]
    time.sleep(1.05)
    assert np.array_equal(first, espeak.synthesize(*args, seed=11, lib_path=lib)[0])


def test_trim_silence() -> None:
    rng = np.random.default_rng(0)
    speech = rng.integers(-8000, 8000, 16000).astype(np.int16)
    padded = np.concatenate([np.zeros(8000, np.int16), speech, np.zeros(8000, np.int16)])
    out = build.trim_silence(padded)
    assert out is not None and len(out) == 16000 + 2 * 1280
    assert np.array_equal(out[1280:-1280], speech)
    edges = build.trim_silence(padded, 16000, 0.0, 0.5)  # unseen: edges of their own
    assert edges is not None and len(edges) == 16000 + 8000
    assert np.array_equal(edges[:16000], speech) and not edges[16000:].any()
    assert build.trim_silence(np.zeros(16000, np.int16)) is None


def test_manifests(corpus: Path) -> None:
    for split in SPLITS:
        lines = (corpus / f"{split}.jsonl").read_text().splitlines()
        assert len(lines) == LIMIT
        for k, line in enumerate(lines):
            row = json.loads(line)
            assert set(row) == {"id", "audio", "text", "duration"}
            assert row["id"] == f"{split}-{k + 1:06d}"
            assert row["audio"] == f"audio/{split}/{row['id']}.flac"
            info = soundfile.info(corpus / row["audio"])
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert info.format == "FLAC"
            assert abs(info.frames / 16000 - row["duration"]) < 1e-9
            # unseen: up to 0.5 s of edge silence each side instead of 0.08 s
            extra = 2 * (voices.UNSEEN_EDGE_S - voices.EDGE_S) if split == "unseen" else 0.0
            assert 1.0 <= row["duration"] <= 4.0 + extra + 1e-9
            text.check_text(row["text"])
    assert (corpus / ".complete").is_file()


def test_deterministic_across_builds_and_workers(corpus: Path, tmp_path: Path) -> None:
    other = tmp_path / "again"
    build.build_corpus(other, limit=LIMIT, workers=2, progress=False)
    a, b = _pcm(corpus), _pcm(other)
    assert a.keys() == b.keys() and len(a) == LIMIT * len(SPLITS)
    for uid in a:
        assert np.array_equal(a[uid], b[uid]), uid
        assert np.abs(a[uid].astype(int)).max() > 1000, f"{uid} is near-silent"


def test_verifies_against_committed_checksums(corpus: Path) -> None:
    verify_corpus(corpus)
    committed = layout.read_checksums()
    assert len(committed) == sum(SPLITS.values())
    assert cli_main(["verify", "--out", str(corpus)]) == 0


def test_second_build_is_noop(corpus: Path) -> None:
    assert is_complete(corpus, LIMIT) and not is_complete(corpus, None)
    summary = build.build_corpus(corpus, limit=LIMIT, workers=1, progress=False)
    assert summary["skipped"] is True


def test_tampered_flac_fails_naming_id(corpus: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(corpus, bad)
    victim = bad / "audio" / "dev" / "dev-000003.flac"
    pcm, rate = soundfile.read(victim, dtype="int16")
    pcm[len(pcm) // 2] ^= 1
    soundfile.write(victim, pcm, rate, subtype="PCM_16", format="FLAC")
    (bad / "audio" / "train" / "train-000002.flac").unlink()
    with pytest.raises(CorpusError) as err:
        verify_corpus(bad)
    msg = str(err.value)
    assert "dev-000003 (checksum mismatch)" in msg and "train-000002" in msg
    assert "2 of 15" in msg
    assert cli_main(["verify", "--out", str(bad)]) == 1
    assert "dev-000003" in capsys.readouterr().err


def test_missing_corpus_is_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no corpus"):
        verify_corpus(tmp_path / "nothing")
