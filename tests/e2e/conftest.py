"""Shared fixtures for end-to-end runs: a small real corpus and a harness runner.

The corpus is the embedded espeak-ng corpus limited to its first utterances
(real FLAC files, verified against the committed checksums); runs go through
`python -m harness` in real subprocesses (torchrun and gloo for several ranks).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MINI_UTTERANCES = 64

# A model small enough for seconds-long epochs on 2 cores; reference conv front end.
SMALL = ["model.hidden=32", "model.layers=1", "model.bidirectional=false",
         "train.batch_per_card=8", "data.eval_batch=16", "train.log_every_steps=1000"]


@pytest.fixture(scope="session")
def mini_corpus(tmp_path_factory) -> Path:
    from reference.corpus import build_corpus

    out = tmp_path_factory.mktemp("corpus") / "embedded"
    build_corpus(out, limit=MINI_UTTERANCES, workers=2, progress=False)
    return out


def harness_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def bench_cmd(runs: Path, corpus: Path, *extra: str, cards: int = 1,
              overrides: list[str] | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "harness", "bench", "--benchmark", "tiny", "--runs", str(runs),
           "--cards", str(cards), "--device", "cpu", "--set", f"data.root={corpus}"]
    for ov in SMALL + (overrides or []):
        cmd += ["--set", ov]
    return cmd + list(extra)


def run_bench(runs: Path, corpus: Path, *extra: str, cards: int = 1,
              overrides: list[str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(bench_cmd(runs, corpus, *extra, cards=cards, overrides=overrides),
                          cwd=REPO, env=harness_env(), capture_output=True, text=True,
                          timeout=timeout)


def only_run_dir(runs: Path) -> Path:
    dirs = [d for d in runs.iterdir() if d.is_dir() and (d / "config.yaml").exists()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def mllog(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith(":::MLLOG "):
            out.append(json.loads(line[len(":::MLLOG "):]))
    return out


def metrics(run_dir: Path, kind: str) -> list[dict]:
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if l]
    return [r for r in rows if r["kind"] == kind]
