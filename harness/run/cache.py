"""An honest `cache_clear`: drop the dataset from the page cache before a run.

MLPerf requires caches to be flushed before each run, and `cache_clear: true`
in the log means it happened. Data preparation has just read every file (so
it sits in the page cache); without a flush the first epoch would read from
RAM. Methods, best first:

1. `/proc/sys/vm/drop_caches` (after `os.sync()`): drops every clean page on
   the host; needs root (and a writable /proc/sys, which containers often
   lack). Opens no dataset file at all.
2. `posix_fadvise(POSIX_FADV_DONTNEED)` on every file of the dataset
   (manifests, audio, transcripts): asks the kernel to drop their cached
   pages; works unprivileged. Each file is opened (read-only, O_NOATIME where
   allowed) only to get a descriptor for the call; not a byte is read.

`DS2BENCH_DROP_CACHES=0` skips method 1 (a shared machine: dropping every
clean page of the host slows its other users; the tests set it).

`flush_dataset` reports what happened; the launcher records it in
`description.json` (`cache_clear`) and the run logs `cache_clear` true only
when `cleared` is true.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def dataset_files(manifests: list[Path]) -> list[Path]:
    """The manifests and every audio/transcript file they name (reads manifests only)."""
    from reference.data.manifest import load_manifest

    files: list[Path] = []
    for m in manifests:
        files.append(Path(m))
        for u in load_manifest(m):
            files.append(Path(u.audio))
            if u.transcript_path is not None:
                files.append(Path(u.transcript_path))
    return list(dict.fromkeys(files))


def _drop_caches(path: Path) -> str | None:
    """None when the host's page cache was dropped, else why not."""
    try:
        os.sync()
        with open(path, "w") as f:
            f.write("1\n")  # 1 = page cache only (not dentries/inodes)
        return None
    except OSError as err:
        return f"{path}: {err.strerror or err}"


def _fadvise(files: list[Path]) -> tuple[int, list[str]]:
    flags = os.O_RDONLY | getattr(os, "O_NOATIME", 0)
    done, errors = 0, []
    for p in files:
        try:
            try:
                fd = os.open(p, flags)
            except PermissionError:  # O_NOATIME needs ownership of the file
                fd = os.open(p, os.O_RDONLY)
            try:
                # DONTNEED drops clean pages only: a corpus written moments ago
                # (make data) is still dirty, so write it back first.
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                done += 1
            finally:
                os.close(fd)
        except OSError as err:
            errors.append(f"{p}: {err.strerror or err}")
    return done, errors


def flush_dataset(manifests: list[Path], drop_caches: Path = DROP_CACHES) -> dict[str, Any]:
    """Flush the dataset of `manifests` from the page cache; what happened, for description.json.

    `cleared` is true only if the whole dataset was flushed: by drop_caches,
    or by fadvise on every one of its files without an error.
    """
    t0 = time.time()
    files = dataset_files(manifests)
    if os.environ.get("DS2BENCH_DROP_CACHES", "1") == "0":
        why_not: str | None = "skipped (DS2BENCH_DROP_CACHES=0)"
    else:
        why_not = _drop_caches(drop_caches)
    if why_not is None:
        return {"cleared": True, "method": "drop_caches", "files": len(files),
                "seconds": round(time.time() - t0, 3), "done_at_unix": time.time()}
    if not hasattr(os, "posix_fadvise"):
        return {"cleared": False, "method": None, "files": len(files),
                "reason": f"drop_caches not permitted ({why_not}); no posix_fadvise on this OS"}
    done, errors = _fadvise(files)
    out: dict[str, Any] = {
        "cleared": bool(files) and not errors, "method": "posix_fadvise(POSIX_FADV_DONTNEED)",
        "files": len(files), "flushed": done, "drop_caches": f"not used: {why_not}",
        "seconds": round(time.time() - t0, 3), "done_at_unix": time.time()}
    if errors:
        out["errors"] = errors[:5] + ([f"... {len(errors) - 5} more"] if len(errors) > 5 else [])
    return out
