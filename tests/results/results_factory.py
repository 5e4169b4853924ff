"""Synthetic run directories for the results tests.

`make_run_dir` writes what `harness bench` leaves behind: config.yaml,
description.json, a real `:::MLLOG` log (written by harness.mlperf.log's
MLPerfLogger with the key sequence of harness/mlperf/hooks.py, falling back on
mlperf_logging.mllog directly), metrics.jsonl and result.json. Times are
rewritten afterwards so that run_stop - run_start is exactly `ttt_s`.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import yaml

TOKEN = ":::MLLOG "


class _MllogWriter:
    """Minimal stand-in for MLPerfLogger (used only if harness.mlperf.log is absent)."""

    def __init__(self, path: Path) -> None:
        from mlperf_logging.mllog.mllog import MLLogger

        self._logger = logging.Logger(f"results-test-{id(self)}", level=logging.INFO)
        self._handler = logging.FileHandler(path, mode="a")
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._logger.addHandler(self._handler)
        self._ml = MLLogger(logger=self._logger)

    def event(self, key: str, value: Any = None, metadata: dict | None = None) -> None:
        self._ml.event(key=key, value=value, metadata=metadata)

    def start(self, key: str, value: Any = None, metadata: dict | None = None) -> None:
        self._ml.start(key=key, value=value, metadata=metadata)

    def end(self, key: str, value: Any = None, metadata: dict | None = None) -> None:
        self._ml.end(key=key, value=value, metadata=metadata)

    def run_start(self) -> None:
        self.start("run_start")

    def run_stop(self, status: str, reason: str | None = None) -> None:
        md = {"status": status, **({"reason": reason} if reason else {})}
        self.end("run_stop", metadata=md)

    def close(self) -> None:
        self._handler.close()


def _writer(path: Path) -> Any:
    try:
        from harness.mlperf.log import MLPerfLogger
    except ImportError:
        return _MllogWriter(path)
    return MLPerfLogger(path, rank=0, barrier=lambda: None)


def config(bench: str = "tiny", seed: int = 1, cards: int = 1, target: float | None = 23.0,
           loss: str = "ctc_nll", epochs: int = 12, hidden: int = 256,
           required_runs: int = 5) -> dict[str, Any]:
    return {"name": bench, "division": "open", "cards": cards,
            "scoring": {"required_runs": required_runs},
            "model": {"rnn_type": "gru", "hidden": hidden, "layers": 3, "bidirectional": True},
            "data": {"corpus": "embedded", "root": "data/embedded"},
            "optim": {"name": "sgd", "lr": 5e-3, "momentum": 0.9, "nesterov": True,
                      "weight_decay": 0.0, "anneal": 1.1, "clip_norm": 400.0, "lr_scaling": "none"},
            "train": {"batch_per_card": 16, "epochs": epochs, "target_wer": target,
                      "seed": seed, "loss": loss,
                      # the benchmark's own eval points (identity rules of its logs)
                      **_eval_schedule(bench)}}


def _eval_schedule(bench: str) -> dict[str, int]:
    from reference.config import ConfigError, load_config

    try:
        t = load_config(bench).train
    except ConfigError:  # a name that is no benchmark definition
        return {"eval_every_samples": 0, "eval_start_samples": 0}
    return {"eval_every_samples": t.eval_every_samples,
            "eval_start_samples": t.eval_start_samples}


def write_log(path: Path, cfg: dict[str, Any], cards: int, wers: Sequence[float], status: str,
              throughput: float, seed_loss_init: float = -0.344) -> None:
    """The log a run writes: harness/mlperf/hooks.py driven with the trainer's events.

    The data (train/eval sample counts, eval digest) is the dataset identity of
    the benchmark definition of that name, when there is one, so a log of
    "tiny" is a log of the real tiny benchmark.
    """
    from harness.mlperf.compliance.generate import benchmark_definitions
    from harness.mlperf.hooks import MLPerfHooks
    from reference.config import config_from_dict

    bcfg = config_from_dict(cfg)
    known = benchmark_definitions().get(bcfg.name)
    ds = known.dataset if known is not None else bcfg.dataset
    train, evals = ds.train_utterances or 480, ds.eval_utterances or 64
    log = _writer(path)
    submission = {"submission_benchmark": "deepspeech2", "submission_org": "ds2bench",
                  "submission_division": cfg["division"], "submission_status": "research",
                  "submission_platform": f"{cards}xCPU"}
    hooks = MLPerfHooks(log, bcfg, cards, submission, cache_cleared=True)
    gb = hooks.global_batch
    steps = train // gb
    hooks.log_init_start()
    hooks.on_setup_done({"train_samples": train, "eval_samples": evals, "train_rejected": {},
                         "eval_digest": ds.eval_digest or "0" * 64, "parameters": 3_300_000,
                         "steps_per_epoch": steps, "dropped_per_epoch": train - steps * gb})
    hooks.on_run_start()
    hooks.on_init_loss({"seed_loss": seed_loss_init, "ctc_nll_per_utt": 168.8})
    from reference.train.schedule import eval_steps

    # A benchmark that evaluates inside epochs gets those evals too (above target).
    for e, wer in enumerate(wers, start=1):
        hooks.on_epoch_start(e)
        for k in eval_steps(steps, gb, bcfg.train.eval_every_samples, e,
                            bcfg.train.eval_start_samples):
            pos = round(e - 1 + k / steps, 6)
            hooks.on_eval_start(pos)
            hooks.on_eval_end(pos, {"wer_ref(%)": 99.0, "wer_corpus(%)": 99.0, "cer(%)": 40.0,
                                    "utterances": evals, "samples_count": ((e - 1) * steps + k) * gb})
        hooks.on_epoch_end(e, {"samples": steps * gb, "global_step": steps * e,
                               "loss_ctc_nll_per_utt": 150.0 / e, "loss_ctc_nll_per_char": 5.0 / e,
                               "seed_loss_last_iter": -0.3 - 0.01 * e,
                               "throughput(utt/s)": throughput, "skipped_steps": 0})
        hooks.on_eval_start(e)
        hooks.on_eval_end(e, {"wer_ref(%)": wer, "wer_corpus(%)": wer * 0.9, "cer(%)": wer / 3,
                              "utterances": evals})
        hooks.on_block_end(e)
    hooks.on_run_end(status, "target reached" if status == "success" else "target not reached",
                     {"throughput": throughput, "skipped_steps": 0})
    log.close()


def set_times(path: Path, ttt_s: float, t0_ms: float = 1.7e12) -> None:
    """Spread the records so that run_stop - run_start == ttt_s exactly."""
    recs = [json.loads(line[len(TOKEN):]) for line in path.read_text().splitlines() if line.strip()]
    i0 = next(i for i, r in enumerate(recs) if r["key"] == "run_start")
    n_after = len(recs) - 1 - i0
    for i, r in enumerate(recs):
        if i <= i0:
            r["time_ms"] = t0_ms + i
        else:
            r["time_ms"] = t0_ms + i0 + ttt_s * 1000 * (i - i0) / n_after
    path.write_text("".join(TOKEN + json.dumps(r) + "\n" for r in recs))


def make_run_dir(root: Path, name: str, *, cards: int = 1, seed: int = 1,
                 wers: Sequence[float] = (48.0, 31.0, 22.0), status: str = "success",
                 ttt_s: float = 100.0, throughput: float = 50.0, **cfg_kw: Any) -> Path:
    d = root / name
    d.mkdir(parents=True)
    cfg = config(seed=seed, cards=cards, **cfg_kw)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (d / "description.json").write_text(json.dumps({"cards": cards, "accelerator": "CPU"}))
    write_log(d / "mlperf.log", cfg, cards, wers, status, throughput)
    set_times(d / "mlperf.log", ttt_s)
    lines = [{"kind": "init", "seed_loss": -0.344, "ctc_nll_per_utt": 168.8, "ctc_nll_per_char": 5.61}]
    for e, wer in enumerate(wers, start=1):
        lines.append({"kind": "epoch", "epoch": e, "global_step": 30 * e, "samples": 480,
                      "train_time(s)": 9.6, "throughput(utt/s)": throughput,
                      "loss_ctc_nll_per_utt": 150.0 / e, "loss_ctc_nll_per_char": 5.0 / e,
                      "seed_loss_last_iter": -0.3 - 0.01 * e, "skipped_steps": 0,
                      "allreduce_time(s)": None, "lr": 1.5e-3})
        lines.append({"kind": "eval", "epoch": e, "wer_ref(%)": wer, "wer_corpus(%)": wer * 0.9,
                      "cer(%)": wer / 3, "utterances": 64, "elapsed(s)": ttt_s * e / len(wers)})
    lines.append({"kind": "final", "status": status, "reason": "r", "run_time(s)": ttt_s})
    (d / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (d / "result.json").write_text(json.dumps({
        "status": status, "reason": "r", "epochs_completed": len(wers), "best_wer": min(wers),
        "throughput": throughput}))
    return d
