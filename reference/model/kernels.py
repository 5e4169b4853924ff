"""The switches of the CPU fast paths (`reference/model/conv.py`, `reference/model/gru.py`).

The fast paths are exact reformulations, chosen per call; this switch turns
them off so that anyone can check that claim on their own data, or measure
what they buy: set ``DS2BENCH_STOCK_KERNELS=1`` in the environment (a run, an
eval, a test), or wrap code in `stock_kernels()` (what `make perf` does for
its in-run A/B rows).

A second, separate switch is a precision, not a reformulation:
`set_bf16_gemm(True)` (what `train.fp32_precision: bf16` sets) lets the GRU's
large GEMMs and the multi-channel convolution (conv2) run with bfloat16
operands.

Shape quanta: oneDNN builds (JIT-compiles) a kernel for every new problem shape
and keeps the last 1024 in a cache. Training batches are padded to their own
longest utterance, so nearly every step brings new lengths, and on this
project's 2-core machine building the kernels cost more than running them:
front-end convolutions, batch 16, forward + backward, 22 ms a step on new
lengths against 14 ms on lengths seen before (76 against 16 ms with bf16
convolutions); a bf16 (2, M, 257)·(2, 257, 768) GEMM 8.4 against 2.3 ms. The
fast paths therefore round the lengths their big kernels see up to a quantum
(zero padding, results cropped: exact), so a whole run reuses a few dozen
kernels.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

ENV = "DS2BENCH_STOCK_KERNELS"
# Input frames of the front-end convolutions are padded to a multiple of this
# (<= 15 extra frames of a few hundred), the GRU's T·B rows of its four large
# GEMMs to a multiple of GEMM_ROWS_QUANTUM (16 time steps at batch 16).
CONV_FRAMES_QUANTUM = 16
GEMM_ROWS_QUANTUM = 256
_forced_stock = 0  # nesting depth of stock_kernels()
_bf16_gemm = False  # train.fp32_precision bf16 (reference/train/precision.py)


def set_bf16_gemm(on: bool) -> None:
    """Let the CPU GRU's large GEMMs and conv2's training path take bfloat16 operands
    (fp32 accumulation; the products come back rounded to bfloat16 and are carried
    on in fp32)."""
    global _bf16_gemm
    _bf16_gemm = bool(on)


def bf16_gemm() -> bool:
    """Whether `train.fp32_precision: bf16` is in force (set by the trainer)."""
    return _bf16_gemm


def round_up(n: int, quantum: int) -> int:
    """The smallest multiple of `quantum` that is >= n."""
    return -(-n // quantum) * quantum


def fast_paths_enabled() -> bool:
    """False under `stock_kernels()` or when DS2BENCH_STOCK_KERNELS is set to a true value."""
    if _forced_stock:
        return False
    return os.environ.get(ENV, "").strip().lower() in ("", "0", "false", "no")


@contextmanager
def stock_kernels() -> Iterator[None]:
    """Run the enclosed code with the stock PyTorch kernels only."""
    global _forced_stock
    _forced_stock += 1
    try:
        yield
    finally:
        _forced_stock -= 1
