"""cache_clear: the dataset really leaves the page cache, and the report says how.

Residency is measured with mincore(2) on a mapping of the file (ctypes), so
the test fails if posix_fadvise were not called or did nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import mmap
import os
from pathlib import Path

import pytest

from harness.run.cache import flush_dataset


def _resident_pages(path: Path) -> int:
    """Pages of `path` in the page cache (mincore over a libc mapping; reads nothing)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = path.stat().st_size
    n = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        ptr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert ptr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            vec = (ctypes.c_ubyte * n)()
            assert libc.mincore(ptr, size, vec) == 0, os.strerror(ctypes.get_errno())
            return sum(v & 1 for v in vec)
        finally:
            libc.munmap(ptr, size)
    finally:
        os.close(fd)


def _dataset(tmp_path: Path) -> Path:
    audio = tmp_path / "a.flac"
    audio.write_bytes(os.urandom(256 * 1024))  # only the bytes matter for the page cache
    m = tmp_path / "train.jsonl"
    m.write_text(json.dumps({"id": "a", "audio": "a.flac", "text": "A", "duration": 1.0}) + "\n")
    return m


def test_fadvise_flush_evicts_the_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _dataset(tmp_path)
    audio = tmp_path / "a.flac"
    audio.read_bytes()  # now cached
    if _resident_pages(audio) == 0:
        pytest.skip("this filesystem does not keep the file in the page cache")
    monkeypatch.setenv("DS2BENCH_DROP_CACHES", "0")
    out = flush_dataset([m])
    assert out["cleared"] is True and out["method"] == "posix_fadvise(POSIX_FADV_DONTNEED)"
    assert out["files"] == out["flushed"] == 2 and "DS2BENCH_DROP_CACHES=0" in out["drop_caches"]
    assert _resident_pages(audio) == 0


def test_unprivileged_drop_caches_falls_back_and_a_missing_file_is_not_cleared(
        tmp_path: Path) -> None:
    m = _dataset(tmp_path)
    nowhere = tmp_path / "no-such-dir" / "drop_caches"
    out = flush_dataset([m], drop_caches=nowhere)
    assert out["cleared"] is True and out["method"].startswith("posix_fadvise")
    assert "no-such-dir" in out["drop_caches"]
    (tmp_path / "a.flac").unlink()
    out = flush_dataset([m], drop_caches=nowhere)
    assert out["cleared"] is False and out["flushed"] == 1 and "a.flac" in out["errors"][0]
