"""scripts/device_check.py: its CPU-side part here, and its device checks' code on CPU.

This machine has no accelerator, so `make device-check` runs only the part that
needs none; the comparisons it would make on a GPU are run here with the CPU on
both sides (the difference must then be exactly zero), so their code is tested
before anyone spends device time on it.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from reference.device import decide

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "device_check.py"
spec = importlib.util.spec_from_file_location("device_check", SCRIPT)
device_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(device_check)
CPU = torch.device("cpu")


@pytest.mark.skipif(decide("auto").kind != "cpu", reason="this machine has an accelerator")
def test_without_an_accelerator_it_says_so_and_exits_0(tmp_path, capsys):
    assert device_check.main(["--runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no accelerator here: the GPU checks are skipped" in out
    assert "PASS  refusals: 4 bad values refused" in out and "FAIL" not in out
    assert "PASS  step syncs (instrumented, CPU): GRU 1x64 b2: instrumented syncs 0" in out
    (report,) = tmp_path.glob("device-check-*/device_check.json")
    rows = json.loads(report.read_text())["checks"]
    amp = {r["check"]: r.get("rnn_dtype") for r in rows if r["check"].startswith("amp cpu")}
    assert amp["amp cpu gru off"] == amp["amp cpu lstm off"] == "float32"


@pytest.mark.parametrize("check", ["check_features", "check_ctc"])  # check_ddp: ~15 s of gloo set-up here
def test_device_checks_run_with_the_cpu_on_both_sides(check):
    ok, detail, values = getattr(device_check, check)(CPU)
    assert ok, detail
    assert all(v == 0.0 for k, v in values.items() if k != "backend"), values


def test_model_parity_check_runs_with_the_cpu_on_both_sides():
    ok, detail, values = device_check.check_model(CPU, "tiny")
    assert ok and values == {"logits_rel": 0.0, "grad_rel": 0.0}, detail


def test_step_sync_check_passes_the_trainer_step_and_fails_a_step_that_reads_back(monkeypatch):
    ok, detail, values = device_check.check_step_syncs(CPU, small=True)
    assert ok and values["instrumented_syncs"] == 0, detail
    assert values["utt_s_masked_update"] > 0 and values["utt_s_host_reads_flag"] > 0

    # Mutant: a step that reads a device value back (the old finite check's .item()).
    import reference.train.step as step_mod

    real = step_mod.train_step

    def reads_back(model, *args, **kwargs):
        out = real(model, *args, **kwargs)
        float(next(model.parameters()).detach().sum())
        return out

    monkeypatch.setattr(step_mod, "train_step", reads_back)
    ok, detail, values = device_check.check_step_syncs(CPU, small=True)
    assert not ok and values["instrumented_syncs"] >= 1, detail
    assert "float" in detail, detail
