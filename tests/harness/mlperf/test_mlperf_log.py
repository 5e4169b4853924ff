"""Tests of harness.mlperf.log: format, call sites, one handler per log, ranks, aborts."""
from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path

import pytest
from mlperf_logging.mllog import constants as C

from harness.mlperf import log as M


def _records(path: Path) -> list[dict]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    assert all(line.startswith(":::MLLOG {") for line in lines), lines
    return [json.loads(line[len(":::MLLOG "):]) for line in lines]


def _here() -> int:
    """Line number of the caller's next line (where the logging call sits)."""
    return inspect.currentframe().f_back.f_lineno + 1


def test_lines_are_mllog_records_with_caller_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "mlperf.log"
    log = M.MLPerfLogger(path)
    expected = []
    expected.append(_here())
    log.event(C.SEED, 7)
    expected.append(_here())
    log.start(C.EPOCH_START, metadata={C.EPOCH_NUM: 1})
    expected.append(_here())
    log.end(C.EPOCH_STOP, metadata={C.EPOCH_NUM: 1})
    expected.append(_here())
    log.run_start()
    expected.append(_here())
    log.run_stop(M.STATUS_SUCCESS)
    log.close()
    recs = _records(path)
    assert [r["key"] for r in recs] == [C.SEED, C.EPOCH_START, C.EPOCH_STOP, C.RUN_START, C.RUN_STOP]
    assert [r["event_type"] for r in recs] == [
        "POINT_IN_TIME", "INTERVAL_START", "INTERVAL_END", "INTERVAL_START", "INTERVAL_END"]
    assert {r["metadata"]["file"] for r in recs} == {__file__}
    assert [r["metadata"]["lineno"] for r in recs] == expected
    assert recs[0]["value"] == 7 and recs[1]["metadata"][C.EPOCH_NUM] == 1
    assert recs[-1]["metadata"][C.STATUS] == "success" and "reason" not in recs[-1]["metadata"]
    assert set(recs[0]) == {"namespace", "time_ms", "event_type", "key", "value", "metadata"}


def test_two_loggers_in_one_process_write_each_line_once_and_not_to_stdout(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root_handlers = list(logging.getLogger().handlers)
    a, b = M.MLPerfLogger(tmp_path / "a.log"), M.MLPerfLogger(tmp_path / "b.log")
    a.event("x", 1)
    b.event("y", 2)
    a.event("x", 3)
    a.close()
    b.close()
    assert [r["value"] for r in _records(tmp_path / "a.log")] == [1, 3]
    assert [r["value"] for r in _records(tmp_path / "b.log")] == [2]
    out = capsys.readouterr()
    assert ":::MLLOG" not in out.out + out.err
    assert logging.getLogger().handlers == root_handlers


def test_nonzero_rank_and_no_path_write_nothing_but_join_barriers(tmp_path: Path) -> None:
    calls = []
    for log in (M.MLPerfLogger(tmp_path / "r1.log", rank=1, barrier=lambda: calls.append(1)),
                M.MLPerfLogger(None, rank=0, barrier=lambda: calls.append(1))):
        assert not log.active
        log.event(C.SEED, 1)
        log.run_start()
        log.run_stop(M.STATUS_ABORTED, "x")
        log.run_stop(M.STATUS_ABORTED, "x")
        assert log.stopped
        log.close()
    assert not (tmp_path / "r1.log").exists()
    assert len(calls) == 4  # run_start + one run_stop, for each logger


def test_run_stop_is_idempotent_and_records_it(tmp_path: Path) -> None:
    calls = []
    log = M.MLPerfLogger(tmp_path / "m.log", barrier=lambda: calls.append(1))
    assert not log.stopped
    log.run_stop(M.STATUS_ABORTED, reason="NaN loss")
    log.run_stop(M.STATUS_SUCCESS)
    assert log.stopped and len(calls) == 1
    log.close()
    recs = _records(tmp_path / "m.log")
    assert len(recs) == 1 and recs[0]["metadata"] == {
        "file": __file__, "lineno": recs[0]["metadata"]["lineno"], "status": "aborted",
        "reason": "NaN loss"}


def test_run_stop_without_sync_skips_the_barrier(tmp_path: Path) -> None:
    calls = []
    log = M.MLPerfLogger(tmp_path / "m.log", barrier=lambda: calls.append(1))
    log.run_stop(M.STATUS_ABORTED, "rank 3 died", sync=False)
    log.close()
    assert calls == [] and _records(tmp_path / "m.log")[0]["key"] == C.RUN_STOP


def test_bad_input_raises_instead_of_corrupting_the_log(tmp_path: Path) -> None:
    path = tmp_path / "m.log"
    log = M.MLPerfLogger(path)
    with pytest.raises(ValueError, match="status"):
        log.run_stop("done")
    with pytest.raises(TypeError, match="metadata"):
        log.event("k", 1, metadata=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lineno"):
        log.event("k", 1, metadata={"lineno": 3})
    with pytest.raises(ValueError, match="mllog refused"):
        log.event("k", object())
    log.event("ok", 1)
    log.close()
    assert [r["key"] for r in _records(path)] == ["ok"]


def test_tensors_and_numpy_values_become_numbers(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "m.log"
    with M.MLPerfLogger(path) as log:
        # A 0-d array stands in for a 0-d torch tensor: both have .tolist()
        # (importing torch here would cost seconds).
        log.event("a", np.array(2.5), metadata={C.EPOCH_NUM: np.int64(3)})
        log.event("b", np.float32(0.5))
    recs = _records(path)
    assert recs[0]["value"] == 2.5 and recs[0]["metadata"][C.EPOCH_NUM] == 3
    assert recs[1]["value"] == 0.5


def test_close_makes_later_calls_noops(tmp_path: Path) -> None:
    path = tmp_path / "m.log"
    log = M.MLPerfLogger(path)
    log.event("a", 1)
    log.close()
    log.event("b", 2)
    log.close()
    assert [r["key"] for r in _records(path)] == ["a"]


def test_append_run_stop_aborted_writes_a_real_mllog_line_once(tmp_path: Path) -> None:
    path = tmp_path / "mlperf.log"
    with M.MLPerfLogger(path) as log:
        log.run_start()
    line = _here()
    assert M.append_run_stop_aborted(path, "rank 0 exited with -9") is True
    assert M.append_run_stop_aborted(path, "again") is False
    recs = _records(path)
    assert [r["key"] for r in recs] == [C.RUN_START, C.RUN_STOP]
    stop = recs[-1]
    assert stop["event_type"] == "INTERVAL_END" and stop["value"] is None
    assert stop["metadata"] == {"file": __file__, "lineno": line, "status": "aborted",
                                "reason": "rank 0 exited with -9"}


def test_append_run_stop_aborted_keeps_a_torn_last_line_separate(tmp_path: Path) -> None:
    path = tmp_path / "mlperf.log"
    with M.MLPerfLogger(path) as log:
        log.run_start()
    with path.open("a") as f:
        f.write(':::MLLOG {"namespace": "", "time_ms": 17')  # killed mid-write
    assert M.append_run_stop_aborted(path, "killed") is True
    lines = path.read_text().splitlines()
    assert lines[1].endswith('"time_ms": 17')
    assert json.loads(lines[2][len(":::MLLOG "):])["key"] == C.RUN_STOP


def test_append_run_stop_aborted_needs_a_log(tmp_path: Path) -> None:
    assert M.append_run_stop_aborted(tmp_path / "missing.log", "x") is False
    assert not (tmp_path / "missing.log").exists()
