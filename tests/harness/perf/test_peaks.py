"""MFU denominators and the recurrence bound (harness/perf/peaks.py)."""
from __future__ import annotations

import pytest
import torch

from harness.perf.peaks import (cpu_has_native_bf16, model_gemm_shapes, precision_peaks,
                                precisions_to_measure,
                                recurrence_bound_s, recurrent_weight_bytes, run_precision,
                                unmeasured_precisions)
from reference.config import ModelConfig

CPU = torch.device("cpu")


def test_recurrent_weights_are_the_issue_s_79_to_105_mb():
    assert round(recurrent_weight_bytes(ModelConfig("gru", 2560, 3, False)) / 1e6, 1) == 78.6
    assert round(recurrent_weight_bytes(ModelConfig("lstm", 2560, 3, False)) / 1e6, 1) == 104.9


def test_recurrence_bound_counts_layers_directions_and_both_passes():
    m = ModelConfig("gru", 256, 3, True)
    one = recurrence_bound_s(m, 1, 1.0)  # 1 GB/s, one time step
    assert one == 3 * 2 * 2 * recurrent_weight_bytes(m) / 1e9
    assert recurrence_bound_s(m, 100, 2.0) == 50 * one


def test_model_shapes_follow_the_model():
    shapes = {name.split(" ", 1)[1]: (m, k, n) for name, m, k, n in
              model_gemm_shapes(ModelConfig(), 161, 8, 201)}
    # 201 frames → 96 after conv1 (width 11, stride 2) → 86 output steps; GRU 2560: 3 gates;
    # input 32 channels × 21 bins.
    assert shapes["input projection"] == (86 * 8, 672, 7680)
    assert shapes["recurrent b8"] == (8, 2560, 7680)
    assert shapes["weight gradient"] == (7680, 86 * 8, 2560)


def test_peak_is_the_best_over_shapes_and_cpu_runs_ieee():
    assert run_precision(CPU) == "ieee"
    assert precisions_to_measure(CPU) == ["ieee"] + (["bf16"] if cpu_has_native_bf16() else [])
    assert run_precision(CPU, "bf16") == "bf16"
    shapes = [("a", 64, 64, 64), ("b", 128, 96, 32)]
    got = precision_peaks(CPU, shapes, ["ieee"], reps=2)["ieee"]
    rates = [r["gflops"] for r in got["shapes"]]
    assert all(r > 0 for r in rates) and got["best_gflops"] == max(rates)
    assert got["best_shape"] in ("a", "b")


@pytest.mark.parametrize("flags, native", [("fpu sse avx512f avx512bw", False),
                                           ("fpu avx512f avx512_bf16", True),
                                           ("fpu amx_tile amx_bf16", True)])
def test_bf16_peak_only_where_the_cpu_has_bf16_hardware(tmp_path, flags, native):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert cpu_has_native_bf16(str(info)) is native
    assert cpu_has_native_bf16(str(tmp_path / "absent")) is False


def test_a_missing_bf16_row_says_why():
    # The report prints these reasons, so "no bf16 row" is never read as "not looked for".
    assert set(unmeasured_precisions(CPU, ["ieee"])) == {"bf16"}
    assert "amx_bf16" in unmeasured_precisions(CPU, ["ieee"])["bf16"]
    assert unmeasured_precisions(CPU, ["ieee", "bf16"]) == {}
    assert unmeasured_precisions(torch.device("cuda"), ["ieee", "tf32"]) == {}
