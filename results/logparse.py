"""Read `:::MLLOG {json}` files without trusting them.

Why our own parser and not mlperf_logging's: its parser skips lines that lack
the token, glues a torn line onto the next one and crashes on records without
`metadata`. A results table built on such a log would silently be wrong, so
here every line that is not a complete record becomes a *problem* (with its
line number), and a log with problems is reported as invalid by the caller.
The well-formed records are still returned, so that what they say can be
shown next to the reason the run was not scored.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN = ":::MLLOG "
MAX_PROBLEMS = 5  # enough to explain a torn log without flooding the report


@dataclass(frozen=True)
class LogRecord:
    lineno: int
    time_ms: float
    event_type: str
    key: str
    value: Any
    metadata: dict[str, Any]

    @property
    def epoch(self) -> int | None:
        """`metadata.epoch_num` (or `first_epoch_num`) when it is an integer."""
        for name in ("epoch_num", "first_epoch_num"):
            e = self.metadata.get(name)
            if isinstance(e, int) and not isinstance(e, bool):
                return e
        return None


@dataclass
class ParsedLog:
    path: Path
    records: list[LogRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def first(self, key: str) -> LogRecord | None:
        return next((r for r in self.records if r.key == key), None)

    def last(self, key: str) -> LogRecord | None:
        return next((r for r in reversed(self.records) if r.key == key), None)

    def value(self, key: str, default: Any = None) -> Any:
        rec = self.first(key)
        return default if rec is None else rec.value

    def by_epoch(self, key: str) -> dict[int, Any]:
        """epoch_num -> value of `key` (the last record of an epoch wins)."""
        return {r.epoch: r.value for r in self.records if r.key == key and r.epoch is not None}

    def time_by_epoch(self, key: str) -> dict[int, float]:
        return {r.epoch: r.time_ms for r in self.records if r.key == key and r.epoch is not None}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _record(lineno: int, text: str) -> LogRecord | str:
    """One line -> a record, or a problem in words."""
    if not text.startswith(TOKEN):
        return "not a ':::MLLOG {json}' line (torn write or foreign text)"
    try:
        data = json.loads(text[len(TOKEN):])
    except ValueError as exc:
        return f"torn or invalid JSON after ':::MLLOG' ({exc.__class__.__name__}: {exc})"
    if not isinstance(data, dict):
        return "record is not a JSON object"
    key = data.get("key")
    if not isinstance(key, str) or not key:
        return "record has no key"
    if not _is_number(data.get("time_ms")):
        return f"record '{key}' has no numeric time_ms"
    metadata = data.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        return f"record '{key}' has a metadata that is not an object"
    return LogRecord(lineno, float(data["time_ms"]), str(data.get("event_type", "")), key,
                     data.get("value"), metadata)


def parse_log(path: Path) -> ParsedLog:
    """Parse one MLPerf log; never raises for a bad log (a missing file is a problem)."""
    out = ParsedLog(Path(path))
    try:
        raw = out.path.read_bytes()
    except OSError as exc:
        out.problems.append(f"cannot read: {exc.strerror or exc}")
        return out
    if not raw.strip():
        out.problems.append("empty log")
        return out
    extra = 0
    for lineno, blob in enumerate(raw.split(b"\n"), start=1):
        try:
            text = blob.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            got: LogRecord | str = "not valid UTF-8 (torn write?)"
        else:
            if not text.strip():
                continue
            got = _record(lineno, text)
        if isinstance(got, LogRecord):
            out.records.append(got)
        elif len(out.problems) < MAX_PROBLEMS:
            out.problems.append(f"{out.path.name} line {lineno}: {got}")
        else:
            extra += 1
    if extra:
        out.problems.append(f"... and {extra} more bad line(s)")
    return out
