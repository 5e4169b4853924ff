"""Which division a run logs, decided before a run directory exists (harness.run.bench)."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from harness.mlperf.pinned import closed_overrides
from harness.run.bench import _Refused, _run_division
from reference.config import load_config

REPO = Path(__file__).resolve().parents[3]


def _args(tmp_path: Path, declared: str, benchmark: str, division: str | None = None):
    sub = yaml.safe_load((REPO / "submission.yaml").read_text())
    sub["division"] = declared
    path = tmp_path / f"submission-{declared}.yaml"
    path.write_text(yaml.safe_dump(sub))
    return argparse.Namespace(submission=path, benchmark=benchmark, division=division)


@pytest.mark.parametrize("override, key", [
    ("train.target_wer=30", "ds2_target_wer"), ("optim.momentum=0.95", "opt_momentum"),
    ("model.hidden=1024", "ds2_rnn_hidden"), ("train.loss=seed_raw_logits", "ds2_loss_definition"),
    ("augment.enabled=false", "ds2_augmentation"), ("data.eval_manifest=dev-clean.jsonl",
                                                    "data.eval_manifest"),
])
def test_closed_declaration_refuses_pinned_overrides(tmp_path: Path, override: str, key: str) -> None:
    cfg = load_config("mlcommons_v05", [override])
    with pytest.raises(_Refused, match=rf"closed-division benchmark.*{key}.*DIVISION=open"):
        _run_division(_args(tmp_path, "closed", "mlcommons_v05"), cfg, 1)
    assert _run_division(_args(tmp_path, "closed", "mlcommons_v05", "open"), cfg, 1) == "open"
    assert _run_division(_args(tmp_path, "open", "mlcommons_v05"), cfg, 1) == "open"


def test_unpinned_overrides_keep_the_closed_division(tmp_path: Path) -> None:
    cfg = load_config("mlcommons_v05", ["data.root=/elsewhere", "train.seed=7", "train.threads=1",
                                        "data.num_workers=0"])
    assert closed_overrides(load_config("mlcommons_v05"), cfg) == []
    assert _run_division(_args(tmp_path, "closed", "mlcommons_v05"), cfg, 1) == "closed"


def test_an_open_benchmark_cannot_be_run_closed(tmp_path: Path) -> None:
    cfg = load_config("tiny")
    assert _run_division(_args(tmp_path, "closed", "tiny"), cfg, 1) == "open"
    with pytest.raises(_Refused, match="tiny defines no closed division"):
        _run_division(_args(tmp_path, "closed", "tiny", "closed"), cfg, 1)
    with pytest.raises(_Refused, match="declares division: open"):
        _run_division(_args(tmp_path, "open", "mlcommons_v05", "closed"),
                      load_config("mlcommons_v05"), 1)
