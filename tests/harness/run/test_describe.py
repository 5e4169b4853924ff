"""harness.run.describe / bench: the run's self-description and the busy-machine warning."""
import subprocess
import sys
import time

from harness.run.bench import _warn_if_loaded, bf16_emulation_warning
from harness.run.describe import busy_cores, busy_cpu_s, describe
from reference.train.comm import AllReduceTimer

REPO = __import__("pathlib").Path(__file__).resolve().parents[3]


def test_busy_cores_sees_a_spinning_process():
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = busy_cores(1.0)
    finally:
        spin.kill()
        spin.wait()
    assert busy is not None and busy >= 0.6  # one process spinning ≈ one core


def _stat(cpu0: int, cpu1: int) -> str:
    # /proc/stat: the aggregate line, then one line per CPU (user nice system idle
    # iowait irq softirq steal guest guest_nice), in clock ticks.
    line = "{} {} 0 0 500 7 0 0 0 0 0"
    return "\n".join([line.format("cpu ", cpu0 + cpu1), line.format("cpu0", cpu0),
                      line.format("cpu1", cpu1), "intr 12345", "ctxt 678"]) + "\n"


def test_busy_time_counts_only_the_cpus_the_run_may_use():
    import os

    tick = os.sysconf("SC_CLK_TCK")
    before, after = _stat(100, 100), _stat(100 + tick, 100)  # cpu0 busy for one second
    used = [busy_cpu_s(after, cpus) - busy_cpu_s(before, cpus) for cpus in ({0}, {1}, {0, 1})]
    assert used == [1.0, 0.0, 1.0]  # a run pinned to cpu1 is not told cpu0 is busy
    # Without per-CPU lines (or with a CPU set it does not list): the whole machine.
    aggregate = "cpu  {} 0 0 500 7 0 0 0 0 0\n"
    assert busy_cpu_s(aggregate.format(100 + tick), {0}) - busy_cpu_s(aggregate.format(100), {0}) == 1.0
    assert busy_cpu_s(after, {7}) - busy_cpu_s(before, {7}) == 1.0
    assert busy_cpu_s("", {0}) is None


def test_description_has_versions_git_and_busy_cores():
    d = describe(1, 1, "cpu", "CPU", 2, REPO)
    assert d["software"]["torch"] and d["threads_per_rank"] == 2
    assert isinstance(d["busy_cores_at_start"], float)
    assert d["cpu"]["cores_available"] >= 1


def test_warning_only_when_other_work_takes_the_run_cores(capsys):
    desc = {"busy_cores_at_start": 1.0, "cpu": {"cores_available": 2}}
    _warn_if_loaded(desc, threads=2, ranks=1)
    assert "other processes keep 1.0 of 2 cores busy" in capsys.readouterr().err
    _warn_if_loaded(desc, threads=1, ranks=1)  # one free core is enough
    _warn_if_loaded({**desc, "busy_cores_at_start": 0.1}, threads=2, ranks=1)
    _warn_if_loaded(desc, threads=None, ranks=1)  # accelerators: threads do not matter
    assert capsys.readouterr().err == ""


def test_allreduce_timer_accumulates_and_resets():
    t = AllReduceTimer(world_size=2, measured=True)
    t.add(0.25)
    t.add(0.5)
    assert t.take() == (0.75, 2)
    assert t.take() == (0.0, 0)
    unmeasured = AllReduceTimer(world_size=2, measured=False)
    unmeasured.add(1.0)
    assert unmeasured.take() == (None, 1)  # a host clock cannot see NCCL completion


def test_bf16_on_a_cpu_without_bf16_hardware_is_named(tmp_path):
    """tiny's bf16 GEMMs/conv2 on a CPU whose flags lack amx_bf16 and avx512_bf16: one
    WARNING line; with either flag, another precision or another device: nothing."""
    plain = tmp_path / "plain"
    plain.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    amx = tmp_path / "amx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n")
    avx = tmp_path / "avx"
    avx.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    msg = bf16_emulation_warning("bf16", "cpu", str(plain))
    assert msg and msg.startswith("[harness] WARNING:") and "\n" not in msg
    assert "train.fp32_precision=ieee" in msg
    assert bf16_emulation_warning("bf16", "cpu", str(amx)) is None
    assert bf16_emulation_warning("bf16", "cpu", str(avx)) is None
    assert bf16_emulation_warning("ieee", "cpu", str(plain)) is None
    assert bf16_emulation_warning("bf16", "cuda", str(plain)) is None
