"""Atomic, verifiable checkpoints holding everything needed to continue exactly.

A checkpoint is written to a temporary file, fsynced, then renamed, and a
SHA-256 of its bytes is stored beside it: a half-written or truncated file is
never taken for a valid one, and loading falls back to the previous checkpoint.
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reference.device import rng_state as device_rng_state
from reference.device import set_rng_state as set_device_rng_state

_NAME = re.compile(r"^ckpt-e(\d+)-s(\d+)\.pt$")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def rng_state(device: torch.device) -> dict[str, Any]:
    """All RNG states of this process (Python, NumPy, torch CPU and `device`'s)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    acc = device_rng_state(device)
    if acc is not None:
        state["accelerator"] = acc
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    set_device_rng_state(state.get("accelerator"), device)


def save_checkpoint(directory: Path, epoch: int, global_step: int, state: dict[str, Any],
                    keep: int) -> Path:
    """Write `ckpt-e<epoch>-s<step>.pt` atomically and keep the newest `keep` ones."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"ckpt-e{epoch}-s{global_step}.pt"
    tmp = final.with_name(final.name + ".tmp")
    with tmp.open("wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    digest = _sha256(tmp)
    tmp.replace(final)
    _atomic_write_text(final.with_name(final.name + ".sha256"), digest + "\n")
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
        old.with_name(old.name + ".sha256").unlink(missing_ok=True)
    return final


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoints in training order (oldest first)."""
    if not directory.is_dir():
        return []
    found = []
    for p in directory.iterdir():
        m = _NAME.match(p.name)
        if m:
            found.append((int(m.group(2)), int(m.group(1)), p))
    return [p for _, _, p in sorted(found)]


def verify_checkpoint(path: Path) -> str | None:
    """None when the file matches its recorded digest, else the reason it does not."""
    side = path.with_name(path.name + ".sha256")
    if not side.is_file():
        return "no .sha256 beside it (write did not complete)"
    want = side.read_text().strip()
    if _sha256(path) != want:
        return "content does not match its SHA-256 (truncated or corrupted)"
    return None


def load_latest(directory: Path, map_location: str | torch.device = "cpu"
                ) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that verifies and loads; broken ones are reported and skipped."""
    for path in reversed(list_checkpoints(directory)):
        problem = verify_checkpoint(path)
        if problem is None:
            try:
                return path, torch.load(path, map_location=map_location, weights_only=False)
            except Exception as err:  # noqa: BLE001 - any unreadable file is skipped
                problem = f"cannot be loaded ({err})"
        print(f"[checkpoint] skipping {path}: {problem}", file=sys.stderr)
    return None


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load one named checkpoint, refusing a corrupt one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    problem = verify_checkpoint(path)
    if problem is not None and path.with_name(path.name + ".sha256").exists():
        raise ValueError(f"{path}: {problem}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - not a checkpoint: one line for the user
        raise ValueError(f"{path}: not a ds2bench checkpoint ({type(err).__name__}: {err})") from None
