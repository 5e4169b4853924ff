"""Tests of harness.perf.flops (hand-computed FLOP counts) and a quick `harness perf` run.

No assertion is made on speed: the perf run only has to produce its JSON with
every key present and positive numbers.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harness.perf import flops as F
from harness.perf import main
from harness.perf.cli import REPO, model_specs
from harness.perf.measure import measure_training
from harness.perf.report import target_rows
from harness.perf.sources import data_source, synthetic_items
from harness.perf.step import ModelSpec
from harness.perf.system import torch_threads
from reference.config import FeatureConfig, ModelConfig, OptimConfig, load_config, resolve_cards
from reference.data.features import num_bins, num_frames
from reference.labels import min_ctc_frames
from reference.model.deepspeech2 import DeepSpeech2, min_input_frames


def test_conv_output_sizes_by_hand() -> None:
    assert F.conv_out(161, 41, 2) == 61  # (161 - 41) // 2 + 1
    assert F.conv_out(61, 21, 2) == 21  # (61 - 21) // 2 + 1
    assert F.conv_out(201, 11, 2) == 96  # time, conv1
    assert F.conv_out(96, 11, 1) == 86  # time, conv2
    assert F.conv_out(10, 11, 2) == 0  # too short: nothing, never negative
    shape = F.ModelShape()
    assert (shape.conv1_bins, shape.conv2_bins, shape.rnn_input) == (61, 21, 672)


def test_conv_and_head_flops_by_hand() -> None:
    f = F.utterance_flops(201, F.ModelShape("gru", 256, 1, False))
    assert (f.conv1_frames, f.out_frames) == (96, 86)
    assert f.conv1 == 2 * 1 * 32 * 41 * 11 * 61 * 96 == 169_027_584
    assert f.conv2 == 2 * 32 * 32 * 21 * 11 * 21 * 86 == 854_396_928
    assert f.head == 2 * 256 * 29 * 86 == 1_276_928
    assert f.rnn == [86 * 2 * 3 * 256 * (672 + 256)] == [122_585_088]
    assert f.forward == 169_027_584 + 854_396_928 + 122_585_088 + 1_276_928
    # Backward = 2 x forward, except conv1 (no input gradient): 1 x forward.
    assert f.training() == 3 * f.forward - f.conv1
    assert f.training(exact=False) == 3 * f.forward


def test_rnn_gate_factor_layers_and_bidirectional_doubling() -> None:
    assert F.rnn_step_flops("gru", 672, 2560, False) == 2 * 3 * 2560 * (672 + 2560)
    assert F.rnn_step_flops("lstm", 672, 2560, False) == 2 * 4 * 2560 * (672 + 2560)
    assert F.rnn_step_flops("gru", 256, 256, True) == 2 * F.rnn_step_flops("gru", 256, 256, False)
    with pytest.raises(ValueError):
        F.rnn_step_flops("rnn", 1, 1, False)
    gru = F.utterance_flops(201, F.ModelShape("gru", 2560, 3, False))
    lstm = F.utterance_flops(201, F.ModelShape("lstm", 2560, 3, False))
    bi = F.utterance_flops(201, F.ModelShape("gru", 2560, 3, True))
    # Layer 1 reads the 672 conv features, layers 2..n the H summed directions.
    assert gru.rnn == [86 * 2 * 3 * 2560 * (672 + 2560)] + [86 * 2 * 3 * 2560 * 5120] * 2
    assert [4 * g for g in gru.rnn] == [3 * x for x in lstm.rnn]
    assert bi.rnn == [2 * x for x in gru.rnn]
    assert bi.conv1 == gru.conv1 and bi.head == gru.head
    # Reference size: ~207 MFLOP per output step in the RNN, ~20 GFLOP forward for 2 s.
    assert sum(gru.rnn) // 86 == 206_929_920


def test_batch_flops_sum_utterances() -> None:
    shape = F.ModelShape("gru", 256, 3, True)
    frames = [201, 150, 99]
    assert F.batch_training_flops(frames, shape) == sum(
        F.utterance_flops(t, shape).training() for t in frames)


@pytest.mark.parametrize("cfg,feat", [
    (ModelConfig("gru", 64, 2, True), FeatureConfig()),
    (ModelConfig("lstm", 48, 3, False), FeatureConfig()),
    # mel bands with the kernels that fit them (features.mel_bins, model.conv_freq_kernels)
    (ModelConfig("gru", 32, 2, True, conv_channels=8, conv_freq_kernels=(11, 11)),
     FeatureConfig(mel_bins=64)),
])
def test_shapes_and_weights_match_the_reference_model(cfg: ModelConfig, feat: FeatureConfig) -> None:
    model = DeepSpeech2(cfg, feat)
    shape = F.ModelShape.of(cfg, num_bins(feat))
    frames = 201
    with torch.no_grad():
        out = model.conv(torch.zeros(1, 1, num_bins(feat), frames))
    f = F.utterance_flops(frames, shape)
    assert tuple(out.shape) == (1, cfg.conv_channels, shape.conv2_bins, f.out_frames)
    rnn = next(mod for mod in model.rnns[0].modules() if isinstance(mod, torch.nn.RNNBase))
    assert rnn.input_size == shape.rnn_input
    weights = sum(p.numel() for n, p in model.named_parameters()
                  if n.endswith("weight") and p.dim() > 1 or "weight_" in n)
    assert weights == F.parameters(shape)


def test_synthetic_items_are_deterministic_and_feasible() -> None:
    a, b = synthetic_items(6), synthetic_items(6)
    assert all((x.wave == y.wave).all() and x.target == y.target for x, y in zip(a, b))
    for it in a:
        assert 0.95 * 2.0 * 16000 - 1 <= len(it.wave) <= 1.05 * 2.0 * 16000 + 1
        # Feasible even at the fastest tempo (1.15).
        frames = num_frames(len(it.wave), FeatureConfig()) / 1.15
        assert frames >= min_input_frames(min_ctc_frames(it.target))


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


def test_quick_run_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "perf.json"
    assert main(["--quick", "--threads", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    for key in ("config", "data", "matmul", "training", "pipeline", "logging", "targets",
                "flops_convention"):
        assert key in data, key
    cfg = data["config"]
    for key in ("threads", "cores", "ranks", "device", "torch", "numpy", "cpu_model",
                "load_samples", "loaded"):
        assert key in cfg, key
    assert cfg["threads"] == 1 and cfg["ranks"] == 1
    assert data["data"]["source"] in ("embedded", "synthetic")
    assert _positive(data["matmul"]["best_gflops"])
    assert data["matmul"]["one_thread"] is None  # --quick: no 1-thread row, no 1-thread matmul
    tiny = data["training"]["tiny"]
    # tiny as it trains (bf16 GEMMs in the CPU GRU); its MFU against the faster of the
    # IEEE and bf16 peaks measured in the run, named in the record.
    assert tiny["fp32_precision"] == "bf16"
    ieee = data["matmul"]["best_gflops"]
    bf16 = (data["matmul"]["by_precision"].get("bf16") or {}).get("best_gflops") or 0.0
    assert tiny["threads"] == 1 and tiny["mfu_peak_gflops"] == max(ieee, bf16)
    assert tiny["mfu_peak_precision"] == ("bf16" if bf16 > ieee else "ieee")
    for key in ("throughput_utt_s", "step_time_s", "train_gflop_per_utt", "achieved_gflops",
                "mfu", "parameters", "utterances", "time_s"):
        assert _positive(tiny[key]), (key, tiny[key])
    assert tiny["timed_steps"] == 2 and tiny["warmup_steps"] == 1
    split = tiny["breakdown_s"]
    assert _positive(split["total"])
    for key in ("featurize", "conv1_fwd", "conv2_fwd", "rnn_fwd", "loss_bwd", "rnn_bwd",
                "conv2_bwd", "conv1_bwd", "optimizer"):
        assert split[key] >= 0, key
    assert abs(sum(v for k, v in split.items() if k != "total") - split["total"]) < 1e-6
    assert set(data["training"]) == {"tiny"}  # --quick: tiny only
    for key in ("utt_s", "ratio_to_training", "time_s"):
        assert _positive(data["pipeline"][key]), key
    for key in ("event_s", "json_line_s", "finite_check_sync_s", "per_step_s", "fraction_of_step"):
        assert _positive(data["logging"][key]), key
    assert [t["met"] for t in data["targets"]][0] is None  # like-for-like model not run
    assert "targets:" in capsys.readouterr().out


def _tiny_config():
    return resolve_cards(load_config(REPO / "benchmarks" / "tiny.yaml"), 1)


def test_seed_comparison_runs_the_same_model_at_one_thread() -> None:
    cfg = _tiny_config()
    specs = {s.key: s for s in model_specs(cfg, quick=False, small_steps=30, ref_steps=3)}
    every, one = specs["gru2x256_b8"], specs["gru2x256_b8_t1"]
    assert one.threads == 1 and every.threads is None  # None: the run's thread count
    assert (one.model, one.batch, one.steps) == (every.model, every.batch, every.steps)
    assert set(s.key for s in model_specs(cfg, quick=True, small_steps=2, ref_steps=3)) == {"tiny"}


def test_measure_training_at_one_thread_restores_the_thread_count(tmp_path: Path) -> None:
    cfg = _tiny_config()
    small = ModelConfig("gru", 16, 1, False, conv_freq_kernels=cfg.model.conv_freq_kernels)
    spec = ModelSpec("t", "t", small, 2, OptimConfig(), 0, 1, 0, threads=1)
    source = data_source(tmp_path)  # no corpus there: synthetic noise
    with torch_threads(2):
        m = measure_training(spec, source, cfg.features, cfg.augment, torch.device("cpu"),
                             lambda _msg: None)
        assert torch.get_num_threads() == 2
    assert m.threads == 1 and m.timed_steps == 1 and m.utterances == 2


def test_seed_target_reads_the_one_thread_row() -> None:
    result = {"training": {"tiny": {"throughput_utt_s": 12.0},
                           "gru2x256_b8": {"throughput_utt_s": 200.0, "threads": 16},
                           "gru2x256_b8_t1": {"throughput_utt_s": 50.0, "threads": 1}},
              "pipeline": {"ratio_to_training": 40.0}, "logging": {"fraction_of_step": 1e-4}}
    sbs, sbs_ref, seed, info = target_rows(result)[:4]
    assert "make seed-cmp" in sbs["target"] and sbs["measured"] is None and sbs["met"] is None
    assert "--model reference" in sbs_ref["note"] and sbs_ref["measured"] is None
    assert "1 thread" in seed["target"] and seed["measured"] == 50.0 and seed["met"] is False
    assert "16 threads" in info["target"] and info["measured"] == 200.0 and info["met"] is None


def test_side_by_side_row_reads_the_newest_seedcmp(tmp_path: Path) -> None:
    import json

    from harness.perf.seedcmp import latest

    for stamp, seed, ours in (("20260101T000000", 10.0, 12.0), ("20260102T000000", 10.0, 35.0)):
        d = tmp_path / "seedcmp" / stamp
        d.mkdir(parents=True)
        (d / "seedcmp.json").write_text(json.dumps({
            "augment": True, "seed": {"throughput(utt/s)": seed},
            "ds2bench": {"throughput(utt/s)": ours}, "ratio(ds2bench/seed)": ours / seed}))
    newer = tmp_path / "seedcmp" / "20260103T000000"  # a reference-size comparison: not this row's
    newer.mkdir()
    (newer / "seedcmp.json").write_text(json.dumps({
        "model": "reference", "augment": True, "seed": {"throughput(utt/s)": 0.4},
        "ds2bench": {"throughput(utt/s)": 1.0}, "ratio(ds2bench/seed)": 2.5}))
    result = {"training": {"tiny": {"throughput_utt_s": 12.0}}, "seedcmp": latest(tmp_path),
              "pipeline": {"ratio_to_training": 40.0}, "logging": {"fraction_of_step": 1e-4}}
    result["seedcmp_reference"] = latest(tmp_path, "reference")
    row, ref_row = target_rows(result)[:2]
    assert row["measured"] == 3.5 and row["met"] is True and "20260102T000000" in row["note"]
    assert ref_row["measured"] == 2.5 and ref_row["met"] is False and "3x2560" in ref_row["target"]
    assert latest(tmp_path / "nothing") is None


def test_step_precision_switches_the_bf16_gemms_for_a_cpu_spec_only_and_restores():
    from harness.perf.measure import step_precision
    from reference.model import kernels

    kernels.set_bf16_gemm(False)
    with step_precision("bf16", torch.device("cpu")) as used:
        assert kernels.bf16_gemm() and used == "bf16"
    assert not kernels.bf16_gemm()
    with step_precision("bf16", torch.device("meta")) as used:  # not the CPU: IEEE stays
        assert not kernels.bf16_gemm() and used == "ieee"
    kernels.set_bf16_gemm(True)
    with step_precision("ieee", torch.device("cpu")) as used:
        assert not kernels.bf16_gemm() and used == "ieee"
    assert kernels.bf16_gemm()
    kernels.set_bf16_gemm(False)
