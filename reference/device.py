"""The device layer: which accelerator stack this torch has, a rank's device, its backend.

Every torch a user has is served by one decision table (`decide`), whatever
its age: `torch.accelerator` where it exists (torch >= 2.6), else the device
modules themselves: `torch.mlu` (registered by `import torch_mlu`),
`torch.cuda`, `torch.xpu`. Gates are feature checks (`hasattr`,
`inspect.signature`), never version strings.

Never a quiet CPU run: a stack that is installed but unusable (torch_mlu that
fails to import or sees no MLU, an NVIDIA GPU that torch cannot use), an
explicit device that is not there, or more cards than visible devices is a
`DeviceError` that says so. `auto` reports what it chose and why.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

BACKENDS = {"cpu": "gloo", "cuda": "nccl", "mlu": "cncl", "xpu": "xccl"}
CHOICES = ("auto", "cpu", "cuda", "mlu", "xpu")
ACCELERATORS = ("mlu", "cuda", "xpu")  # probe order without torch.accelerator
VISIBLE_ENV = {"cuda": "CUDA_VISIBLE_DEVICES", "mlu": "MLU_VISIBLE_DEVICES",
               "xpu": "ZE_AFFINITY_MASK"}


class DeviceError(RuntimeError):
    """The requested device cannot be used here (a user error: exit 2, no run)."""


@dataclass
class StackState:
    """One accelerator stack as this process sees it."""

    kind: str
    installed: bool  # torch has it (CUDA build, torch_mlu importable, XPU build)
    count: int  # usable devices (0 when not available)
    problem: str | None  # installed and expected to work, but does not: why

    @property
    def usable(self) -> bool:
        return self.count > 0


@dataclass
class Decision:
    kind: str  # cpu | cuda | mlu | xpu
    reason: str
    count: int  # visible devices of that kind (0 for cpu)

    @property
    def backend(self) -> str:
        return BACKENDS.get(self.kind, "gloo")


def _mlu_installed() -> bool:
    return importlib.util.find_spec("torch_mlu") is not None


@functools.lru_cache(maxsize=1)
def import_vendor_plugins() -> str | None:
    """Import torch_mlu (it registers the "mlu" device); the error text when it is
    installed but fails to import, None otherwise. Never fakes a device."""
    if not _mlu_installed():
        return None
    try:
        importlib.import_module("torch_mlu")
    except Exception as err:  # noqa: BLE001 - any failure means the stack is unusable
        return f"torch_mlu is installed but `import torch_mlu` failed: {type(err).__name__}: {err}"
    return None


def device_module(kind: str) -> ModuleType | None:
    """torch.cuda / torch.mlu / torch.xpu (None for cpu or a stack torch lacks)."""
    return None if kind == "cpu" else getattr(torch, kind, None)


def _nvidia_gpu_present() -> bool:
    """The OS shows an NVIDIA GPU (driver loaded), whatever torch thinks."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return (gpus.is_dir() and any(gpus.iterdir())) or Path("/dev/nvidia0").exists()


def _count(mod: ModuleType | None) -> tuple[int, str | None]:
    """(usable devices, the warning torch gave when it found none)."""
    if mod is None or not hasattr(mod, "is_available"):
        return 0, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ok = bool(mod.is_available())
            n = int(mod.device_count()) if ok else 0
        except Exception as err:  # noqa: BLE001 - a broken driver raises all kinds of things
            return 0, f"{type(err).__name__}: {err}"
    why = "; ".join(str(w.message).strip().splitlines()[0] for w in caught) or None
    return n, why


def probe(kind: str) -> StackState:
    """What one accelerator stack looks like in this process."""
    if kind == "mlu":
        broken = import_vendor_plugins()
        installed = _mlu_installed()
        if broken:
            return StackState(kind, True, 0, broken)
        n, why = _count(device_module("mlu")) if installed else (0, None)
        problem = None
        if installed and n == 0:
            problem = (f"torch_mlu is installed but sees no MLU ({why or 'is_available() is False'}; "
                       f"MLU_VISIBLE_DEVICES={os.environ.get('MLU_VISIBLE_DEVICES', '<unset>')})")
        return StackState(kind, installed, n, problem)
    if kind == "cuda":
        installed = getattr(torch.version, "cuda", None) is not None or \
            getattr(torch.version, "hip", None) is not None
        n, why = _count(torch.cuda) if installed else (0, None)
        problem = None
        if n == 0 and _nvidia_gpu_present():
            problem = ("an NVIDIA GPU is present but torch cannot use it ("
                       + (why or ("this torch is a CPU build" if not installed
                                  else "torch.cuda.is_available() is False"))
                       + f"; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')})")
        return StackState(kind, installed, n, problem)
    mod = device_module(kind)
    n, _ = _count(mod)
    return StackState(kind, mod is not None and n > 0, n, None)


def _accelerator_api() -> str | None:
    """The device type `torch.accelerator` reports (torch >= 2.6), else None."""
    acc = getattr(torch, "accelerator", None)
    if acc is None or not hasattr(acc, "is_available"):
        return None
    try:
        return acc.current_accelerator().type if acc.is_available() else None
    except RuntimeError:
        return None


def decide(preference: str = "auto") -> Decision:
    """The device type a run uses; DeviceError when that cannot be honoured.

    auto: the accelerator torch reports (torch.accelerator, else the first of
    mlu, cuda, xpu with devices); CPU only when no stack is installed and
    expected to work. An explicit type must have devices.
    """
    if preference not in CHOICES:
        raise DeviceError(f"--device {preference!r}: unknown (choices: {', '.join(CHOICES)})")
    if preference == "cpu":
        return Decision("cpu", "requested", 0)
    states = {k: probe(k) for k in ACCELERATORS}
    if preference != "auto":
        st = states[preference]
        if st.usable:
            return Decision(preference, "requested", st.count)
        have = [k for k, s in states.items() if s.usable]
        raise DeviceError(f"--device {preference!r}: no {preference} device here"
                          + (f" ({st.problem})" if st.problem else "")
                          + f"; available: {', '.join(have + ['cpu'])}")
    api = _accelerator_api()
    if api is not None and api in states and states[api].usable:
        return Decision(api, f"torch.accelerator reports {api}, {states[api].count} visible",
                        states[api].count)
    for kind in ACCELERATORS:
        if states[kind].usable:
            return Decision(kind, f"torch.{kind} has {states[kind].count} device(s)",
                            states[kind].count)
    broken = [s.problem for s in states.values() if s.problem]
    if broken:
        raise DeviceError(f"--device auto: {broken[0]}; fix the stack, or pass --device cpu "
                          "(DEVICE=cpu) to run on the CPU on purpose")
    return Decision("cpu", f"no accelerator stack in torch {torch.__version__} "
                           "(no torch_mlu, no usable CUDA/XPU)", 0)


def check_cards(decision: Decision, cards: int) -> None:
    """Ranks per node must not exceed the visible devices of an accelerator."""
    if decision.kind != "cpu" and cards > decision.count:
        var = VISIBLE_ENV.get(decision.kind, "")
        raise DeviceError(f"--cards {cards}: only {decision.count} {decision.kind} device(s) "
                          f"visible ({var}={os.environ.get(var, '<unset>')}); choose 1..{decision.count}")


def pick_device(preference: str, local_rank: int) -> torch.device:
    """This rank's device (an explicit type or 'auto'); sets it current."""
    d = decide(preference)
    if d.kind == "cpu":
        return torch.device("cpu")
    check_cards(d, local_rank + 1)
    device_module(d.kind).set_device(local_rank)
    return torch.device(d.kind, local_rank)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so host clocks measure it."""
    if device.type != "cpu":
        device_module(device.type).synchronize(device)


def accelerator_name(device: torch.device) -> str:
    """Human-readable accelerator model (used in the MLPerf platform name)."""
    if device.type == "cpu":
        return "CPU"
    try:
        return str(device_module(device.type).get_device_name(device.index or 0)).replace(" ", "-")
    except Exception:  # noqa: BLE001 - vendor modules differ; fall back to the type
        return device.type.upper()


def process_group_kwargs(device: torch.device) -> dict[str, Any]:
    """Extra `init_process_group` arguments this torch accepts for this device.

    `device_id` binds NCCL to the rank's GPU (eager init); it is a TypeError
    where the parameter does not exist (torch 2.1) and a ValueError for non-CUDA
    devices on many releases, so it is passed only for CUDA, and never as None.
    """
    import torch.distributed as dist

    params = inspect.signature(dist.init_process_group).parameters
    if device.type == "cuda" and "device_id" in params:
        return {"device_id": device}
    return {}


@functools.lru_cache(maxsize=1)
def _autocast_takes_device() -> bool:
    try:
        torch.is_autocast_enabled("cpu")
        return True
    except TypeError:  # before torch 2.4: no argument, CUDA only
        return False


def autocast_enabled(device_type: str) -> bool:
    """`torch.is_autocast_enabled(device_type)` on any torch."""
    if _autocast_takes_device():
        return torch.is_autocast_enabled(device_type)
    if device_type == "cpu":
        return torch.is_autocast_cpu_enabled()
    if device_type == "cuda":
        return torch.is_autocast_enabled()
    fn = getattr(device_module(device_type), "is_autocast_enabled", None)
    return bool(fn()) if callable(fn) else False


def rng_state(device: torch.device) -> dict[str, Any] | None:
    """The accelerator's RNG states (all its devices), or None on CPU."""
    mod = device_module(device.type)
    if mod is None or not hasattr(mod, "get_rng_state_all"):
        return None
    return {"type": device.type, "states": mod.get_rng_state_all()}


def set_rng_state(saved: dict[str, Any] | None, device: torch.device) -> None:
    """Restore `rng_state`'s result when this run is on the same kind of device."""
    if not saved or saved.get("type") != device.type:
        return
    device_module(device.type).set_rng_state_all(saved["states"])
