"""Training progress: a real tqdm bar on a real terminal (a pty), plain lines elsewhere."""
from __future__ import annotations

import fcntl
import io
import os
import select
import struct
import termios

from reference.train.progress import EpochProgress, is_terminal


def _read_all(fd: int) -> str:
    out = b""
    while select.select([fd], [], [], 0.2)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        out += chunk
    return out.decode(errors="replace")


def test_plain_lines_when_not_a_terminal():
    buf = io.StringIO()
    assert not is_terminal(buf)
    p = EpochProgress(epoch=3, total_steps=10, start_step=0, global_batch=16, every=4, stream=buf)
    assert not p.is_bar
    for k in range(10):
        p.update(loss=12.5 if (k + 1) % 4 == 0 else None)
    p.write("[eval] something")
    p.close()
    lines = buf.getvalue().splitlines()
    # Every 4th step and the last one; each with rate and ETA; no carriage returns.
    assert [l.split(" (")[0] for l in lines[:3]] == [
        "[train] epoch 3 step 4/10", "[train] epoch 3 step 8/10", "[train] epoch 3 step 10/10"]
    assert all("utt/s" in l and "ETA" in l for l in lines[:3])
    assert "loss(nll/utt) 12.500" in lines[0] and "loss" not in lines[2]
    assert lines[2].endswith("ETA 00:00")
    assert lines[3] == "[eval] something"
    assert "\r" not in buf.getvalue()


def test_live_bar_on_a_terminal():
    master, slave = os.openpty()
    # A fresh pty is 0 columns wide; a terminal window is not.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    stream = os.fdopen(slave, "w")
    try:
        assert is_terminal(stream)
        p = EpochProgress(epoch=2, total_steps=5, start_step=1, global_batch=8, every=2,
                          stream=stream)
        assert p.is_bar
        for _ in range(4):
            p.update(loss=3.25)
        p.write("[eval] mid-epoch")
        p.close()
        stream.flush()
        text = _read_all(master)
    finally:
        stream.close()
        os.close(master)
    assert "\r" in text  # redrawn in place
    assert "epoch 2:" in text and "5/5" in text and "utt/s" in text and "loss 3.250" in text
    assert "[eval] mid-epoch" in text
    assert "[train]" not in text and ", ," not in text  # no plain lines on a terminal


def test_other_ranks_print_nothing():
    buf = io.StringIO()
    p = EpochProgress(epoch=1, total_steps=4, start_step=0, global_batch=8, every=1,
                      enabled=False, stream=buf)
    for _ in range(4):
        p.update(loss=1.0)
    p.write("x")
    p.close()
    assert buf.getvalue() == ""
