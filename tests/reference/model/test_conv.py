"""reference.model.conv: the CPU training path (time padded to a quantum, output
cropped) gives the unpadded convolution's values and gradients."""
import pytest
import torch
from torch import nn

from reference.config import ModelConfig
from reference.model.conv import StridedConv2d
from reference.model.deepspeech2 import DeepSpeech2
from reference.model.kernels import CONV_FRAMES_QUANTUM


def _grads(conv: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> list[torch.Tensor]:
    conv.zero_grad()
    x = x.detach().requires_grad_(x.shape[1] > 1)  # conv1's input (features) needs no grad
    y = conv(x)
    (y * weight).sum().backward()
    out = [conv.weight.grad.clone(), conv.bias.grad.clone()]
    return out + ([x.grad.clone()] if x.requires_grad else [])


def _seen_frames(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the time length of every input F.conv2d gets (the fast path's and nn.Conv2d's)."""
    import reference.model.conv as C

    seen: list[int] = []
    real = C.F.conv2d
    monkeypatch.setattr(C.F, "conv2d", lambda a, *r, **k: seen.append(a.shape[-1]) or real(a, *r, **k))
    return seen


@pytest.mark.parametrize("cin, cout, kernel, stride, shape", [
    (1, 8, (41, 11), (2, 2), (3, 1, 161, 57)),    # conv1: odd time length, stride 2 both ways
    (8, 6, (21, 11), (2, 1), (2, 8, 61, 30)),     # conv2
    (4, 5, (3, 2), (3, 2), (2, 4, 14, 9)),        # strides that do not divide the input
    (3, 4, (7, 11), (2, 2), (2, 3, 30, 48)),      # a length already on the quantum
])
def test_training_path_equals_the_unpadded_convolution(cin, cout, kernel, stride, shape):
    """Values and every gradient, float64 (exact up to rounding)."""
    torch.manual_seed(0)
    native = nn.Conv2d(cin, cout, kernel, stride).double()
    fast = StridedConv2d(cin, cout, kernel, stride).double()
    fast.load_state_dict(native.state_dict())
    fast.forward = fast.fast_forward  # forward() takes it for float32 only
    x = torch.randn(shape, dtype=torch.double)
    torch.testing.assert_close(fast(x), native(x), rtol=1e-12, atol=1e-12)
    w = torch.randn_like(native(x))
    for a, b in zip(_grads(fast, x, w), _grads(native, x, w)):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("frames", [40, 48, 57])
def test_float32_training_sees_quantized_frames_and_eval_the_stock_kernel(monkeypatch, frames):
    torch.manual_seed(frames)
    native = nn.Conv2d(4, 6, (21, 11), (2, 1))
    fast = StridedConv2d(4, 6, (21, 11), (2, 1))
    fast.load_state_dict(native.state_dict())
    x = torch.randn(2, 4, 61, frames)
    seen = _seen_frames(monkeypatch)
    y = fast(x.requires_grad_())
    assert seen == [-(-frames // CONV_FRAMES_QUANTUM) * CONV_FRAMES_QUANTUM]
    assert y.shape == native(x).shape
    w = torch.randn_like(y)
    for a, b in zip(_grads(fast, x, w), _grads(native, x, w)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # no-grad (eval) takes the stock module, unpadded: same numbers
        expected = native(x)
        seen.clear()
        torch.testing.assert_close(fast(x), expected)
    assert seen == [frames]


def test_model_state_dict_keys_unchanged_and_channels_configurable():
    keys = set(DeepSpeech2(ModelConfig(hidden=16, layers=1)).state_dict())
    assert {"conv.0.weight", "conv.0.bias", "conv.3.weight", "conv.3.bias"} <= keys
    small = DeepSpeech2(ModelConfig(hidden=16, layers=1, conv_channels=8))
    assert small.conv[0].out_channels == 8 and small.conv[3].in_channels == 8
    assert small.rnns[0].fwd.input_size == 8 * 21


def test_weight_gradient_has_the_weight_layout():
    """conv1 (one input channel): the gradient's strides equal the weight's (DDP buckets)."""
    conv = StridedConv2d(1, 4, (41, 11), (2, 2))
    conv(torch.randn(2, 1, 161, 41)).sum().backward()
    assert conv.weight.grad.stride() == conv.weight.stride()


def test_stock_kernels_switch_takes_the_stock_module(monkeypatch):
    from reference.model.kernels import stock_kernels

    conv = StridedConv2d(2, 3, (5, 3), (2, 1))
    x = torch.randn(1, 2, 20, 10, requires_grad=True)
    seen = _seen_frames(monkeypatch)
    conv(x)
    assert seen == [CONV_FRAMES_QUANTUM]
    seen.clear()
    with stock_kernels():
        conv(x)
    assert seen == [10]  # nn.Conv2d's own forward, unpadded


@pytest.fixture
def bf16_policy():
    from reference.model.kernels import set_bf16_gemm

    set_bf16_gemm(True)
    yield
    set_bf16_gemm(False)


def _dtypes_seen(monkeypatch: pytest.MonkeyPatch) -> list[torch.dtype]:
    import reference.model.conv as C

    seen: list[torch.dtype] = []
    real = C.F.conv2d
    monkeypatch.setattr(C.F, "conv2d", lambda a, w, *r, **k: seen.append((a.dtype, w.dtype))
                        or real(a, w, *r, **k))
    return seen


def test_bf16_policy_runs_conv2_in_bf16_close_to_fp32(monkeypatch, bf16_policy):
    """Under train.fp32_precision bf16, a multi-channel convolution takes bf16 operands
    (fp32 parameters and gradients, bias added in fp32) and stays within bf16 rounding
    of the float64 convolution; every gradient flows."""
    torch.manual_seed(3)
    native = nn.Conv2d(16, 16, (11, 11), (2, 1)).double()
    fast = StridedConv2d(16, 16, (11, 11), (2, 1))
    fast.load_state_dict(native.float().state_dict())
    native.double()
    x = torch.randn(2, 16, 27, 40)
    seen = _dtypes_seen(monkeypatch)
    y = fast(x.requires_grad_())
    assert seen == [(torch.bfloat16, torch.bfloat16)] and y.dtype == torch.float32
    ref = native(x.double())
    scale = ref.abs().max().item()
    err = (y.double() - ref).abs().max().item()
    assert 1e-5 * scale < err < 2e-2 * scale  # rounded like bf16, not exact, not wrong
    w = torch.randn_like(ref)
    grads = _grads(fast, x, w.float())
    for a, b in zip(grads, _grads(native, x.double(), w)):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), b, rtol=3e-2, atol=3e-2 * b.abs().max().item())


def test_bf16_policy_keeps_conv1_and_eval_in_fp32(monkeypatch, bf16_policy):
    """One input channel (conv1: slower in bf16) and no-grad evaluation stay fp32."""
    conv1 = StridedConv2d(1, 16, (11, 11), (2, 2))
    conv2 = StridedConv2d(16, 16, (11, 11), (2, 1))
    seen = _dtypes_seen(monkeypatch)
    conv1(torch.randn(2, 1, 64, 40))
    with torch.no_grad():
        conv2(torch.randn(2, 16, 27, 20))
    assert seen == [(torch.float32, torch.float32)] * 2


def test_without_the_policy_conv2_stays_fp32(monkeypatch):
    conv2 = StridedConv2d(16, 16, (11, 11), (2, 1))
    seen = _dtypes_seen(monkeypatch)
    conv2(torch.randn(2, 16, 27, 20, requires_grad=True))
    assert seen == [(torch.float32, torch.float32)]
