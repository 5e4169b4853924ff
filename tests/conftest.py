"""Fixtures shared by all test packages."""
from __future__ import annotations

from pathlib import Path

import pytest

MINI_UTTERANCES = 64  # per split: the first utterances of the embedded corpus


@pytest.fixture(scope="session")
def mini_corpus(tmp_path_factory) -> Path:
    """A real slice of the embedded corpus (espeak-ng FLAC, checksum-verified)."""
    from reference.data.corpus import build_corpus

    out = tmp_path_factory.mktemp("corpus") / "embedded"
    build_corpus(out, limit=MINI_UTTERANCES, workers=2, progress=False)
    # ... and verified, as `make data` leaves it (runs read the .verified records).
    from harness.data.prepare import verify_manifests

    assert verify_manifests(out, ("train.jsonl", "dev.jsonl", "unseen.jsonl"), workers=2) == 0
    return out


@pytest.fixture(autouse=True)
def _cpu_fp32_math_back_to_ieee():
    """A Trainer built in-process sets tiny's `train.fp32_precision: bf16`, whose GRU
    GEMM switch is process-wide: put it back to fp32 after each test, as a fresh
    process has it (oneDNN's convolution precision is left at torch's default by
    every mode)."""
    yield
    from reference.model.kernels import set_bf16_gemm

    set_bf16_gemm(False)
