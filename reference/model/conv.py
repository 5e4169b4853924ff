"""Strided Conv2d whose weight gradient is a dilated convolution (CPU fast path).

DS2's front-end convolutions have large kernels (41×11, 21×11) and strides
(2,2)/(2,1). On CPU, oneDNN computes their *weight* gradient 5–9× slower than
the forward convolution of the same FLOPs (measured on this project's 2-core
machines: conv1 forward 34 ms, weight gradient 244 ms at batch 16 × 2 s). The
weight gradient of a strided convolution is itself a convolution:

    dW[o, i, kh, kw] = Σ_{b, y, x} dY[b, o, y, x] · X[b, i, s_h·y + kh, s_w·x + kw]

i.e. X with batch and channels swapped (batch = i, channels = b), convolved
with dY (out = o, in = b, kernel = the output's spatial size) at dilation =
the stride, cropped to the kernel size. That forward convolution runs at the
machine's normal conv rate. Results equal the native gradient up to fp32
summation order (pinned by tests/reference/model/test_conv.py).

Only the CPU uses the rewrite; CUDA/MLU keep their vendor kernels (cuDNN/CNNL
weight gradients are not slow there and the rewrite was never measured on
them). The module is an `nn.Conv2d`, so state dicts and checkpoints are
unchanged.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reference.device import autocast_enabled
from reference.model.kernels import CONV_FRAMES_QUANTUM, fast_paths_enabled, round_up


class _DilatedWgradConv2d(torch.autograd.Function):
    """conv2d (no padding, no dilation, groups 1) with the dilated weight gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                stride: tuple[int, int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride = stride
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, stride)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):
        x, weight = ctx.saved_tensors
        stride = ctx.stride
        grad_out = grad_out.contiguous()
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            # Input gradient: the native kernel (only the input half is asked for).
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, list(stride), [0, 0], [1, 1], False, [0, 0], 1,
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            kh, kw = weight.shape[2], weight.shape[3]
            # (C_in, B, H, W) ⋆ (C_out, B, H_out, W_out), dilation = stride → (C_in, C_out, ≥kh, ≥kw)
            full = F.conv2d(x.transpose(0, 1), grad_out.transpose(0, 1), dilation=stride)
            # Copy into the weight's own layout: `.contiguous()` keeps odd strides
            # on size-1 dims (conv1 has one input channel), which DDP's gradient
            # buckets reject with a warning and an extra copy.
            grad_w = torch.empty_like(weight).copy_(full[:, :, :kh, :kw].transpose(0, 1))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=(0, 2, 3))
        return grad_x, grad_w, grad_b, None


class StridedConv2d(nn.Conv2d):
    """`nn.Conv2d` without padding whose CPU weight gradient uses the dilated rewrite."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                 stride: tuple[int, int], bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Anything but plain fp32 CPU training (autocast, other devices, eval) takes the
        # stock path: the rewrite is only measured, and only needed, there.
        if (x.device.type != "cpu" or x.dtype != torch.float32 or not torch.is_grad_enabled()
                or autocast_enabled("cpu") or not fast_paths_enabled()):
            return super().forward(x)
        return self.fast_forward(x)

    def fast_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The CPU training path, whatever the dtype (tests check it in float64)."""
        # Time padded to a quantum so oneDNN reuses its kernels across batches
        # (reference/model/kernels.py); without padding in the convolution, the
        # outputs kept read only real frames, and the cropped ones get zero gradient.
        frames = x.shape[-1]
        padded = round_up(frames, CONV_FRAMES_QUANTUM)
        if padded != frames:
            x = F.pad(x, (0, padded - frames))
        y = _DilatedWgradConv2d.apply(x, self.weight, self.bias, tuple(self.stride))
        keep = (frames - self.kernel_size[1]) // self.stride[1] + 1
        return y[..., :keep]
