"""`harness doctor`: the real stack of this machine, and problems with their fixes."""
from __future__ import annotations

import json

import torch

from harness.cli import main
from harness.run import doctor, stack
from harness.run.stack import import_checks, stack_facts


def test_facts_of_this_machine(tmp_path):
    f = stack_facts("cpu", 2, tmp_path / "runs")
    assert f["torch"]["version"] == torch.__version__
    assert f["device"]["kind"] == "cpu" and f["device"]["backend"] == "gloo"
    assert f["device"]["backend_available"] is True and f["device"]["error"] is None
    assert f["threads"]["ranks_per_node"] == 2 and f["threads"]["threads_per_rank"] >= 1
    assert f["disk"]["free(GiB)"] > 0  # the runs dir does not exist yet: its parent is measured
    assert f["dependencies"]["numpy"] and f["dependencies"]["yaml"]
    json.dumps(f)  # goes into description.json as is


def test_dependencies_import_and_work_with_this_torch():
    checks = import_checks()
    assert checks["torch.from_numpy"] is None and checks["soundfile FLAC"] is None
    assert all(v is None for v in checks.values()), checks


def test_doctor_ok_exit_0(capsys, tmp_path):
    assert main(["doctor", "--device", "cpu", "--runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "backend gloo (available)" in out and out.rstrip().endswith("OK: a run can start")
    assert f"torch       {torch.__version__}" in out


def test_doctor_names_the_problem_and_the_fix(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "import_checks",
                        lambda: {**{m: None for m in stack.DEPENDENCIES},
                                 "torch.from_numpy": "RuntimeError: Numpy is not available"})
    assert main(["doctor", "--device", "cpu", "--runs", str(tmp_path), "--json"]) == 1
    got = json.loads(capsys.readouterr().out)
    assert got["problems"] == [{"what": "torch.from_numpy: RuntimeError: Numpy is not available",
                                "fix": doctor.FIXES["torch.from_numpy"]}]


def test_doctor_device_that_is_not_there(capsys, tmp_path):
    if stack_facts("cuda", 1, tmp_path)["device"]["error"] is None:
        return  # this machine has a GPU: nothing to refuse
    assert main(["doctor", "--device", "cuda", "--runs", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM --device 'cuda': no cuda device here; available: cpu" in out
