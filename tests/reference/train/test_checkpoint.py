"""reference.train.checkpoint: atomic verified checkpoints, retention, fallback, RNG state."""
import random

import numpy as np
import pytest
import torch

from reference.train.checkpoint import (list_checkpoints, load_checkpoint, load_latest, rng_state,
                                  save_checkpoint, set_rng_state, verify_checkpoint)


def _state(step: int) -> dict:
    # (torch.optim is not used: constructing an optimizer costs seconds of imports)
    torch.manual_seed(step)
    model = torch.nn.Linear(6, 3)
    optimizer = {"state": {0: {"momentum_buffer": torch.randn(3, 6)}},
                 "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0, 1]}]}
    return {"model": model.state_dict(), "optimizer": optimizer, "step": step,
            "sampler": {"epoch": 2, "step_in_epoch": step % 5}, "config": "name: tiny\n"}


def test_save_load_round_trip(tmp_path):
    st = _state(7)
    path = save_checkpoint(tmp_path / "ckpts", epoch=2, global_step=7, state=st, keep=3)
    assert path.name == "ckpt-e2-s7.pt"
    assert (path.parent / "ckpt-e2-s7.pt.sha256").is_file()
    assert not list(path.parent.glob("*.tmp"))
    assert verify_checkpoint(path) is None
    got = load_checkpoint(path)
    assert got["step"] == 7 and got["sampler"] == st["sampler"] and got["config"] == st["config"]
    for k, v in st["model"].items():
        assert torch.equal(got["model"][k], v)
    assert got["optimizer"]["state"][0]["momentum_buffer"].shape == (3, 6)
    assert torch.equal(got["optimizer"]["state"][0]["momentum_buffer"],
                       st["optimizer"]["state"][0]["momentum_buffer"])
    p, latest = load_latest(tmp_path / "ckpts")
    assert p == path and latest["step"] == 7


def test_keep_bound_and_order(tmp_path):
    d = tmp_path / "c"
    steps = [(1, 10), (1, 20), (2, 30), (2, 40), (3, 50)]
    for e, s in steps:
        save_checkpoint(d, e, s, {"step": s}, keep=2)
        assert len(list_checkpoints(d)) <= 2
    names = [p.name for p in list_checkpoints(d)]
    assert names == ["ckpt-e2-s40.pt", "ckpt-e3-s50.pt"]
    assert sorted(p.name for p in d.iterdir()) == sorted(names + [n + ".sha256" for n in names])


def test_list_orders_by_step_not_by_name(tmp_path):
    d = tmp_path / "c"
    for s in (9, 100, 20):
        save_checkpoint(d, 1, s, {"step": s}, keep=10)
    (d / "notes.txt").write_text("x")
    assert [p.name for p in list_checkpoints(d)] == \
        ["ckpt-e1-s9.pt", "ckpt-e1-s20.pt", "ckpt-e1-s100.pt"]
    assert list_checkpoints(tmp_path / "missing") == []
    assert load_latest(tmp_path / "missing") is None


def test_truncated_newest_falls_back_to_previous(tmp_path, capsys):
    d = tmp_path / "c"
    save_checkpoint(d, 1, 10, _state(10), keep=3)
    newest = save_checkpoint(d, 1, 20, _state(20), keep=3)
    size = newest.stat().st_size
    with newest.open("r+b") as f:
        f.truncate(size // 2)
    assert "SHA-256" in verify_checkpoint(newest)
    path, state = load_latest(d)
    assert path.name == "ckpt-e1-s10.pt" and state["step"] == 10
    assert "skipping" in capsys.readouterr().err
    with pytest.raises(ValueError, match="SHA-256"):
        load_checkpoint(newest)


def test_corrupted_bytes_same_size_are_detected(tmp_path):
    d = tmp_path / "c"
    save_checkpoint(d, 1, 10, {"step": 10}, keep=3)
    newest = save_checkpoint(d, 1, 20, {"step": 20, "w": torch.zeros(100)}, keep=3)
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    path, state = load_latest(d)
    assert state["step"] == 10


def test_missing_sha256_is_skipped(tmp_path):
    d = tmp_path / "c"
    save_checkpoint(d, 1, 10, {"step": 10}, keep=3)
    newest = save_checkpoint(d, 2, 20, {"step": 20}, keep=3)
    (d / (newest.name + ".sha256")).unlink()
    assert "sha256" in verify_checkpoint(newest)
    path, state = load_latest(d)
    assert path.name == "ckpt-e1-s10.pt" and state["step"] == 10


def test_all_broken_gives_none(tmp_path):
    d = tmp_path / "c"
    p = save_checkpoint(d, 1, 10, {"step": 10}, keep=3)
    p.write_bytes(b"")
    assert load_latest(d) is None


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "ckpt-e1-s1.pt")


def _draws():
    return (random.random(), random.randint(0, 10**9), np.random.rand(3).tolist(),
            torch.rand(3).tolist(), torch.randint(0, 1000, (4,)).tolist())


def test_rng_state_round_trip(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    _draws()
    state = rng_state(torch.device("cpu"))
    expected = _draws()
    # scramble, and also pass the state through a checkpoint file
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    assert _draws() != expected
    path = save_checkpoint(tmp_path, 1, 1, {"rng": state}, keep=1)
    set_rng_state(load_checkpoint(path)["rng"], torch.device("cpu"))
    assert _draws() == expected
    set_rng_state(state, torch.device("cpu"))
    assert _draws() == expected
