"""Build MLPerf logs for tests with the real `MLPerfLogger`, and mutate copies.

`write_valid_log` follows the key sequence of docs/DESIGN.md; the record
helpers (`read_records`, `write_records`, `find`) let a test damage a copy in
one precise way (drop, duplicate, move or edit a line).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mlperf_logging.mllog import constants as C

from harness.mlperf import log as M

REFERENCE_HPARAMS: dict[str, Any] = {
    C.OPT_NAME: "sgd",
    C.OPT_BASE_LR: 1e-4,
    M.OPT_MOMENTUM: 0.9,
    M.OPT_NESTEROV: True,
    C.OPT_WEIGHT_DECAY: 0.0,
    C.OPT_LR_DECAY_FACTOR: 1.1,
    C.OPT_GRADIENT_CLIP_NORM: 400.0,
}

_FAKE_DIGEST = "0" * 64  # for benchmarks that pin no eval digest


def write_valid_log(path: Path, *, benchmark: str = "mlcommons_v05", division: str = "open",
                    wers: tuple[float, ...] = (48.0, 31.5, 22.0), status: str = "success",
                    seed: int = 1, cards: int = 1, platform: str | None = None,
                    overrides: tuple[str, ...] = (), rejected: dict[str, int] | None = None,
                    mid_epoch_evals: dict[int, list[tuple[int, float]]] | None = None,
                    resumed_from_epoch: int | None = None, cache_cleared: bool = True,
                    **values: Any) -> Path:
    """Write a compliant log of `benchmark` (one epoch per entry of `wers`); return `path`.

    The log is produced the way a run produces it: the real `MLPerfHooks`
    (harness/mlperf/hooks.py) driven with the trainer's event sequence, over
    the real `MLPerfLogger`. `overrides` are config overrides (`train.epochs=3`);
    `values` then replace logged values by key name, e.g. `opt_name="adam"`.
    `mid_epoch_evals` {epoch: [(steps into the epoch, WER), ...]} adds evals
    inside epochs (benchmarks with `train.eval_every_samples`).
    """
    from harness.mlperf.hooks import MLPerfHooks
    from reference.config import load_config, resolve_cards

    cfg = resolve_cards(load_config(benchmark, [*overrides, f"train.seed={seed}"]), cards)
    submission = {
        C.SUBMISSION_BENCHMARK: M.BENCHMARK_NAME,
        C.SUBMISSION_ORG: "ds2bench",
        C.SUBMISSION_DIVISION: division,
        C.SUBMISSION_STATUS: "research",
        C.SUBMISSION_PLATFORM: platform or f"{cards}xCPU",
    }
    log = M.MLPerfLogger(path, rank=0, barrier=lambda: None)
    hooks = MLPerfHooks(log, cfg, cards, submission, cache_cleared=cache_cleared)
    rejected = dict(rejected or {})
    ds = cfg.dataset
    train_total = ds.train_utterances or 480
    eval_total = ds.eval_utterances or 64
    train_samples = train_total - sum(rejected.values())
    gb = hooks.global_batch
    steps = train_samples // gb
    hooks.log_init_start(resumed_from="checkpoint" if resumed_from_epoch else None)
    hooks.on_setup_done({"train_samples": train_samples, "eval_samples": eval_total,
                         "train_rejected": rejected, "eval_digest": ds.eval_digest or _FAKE_DIGEST,
                         "parameters": 1000, "steps_per_epoch": steps,
                         "dropped_per_epoch": train_samples - steps * gb})
    hooks.on_run_start()
    if not resumed_from_epoch:
        hooks.on_init_loss({"seed_loss": -0.344, "ctc_nll_per_utt": 168.8})
    first = resumed_from_epoch or 1

    def evaluate(epoch_num: int | float, wer: float, global_step: int | None) -> None:
        # As the trainer does: a mid-epoch eval names its fractional position and its
        # samples (reference/train/schedule.py); the epoch-end one closes the block.
        hooks.on_eval_start(epoch_num)
        rec = {"wer_ref(%)": wer, "wer_corpus(%)": wer * 0.9, "cer(%)": wer / 3,
               "utterances": eval_total}
        if global_step is not None:
            rec["samples_count"] = global_step * gb
        hooks.on_eval_end(epoch_num, rec)

    if mid_epoch_evals is None and cfg.train.eval_every_samples:
        # The benchmark evaluates inside epochs: put an eval (above the target) at
        # every point its schedule names, as the trainer would.
        from reference.train.schedule import eval_steps

        mid_epoch_evals = {e: [(k, max(w, 99.0)) for k in eval_steps(
            steps, gb, cfg.train.eval_every_samples, e, cfg.train.eval_start_samples)]
            for e, w in enumerate(wers, start=first)}
    from reference.train.schedule import evaluates_epoch_end

    last = first + len(wers) - 1
    for epoch, wer in enumerate(wers, start=first):
        hooks.on_epoch_start(epoch)
        for k, mid_wer in (mid_epoch_evals or {}).get(epoch, []):
            evaluate(round(epoch - 1 + k / steps, 6), mid_wer, (epoch - 1) * steps + k)
        hooks.on_epoch_end(epoch, {"samples": steps * gb, "global_step": epoch * steps,
                                   "loss_ctc_nll_per_utt": 150.0 / epoch,
                                   "loss_ctc_nll_per_char": 5.0 / epoch,
                                   "seed_loss_last_iter": -0.3, "throughput(utt/s)": 12.5,
                                   "skipped_steps": 0})
        # As the trainer: no evaluation before train.eval_start_samples but at the end.
        if epoch == last or evaluates_epoch_end(epoch, cfg.train.epochs, steps, gb,
                                                cfg.train.eval_start_samples):
            evaluate(epoch, wer, None)
        hooks.on_block_end(epoch)
    # The logger stamps records with the wall clock in ms: a short log can be written
    # within one millisecond, and a run_stop at its run_start's time is (rightly) never
    # scored. Let the clock move so a "valid" log always has a positive time to train.
    time.sleep(0.003)
    hooks.on_run_end(status, "target reached" if status == "success" else "test abort",
                     {"throughput": 12.0, "skipped_steps": 0})
    log.close()
    if values:
        recs = read_records(path)
        for r in recs:
            if r["key"] in values:
                r["value"] = values[r["key"]]
        write_records(path, recs)
    return path


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a well-formed log, in order."""
    return [json.loads(line.split(":::MLLOG ", 1)[1])
            for line in Path(path).read_text().splitlines() if line.strip()]


def write_records(path: Path, records: list[dict[str, Any]]) -> Path:
    """Write records back as `:::MLLOG` lines (the same encoding mllog uses)."""
    Path(path).write_text("".join(f":::MLLOG {json.dumps(r)}\n" for r in records))
    return path


def find(records: list[dict[str, Any]], key: str, nth: int = 0) -> int:
    """Index of the nth record with `key` (negative nth counts from the end)."""
    hits = [i for i, r in enumerate(records) if r["key"] == key]
    return hits[nth]
