"""The one MLPerf log writer of ds2bench: a rank-0 wrapper over `mlperf_logging.mllog`.

`MLPerfLogger` writes `:::MLLOG {...}` lines to one file per process (rank 0
only; other ranks and `path=None` give a no-op logger that still takes part in
barriers). The key sequence it is used for is fixed in docs/DESIGN.md.

Why not `mllog.config(filename=...)`: it adds one more FileHandler to the
shared, module-global logger on every call, so a second run in the same
process (tests, resumed attempts) would write every line twice, and that
logger also prints to stdout. Each `MLPerfLogger` therefore owns a private
`logging.Logger` (not registered with the logging manager, no propagation)
with exactly one FileHandler, wrapped in its own `mllog.MLLogger`.

`append_run_stop_aborted` lets the launcher close the log of a rank 0 that
died before it could write `run_stop`.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

from mlperf_logging.mllog import constants as C
from mlperf_logging.mllog.mllog import MLLogger

BENCHMARK_NAME = "deepspeech2"

# Standard keys without an mllog constant (plain strings are allowed by the rules).
OPT_MOMENTUM = "opt_momentum"
OPT_NESTEROV = "opt_nesterov"

# Custom DeepSpeech2 keys (see docs/DESIGN.md for where each is logged).
DS2_BATCH_PER_CARD = "ds2_batch_per_card"
DS2_CARDS = "ds2_cards"
DS2_RNN_TYPE = "ds2_rnn_type"
DS2_RNN_HIDDEN = "ds2_rnn_hidden"
DS2_RNN_LAYERS = "ds2_rnn_layers"
DS2_BIDIRECTIONAL = "ds2_bidirectional"
DS2_CONV_CHANNELS = "ds2_conv_channels"
DS2_LOSS_DEFINITION = "ds2_loss_definition"
DS2_TARGET_WER = "ds2_target_wer"
DS2_SEED_LOSS_AT_INIT = "ds2_seed_loss_at_init"
DS2_TRAIN_LOSS = "ds2_train_loss"
DS2_SEED_LOSS = "ds2_seed_loss"
DS2_THROUGHPUT = "ds2_throughput"
DS2_EVAL_WER_CORPUS = "ds2_eval_wer_corpus"
DS2_EVAL_CER = "ds2_eval_cer"
DS2_RUN_THROUGHPUT = "ds2_run_throughput"

STATUS_SUCCESS = C.SUCCESS
STATUS_ABORTED = C.ABORTED

# Frames between mllog's get_caller() and the code that called our public
# method: get_caller <- MLLogger._log_helper <- MLLogger.event/start/end
# <- MLPerfLogger._emit <- MLPerfLogger.<public method> <- caller.
# mllog looks 2 + stack_offset frames up, so stack_offset = 3 here.
_STACK_OFFSET = 3


class _RejectNonLogLines(logging.Filter):
    """Turn mllog's own warnings into exceptions.

    mllog reports bad metadata or values it cannot JSON-encode by writing a
    plain-text WARNING/ERROR line into the same log, which corrupts it for the
    compliance checker. A programming error should fail loudly instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            raise ValueError(f"mllog refused an event: {record.getMessage().strip()}")
        return True


def _private_logger(path: Path, name: str) -> tuple[logging.Logger, logging.FileHandler]:
    # logging.Logger(...) directly (not getLogger) so that it is not kept in the
    # global manager forever and has no parent to propagate to.
    logger = logging.Logger(name, level=logging.INFO)
    logger.propagate = False
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.addFilter(_RejectNonLogLines())
    return logger, handler


def _plain(value: Any) -> Any:
    """Tensors / numpy scalars -> Python numbers (mllog only knows numpy)."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


class MLPerfLogger:
    """Writes the MLPerf log of one run on rank 0; a no-op elsewhere.

    `barrier` (e.g. a torch.distributed barrier) is called by `run_start()` and
    `run_stop()` on every rank, logging or not, so that all ranks agree on
    when the timed region begins and ends.
    """

    def __init__(self, path: Path | None, rank: int = 0,
                 barrier: Callable[[], None] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.rank = rank
        self._barrier = barrier
        self._stopped = False
        self._handler: logging.FileHandler | None = None
        self._mllogger: MLLogger | None = None
        if self.path is not None and rank == 0:
            logger, self._handler = _private_logger(self.path, f"ds2bench.mllog.{id(self):x}")
            self._mllogger = MLLogger(logger=logger, default_stack_offset=_STACK_OFFSET)

    @property
    def active(self) -> bool:
        """True when this instance writes lines (rank 0, a path, not closed)."""
        return self._mllogger is not None

    @property
    def stopped(self) -> bool:
        """True once `run_stop` was issued (written on rank 0)."""
        return self._stopped

    def _emit(self, kind: str, key: str, value: Any, metadata: dict[str, Any] | None) -> None:
        if self._mllogger is None:
            return
        if metadata is not None:
            if not isinstance(metadata, dict):
                raise TypeError(f"{key}: metadata must be a dict, got {type(metadata).__name__}")
            clash = {"file", "lineno"} & metadata.keys()
            if clash:
                raise ValueError(f"{key}: metadata may not set {sorted(clash)} (set by mllog)")
            metadata = {k: _plain(v) for k, v in metadata.items()}
        getattr(self._mllogger, kind)(key=key, value=_plain(value), metadata=metadata)

    def event(self, key: str, value: Any = None, metadata: dict[str, Any] | None = None) -> None:
        """Log a POINT_IN_TIME event."""
        self._emit("event", key, value, metadata)

    def start(self, key: str, value: Any = None, metadata: dict[str, Any] | None = None) -> None:
        """Log an INTERVAL_START (init_start, block_start, epoch_start, eval_start ...)."""
        self._emit("start", key, value, metadata)

    def end(self, key: str, value: Any = None, metadata: dict[str, Any] | None = None) -> None:
        """Log an INTERVAL_END (init_stop, block_stop, epoch_stop, eval_stop ...)."""
        self._emit("end", key, value, metadata)

    def run_start(self) -> None:
        """Barrier (all ranks), then `run_start`: the timed region begins."""
        if self._barrier is not None:
            self._barrier()
        self._emit("start", C.RUN_START, None, None)

    def run_stop(self, status: str, reason: str | None = None, sync: bool = True) -> None:
        """Barrier (all ranks, unless `sync=False`), then `run_stop{status[, reason]}`.

        Idempotent: only the first call does anything, so an error handler may
        call it again after the normal path did. Pass `sync=False` when some
        rank may be gone (a barrier would hang).
        """
        if self._stopped:
            return
        if status not in (STATUS_SUCCESS, STATUS_ABORTED):
            raise ValueError(f"run_stop status must be success or aborted, got {status!r}")
        if sync and self._barrier is not None:
            self._barrier()
        metadata: dict[str, Any] = {C.STATUS: status}
        if reason:
            metadata["reason"] = reason
        self._emit("end", C.RUN_STOP, None, metadata)
        self._stopped = True

    def close(self) -> None:
        """Flush and close the file; later calls to this logger are no-ops."""
        if self._handler is not None:
            self._handler.close()
            if self._mllogger is not None:
                self._mllogger.logger.removeHandler(self._handler)
        self._handler = None
        self._mllogger = None

    def __enter__(self) -> "MLPerfLogger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _has_run_stop(path: Path) -> bool:
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        _, sep, payload = raw.partition(":::MLLOG ")
        if not sep:
            continue
        try:
            record = json.loads(payload)
        except ValueError:
            continue  # a torn line is no run_stop
        if isinstance(record, dict) and record.get("key") == C.RUN_STOP:
            return True
    return False


def append_run_stop_aborted(path: Path, reason: str) -> bool:
    """Close a log whose rank 0 died: append `run_stop{status: aborted, reason}`.

    Returns True if a line was written; False if the file is missing or
    already has a `run_stop`. The line is produced by mllog itself (same
    format, file/lineno of our caller), never hand-formatted.
    """
    path = Path(path)
    if not path.is_file() or _has_run_stop(path):
        return False
    # A process killed mid-write can leave a torn last line without a newline;
    # start ours on a fresh line so that it stays parseable on its own.
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("ab") as f:
            f.write(b"\n")
    logger, handler = _private_logger(path, f"ds2bench.mllog.abort.{id(path):x}")
    try:
        # get_caller <- _log_helper <- MLLogger.end <- here <- caller: offset 2.
        MLLogger(logger=logger).end(key=C.RUN_STOP, value=None, stack_offset=2,
                                    metadata={C.STATUS: STATUS_ABORTED, "reason": reason})
    finally:
        handler.close()
        logger.removeHandler(handler)
    return True
