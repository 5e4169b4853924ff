"""The host malloc settings (reference/train/host_malloc.py): they keep freed
memory in the process, they yield to the user's own allocator choice, and a
run reports which holds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reference.train import host_malloc

ROOT = Path(__file__).resolve().parents[3]

# Sortagrad's first epoch in miniature: each step's buffers a little larger than
# the last, each freed before the next. glibc's defaults mmap every such block
# (each is over the threshold its predecessor raised it to) and unmap it on
# free, so every page is faulted in afresh; tuned, the heap top is reused.
_GROWING = """
import json, resource, sys, torch
torch.set_num_threads(1)  # one thread touches the pages: no thread pool in the count
sys.path.insert(0, {root!r})
from reference.train.host_malloc import tune_host_malloc
info = tune_host_malloc() if {tune} else {{"mode": "untouched"}}
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for mib in range(1, 31):
    t = torch.empty(mib * 262144)  # mib MiB of float32
    t.fill_(1.0)                   # touch every page
    del t
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({{"faults": after - before, "info": info}}))
"""


def _faults(tune: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in host_malloc.USER_ENV
           and k != "LD_PRELOAD"}
    out = subprocess.run([sys.executable, "-c", _GROWING.format(root=str(ROOT), tune=tune)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(host_malloc._glibc() is None, reason="needs glibc's mallopt")
def test_tuned_malloc_reuses_freed_memory_instead_of_faulting_it_in_again() -> None:
    default, tuned = _faults(False), _faults(True)
    assert tuned["info"]["mode"] == "tuned"
    assert tuned["info"]["mmap_threshold"] == 32 << 20 and "refused" not in tuned["info"]
    # 465 MiB touched in all: ~119k faults when each block is mapped afresh; tuned,
    # 8k-30k over a dozen runs on torch 2.1.2 and 2.13 (the heap's growth, 30 MiB,
    # and what the heap's placement adds), so the bound leaves room below 60k.
    assert default["faults"] > 100_000, default
    assert tuned["faults"] < default["faults"] / 2, (tuned, default)


@pytest.mark.parametrize("env, reason", [
    ({"MALLOC_ARENA_MAX": "2"}, "environment MALLOC_ARENA_MAX"),
    ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}, "environment GLIBC_TUNABLES"),
    ({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, "LD_PRELOAD jemalloc"),
])
def test_the_users_own_allocator_choice_is_left_alone(monkeypatch: pytest.MonkeyPatch,
                                                      env: dict, reason: str) -> None:
    for key in (*host_malloc.USER_ENV, "LD_PRELOAD"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(host_malloc, "_applied", None)

    def no_mallopt() -> None:
        raise AssertionError("mallopt must not be reached when the user chose")

    monkeypatch.setattr(host_malloc, "_glibc", no_mallopt)
    assert host_malloc.tune_host_malloc() == {"mode": "user", "reason": reason}


def test_default_mode_and_a_runtime_without_glibc_are_reported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for key in (*host_malloc.USER_ENV, "LD_PRELOAD"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(host_malloc, "_applied", None)
    assert host_malloc.tune_host_malloc(enabled=False)["mode"] == "default"
    monkeypatch.setattr(host_malloc, "_glibc", lambda: None)
    assert host_malloc.tune_host_malloc()["mode"] == "unavailable"
