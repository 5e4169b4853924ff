"""Check ds2bench MLPerf logs against the DeepSpeech2 rules.

Two stages per log:

1. A structural scan (here, in Python): the file exists, every non-blank line
   is a complete `:::MLLOG {json}` record with the six mllog fields, and
   nothing follows `run_stop`. The engine's own parser cannot be trusted with
   this: it silently skips lines without the token, glues a torn line onto the
   next one (it strips everything before the last `:::MLLOG`), and crashes on
   a record without `metadata`.
   Timestamps must not go backwards.
2. mlperf_logging's compliance engine with our rule files
   (`rules/common_ds2.yaml`: log discipline and run structure, then the rules
   `generate.py` writes from the definition of the benchmark the log names,
   `benchmarks/<ds2_benchmark>.yaml`: target, dataset identity and, for the
   closed division, every hyper-parameter), with warnings treated as errors. We subclass the engine's checker only to keep
   every message: the stock one keeps one message per key (later failures of
   the same key overwrite earlier ones) and lets a later rules file erase the
   messages of an earlier one; our chain is additive.

Engine messages are turned into words: each CHECK in our YAML ends with a
`# rule in words` comment, which is what a failure shows.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RULES_DIR = Path(__file__).resolve().parent / "rules"
COMMON_RULES = RULES_DIR / "common_ds2.yaml"
DIVISIONS = ("closed", "open")
RULESET = "4.1.0"  # parser/engine version of mlperf-logging the rules are written for

_TOKEN = ":::MLLOG "
_FIELDS = ("namespace", "time_ms", "event_type", "key", "value", "metadata")
_EVENT_TYPES = ("INTERVAL_START", "INTERVAL_END", "POINT_IN_TIME")


@dataclass
class CheckResult:
    """Verdict on one log. `failures` are rules in words, empty when ok."""

    path: Path
    ok: bool
    failures: list[str]
    # What the log says about itself (None when absent), for grouping runs.
    benchmark: str | None = None
    platform: str | None = None
    division: str | None = None
    seed: Any = None
    benchmark_name: str | None = None  # ds2_benchmark: the definition in benchmarks/
    config: str | None = None  # digest of every logged setting but the seed (see _config_fingerprint)


@dataclass
class _Record:
    lineno: int  # 1-based line in the file
    raw: str
    data: dict[str, Any] = field(default_factory=dict)


def _scan(path: Path) -> tuple[list[_Record], list[str]]:
    """Structural checks; returns the well-formed records and the failures."""
    records: list[_Record] = []
    failures: list[str] = []
    stop_line: int | None = None
    after_stop = False
    last_time: tuple[int, float] | None = None  # (line, time_ms) of the previous record
    for lineno, blob in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            line = blob.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            failures.append(f"line {lineno}: not valid UTF-8 (torn write?)")
            continue
        if not line.strip():
            continue  # mllog's clear_line option writes blank lines
        if not line.startswith(_TOKEN):
            failures.append(f"line {lineno}: not a ':::MLLOG {{json}}' line (torn or foreign text)")
            continue
        try:
            data = json.loads(line[len(_TOKEN):])
        except ValueError as exc:
            failures.append(f"line {lineno}: torn or invalid JSON after ':::MLLOG' ({exc})")
            continue
        problem = _record_problem(data)
        if problem:
            failures.append(f"line {lineno}: {problem}")
            continue
        if stop_line is not None and not after_stop:
            after_stop = True  # one message is enough
            failures.append(f"line {lineno}: '{data['key']}' logged after run_stop "
                            f"(line {stop_line}); run_stop must be the last record")
        if last_time is not None and data["time_ms"] < last_time[1]:
            failures.append(f"line {lineno}: time_ms {data['time_ms']} is earlier than line "
                            f"{last_time[0]}'s {last_time[1]}; timestamps must not go backwards")
        last_time = (lineno, data["time_ms"])
        if data["key"] == "run_stop" and stop_line is None:
            stop_line = lineno
        records.append(_Record(lineno, line, data))
    if not records and not failures:
        failures.append("no ':::MLLOG' records (empty log)")
    return records, failures


def _record_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "record is not a JSON object"
    missing = [f for f in _FIELDS if f not in data]
    if missing:
        return f"record lacks field(s) {', '.join(missing)}"
    if not isinstance(data["key"], str) or not data["key"]:
        return "record key must be a non-empty string"
    if data["event_type"] not in _EVENT_TYPES:
        return f"event_type must be one of {', '.join(_EVENT_TYPES)}"
    if not isinstance(data["time_ms"], (int, float)) or isinstance(data["time_ms"], bool):
        return "time_ms must be a number"
    if not isinstance(data["metadata"], dict):
        return "metadata must be a JSON object"
    return None


class _FastYaml:
    """The engine's view of `yaml`: the same BaseLoader semantics, in C when available.

    The engine parses every rules file for every log it checks; libyaml's
    CBaseLoader builds the same plain-string tree ~10x faster than the pure
    Python BaseLoader (a set of 10 logs is checked in a second, not ten).
    """

    def __init__(self) -> None:
        import yaml

        self.load = yaml.load
        self.BaseLoader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)

    def __getattr__(self, name: str) -> Any:
        import yaml

        return getattr(yaml, name)


def _make_checker() -> Any:
    from mlperf_logging.compliance_checker import mlp_compliance as mc

    if not isinstance(mc.yaml, _FastYaml):
        mc.yaml = _FastYaml()

    class _AllMessages(mc.ComplianceChecker):
        """Keeps every (key, message) instead of the last one per key."""

        def __init__(self) -> None:
            super().__init__("training", RULESET, quiet=False, werror=True)
            self.collected: list[tuple[str | None, str]] = []

        def put_message(self, msg: str, key: str | None = None) -> None:
            self.collected.append((key, msg))

        def overwrite_messages(self, keys: Any) -> None:
            pass  # our rule files add to each other; nothing is overridden

    return _AllMessages()


def _words(test: str) -> str:
    """The '# rule in words' part of a CHECK expression, else the expression."""
    expr, _, comment = test.partition("#")
    return comment.strip() or expr.strip()


_CHECK_RE = re.compile(r"CHECK for '(?P<key>[^']*)' failed in line (?P<n>\d+):\n.*?\n"
                       r"failed test: (?P<test>.*?)\ncurrent context", re.S)
_EXEC_RE = re.compile(r"Failed executing CHECK code:\n(?P<test>.*?)\ntriggered by line:\n"
                      r"(?P<line>[^\n]*)", re.S)
_END_RE = re.compile(r"failed test: (?P<test>.*?)\ncurrent context", re.S)
_REQ_RE = re.compile(r"Required (?P<req>EXACTLY_ONE|AT_LEAST_ONE|AT_LEAST\(\d+\)) occurrence of "
                     r"'(?P<key>[^']*)' but found (?P<n>\d+)(?P<rest>.*)", re.S)


_POST_RE = re.compile(r"Failed executing code (?P<action>\w+) code triggered by line :\n"
                      r"(?P<line>[^\n]*)", re.S)

# Order of failures in a verdict: missing/repeated keys first (usually the
# cause), then per-line rules, then whole-log rules.
_REQ, _LINE, _WHOLE = 0, 1, 2


def _line_of(records: list[_Record], raw: str) -> int | None:
    return next((r.lineno for r in records if r.raw == raw.strip()), None)


def _describe(key: str | None, msg: str,
              records: list[_Record]) -> tuple[int, str, str, int | None]:
    """One engine message -> (order, key, rule in words, file line or None)."""
    if m := _CHECK_RE.match(msg):
        return _LINE, m["key"], _words(m["test"]), records[int(m["n"])].lineno
    if m := _EXEC_RE.match(msg):
        return (_LINE, key or "", f"{_words(m['test'])} (value of the wrong type)",
                _line_of(records, m["line"]))
    if m := _POST_RE.match(msg):
        return (_LINE, key or "", f"rule code ({m['action']}) failed on this record",
                _line_of(records, m["line"]))
    if m := _REQ_RE.match(msg):
        want = {"EXACTLY_ONE": "exactly once", "AT_LEAST_ONE": "at least once"}.get(m["req"], m["req"])
        return _REQ, m["key"], f"required {want}, found {m['n']}{m['rest'].rstrip()}", None
    if msg.startswith("Failed checks for "):
        name, _, test = msg[len("Failed checks for "):].partition(" : ")
        return _WHOLE, name, _words(test), None
    if m := _END_RE.match(msg):
        return _WHOLE, "", _words(m["test"]), None
    return _WHOLE, "", msg.strip().splitlines()[0], None


def _format(key: str, words: str, lines: list[int]) -> str:
    """`line 7 seed: rule`, `lines 29, 41 block_start: rule`, `seed: rule`, `rule`."""
    head = f"{key}: " if key else ""
    if not lines:
        return f"{head}{words}"
    shown = ", ".join(map(str, lines[:5])) + (", ..." if len(lines) > 5 else "")
    return f"{'line' if len(lines) == 1 else 'lines'} {shown} {head}{words}"


def _run_rules(records: list[_Record], benchmarks_dir: Path | None = None) -> list[str]:
    from mlperf_logging.compliance_checker.mlp_parser.ruleset_410 import parse_generator

    # Feed the engine the records we validated, one per line, so that its line
    # index maps back to records[i].
    loglines, errors = parse_generator([r.raw + "\n" for r in records])
    if errors or len(loglines) != len(records):  # cannot happen after _scan
        return [f"engine could not parse: {e}" for _, e in errors] or ["engine parse mismatch"]
    import tempfile

    from harness.mlperf.compliance.generate import BENCHMARKS_DIR, UnknownBenchmark, rules_for

    checker = _make_checker()
    divisions = [r.data["value"] for r in records if r.data["key"] == "submission_division"]
    names = [r.data["value"] for r in records if r.data["key"] == "ds2_benchmark"]
    with tempfile.TemporaryDirectory(prefix="ds2-rules-") as tmp:
        rule_files = [COMMON_RULES]
        if len(divisions) == 1 and divisions[0] in DIVISIONS and len(names) == 1:
            try:
                text = rules_for(names[0], divisions[0], benchmarks_dir or BENCHMARKS_DIR)
            except UnknownBenchmark as exc:
                checker.collected.append(("ds2_benchmark", f"Failed checks for ds2_benchmark : "
                                          f"x  # {exc}"))
            else:
                generated = Path(tmp) / f"{names[0]}_{divisions[0]}.yaml"
                generated.write_text(text, encoding="utf-8")
                rule_files.append(generated)
        for rules in rule_files:
            try:
                checker.configured_checks(loglines, str(rules))
            except Exception as exc:  # an engine crash must fail the log, not the tool
                checker.collected.append((None, f"compliance engine error in {rules.name}: {exc!r}"))
    # One entry per rule: a rule broken on many lines (everything after a
    # missing run_start, say) is reported once with its line numbers.
    grouped: dict[tuple[int, str, str], list[int]] = {}
    for key, msg in checker.collected:
        order, name, words, line = _describe(key, msg, records)
        lines = grouped.setdefault((order, name, words), [])
        if line is not None and line not in lines:
            lines.append(line)
    return [_format(name, words, lines)
            for (order, name, words), lines in sorted(grouped.items(), key=lambda kv: kv[0][0])]


# Values that may differ between the runs of one set: the seed, and what
# describes one run's outcome or timing rather than its configuration.
_PER_RUN_KEYS = {"seed", "ds2_resumed_from", "ds2_seed_loss_at_init", "ds2_train_loss_at_init"}


def _config_fingerprint(records: list[_Record]) -> str:
    """sha256 over the key/value of every record before init_stop except the seed.

    Two runs of one submission set must agree on all of it (benchmark,
    platform, division, hyper-parameters, data, ...).
    """
    import hashlib

    h = hashlib.sha256()
    for r in records:
        if r.data["key"] == "init_stop":
            break
        if r.data["key"] not in _PER_RUN_KEYS:
            h.update(json.dumps([r.data["key"], r.data["value"]], sort_keys=True).encode() + b"\n")
    return h.hexdigest()


def _first_value(records: list[_Record], key: str) -> Any:
    return next((r.data["value"] for r in records if r.data["key"] == key), None)


def check_log(path: Path, benchmarks_dir: Path | None = None) -> CheckResult:
    """Check one MLPerf log file; never raises for a bad log.

    `benchmarks_dir`: where the benchmark definitions the rules are generated
    from live (default: the repository's `benchmarks/`).
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a log file" if path.is_dir() else "log file not found"
        return CheckResult(path, False, [what])
    try:
        records, failures = _scan(path)
    except OSError as exc:
        return CheckResult(path, False, [f"cannot read the log ({exc.strerror or exc})"])
    if records:
        failures += _run_rules(records, benchmarks_dir)
    return CheckResult(path, not failures, failures,
                       benchmark=_first_value(records, "submission_benchmark"),
                       benchmark_name=_first_value(records, "ds2_benchmark"),
                       config=_config_fingerprint(records),
                       platform=_first_value(records, "submission_platform"),
                       division=_first_value(records, "submission_division"),
                       seed=_first_value(records, "seed"))
