"""reference.train.precision: fp32 math mode on every switch, AMP that runs what it says."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from reference.config import FeatureConfig, ModelConfig
from reference.train import precision
from reference.train.precision import PrecisionError, apply_fp32_precision, plan_amp, rnn_dtypes

CPU = torch.device("cpu")


@pytest.fixture
def restore_flags():
    """These switches are process-wide: put them back as they were."""
    from reference.model import kernels

    b = torch.backends
    conv = precision._attr(b, "mkldnn.conv")
    saved_conv = precision._attr(conv, "fp32_precision")
    saved_bf16 = kernels.bf16_gemm()
    yield from _restore_accelerator_flags(b)
    if saved_conv is not None:
        conv.fp32_precision = saved_conv
    kernels.set_bf16_gemm(saved_bf16)


def _restore_accelerator_flags(b):
    if precision._new_api():
        saved = {p: precision._attr(b, p).fp32_precision for p, _ in precision._NEW_API}
        yield
        for p, v in saved.items():
            precision._attr(b, p).fp32_precision = v
    else:
        saved = (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, torch.get_float32_matmul_precision())
        yield
        b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


def test_fp32_precision_sets_every_switch(restore_flags):
    ieee = apply_fp32_precision("ieee")
    tf32 = apply_fp32_precision("tf32")
    assert tf32 == precision.precision_flags()
    cpu = {"cpu_gru_gemm_dtype", "cpu_conv2_dtype", "mkldnn_conv_fp32_precision",
           "mkldnn_matmul_fp32_precision"}
    acc_ieee = {k: v for k, v in ieee.items() if k not in cpu}
    acc_tf32 = {k: v for k, v in tf32.items() if k not in cpu}
    if precision._new_api():
        assert set(acc_ieee.values()) == {"ieee"} and set(acc_tf32.values()) == {"tf32"}
        assert set(acc_ieee) == {"cuda_matmul_fp32_precision", "cudnn_conv_fp32_precision",
                                 "cudnn_rnn_fp32_precision"}
    else:
        assert acc_ieee == {"cuda_matmul_allow_tf32": False, "cudnn_allow_tf32": False,
                            "float32_matmul_precision": "highest"}
        assert acc_tf32 == {"cuda_matmul_allow_tf32": True, "cudnn_allow_tf32": True,
                            "float32_matmul_precision": "high"}
    assert ieee["cpu_gru_gemm_dtype"] == tf32["cpu_gru_gemm_dtype"] == "float32"
    assert ieee["cpu_conv2_dtype"] == tf32["cpu_conv2_dtype"] == "float32"


def test_bf16_fp32_math_is_a_cpu_setting_and_says_what_it_set(restore_flags):
    from reference.model.kernels import bf16_gemm

    flags = apply_fp32_precision("bf16")
    assert bf16_gemm() and flags["cpu_gru_gemm_dtype"] == "bfloat16"
    assert flags["cpu_conv2_dtype"] == "bfloat16"
    # The accelerator switches stay IEEE; so do oneDNN's convolutions (slower in bf16
    # on the machine measured), even when an earlier setting had them in bf16.
    assert all(v in ("ieee", False, "highest") for k, v in flags.items()
               if k.startswith(("cuda", "cudnn", "float32")))
    conv = precision._attr(torch.backends, "mkldnn.conv")
    if precision._attr(conv, "fp32_precision") is not None:
        conv.fp32_precision = "bf16"
        flags = apply_fp32_precision("bf16")
        assert flags["mkldnn_conv_fp32_precision"] == "none"
        assert flags["mkldnn_matmul_fp32_precision"] != "bf16"  # the recurrent step: fp32
    back = apply_fp32_precision("ieee")
    assert not bf16_gemm() and back["cpu_gru_gemm_dtype"] == "float32"
    assert back["cpu_conv2_dtype"] == "float32"
    precision.check_fp32_precision("bf16", "cpu")
    with pytest.raises(PrecisionError, match="bf16 is a CPU setting.*on cuda"):
        precision.check_fp32_precision("bf16", "cuda")
    precision.check_fp32_precision("tf32", "cuda")


@pytest.mark.parametrize("rnn", ["gru", "lstm"])
def test_rnn_dtype_under_each_amp_setting_on_cpu(rnn):
    """What CPU autocast does to the RNN here, measured inside the model: the RNN's input
    comes out of the autocast convolutions in the low dtype, and both GRU and LSTM then
    compute in it (a bare nn.GRU fed float32 stays float32 under CPU autocast)."""
    cfg = ModelConfig(rnn_type=rnn)
    assert rnn_dtypes(cfg, FeatureConfig(), CPU, None) == {torch.float32}
    off = plan_amp("off", cfg, FeatureConfig(), CPU)
    assert off.info() == {"amp": "off", "autocast_dtype": None, "rnn_dtype": "float32",
                          "grad_scaler": False}
    bf16 = plan_amp("bf16", cfg, FeatureConfig(), CPU)
    assert bf16.info() == {"amp": "bf16", "autocast_dtype": "bfloat16", "rnn_dtype": "bfloat16",
                           "grad_scaler": False}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bare = nn.GRU(8, 8)(torch.randn(3, 2, 8))[0]
    assert bare.dtype == torch.float32
    try:
        fp16 = plan_amp("fp16", cfg, FeatureConfig(), CPU)
    except PrecisionError as err:  # a torch whose CPU kernels have no float16 RNN says so
        assert "train.amp=fp16 on cpu" in str(err)
    else:
        assert fp16.info()["rnn_dtype"] == "float16" and fp16.scaler is not None


def test_bf16_that_runs_as_half_is_refused(monkeypatch):
    monkeypatch.setattr(precision, "rnn_dtypes", lambda *a: {torch.float16})
    with pytest.raises(PrecisionError, match="RNN computes in float16 under bfloat16 autocast"):
        plan_amp("bf16", ModelConfig(rnn_type="lstm"), FeatureConfig(), CPU)


def test_failing_kernel_and_missing_scaler_are_clear_errors(monkeypatch):
    def boom(*_a):
        raise RuntimeError("could not create a primitive descriptor for the LSTM\nmore")
    monkeypatch.setattr(precision, "rnn_dtypes", boom)
    with pytest.raises(PrecisionError, match=r"train.amp=fp16 on cpu \(LSTM\): a training step "
                                             r"fails under autocast \(could not create a primitive "
                                             r"descriptor for the LSTM\); use train.amp=off or bf16$"):
        plan_amp("fp16", ModelConfig(rnn_type="lstm"), FeatureConfig(), CPU)
    monkeypatch.setattr(precision, "rnn_dtypes", lambda *a: {torch.float16})
    monkeypatch.setattr(precision, "_grad_scaler", lambda dev: None)
    with pytest.raises(PrecisionError, match="float16 needs a GradScaler"):
        plan_amp("fp16", ModelConfig(), FeatureConfig(), CPU)


def test_probe_leaves_the_seeded_initialisation_alone():
    torch.manual_seed(5)
    a = torch.rand(3)
    torch.manual_seed(5)
    rnn_dtypes(ModelConfig(rnn_type="gru"), FeatureConfig(), CPU, torch.bfloat16)
    assert torch.equal(torch.rand(3), a)


def test_fp16_step_is_scaled_unscaled_and_clipped():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = precision._grad_scaler(CPU)
    if scaler is None:
        pytest.skip("this torch has no CPU GradScaler")
    plan = precision.AmpPlan("fp16", torch.float16, "float16", scaler)
    moves = []
    for _ in range(30):  # the first steps overflow at the initial scale and are skipped
        before = model.weight.detach().clone()
        opt.zero_grad(set_to_none=True)  # as the trainer does before every step
        with plan.autocast("cpu"):
            loss = model(torch.ones(2, 4)).float().pow(2).sum() * 1e3
        plan.step(loss, opt, model.parameters(), clip_norm=1.0)
        moves.append(float((model.weight.detach() - before).norm()))
    assert moves[0] == 0.0 and scaler.get_scale() < 65536.0  # inf gradients: step skipped
    assert max(moves) > 0 and all(m <= 0.1 * 1.0 + 1e-6 for m in moves)  # lr x clipped norm
