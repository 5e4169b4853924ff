"""Strided Conv2d whose CPU training path pads time to a quantum (oneDNN's kernel cache).

DS2's front-end convolutions (no padding, strides (2,2)/(2,1)) see a new time
length on almost every training batch, and oneDNN JIT-compiles a kernel for
every new shape. On the CPU training path the input's frames are padded with
zeros up to a multiple of `CONV_FRAMES_QUANTUM` (reference/model/kernels.py)
and the output is cropped back to the frames the unpadded convolution gives:
the kept outputs read only real frames, the cropped ones get zero gradient,
so values and gradients are those of the unpadded convolution.

Until the eighth session this path also computed the weight gradient as a
dilated forward convolution, because oneDNN's own weight gradient had been
measured 5-9x slower than the forward. Measured again on torch 2.1.2 and
2.13.0 (2-core Xeon, quantized shapes), oneDNN's own is now the faster one:
tiny's conv1 0.82 against 1.66 ms and conv2 2.85 against 3.47 ms at batch 16;
reference-size conv1 14.5 against 77.6 ms and conv2 95 against 170 ms; the
whole tiny training step 87.5 -> 90.9 utt/s (interleaved A/B). So autograd's
native backward runs (docs/PERFORMANCE.md).

Under `train.fp32_precision: bf16` the path runs a multi-channel convolution
with bf16 operands (fp32 accumulation in oneDNN, the output rounded to bf16
and carried on in fp32, the bias added in fp32), as the GRU's large GEMMs
do; oneDNN's AMX kernels then take conv2 of tiny at 32 channels from 105 to
32 ms a step (one thread). A one-channel input (conv1) stays fp32: slower in
bf16.

Only the CPU takes this path; CUDA/MLU, eval and autocast keep the stock
module. The module is an `nn.Conv2d`, so state dicts and checkpoints are
unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reference.device import autocast_enabled
from reference.model.kernels import CONV_FRAMES_QUANTUM, bf16_gemm, fast_paths_enabled, round_up


class StridedConv2d(nn.Conv2d):
    """`nn.Conv2d` without padding whose CPU training path sees quantized time lengths."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                 stride: tuple[int, int], bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Anything but plain fp32 CPU training (autocast, other devices, eval) takes the
        # stock path: the padding is only measured, and only needed, there.
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
        if bf16_gemm() and x.dtype == torch.float32 and self.in_channels > 1:
            # train.fp32_precision bf16: bf16 operands, fp32 accumulation inside
            # oneDNN, the output rounded to bf16 and carried on in fp32 (as the
            # GRU's GEMMs); the bias is added in fp32. Only past the first layer:
            # with one input channel the bf16 kernels were slower (one thread,
            # batch 16: conv1 forward + backward 12.9 ms fp32, 16.0 ms bf16; the
            # 16-channel conv2 32.4 against 15.1 ms, docs/PERFORMANCE.md).
            y = F.conv2d(x.to(torch.bfloat16), self.weight.to(torch.bfloat16), None,
                         tuple(self.stride))
            y = y.float() if self.bias is None else torch.add(y, self.bias.view(1, -1, 1, 1))
        else:
            y = F.conv2d(x, self.weight, self.bias, tuple(self.stride))
        keep = (frames - self.kernel_size[1]) // self.stride[1] + 1
        return y[..., :keep]
