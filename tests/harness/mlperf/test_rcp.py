"""RCPs through MLPerf's own rcp_checker: built from real MLPerfLogger logs, a set
that converges as the reference passes, one that converges much faster fails."""
from __future__ import annotations

import json
from pathlib import Path

from harness.mlperf import rcp
from tests.harness.mlperf.logfactory import write_valid_log

TARGET = 23.0


def _epoch_samples(batch: int) -> int:
    # The factory's default benchmark trains its whole dataset section each epoch.
    from reference.config import load_config

    train = load_config("mlcommons_v05").dataset.train_utterances
    return train // batch * batch


def _run(path: Path, epochs_to_target: int, seed: int, batch: int = 8) -> Path:
    # WER falls to the target in the given epoch (the run stops there).
    wers = tuple([60.0 - k for k in range(epochs_to_target - 1)] + [22.0])
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_valid_log(path, wers=wers, seed=seed,
                           overrides=(f"train.target_wer={TARGET}", f"train.batch_per_card={batch}"))


def _set(root: Path, epochs: list[int], batch: int = 8) -> list[Path]:
    return [_run(root / f"r{k}" / "mlperf.log", e, seed=k + 1, batch=batch)
            for k, e in enumerate(epochs)]


def test_convergence_is_read_by_the_engine(tmp_path):
    log = _run(tmp_path / "mlperf.log", 4, seed=1)
    c = rcp.convergence(log)
    assert c["converged"] and c["bs"] == 8 and c["epochs"] == 4 and c["samples"] == 4 * _epoch_samples(8)
    aborted = write_valid_log(tmp_path / "a.log", wers=(50.0, 40.0), status="aborted")
    assert rcp.convergence(aborted)["converged"] is False


def test_rcp_file_and_set_check(tmp_path):
    ref = _set(tmp_path / "ref", [5, 6, 5, 6, 5, 7, 6, 5, 6, 6])
    other_bs = _set(tmp_path / "ref16", [6, 7, 6, 7, 6], batch=16)
    rcps = rcp.build_rcps(ref + other_bs, "tiny")
    assert sorted(r["BS"] for r in rcps.values()) == [8, 16]
    rec = rcps["tiny_ref_8"]
    assert rec["Benchmark"] == "deepspeech2" and rec["Epochs to converge"] == sorted(
        [5, 6, 5, 6, 5, 7, 6, 5, 6, 6])
    assert rec["Samples to converge"][0] == 5 * _epoch_samples(8)
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(rcps))
    ok, msg = rcp.check_set(_set(tmp_path / "same", [6, 5, 6, 5, 6]), path, 5)
    assert ok, msg
    fast, msg = rcp.check_set(_set(tmp_path / "fast", [2, 2, 3, 2, 2]), path, 5)
    assert not fast and msg.startswith("RCP found"), msg  # implausibly fast: a changed recipe
    # The CLI says the same, with an exit status.
    assert rcp.main(["check", "--set", str(tmp_path / "fast"), "--rcp", str(path)]) == 1
    assert rcp.main(["check", "--set", str(tmp_path / "same"), "--rcp", str(path)]) == 0
    assert rcp.main(["check", "--set", str(tmp_path / "none"), "--rcp", str(path)]) == 2


def test_set_checker_applies_the_benchmarks_rcps(tmp_path, capsys):
    """`make check` of a set: with benchmarks/rcp/<name>.json present, a set that
    converges much faster than it is a SET problem; a set like it is not."""
    import shutil

    from harness.mlperf.compliance.checker import check_log
    from harness.mlperf.compliance.cli import check_set
    from harness.mlperf.compliance.generate import BENCHMARKS_DIR

    bench = tmp_path / "benchmarks"
    shutil.copytree(BENCHMARKS_DIR, bench, ignore=shutil.ignore_patterns("rcp"))
    ref = _set(tmp_path / "ref", [5, 6, 5, 6, 5, 7, 6, 5, 6, 6])
    same = [check_log(p) for p in _set(tmp_path / "same", [6, 5, 6, 5, 6, 6, 5, 6, 5, 7])]
    fast = [check_log(p) for p in _set(tmp_path / "fast", [2, 2, 3, 2, 2, 2, 3, 2, 2, 2])]
    assert all(r.ok for r in same + fast)
    assert check_set(fast, bench) == []  # no RCP file: nothing to compare with
    from harness.mlperf.compliance.cli import main as check_main

    assert check_main(["--log", str(tmp_path / "same"), "--benchmarks", str(bench)]) == 0
    assert "convergence speed not judged (no rcp/mlcommons_v05.json)" in capsys.readouterr().out
    (bench / "rcp").mkdir()
    (bench / "rcp" / "mlcommons_v05.json").write_text(json.dumps(rcp.build_rcps(ref, "x")))
    assert check_set(same, bench) == []
    assert check_main(["--log", str(tmp_path / "same"), "--benchmarks", str(bench)]) == 0
    assert ("distinct seeds, convergence within the reference convergence points "
            "(mlcommons_v05.json)") in capsys.readouterr().out.splitlines()[-1]
    assert check_main(["--log", str(tmp_path / "fast"), "--benchmarks", str(bench)]) == 1
    problems = check_set(fast, bench)
    assert len(problems) == 1 and "converges faster than the reference convergence points" \
        in problems[0], problems


def test_rcp_records_say_where_and_when_their_runs_ran(tmp_path):
    runs = [_run(tmp_path / f"tiny-1xcpu-2026120{k + 1}T101010-s{k + 1}" / "mlperf.log", 5, seed=k + 1)
            for k in range(2)]
    desc = {"device": "cpu", "accelerator": "CPU", "cpu": {"model": "Some CPU"}, "cards": 1,
            "threads_per_rank": 2, "software": {"torch": "2.1.2"}}
    for log in runs:
        (log.parent / "description.json").write_text(json.dumps(desc))
    rec = rcp.build_rcps(runs, "tiny")["tiny_ref_8"]
    assert rec["Platform"] == "1x Some CPU, 2 thread(s) per rank, torch 2.1.2"
    assert rec["When"].startswith("runs of 2026-12-01, 2026-12-02")
    # A copied log without its run directory: nothing is invented.
    bare = rcp.build_rcps(_set(tmp_path / "bare", [5]), "tiny")["tiny_ref_8"]
    assert bare["Platform"] == "" and bare["When"] == "produced by `python -m harness rcp`"
