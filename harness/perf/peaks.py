"""What MFU is divided by, and the recurrence's memory-bandwidth bound.

MFU is only honest against the machine's best rate at the precision the model
runs. One 2048³ fp32 GEMM is not that: on a 2-core CPU a fresh clone's `make
perf` once printed 101 % MFU (27.3 utt/s against a "100 % ceiling" of 27.0),
because the model's own GEMMs ran faster than the square one. So:

* the peak is the best over several GEMM shapes — squares and each measured
  model's own (RNN input projection over T·B rows, the per-step recurrent
  product at the batch size, the weight gradient, the second convolution as
  an im2col GEMM) — measured in the same run, at the same thread count;
* per precision: IEEE fp32; TF32 where the device has it (CUDA: cuDNN runs
  convolutions and RNNs in TF32 by default, so fp32 models are held to the
  TF32 rate there); bf16/fp16 when the run uses autocast (`run_precision`).

The recurrence of an RNN layer cannot be faster than streaming its recurrent
weight matrix (gates·H² fp32 values: 79 MB for GRU 2560, 105 MB for LSTM) once
per time step forward and once backward; at batch 8 that, not arithmetic, is
the limit. `recurrence_bound_s` gives that time from a copy bandwidth measured
in the same run (meaningful when the weights do not fit in the caches).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator

import torch

from harness.perf.flops import CONV2, GATES, ModelShape, conv_out
from harness.perf.system import SEED
from reference.device import synchronize

DTYPES = {"ieee": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16,
          "fp16": torch.float16}


def run_precision(device: torch.device, amp: str = "off") -> str:
    """The fastest arithmetic the model's kernels may use: the MFU denominator's precision."""
    if amp in ("bf16", "fp16"):
        return amp
    if device.type == "cuda":
        b = torch.backends
        if b.cudnn.allow_tf32 or b.cuda.matmul.allow_tf32:
            return "tf32"
    if device.type == "mlu":  # torch_mlu's switches, where present
        cnnl = getattr(torch.backends, "cnnl", None)
        if cnnl is not None and getattr(cnnl, "allow_tf32", False):
            return "tf32"
    return "ieee"


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has bf16 arithmetic in hardware (AMX or AVX512-BF16).

    Read from the kernel's CPU flags: torch's own helpers (`_is_mkldnn_bf16_supported`)
    also say yes where oneDNN only emulates bf16 on AVX-512, which is no peak.
    False where the flags cannot be read (not Linux).
    """
    try:
        with open(cpuinfo, encoding="utf-8") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh
                          if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def precisions_to_measure(device: torch.device, amp: str = "off") -> list[str]:
    """IEEE always; TF32 where it exists; bf16 on accelerators, on CPUs with bf16
    hardware (for information: the fp32 model is still divided by the IEEE rate)
    and whenever the run autocasts to it; fp16 when the run autocasts to it."""
    out = ["ieee"]
    if device.type == "cuda" or (device.type == "mlu" and hasattr(torch.backends, "cnnl")):
        out.append("tf32")
    if amp in ("bf16", "fp16"):
        out.append(amp)
    elif device.type != "cpu" or cpu_has_native_bf16():
        out.append("bf16")
    return out


def unmeasured_precisions(device: torch.device, measured: list[str]) -> dict[str, str]:
    """Why a precision a reader may look for has no peak row (so its absence is not
    mistaken for a missing feature): today only bf16 on a CPU without bf16 hardware."""
    if device.type == "cpu" and "bf16" not in measured:
        return {"bf16": "no bf16 hardware in this CPU's flags (amx_bf16 / avx512_bf16)"}
    return {}


@contextmanager
def _matmul_mode(device: torch.device, precision: str) -> Iterator[None]:
    """TF32 on or off for fp32 GEMMs (CUDA; elsewhere fp32 GEMMs are IEEE here)."""
    if device.type != "cuda":
        yield
        return
    m = torch.backends.cuda.matmul
    before = m.allow_tf32
    m.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        m.allow_tf32 = before


def model_gemm_shapes(model_cfg: Any, bins: int, batch: int, frames: int
                      ) -> list[tuple[str, int, int, int]]:
    """(name, m, k, n) of the model's main GEMMs for a batch of `frames`-frame utterances."""
    shape = ModelShape.of(model_cfg, bins)
    t1 = conv_out(frames, 11, 2)
    t2 = conv_out(t1, CONV2["kernel"][1], CONV2["stride"][1])
    g, h, rows = GATES[shape.rnn_type], shape.hidden, max(1, t2 * batch)
    ch = shape.conv_channels
    kh, kw = shape.freq_kernels[1], CONV2["kernel"][1]
    tag = f"{shape.rnn_type}{h}"
    return [(f"{tag} input projection", rows, shape.rnn_input, g * h),
            (f"{tag} recurrent b{batch}", batch, h, g * h),
            (f"{tag} weight gradient", g * h, rows, h),
            (f"{tag} conv2 im2col", max(1, batch * shape.conv2_bins * t2), ch * kh * kw, ch)]


def gemm_gflops(device: torch.device, m: int, k: int, n: int, precision: str, reps: int
                ) -> float:
    """Best-of-`reps` rate of an (m×k)·(k×n) GEMM at `precision`, GFLOP/s."""
    dtype = DTYPES[precision]
    g = torch.Generator().manual_seed(SEED)
    a = torch.randn(m, k, generator=g).to(device=device, dtype=dtype)
    b = torch.randn(k, n, generator=g).to(device=device, dtype=dtype)
    c = torch.empty(m, n, device=device, dtype=dtype)
    with _matmul_mode(device, precision):
        torch.matmul(a, b, out=c)  # warm-up: kernel choice, allocation
        best = 0.0
        for _ in range(reps):
            synchronize(device)
            t0 = time.perf_counter()
            torch.matmul(a, b, out=c)
            synchronize(device)
            best = max(best, 2.0 * m * k * n / (time.perf_counter() - t0) / 1e9)
    return best


def precision_peaks(device: torch.device, shapes: list[tuple[str, int, int, int]],
                    precisions: list[str], reps: int) -> dict[str, Any]:
    """{precision: {"best_gflops", "best_shape", "shapes": [...]}}: the best over `shapes`."""
    out: dict[str, Any] = {}
    for prec in precisions:
        rows = []
        for name, m, k, n in shapes:
            try:
                rate = gemm_gflops(device, m, k, n, prec, reps)
            except RuntimeError as err:  # a dtype the device cannot multiply
                rows.append({"shape": name, "m": m, "k": k, "n": n, "gflops": None,
                             "error": str(err).splitlines()[0]})
                continue
            rows.append({"shape": name, "m": m, "k": k, "n": n, "gflops": rate})
        rated = [r for r in rows if r["gflops"]]
        best = max(rated, key=lambda r: r["gflops"]) if rated else None
        out[prec] = {"best_gflops": best["gflops"] if best else None,
                     "best_shape": best["shape"] if best else None, "shapes": rows}
    return out


def copy_bandwidth_gbs(device: torch.device, mbytes: int = 256, reps: int = 3) -> float:
    """Best device-memory copy rate, GB/s, counting bytes read plus bytes written."""
    n = mbytes * (1 << 20) // 4
    src = torch.ones(n, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = 0.0
    for _ in range(reps):
        synchronize(device)
        t0 = time.perf_counter()
        dst.copy_(src)
        synchronize(device)
        best = max(best, 2 * n * 4 / (time.perf_counter() - t0) / 1e9)
    return best


def recurrent_weight_bytes(model_cfg: Any) -> int:
    """fp32 bytes of one direction's recurrent matrix (gates·H×H)."""
    return GATES[model_cfg.rnn_type] * model_cfg.hidden * model_cfg.hidden * 4


def recurrence_bound_s(model_cfg: Any, padded_steps: int, bandwidth_gbs: float) -> float:
    """Least time to stream every recurrent weight once per time step, forward and
    backward, over `padded_steps` (the sum over training steps of the batch's output
    length: every utterance of a batch runs the batch's full recurrence)."""
    dirs = 2 if model_cfg.bidirectional else 1
    per_step = model_cfg.layers * dirs * 2 * recurrent_weight_bytes(model_cfg)
    return padded_steps * per_step / (bandwidth_gbs * 1e9)
