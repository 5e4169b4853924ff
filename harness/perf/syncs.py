"""Host↔device synchronisations of a piece of code, counted on any device (CPU too).

`count_syncs()` is a `TorchFunctionMode` that follows, for every tensor the
code makes, which side it would live on with an accelerator — the **device**
(parameters, gradients, optimizer state, anything computed from a device
tensor or created with ``device=``) or the **host** (tensors registered with
`host(...)`, e.g. a batch's collated tensors, and whatever is computed from
host tensors only) — and counts each operation that, on an accelerator,
makes the host wait for the device:

* reading a device value: ``.item()``, ``.tolist()``, ``.numpy()``,
  ``bool()/int()/float()`` of a tensor (also via ``if``, f-strings), ``.cpu()``,
  ``host_tensor.copy_(device_tensor)``;
* operations whose output size depends on device values: ``nonzero``,
  ``argwhere``, ``masked_select``, boolean-mask indexing, ``unique``,
  ``repeat_interleave`` without ``output_size``, one-argument ``where``;
* host → device copies that block: ``.to(device)`` without
  ``non_blocking=True``, ``torch.tensor(data, device=...)``.

On CPU the host and the device are the same `torch.device`, so sides are told
apart by how the code moves data: ``.to(device, non_blocking=True)`` of a host
tensor (what `reference.data.features.to_device` does) makes a device tensor,
as does creating one with ``device=``; code computing on the host creates its
tensors without a ``device`` argument.

So an instrumented CPU run tells what the same code would do on a GPU or MLU.
Not seen: synchronisations inside vendor kernels (an operator that copies its
own arguments with a blocking copy) and the autograd engine's; on CUDA,
`cuda_sync_warnings` cross-checks with `torch.cuda.set_sync_debug_mode`, which
sees those too. `make device-check` can call both (see docs/PERFORMANCE.md).

On CPU, ``.to(device)`` and ``.cpu()`` return the tensor itself; under the
counter such a no-op move returns a copy instead, so that the host and device
sides stay distinct objects, as they are on an accelerator (values unchanged).
"""
from __future__ import annotations

import functools
import sys
import warnings
import weakref
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

T = torch.Tensor
# Reading a device value on the host.
_READS = {T.item: "item", T.tolist: "tolist", T.numpy: "numpy", T.__bool__: "bool",
          T.__int__: "int", T.__float__: "float", T.__index__: "index", T.__complex__: "complex",
          T.cpu: "cpu", T.__format__: "format"}
# Output shape depends on device values: the host must wait to allocate it.
_DATA_DEPENDENT = {torch.nonzero: "nonzero", T.nonzero: "nonzero", torch.argwhere: "argwhere",
                   T.argwhere: "argwhere", torch.masked_select: "masked_select",
                   T.masked_select: "masked_select", torch.unique: "unique", T.unique: "unique",
                   torch.unique_consecutive: "unique_consecutive",
                   T.unique_consecutive: "unique_consecutive"}
_INDEXING = {T.__getitem__: "bool-mask index", T.__setitem__: "bool-mask index"}
_CREATE_FROM_DATA = {torch.tensor: "tensor(data, device=)", torch.as_tensor: "as_tensor(data, device=)"}
_MOVES = {T.to, T.cuda}


class SyncCounter(TorchFunctionMode):
    """Counts would-be host syncs (see the module docstring); `counts` by kind, `total`."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.sites: Counter[str] = Counter()  # "kind at file:line" of the caller, for a reader
        self._side: dict[int, tuple[weakref.ref, str]] = {}

    # ---------------------------------------------------------------- sides
    def mark(self, t: torch.Tensor, side: str) -> None:
        key = id(t)
        self._side[key] = (weakref.ref(t, lambda _r, k=key: self._side.pop(k, None)), side)

    def side(self, t: torch.Tensor) -> str:
        entry = self._side.get(id(t))
        if entry is not None and entry[0]() is t:
            return entry[1]
        return "device"  # parameters, gradients, optimizer state, ...

    def _count(self, kind: str) -> None:
        self.counts[kind] += 1
        frame = sys._getframe(2)
        while frame is not None and ("/torch/" in frame.f_code.co_filename
                                     or frame.f_code.co_filename == __file__):
            frame = frame.f_back
        where = f"{frame.f_code.co_filename.rsplit('/', 3)[-1]}:{frame.f_lineno}" if frame else "?"
        self.sites[f"{kind} at {where}"] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    # ------------------------------------------------------------- dispatch
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat, _ = tree_flatten((args, kwargs))
        tensors = [a for a in flat if isinstance(a, torch.Tensor)]
        on_device = any(self.side(t) == "device" for t in tensors)
        self_t = args[0] if args and isinstance(args[0], torch.Tensor) else None
        target = self._move_target(func, args, kwargs)
        if func in _READS and self_t is not None and self.side(self_t) == "device":
            self._count(_READS[func])
        elif func in _DATA_DEPENDENT and on_device:
            self._count(_DATA_DEPENDENT[func])
        elif func is torch.where and len(args) + len(kwargs) == 1 and on_device:
            self._count("where(cond)")
        elif func in (torch.repeat_interleave, T.repeat_interleave) and on_device \
                and kwargs.get("output_size") is None:
            self._count("repeat_interleave")
        elif func in _INDEXING and self._bool_index(args[1:2], tensors[1:]):
            self._count(_INDEXING[func])
        elif func in _CREATE_FROM_DATA and kwargs.get("device") is not None and not tensors:
            self._count(_CREATE_FROM_DATA[func])
        elif func is T.copy_ and self.side(args[0]) == "host" and len(args) > 1 \
                and isinstance(args[1], torch.Tensor) and self.side(args[1]) == "device":
            self._count("device-to-host copy_")
        elif target == "device" and self_t is not None and self.side(self_t) == "host" \
                and not kwargs.get("non_blocking", False):
            self._count("blocking host-to-device copy")
        out = func(*args, **kwargs)
        return self._mark_outputs(func, out, self_t, target, on_device, kwargs)

    def _move_target(self, func, args, kwargs) -> str | None:
        """'device' / 'host' for a copy between sides, None for anything else."""
        if func is T.cpu:
            return "host"
        if func not in _MOVES:
            return None
        if func is T.cuda or kwargs.get("device") is not None:
            return "device"
        for a in args[1:]:
            if isinstance(a, torch.Tensor):
                return self.side(a)
            if isinstance(a, (torch.device, str)):
                return "device"  # the step's `.to(device)`; host copies use .cpu()
        return None  # a dtype conversion: same side

    def _bool_index(self, index: tuple, tensors: list[torch.Tensor]) -> bool:
        flat, _ = tree_flatten(index)
        return any(isinstance(a, torch.Tensor) and a.dtype == torch.bool
                   and self.side(a) == "device" for a in flat)

    def _mark_outputs(self, func, out, self_t, target, on_device, kwargs):
        if target is not None and self_t is not None and isinstance(out, torch.Tensor):
            if out is self_t and self.side(self_t) != target:
                with torch._C.DisableTorchFunction():
                    out = out.clone()  # a real move makes a new tensor
            self.mark(out, target)
            return out
        side = "device" if on_device or kwargs.get("device") is not None else "host"
        outs, _ = tree_flatten(out)
        for o in outs:
            if isinstance(o, torch.Tensor) and o is not self_t:
                self.mark(o, side)
        return out


class _Seen(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.funcs: set = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.funcs.add(func)
        return func(*args, **(kwargs or {}))


@functools.lru_cache(maxsize=None)  # a property of the installed torch: probe once
def _indexing_reaches_modes() -> bool:
    """Whether `t[mask]` / `t[mask] = v` reach a TorchFunctionMode on this torch.

    torch 2.1 (torch_mlu's oldest pairing) runs Tensor.__getitem__/__setitem__
    in C without consulting modes: a boolean-mask index would go uncounted.
    """
    t = torch.zeros(2)
    with _Seen() as seen:
        _ = t[t > 0]
        t[t > 0] = 1.0
    return T.__getitem__ in seen.funcs and T.__setitem__ in seen.funcs


def _routed(orig: Callable) -> Callable:
    """`orig` as a Python method that dispatches to the active modes first."""
    from torch.overrides import handle_torch_function

    def method(self, *args):
        return handle_torch_function(orig, (self,), self, *args)
    return method


_MISSING = object()


@contextmanager
def _indexing_visible() -> Iterator[None]:
    """Where indexing bypasses modes, route torch.Tensor's __getitem__/__setitem__
    through them for the block's duration (as Python wrappers of the C methods, which
    stay the keys of `_INDEXING`); elsewhere nothing changes."""
    if _indexing_reaches_modes():
        yield
        return
    saved = {name: T.__dict__.get(name, _MISSING) for name in ("__getitem__", "__setitem__")}
    for name in saved:
        setattr(T, name, _routed(getattr(T, name)))
    try:
        yield
    finally:
        for name, orig in saved.items():
            if orig is _MISSING:
                delattr(T, name)
            else:
                setattr(T, name, orig)


@contextmanager
def count_syncs(host: Iterable[torch.Tensor] = ()) -> Iterator[SyncCounter]:
    """Count would-be syncs in the block; `host` lists tensors that live on the host."""
    counter = SyncCounter()
    for t in host:
        counter.mark(t, "host")
    # numpy → tensor bypasses __torch_function__; its result is always a host tensor.
    real = torch.from_numpy

    def from_numpy(array):
        out = real(array)
        counter.mark(out, "host")
        return out

    torch.from_numpy = from_numpy
    try:
        with _indexing_visible(), counter:
            yield counter
    finally:
        torch.from_numpy = real


def batch_host_tensors(batch: Any) -> list[torch.Tensor]:
    """The host tensors of a `reference.data.loader.Batch` (what `count_syncs(host=)` wants)."""
    return [batch.wave, batch.lengths, batch.targets, batch.target_lengths]


def optimizer_host_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Optimizer state that lives on the host on an accelerator: 0-dim CPU tensors (Adam's
    step count without ``capturable``); everything else in the state is device memory."""
    return [v for st in optimizer.state.values() for v in st.values()
            if isinstance(v, torch.Tensor) and v.dim() == 0 and v.device.type == "cpu"]


def cuda_sync_warnings(fn: Callable[[], Any]) -> int | None:
    """Synchronising CUDA calls made by `fn()`, as `torch.cuda.set_sync_debug_mode("warn")`
    reports them (vendor-internal ones included); None where CUDA is not available."""
    cuda = getattr(torch, "cuda", None)
    if cuda is None or not cuda.is_available() or not hasattr(cuda, "set_sync_debug_mode"):
        return None
    previous = cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            cuda.set_sync_debug_mode(previous)
    cuda.synchronize()  # after the mode is reset: this wait is the caller's, not fn's
    return sum(1 for w in caught if "synchroniz" in str(w.message).lower())


def device_step_check(device: torch.device, steps: int = 5, batch: int = 8,
                      hidden: int = 2560, layers: int = 3) -> dict[str, Any]:
    """For `make device-check`: the training step's syncs and throughput on `device`.

    Builds the reference-size model (GRU `layers`×`hidden`, batch `batch`) on
    synthetic 2 s utterances and reports: the instrumented count of one step
    (`count_syncs`), on CUDA the `set_sync_debug_mode("warn")` count and
    whether the step runs under ``"error"``, and utt/s of the masked-update
    step beside the same step reading the finite flag on the host every step
    (what the old step did: one sync per step). Runs on CPU too (small sizes
    advisable there).
    """
    import time as _time

    from harness.perf.sources import synthetic_items, to_batch
    from reference.config import AugmentConfig, FeatureConfig, ModelConfig, OptimConfig
    from reference.model.deepspeech2 import DeepSpeech2
    from reference.device import synchronize
    from reference.train.optim import build_optimizer
    from reference.train.step import train_step, use_device_step_counts

    feat, aug = FeatureConfig(), AugmentConfig()
    torch.manual_seed(0)
    model = DeepSpeech2(ModelConfig("gru", hidden, layers, False), feat).to(device).train()
    opt = build_optimizer(OptimConfig(), model.parameters(), batch)
    use_device_step_counts(opt, device)
    items = synthetic_items(batch * (steps + 1))
    batches = [to_batch(items[k * batch:(k + 1) * batch]) for k in range(steps + 1)]

    def step(b, host_decides: bool) -> None:
        train_step(model, opt, b, feat=feat, aug=aug, seed=1, epoch=2, tempo_cap=None,
                   device=device, clip_norm=400.0, host_decides=host_decides)

    step(batches[0], False)  # warm-up
    with count_syncs(host=batch_host_tensors(batches[0]) + optimizer_host_tensors(opt)) as c:
        step(batches[0], False)
    report: dict[str, Any] = {"device": str(device), "instrumented_syncs": c.total,
                              "instrumented_sites": dict(c.sites),
                              "cuda_sync_debug_warnings": cuda_sync_warnings(
                                  lambda: step(batches[0], False))}
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("error")
        try:
            step(batches[0], False)
            report["error_mode"] = "ok: no synchronising call in the step"
        except RuntimeError as err:
            report["error_mode"] = f"raised: {str(err).splitlines()[0]}"
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for key, host_decides in (("utt_s_masked_update", False), ("utt_s_host_reads_flag", True)):
        synchronize(device)
        t0 = _time.perf_counter()
        for b in batches[1:]:
            step(b, host_decides)
        synchronize(device)
        report[key] = steps * batch / (_time.perf_counter() - t0)
    return report
