"""Tiny's own front end and evaluation through `python -m harness bench` and `harness eval`.

The other end-to-end runs use the reference front end on live weights (see
`e2e_util.SMALL`); this one keeps what tiny ships: 64 mel bands with 11-wide
kernels, and a weight average (decay 0.995) as the evaluated model. The log
must say so (and the bf16 GEMMs of `train.fp32_precision`), and `harness eval`
of the run's checkpoint must score what the run logged.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from e2e_util import REPO, harness_env, metrics, mllog, only_run_dir, run_bench
from reference.train import host_malloc

pytestmark = pytest.mark.e2e


def _tiny_front() -> list[str]:
    """SMALL's model size with what benchmarks/tiny.yaml ships for the front end and eval."""
    from reference.config import load_config

    tiny = load_config("tiny")
    kernels = ",".join(str(k) for k in tiny.model.conv_freq_kernels)
    return [f"features.mel_bins={tiny.features.mel_bins}", f"model.conv_freq_kernels=[{kernels}]",
            f"model.conv_channels={tiny.model.conv_channels}",
            f"train.ema_decay={tiny.train.ema_decay}",
            f"train.fp32_precision={tiny.train.fp32_precision}", "train.epochs=2"]


def test_log_names_the_front_end_and_eval_reproduces_the_average(mini_corpus, tmp_path):
    runs = tmp_path / "runs"
    proc = run_bench(runs, mini_corpus, overrides=_tiny_front())
    assert proc.returncode == 3, proc.stderr[-3000:]  # a real target, not reached in 2 epochs
    run_dir = only_run_dir(runs)
    logged = {r["key"]: r["value"] for r in mllog(run_dir / "mlperf.log")}
    # What tiny ships (checked here against the numbers, so a change of tiny is seen).
    assert logged["model_eval_ema_factor"] == 0.995
    assert logged["ds2_features"]["mel_bins"] == 64
    assert logged["ds2_conv_freq_kernels"] == [11, 11]
    # bf16 GEMMs on the CPU, named in the log and read back in the run's description.
    assert logged["ds2_fp32_precision"] == "bf16"
    assert logged["ds2_precision_flags"]["cpu_gru_gemm_dtype"] == "bfloat16"
    assert logged["ds2_precision_flags"]["cpu_conv2_dtype"] == "bfloat16"
    assert logged["ds2_conv_channels"] == 32
    desc = json.loads((run_dir / "description.json").read_text())
    assert desc["precision"]["fp32_precision"] == "bf16"
    from harness.perf.peaks import cpu_has_native_bf16  # the run says whether bf16 is emulated
    assert desc["precision"]["cpu_native_bf16"] is cpu_has_native_bf16()
    # The host allocator as it held for the run (glibc tuned, unless this machine
    # has another C runtime or the environment chose its own malloc).
    assert logged["ds2_host_malloc"]["mode"] in {"tuned", "unavailable", "user"}
    if host_malloc._glibc() is not None and host_malloc.user_choice(harness_env()) is None:
        assert logged["ds2_host_malloc"]["mode"] == "tuned"
    last = metrics(run_dir, "eval")[-1]
    ckpt = sorted((run_dir / "checkpoints").glob("*.pt"), key=lambda p: p.stat().st_mtime)[-1]
    threads = json.loads((run_dir / "description.json").read_text())["threads_per_rank"]
    cmd = [sys.executable, "-m", "harness", "eval", "--checkpoint", str(ckpt), "--manifest",
           str(mini_corpus / "dev.jsonl"), "--threads", str(threads)]
    out = subprocess.run(cmd, cwd=REPO, env=harness_env(), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout[out.stdout.index("{"):])
    assert got["wer_ref(%)"] == pytest.approx(last["wer_ref(%)"], abs=1e-9)
    assert got["loss_ctc_nll_per_utt"] == pytest.approx(last["loss_ctc_nll_per_utt"], rel=1e-5)
