"""reference.model.conv: the dilated weight-gradient rewrite equals the native conv gradient."""
import pytest
import torch
from torch import nn

from reference.config import ModelConfig
from reference.model.conv import StridedConv2d, _DilatedWgradConv2d
from reference.model.deepspeech2 import DeepSpeech2


def _uses_rewrite(y: torch.Tensor) -> bool:
    """Whether the dilated-wgrad Function is in y's graph (behind the time crop)."""
    todo, seen = [y.grad_fn], set()
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if "DilatedWgrad" in type(fn).__name__:
            return True
        todo.extend(f for f, _ in fn.next_functions)
    return False


def _grads(conv: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor) -> list[torch.Tensor]:
    conv.zero_grad()
    x = x.detach().requires_grad_(x.shape[1] > 1)  # conv1's input (features) needs no grad
    y = conv(x)
    (y * weight).sum().backward()
    out = [conv.weight.grad.clone(), conv.bias.grad.clone()]
    return out + ([x.grad.clone()] if x.requires_grad else [])


@pytest.mark.parametrize("cin, cout, kernel, stride, shape", [
    (1, 8, (41, 11), (2, 2), (3, 1, 161, 57)),    # conv1: odd time length, stride 2 both ways
    (8, 6, (21, 11), (2, 1), (2, 8, 61, 30)),     # conv2
    (4, 5, (3, 2), (3, 2), (2, 4, 14, 9)),        # strides that do not divide the input
])
def test_gradients_equal_native(cin, cout, kernel, stride, shape):
    torch.manual_seed(0)
    native = nn.Conv2d(cin, cout, kernel, stride).double()
    fast = StridedConv2d(cin, cout, kernel, stride).double()
    fast.load_state_dict(native.state_dict())
    x = torch.randn(shape, dtype=torch.double)
    w = torch.randn_like(native(x))
    # The module only takes the rewrite for float32; call the Function directly so
    # the algebra is checked in float64 (exact up to rounding).
    fast.forward = lambda inp: _DilatedWgradConv2d.apply(inp, fast.weight, fast.bias, stride)
    for a, b in zip(_grads(fast, x, w), _grads(native, x, w)):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_float32_training_path_is_taken_and_close():
    torch.manual_seed(1)
    native = nn.Conv2d(4, 6, (21, 11), (2, 1))
    fast = StridedConv2d(4, 6, (21, 11), (2, 1))
    fast.load_state_dict(native.state_dict())
    x = torch.randn(2, 4, 61, 40)
    y = fast(x.requires_grad_())
    assert _uses_rewrite(y)
    w = torch.randn_like(y)
    for a, b in zip(_grads(fast, x, w), _grads(native, x, w)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # no-grad (eval) takes the stock kernel: same numbers
        torch.testing.assert_close(fast(x), native(x))


def test_model_state_dict_keys_unchanged_and_channels_configurable():
    keys = set(DeepSpeech2(ModelConfig(hidden=16, layers=1)).state_dict())
    assert {"conv.0.weight", "conv.0.bias", "conv.3.weight", "conv.3.bias"} <= keys
    small = DeepSpeech2(ModelConfig(hidden=16, layers=1, conv_channels=8))
    assert small.conv[0].out_channels == 8 and small.conv[3].in_channels == 8
    assert small.rnns[0].fwd.input_size == 8 * 21


def test_weight_gradient_has_the_weight_layout():
    """conv1 (one input channel): the gradient's strides equal the weight's (DDP buckets)."""
    conv = StridedConv2d(1, 4, (41, 11), (2, 2))
    conv(torch.randn(2, 1, 161, 41)).sum().backward()  # no crop needed: the bad case
    assert conv.weight.grad.stride() == conv.weight.stride()


def test_stock_kernels_switch_takes_the_native_gradient():
    from reference.model.kernels import stock_kernels

    conv = StridedConv2d(2, 3, (5, 3), (2, 1))
    x = torch.randn(1, 2, 20, 10, requires_grad=True)
    assert _uses_rewrite(conv(x))
    with stock_kernels():
        assert not _uses_rewrite(conv(x))


@pytest.mark.parametrize("frames", [40, 48, 57])
def test_kernels_see_quantized_frames_and_outputs_are_exact(monkeypatch, frames):
    """The fast path pads time to CONV_FRAMES_QUANTUM for oneDNN's kernel cache: every
    convolution it runs (forward and weight gradient) sees a padded length, and the
    output, cropped, keeps the unpadded shape and equals the unpadded convolution
    (float64 through the same Function: exact up to rounding)."""
    import reference.model.conv as C
    from reference.model.kernels import CONV_FRAMES_QUANTUM

    torch.manual_seed(frames)
    conv = StridedConv2d(3, 4, (7, 11), (2, 2)).double()
    x = torch.randn(2, 3, 30, frames, dtype=torch.double)
    w = torch.randn(2, 4, 12, (frames - 11) // 2 + 1, dtype=torch.double)
    ref = _DilatedWgradConv2d.apply(x, conv.weight, conv.bias, (2, 2))
    ref_grads = torch.autograd.grad((ref * w).sum(), [conv.weight, conv.bias])
    seen = []
    real = C.F.conv2d
    monkeypatch.setattr(C.F, "conv2d", lambda a, *r, **k: seen.append(a.shape) or real(a, *r, **k))
    y = conv.fast_forward(x)  # forward() takes it for float32 only
    grads = torch.autograd.grad((y * w).sum(), [conv.weight, conv.bias])
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert len(seen) == 2 and all(s[-1] % CONV_FRAMES_QUANTUM == 0 for s in seen)
