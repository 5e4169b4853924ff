"""Verified manifests and splits: runs read records, not audio; the eval set is never filtered.

Real audio: utterances of the embedded corpus (`mini_corpus`), plus an
over-long utterance (several corpus utterances joined) and a CTC-infeasible
one (a real 0.3 s clip with a long transcript), both put into an eval set.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from reference.config import load_config
from reference.data.manifest import load_manifest, manifest_digest
from reference.train.prep import verified as V
from reference.train.prep.preflight import judge_facts, measure
from reference.train.prep.splits import EvalSetError, load_split


def _cfg(root: Path, **extra: str):
    ov = [f"data.root={root}", "model.hidden=32", "model.layers=1", "model.bidirectional=false",
          "model.conv_channels=8", "train.threads=1", "train.global_batch=null",
          "train.batch_per_card=4", "data.eval_batch=8", "data.max_duration_s=6.0",
          # The frame arithmetic of the hard cases below (0.3 s: CTC-infeasible, not
          # too short) is worked out at 10 ms frames, whatever tiny's hop.
          "features.hop_ms=10"]
    return load_config("tiny", ov + [f"{k}={v}" for k, v in extra.items()])


def _hard_eval_set(mini_corpus: Path, out: Path) -> Path:
    """dev utterances + one over-long (> 6 s) + one CTC-infeasible utterance, real audio."""
    out.mkdir(parents=True, exist_ok=True)
    dev = [json.loads(line) for line in (mini_corpus / "dev.jsonl").read_text().splitlines()][:10]
    pcm = [sf.read(mini_corpus / r["audio"], dtype="int16")[0] for r in dev]
    long = np.concatenate(pcm[:8])  # ~8 utterances of 1-4 s: well over 6 s
    sf.write(out / "long.flac", long, 16000, subtype="PCM_16")
    sf.write(out / "short.flac", pcm[0][:4800], 16000, subtype="PCM_16")  # 0.3 s
    rows = [{**r, "audio": str((mini_corpus / r["audio"]).resolve())} for r in dev]
    rows.append({"id": "long", "audio": str(out / "long.flac"), "duration": len(long) / 16000,
                 "text": " ".join(r["text"] for r in dev[:8])})
    rows.append({"id": "infeasible", "audio": str(out / "short.flac"), "duration": 0.3,
                 "text": "THIS TRANSCRIPT IS FAR TOO LONG FOR A THIRD OF A SECOND OF AUDIO"})
    m = out / "eval.jsonl"
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return m


def _verify(m: Path, cfg) -> None:
    utts = load_manifest(m)
    V.write_verified(m, utts, measure(utts, cfg.features, cfg.data), cfg.features, cfg.data)


def test_eval_split_keeps_long_and_ctc_infeasible_utterances(mini_corpus: Path, tmp_path: Path) -> None:
    cfg = _cfg(mini_corpus)
    m = _hard_eval_set(mini_corpus, tmp_path / "hard")
    _verify(m, cfg)
    as_train = load_split(cfg, m, role="train")
    assert {r.id: r.code for r in as_train.rejected} == {"long": "too_long",
                                                          "infeasible": "ctc_infeasible"}
    assert as_train.rejected_counts == {"too_long": 1, "ctc_infeasible": 1}
    as_eval = load_split(cfg, m, role="eval")
    assert as_eval.rejected == [] and len(as_eval.durations) == 12
    assert as_eval.digest == manifest_digest(load_manifest(m))


def test_eval_set_is_scored_whole(mini_corpus: Path, tmp_path: Path) -> None:
    """A real (small) model evaluates all 12 utterances, the over-long and infeasible ones too."""
    from reference.train.trainer import Trainer

    hard = _hard_eval_set(mini_corpus, tmp_path / "hard")
    cfg = _cfg(mini_corpus, **{"data.eval_manifest": str(hard)})
    _verify(hard, cfg)
    run = tmp_path / "run"
    run.mkdir()
    tr = Trainer(cfg, run)
    tr.prepare_data()
    info = tr.setup()
    assert info["eval_samples"] == 12 and info["eval_digest"] == manifest_digest(load_manifest(hard))
    torch.manual_seed(0)
    ev = tr.evaluate()
    assert ev["utterances"] == 12  # nothing dropped: both hard utterances have a WER
    # ... and only the CTC-infeasible one is left out of the eval loss, counted.
    assert ev["loss_excluded"] == 1 and math.isfinite(ev["loss_ctc_nll_per_utt"])


def test_unusable_eval_utterance_is_a_data_error(mini_corpus: Path, tmp_path: Path) -> None:
    cfg = _cfg(mini_corpus)
    m = _hard_eval_set(mini_corpus, tmp_path / "hard")
    (tmp_path / "hard" / "short.flac").write_bytes(b"not audio at all")
    _verify(m, cfg)
    with pytest.raises(EvalSetError, match=r"1 eval utterance\(s\) cannot be scored .*infeasible "
                                           r"\(not_audio.*never filtered.*make verify MANIFEST="):
        load_split(cfg, m, role="eval")


def test_run_refuses_missing_stale_or_foreign_records(mini_corpus: Path, tmp_path: Path) -> None:
    cfg = _cfg(mini_corpus)
    m = _hard_eval_set(mini_corpus, tmp_path / "hard")
    with pytest.raises(V.NotVerified, match=r"has no verified record: run `make verify MANIFEST="):
        load_split(cfg, m, role="eval")
    _verify(m, cfg)
    assert V.is_fresh(m, load_manifest(m), cfg.features, cfg.data)
    m.write_text(m.read_text().replace("THIS TRANSCRIPT", "A TRANSCRIPT"))
    with pytest.raises(V.NotVerified, match="changed since it was verified"):
        load_split(cfg, m, role="eval")
    _verify(m, cfg)
    resampled = _cfg(mini_corpus, **{"data.allow_resample": "true"})
    with pytest.raises(V.NotVerified, match="decode settings"):
        load_split(resampled, m, role="eval")
    # The prep step also notices changed audio (stat stamp); the run does not stat audio.
    (tmp_path / "hard" / "long.flac").touch()
    assert not V.is_fresh(m, load_manifest(m), cfg.features, cfg.data)


def test_judging_recorded_facts_opens_no_file(mini_corpus: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(mini_corpus)
    m = _hard_eval_set(mini_corpus, tmp_path / "hard")
    _verify(m, cfg)
    header, facts = V.read_verified(m, 12, cfg.features, cfg.data, "make verify")
    opened: list[str] = []
    real_open = open

    def spy(path, *a, **k):
        opened.append(str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", spy)
    monkeypatch.setattr(sf, "read", lambda *a, **k: pytest.fail("decoded audio"))
    monkeypatch.setattr(sf, "info", lambda *a, **k: pytest.fail("read an audio header"))
    rep = judge_facts(load_manifest(m), facts, cfg.features, cfg.data, training=False)
    assert len(rep.accepted) == 12 and opened == []
