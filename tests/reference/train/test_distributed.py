"""reference.train.distributed: defaults, backend mapping, the process group.

Device selection itself is tested in tests/reference/test_device.py.
"""
import importlib.util

import pytest
import torch

from reference.device import BACKENDS, DeviceError
from reference.train.distributed import DEFAULT_TIMEOUT_S, DistContext


def test_dist_context_defaults():
    ctx = DistContext()
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.local_world_size) == (0, 1, 0, 1)
    assert ctx.device == torch.device("cpu")
    assert ctx.backend is None and ctx.timeout_s == DEFAULT_TIMEOUT_S >= 1800
    assert ctx.is_main and not ctx.distributed
    t = torch.tensor([1.0, 2.0])
    assert ctx.all_reduce_sum(t) is t and t.tolist() == [1.0, 2.0]
    assert ctx.all_gather_object({"a": 1}) == [{"a": 1}]
    assert ctx.broadcast_object("x") == "x"
    ctx.barrier()
    ctx.close()


def test_non_zero_rank_is_not_main():
    ctx = DistContext(rank=1, world_size=2)
    assert not ctx.is_main and ctx.distributed


def test_backends():
    assert BACKENDS["cpu"] == "gloo"
    assert BACKENDS["cuda"] == "nccl"
    assert BACKENDS["mlu"] == "cncl"


def test_from_env_single_process(monkeypatch):
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    ctx = DistContext.from_env(device="cpu")
    assert ctx == DistContext()


def test_from_env_reads_ranks_but_single_world(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    ctx = DistContext.from_env(device="cpu")
    assert ctx.world_size == 1 and ctx.local_world_size == 1 and ctx.backend is None


def test_from_env_mlu_fails_before_any_process_group(monkeypatch):
    if importlib.util.find_spec("torch_mlu") is not None:
        pytest.skip("an MLU stack is installed")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(DeviceError, match="mlu"):
        DistContext.from_env(device="mlu")
    assert not torch.distributed.is_initialized()
