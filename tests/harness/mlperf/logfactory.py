"""Build MLPerf logs for tests with the real `MLPerfLogger`, and mutate copies.

`write_valid_log` follows the key sequence of docs/DESIGN.md; the record
helpers (`read_records`, `write_records`, `find`) let a test damage a copy in
one precise way (drop, duplicate, move or edit a line).
"""
from __future__ import annotations

import json
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


def write_valid_log(path: Path, *, division: str = "open", wers: tuple[float, ...] = (48.0, 31.5, 22.0),
                    target_wer: float = 23.0, status: str = "success", seed: int = 1,
                    cards: int = 1, batch_per_card: int = 8, platform: str | None = None,
                    **values: Any) -> Path:
    """Write a compliant log (one epoch per entry of `wers`); return `path`.

    `values` override any logged value by key name, e.g. `opt_name="adam"`.
    """
    def v(key: str, default: Any) -> Any:
        return values.get(key, default)

    log = M.MLPerfLogger(path, rank=0, barrier=lambda: None)
    log.event(C.CACHE_CLEAR, True)
    log.start(C.INIT_START)
    log.event(C.SUBMISSION_BENCHMARK, v(C.SUBMISSION_BENCHMARK, M.BENCHMARK_NAME))
    log.event(C.SUBMISSION_ORG, v(C.SUBMISSION_ORG, "ds2bench"))
    log.event(C.SUBMISSION_DIVISION, division)
    log.event(C.SUBMISSION_STATUS, v(C.SUBMISSION_STATUS, "research"))
    log.event(C.SUBMISSION_PLATFORM, platform or f"{cards}xCPU")
    log.event(C.SEED, seed)
    log.event(C.GLOBAL_BATCH_SIZE, v(C.GLOBAL_BATCH_SIZE, cards * batch_per_card))
    for key, default in REFERENCE_HPARAMS.items():
        log.event(key, v(key, default))
    log.event(M.DS2_BATCH_PER_CARD, batch_per_card)
    log.event(M.DS2_CARDS, cards)
    log.event(M.DS2_RNN_TYPE, "gru")
    log.event(M.DS2_RNN_HIDDEN, v(M.DS2_RNN_HIDDEN, 2560))
    log.event(M.DS2_RNN_LAYERS, v(M.DS2_RNN_LAYERS, 3))
    log.event(M.DS2_BIDIRECTIONAL, v(M.DS2_BIDIRECTIONAL, False))
    log.event(M.DS2_CONV_CHANNELS, v(M.DS2_CONV_CHANNELS, 32))
    log.event(M.DS2_LOSS_DEFINITION, "ctc_nll")
    log.event(M.DS2_TARGET_WER, target_wer)
    log.event(C.TRAIN_SAMPLES, v(C.TRAIN_SAMPLES, 480))
    log.event(C.EVAL_SAMPLES, v(C.EVAL_SAMPLES, 64))
    log.end(C.INIT_STOP)
    log.run_start()
    log.event(M.DS2_SEED_LOSS_AT_INIT, -0.344)
    for epoch, wer in enumerate(wers, start=1):
        log.start(C.BLOCK_START, metadata={C.FIRST_EPOCH_NUM: epoch, C.EPOCH_COUNT: 1})
        log.start(C.EPOCH_START, metadata={C.EPOCH_NUM: epoch})
        log.event(M.DS2_TRAIN_LOSS, 150.0 / epoch, metadata={C.EPOCH_NUM: epoch})
        log.event(M.DS2_SEED_LOSS, -0.3, metadata={C.EPOCH_NUM: epoch})
        log.event(M.DS2_THROUGHPUT, 12.5, metadata={C.EPOCH_NUM: epoch, "unit": "utt/s"})
        log.end(C.EPOCH_STOP, metadata={C.EPOCH_NUM: epoch})
        log.start(C.EVAL_START, metadata={C.EPOCH_NUM: epoch})
        log.event(C.EVAL_ACCURACY, wer, metadata={C.EPOCH_NUM: epoch, C.SAMPLES_COUNT: 480 * epoch})
        log.event(M.DS2_EVAL_WER_CORPUS, wer * 0.9, metadata={C.EPOCH_NUM: epoch})
        log.event(M.DS2_EVAL_CER, wer / 3, metadata={C.EPOCH_NUM: epoch})
        log.end(C.EVAL_STOP, metadata={C.EPOCH_NUM: epoch})
        log.end(C.BLOCK_STOP, metadata={C.FIRST_EPOCH_NUM: epoch})
    log.event(M.DS2_RUN_THROUGHPUT, 12.0, metadata={"unit": "utt/s"})
    log.run_stop(status, None if status == "success" else "test abort")
    log.close()
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
