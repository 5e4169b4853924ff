"""reference.device: the decision table, cards against devices, old-torch feature checks.

The real machine has no accelerator, so the table's other rows are checked by
standing fake module objects in for a vendor stack *inside these functions
only* (monkeypatch): no run ever sees a device that is not there.
"""
from __future__ import annotations

import types

import pytest
import torch

from reference import device
from reference.device import Decision, DeviceError, check_cards, decide

REAL_ACCELERATOR = device._accelerator_api() is not None or torch.cuda.is_available()
cpu_only = pytest.mark.skipif(REAL_ACCELERATOR or device._mlu_installed(),
                              reason="this machine has an accelerator stack")


def _stack(n: int, broken: bool = False) -> types.SimpleNamespace:
    """A stand-in for torch.mlu / torch.xpu with `n` devices."""
    def available() -> bool:
        if broken:
            raise RuntimeError("driver mismatch")
        return n > 0
    return types.SimpleNamespace(is_available=available, device_count=lambda: n,
                                 set_device=lambda i: None)


@pytest.fixture
def no_stacks(monkeypatch):
    """Start every row from a CPU-only torch: no torch.accelerator answer, no CUDA build,
    no NVIDIA GPU, no torch_mlu."""
    monkeypatch.setattr(device, "_accelerator_api", lambda: None)
    monkeypatch.setattr(device, "_nvidia_gpu_present", lambda: False)
    monkeypatch.setattr(device, "_mlu_installed", lambda: False)
    monkeypatch.setattr(device, "import_vendor_plugins", lambda: None)
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch, "xpu", _stack(0), raising=False)
    return monkeypatch


@cpu_only
def test_this_machine_is_cpu_and_says_why():
    d = decide("auto")
    assert d.kind == "cpu" and d.backend == "gloo" and d.count == 0
    assert "no accelerator" in d.reason and torch.__version__ in d.reason
    assert device.pick_device("auto", 0) == torch.device("cpu")
    assert device.pick_device("cpu", 3) == torch.device("cpu")
    assert device.accelerator_name(torch.device("cpu")) == "CPU"


@cpu_only
@pytest.mark.parametrize("kind", ["cuda", "mlu", "xpu"])
def test_explicit_device_that_is_not_there(kind):
    with pytest.raises(DeviceError) as err:
        decide(kind)
    assert str(err.value) == f"--device '{kind}': no {kind} device here; available: cpu"


def test_unknown_device_names_the_choices():
    with pytest.raises(DeviceError, match=r"--device 'tpu': unknown \(choices: auto, cpu, cuda, mlu, xpu\)"):
        decide("tpu")


def test_mlu_stack_is_chosen_with_cncl(no_stacks):
    no_stacks.setattr(device, "_mlu_installed", lambda: True)
    no_stacks.setattr(torch, "mlu", _stack(16), raising=False)
    d = decide("auto")
    assert (d.kind, d.count, d.backend) == ("mlu", 16, "cncl")
    assert "torch.mlu has 16" in d.reason
    assert decide("mlu").kind == "mlu"
    check_cards(d, 16)
    with pytest.raises(DeviceError, match=r"--cards 17: only 16 mlu device\(s\) visible "
                                          r"\(MLU_VISIBLE_DEVICES=.*\); choose 1..16"):
        check_cards(d, 17)


def test_mlu_installed_but_not_importable_is_an_error(no_stacks):
    no_stacks.setattr(device, "_mlu_installed", lambda: True)
    no_stacks.setattr(device, "import_vendor_plugins",
                      lambda: "torch_mlu is installed but `import torch_mlu` failed: ImportError: x")
    with pytest.raises(DeviceError, match=r"--device auto: torch_mlu is installed but `import "
                                          r"torch_mlu` failed.*--device cpu"):
        decide("auto")


@pytest.mark.parametrize("stack", [_stack(0), _stack(2, broken=True)])
def test_mlu_installed_but_no_device_is_an_error(no_stacks, stack):
    no_stacks.setattr(device, "_mlu_installed", lambda: True)
    no_stacks.setattr(torch, "mlu", stack, raising=False)
    with pytest.raises(DeviceError, match="torch_mlu is installed but sees no MLU"):
        decide("auto")
    with pytest.raises(DeviceError, match="--device 'mlu': no mlu device here"):
        decide("mlu")
    assert decide("cpu").kind == "cpu"  # the way out the message names


def test_cuda_build_without_a_gpu_is_a_cpu_run(no_stacks):
    # PyPI's default Linux wheels are CUDA builds: on a CPU cluster that is not an error.
    no_stacks.setattr(torch.version, "cuda", "12.4")
    no_stacks.setattr(torch.cuda, "is_available", lambda: False)
    assert decide("auto").kind == "cpu"


def test_gpu_present_but_unusable_is_an_error(no_stacks):
    no_stacks.setattr(torch.version, "cuda", "12.4")
    no_stacks.setattr(device, "_nvidia_gpu_present", lambda: True)
    no_stacks.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="an NVIDIA GPU is present but torch cannot use it"):
        decide("auto")


def test_cuda_and_torch_accelerator(no_stacks):
    no_stacks.setattr(torch.version, "cuda", "12.4")
    no_stacks.setattr(torch.cuda, "is_available", lambda: True)
    no_stacks.setattr(torch.cuda, "device_count", lambda: 8)
    d = decide("auto")
    assert (d.kind, d.count, d.backend) == ("cuda", 8, "nccl")
    no_stacks.setattr(device, "_accelerator_api", lambda: "cuda")
    assert decide("auto").reason == "torch.accelerator reports cuda, 8 visible"


def test_cards_on_cpu_are_not_limited_by_devices():
    check_cards(Decision("cpu", "requested", 0), 16)


def test_device_id_only_for_cuda_where_accepted(monkeypatch):
    import torch.distributed as dist

    assert device.process_group_kwargs(torch.device("cpu")) == {}
    assert device.process_group_kwargs(torch.device("xpu", 0)) == {}  # (mlu needs torch_mlu)
    cuda = torch.device("cuda", 1)
    import inspect
    expected = ({"device_id": cuda} if "device_id" in inspect.signature(dist.init_process_group).parameters
                else {})
    assert device.process_group_kwargs(cuda) == expected

    def old_init(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1):  # torch 2.1
        pass
    monkeypatch.setattr(dist, "init_process_group", old_init)
    assert device.process_group_kwargs(cuda) == {}


def test_autocast_enabled_on_new_and_old_signatures(monkeypatch):
    assert device.autocast_enabled("cpu") is False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert device.autocast_enabled("cpu") is True
    # torch < 2.4: is_autocast_enabled() takes no argument; the CPU flag has its own call.
    monkeypatch.setattr(device, "_autocast_takes_device", lambda: False)
    monkeypatch.setattr(torch, "is_autocast_cpu_enabled", lambda: True, raising=False)
    assert device.autocast_enabled("cpu") is True


def test_rng_state_is_none_on_cpu():
    assert device.rng_state(torch.device("cpu")) is None
    device.set_rng_state(None, torch.device("cpu"))
    device.set_rng_state({"type": "cuda", "states": []}, torch.device("cpu"))  # other device: kept
