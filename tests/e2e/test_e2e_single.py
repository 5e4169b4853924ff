"""One real 1-card run through `python -m harness bench`: logs, metrics, eval, compliance."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from e2e_util import REPO, harness_env, metrics, mllog, only_run_dir, run_bench

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def single_run(mini_corpus, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    # Target 100 %: an (almost) untrained CTC model emits blanks, i.e. WER 100.
    proc = run_bench(runs, mini_corpus, overrides=["train.epochs=3", "train.target_wer=100"])
    return proc, only_run_dir(runs)


def test_run_succeeds_and_describes_itself(single_run):
    proc, run_dir = single_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("config.yaml", "description.json", "system_desc.json", "mlperf.log",
                 "metrics.jsonl", "result.json"):
        assert (run_dir / name).is_file(), name
    desc = json.loads((run_dir / "description.json").read_text())
    assert desc["software"]["torch"] and desc["cards"] == 1
    stack = desc["stack"]  # what `make doctor` prints, recorded for this run
    assert stack["torch"]["version"] == torch.__version__ and stack["device"]["kind"] == "cpu"
    assert stack["device"]["backend"] == "gloo" and stack["threads"]["ranks_per_node"] == 1
    # As tiny names it, and whether this CPU runs its bf16 operands in hardware.
    from harness.perf.peaks import cpu_has_native_bf16

    assert desc["precision"] == {"fp32_precision": "bf16", "amp": "off",
                                 "cpu_native_bf16": cpu_has_native_bf16()}
    assert list((run_dir / "checkpoints").glob("ckpt-*.pt"))


def test_log_sequence_and_status(single_run):
    _, run_dir = single_run
    recs = mllog(run_dir / "mlperf.log")
    keys = [r["key"] for r in recs]
    assert keys[0] == "cache_clear" and keys[-1] == "run_stop"
    assert keys.index("init_stop") < keys.index("run_start")
    assert recs[-1]["metadata"]["status"] == "success"
    evals = [r for r in recs if r["key"] == "eval_accuracy"]
    assert evals and all("epoch_num" in r["metadata"] for r in evals)
    assert evals[-1]["value"] <= 100.0
    platform = next(r["value"] for r in recs if r["key"] == "submission_platform")
    assert platform == "1xCPU"
    # The precision that ran: fp32 math as the benchmark names it, the RNN's measured dtype.
    value = {r["key"]: r["value"] for r in recs}
    assert (value["ds2_amp"], value["ds2_fp32_precision"]) == ("off", "bf16")
    assert (value["ds2_rnn_dtype"], value["ds2_grad_scaler"]) == ("float32", False)


def test_compliance_check(single_run, mini_corpus, tmp_path):
    """Against tiny's definition only its identity rules fail (target 100, evaluations
    from the start, a 64-utterance slice of the corpus); against a definition of this
    slice the real log passes."""
    import yaml

    from harness.mlperf.compliance.generate import identity_section
    from reference.config import load_config

    _, run_dir = single_run
    cmd = [sys.executable, "-m", "harness", "check", "--log", str(run_dir / "mlperf.log")]
    proc = subprocess.run(cmd, cwd=REPO, env=harness_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and proc.stdout.startswith("FAIL"), proc.stdout + proc.stderr
    failures = proc.stdout.split(": ", 1)[1].strip().split("; ")
    expected = ("requires ds2_target_wer 23.0", "requires ds2_eval_start_samples 15000",
                "requires train_samples 3000",
                "requires eval_samples 200", "requires the eval set of benchmarks/tiny.yaml",
                "requires its whole train manifest of 3000")
    assert len(failures) == len(expected) and all(
        any(e in f for f in failures) for e in expected), failures
    raw = load_config("tiny").to_dict()
    raw["train"]["target_wer"], raw["train"]["eval_start_samples"] = 100.0, 0
    raw.update(yaml.safe_load(identity_section(mini_corpus / "train.jsonl",
                                               mini_corpus / "dev.jsonl")))
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw))
    proc = subprocess.run(cmd + ["--benchmarks", str(tmp_path)], cwd=REPO, env=harness_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("PASS")


def test_metrics_records(single_run):
    _, run_dir = single_run
    init = metrics(run_dir, "init")[0]
    assert torch.isfinite(torch.tensor(init["seed_loss"]))
    epoch = metrics(run_dir, "epoch")[0]
    assert epoch["samples"] > 0 and epoch["train_time(s)"] > 0
    ev = metrics(run_dir, "eval")
    assert ev[0]["utterances"] == 64


def test_harness_eval_reproduces_logged_wer(single_run, mini_corpus):
    _, run_dir = single_run
    ev = metrics(run_dir, "eval")[-1]
    ckpt = sorted((run_dir / "checkpoints").glob("ckpt-*.pt"))[-1]
    proc = subprocess.run([sys.executable, "-m", "harness", "eval", "--checkpoint", str(ckpt),
                           "--manifest", str(mini_corpus / "dev.jsonl"), "--device", "cpu"],
                          cwd=REPO, env=harness_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert got["epoch"] == ev["epoch"]
    for key in ("wer_ref(%)", "wer_corpus(%)", "cer(%)"):
        assert got[key] == ev[key], key
