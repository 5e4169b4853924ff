"""Host memory allocator settings for training (glibc's malloc, through `mallopt`).

Why: a CPU training step allocates and frees tens of megabytes of short-lived
tensors (the GRU's per-layer gate buffers, GEMM operands, gradients). glibc
serves every block over its mmap threshold with a fresh `mmap` and returns it
to the kernel on `free`, and trims the heap top whenever more than the trim
threshold is free; so the next step touches brand-new pages again and pays a
page fault, and the kernel's zeroing, per 4 KiB. Measured on the 2-core
benchmark VM (tiny's training step, batch 16): 3300-10200 minor faults per
step with the defaults, ~1700 with the settings below, and 5-7 % more utt/s
in four of four alternating runs (docs/PERFORMANCE.md). Intel's PyTorch CPU
guides get the same effect by preloading jemalloc or tcmalloc; this needs no
library beyond the C runtime the interpreter already runs on.

What it sets: the mmap threshold to glibc's maximum (32 MiB on 64-bit), so the
step's blocks come from the heap and are reused; the trim threshold to 1 GiB
and the top pad to 64 MiB, so freed heap memory stays with the process. The
heap can therefore keep up to a step's peak of freed memory, which the run's
resident set already reached anyway.

Left alone, and reported so, when the C runtime is not glibc (macOS, musl)
or the user chose their own allocator or malloc tunables (`LD_PRELOAD` of
another malloc, `MALLOC_*_` environment variables, `GLIBC_TUNABLES`): the run
directory says which (`ds2_host_malloc`). Numerics do not change: only where
the bytes live.
"""
from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

# mallopt parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

MIB = 1 << 20
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2 (32 MiB on 64-bit).
SETTINGS = {"mmap_threshold": (M_MMAP_THRESHOLD, 32 * MIB),
            "trim_threshold": (M_TRIM_THRESHOLD, 1024 * MIB),
            "top_pad": (M_TOP_PAD, 64 * MIB)}

# What a user sets to choose their own allocator behaviour; any of these wins.
USER_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
            "MALLOC_ARENA_MAX", "GLIBC_TUNABLES")
OTHER_MALLOCS = ("jemalloc", "tcmalloc", "mimalloc")

_applied: dict[str, Any] | None = None  # what mallopt set, once per process (process-wide)


def _glibc() -> Any | None:
    """The process's C runtime if it is glibc (has gnu_get_libc_version and mallopt)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        version = libc.gnu_get_libc_version
        libc.mallopt  # noqa: B018 - a missing symbol raises AttributeError
    except (OSError, AttributeError):
        return None
    version.restype = ctypes.c_char_p
    return libc


def user_choice(env: dict[str, str] | None = None) -> str | None:
    """Why the user's own allocator settings apply (a short reason), or None."""
    env = os.environ if env is None else env
    preload = env.get("LD_PRELOAD", "")
    for name in OTHER_MALLOCS:
        if name in preload:
            return f"LD_PRELOAD {name}"
    for key in USER_ENV:
        if key in env:
            return f"environment {key}"
    return None


def tune_host_malloc(enabled: bool = True) -> dict[str, Any]:
    """Apply `SETTINGS` once per process (when `enabled` and glibc is the runtime
    and the user chose nothing); return what holds, for the run's log:
    ``{"mode": "tuned" | "default" | "user" | "unavailable", ...}``."""
    global _applied
    if _applied is not None:
        return dict(_applied)  # already set in this process; not undone by a later run
    if not enabled:
        return {"mode": "default", "reason": "train.host_malloc: default"}
    reason = user_choice()
    if reason:
        return {"mode": "user", "reason": reason}
    libc = _glibc()
    if libc is None:
        return {"mode": "unavailable", "reason": "the C runtime is not glibc"}
    refused = [name for name, (param, value) in SETTINGS.items()
               if libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) != 1]
    info: dict[str, Any] = {"mode": "tuned", "glibc": libc.gnu_get_libc_version().decode(),
                            **{name: value for name, (_, value) in SETTINGS.items()
                               if name not in refused}}
    if refused:  # mallopt returns 1 on success; an older glibc may cap a value
        info["refused"] = refused
    _applied = info
    return dict(info)
