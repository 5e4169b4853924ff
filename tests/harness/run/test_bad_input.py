"""Bad --cards / --device values: one line naming the value and the choices, exit 2,
no run directory — through `python -m harness`, `./ds2bench` and `make`."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reference.device import decide

REPO = Path(__file__).resolve().parents[3]
ON_CPU_ONLY = decide("auto").kind == "cpu"


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("args, says", [
    (["--cards", "0"], "--cards: 0 is not a card count (choices: a whole number >= 1)"),
    (["--cards", "abc"], "--cards: 'abc' is not a card count (choices: a whole number >= 1)"),
    (["--device", "tpu"], "--device: invalid choice: 'tpu' (choose from 'auto', 'cpu', 'cuda', 'mlu', 'xpu')"),
    pytest.param(["--device", "cuda"], "--device 'cuda': no cuda device here; available: cpu",
                 marks=pytest.mark.skipif(not ON_CPU_ONLY, reason="this machine has an accelerator")),
    pytest.param(["--device", "mlu", "--cards", "2"], "--device 'mlu': no mlu device here; available: cpu",
                 marks=pytest.mark.skipif(not ON_CPU_ONLY, reason="this machine has an accelerator")),
])
def test_bench_refuses_bad_values(tmp_path, capsys, args, says):
    runs = tmp_path / "runs"
    assert _main(["bench", "--runs", str(runs), *args]) == 2
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and says in lines[0], lines
    assert not runs.exists()


def test_scaling_sweep_is_checked_too(tmp_path, capsys):
    assert _main(["scaling", "--runs", str(tmp_path / "r"), "--sweep", "1 x"]) == 2
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and "'x' is not a card count" in lines[0]


def _main(argv: list[str]) -> int:
    """`python -m harness` in this process (argparse errors exit through SystemExit)."""
    from harness.cli import main

    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def test_wrapper_and_make_pass_the_refusal_on(tmp_path):
    """./ds2bench keeps the harness's exit code; make can only say Error 2, with the same line."""
    runs = tmp_path / "runs"
    proc = subprocess.run([str(REPO / "ds2bench"), "bench", "--runs", str(runs), "--cards", "abc"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--cards: 'abc' is not a card count" in proc.stderr, proc.stderr
    proc = subprocess.run(["make", "-s", "-C", str(REPO), "bench", "CARDS=abc", f"RUNS={runs}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--cards: 'abc' is not a card count" in proc.stderr, proc.stderr
    assert not runs.exists()


@pytest.mark.parametrize("name, content", [
    ("ckpt-e1-s10.pt.sha256", b"3f2a" * 16),  # the digest beside a checkpoint, given by mistake
    ("ckpt-e1-s10.pt", b"not a pickle"),  # a damaged file without its digest
    ("missing.pt", None),
])
def test_eval_refuses_what_is_not_a_checkpoint(tmp_path, capsys, mini_corpus, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    code = _main(["eval", "--checkpoint", str(path), "--manifest", str(mini_corpus / "dev.jsonl")])
    lines = _lines(capsys.readouterr().err)
    assert code == 2 and len(lines) == 1 and str(path) in lines[0], lines


def test_cards_that_do_not_divide_the_global_batch_are_refused_with_the_fix(tmp_path, capsys):
    # tiny fixes the global batch at 16: 3 cards cannot split it, and the run is
    # refused (never re-batched silently) with the SET= that would make it valid.
    runs = tmp_path / "runs"
    assert _main(["bench", "--runs", str(runs), "--cards", "3", "--device", "cpu"]) == 2
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and "train.global_batch: 16 is not divisible by 3 cards" in lines[0]
    assert 'SET="train.global_batch=48"' in lines[0]
    assert not runs.exists()
