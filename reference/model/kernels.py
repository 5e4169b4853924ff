"""The switches of the CPU fast paths (`reference/model/conv.py`, `reference/model/gru.py`).

The fast paths are exact reformulations, chosen per call; this switch turns
them off so that anyone can check that claim on their own data, or measure
what they buy: set ``DS2BENCH_STOCK_KERNELS=1`` in the environment (a run, an
eval, a test), or wrap code in `stock_kernels()` (what `make perf` does for
its in-run A/B rows).

A second, separate switch is a precision, not a reformulation:
`set_bf16_gemm(True)` (what `train.fp32_precision: bf16` sets) lets the GRU's
large GEMMs run in bfloat16.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

ENV = "DS2BENCH_STOCK_KERNELS"
_forced_stock = 0  # nesting depth of stock_kernels()
_bf16_gemm = False  # train.fp32_precision bf16 (reference/train/precision.py)


def set_bf16_gemm(on: bool) -> None:
    """Let the CPU GRU's large GEMMs compute in bfloat16 (fp32 in and out)."""
    global _bf16_gemm
    _bf16_gemm = bool(on)


def bf16_gemm() -> bool:
    """Whether `train.fp32_precision: bf16` is in force (set by the trainer)."""
    return _bf16_gemm


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
