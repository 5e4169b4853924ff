"""Run directories -> one flat row per run plus a per-epoch table.

A run directory (docs/DESIGN.md) holds `config.yaml` and at least one of
`mlperf.log` / `result.json`; resumed attempts add `mlperf.resume<k>.log`.
The MLPerf log is the source of truth for everything MLPerf defines (time to
train, status, eval_accuracy); `metrics.jsonl`, `result.json`,
`description.json` and `config.yaml` fill in what the log does not carry and
stand in when it is missing. Nothing here decides whether a run is scored:
that is `results.eligibility`.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from reference.config import ScoringConfig
from results.logparse import ParsedLog, parse_log

EPOCH_COLUMNS = ("epoch", "elapsed(s)", "wer_ref(%)", "wer_corpus(%)", "cer(%)",
                 "loss_ctc_nll_per_utt", "loss_ctc_nll_per_char", "seed_loss_last_iter",
                 "seed_loss_epoch_mean", "throughput(utt/s)")
# MLPerf key (metadata.epoch_num) -> per-epoch column
_LOG_EPOCH_KEYS = {
    "eval_accuracy": "wer_ref(%)",
    "ds2_eval_wer_corpus": "wer_corpus(%)",
    "ds2_eval_cer": "cer(%)",
    "ds2_train_loss": "loss_ctc_nll_per_utt",
    "ds2_train_loss_per_char": "loss_ctc_nll_per_char",
    "ds2_seed_loss": "seed_loss_last_iter",
    "ds2_throughput": "throughput(utt/s)",
}
# Config entries that do not make two runs different experiments: the seed is
# what repeats vary, and the card count is a grouping dimension of its own
# (scaling compares one config across card counts).
HASH_IGNORED = (("train", "seed"), ("cards",))


@dataclass
class Run:
    path: Path
    row: dict[str, Any]
    epochs: pd.DataFrame
    logs: list[ParsedLog] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() and (
        (path / "mlperf.log").is_file() or (path / "result.json").is_file())


def find_run_dirs(root: Path, skip: Path | None = None) -> list[Path]:
    """Every run directory at or under `root` (sorted), ignoring anything under `skip`."""
    root = Path(root)
    skip_r = Path(skip).resolve() if skip is not None else None
    found = []
    for cfg in root.rglob("config.yaml"):
        d = cfg.parent
        if skip_r is not None and (d.resolve() == skip_r or skip_r in d.resolve().parents):
            continue
        if is_run_dir(d):
            found.append(d)
    return sorted(set(found))


def log_segments(run_dir: Path) -> list[Path]:
    """mlperf.log, then mlperf.resume1.log, mlperf.resume2.log, ... (numeric order)."""
    def index(p: Path) -> int:
        tail = p.stem.removeprefix("mlperf.resume")
        return int(tail) if tail.isdigit() else 10**6
    segs = [run_dir / "mlperf.log"] if (run_dir / "mlperf.log").is_file() else []
    return segs + sorted(run_dir.glob("mlperf.resume*.log"), key=index)


def config_hash(cfg: dict[str, Any]) -> str:
    """Short hash of the resolved config without the seed and the card count."""
    clean = json.loads(json.dumps(cfg, default=str))  # deep copy, plain types
    train = clean.get("train")
    if isinstance(train, dict) and train.get("global_batch") is not None:
        # The launcher derived batch_per_card = global_batch / cards: with the
        # global batch fixed, runs on different card counts are one experiment.
        train.pop("batch_per_card", None)
    for path in HASH_IGNORED:
        node = clean
        for part in path[:-1]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(path[-1], None)
    blob = json.dumps(clean, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _read_json(path: Path, notes: list[str]) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        notes.append(f"{path.name} unreadable ({exc.__class__.__name__})")
        return {}
    return data if isinstance(data, dict) else {}


def _read_metrics(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(rec, dict):
            out.append(rec)
    if bad:
        notes.append(f"metrics.jsonl: {bad} torn line(s) skipped")
    return out


def _num(x: Any) -> float:
    """A finite float, else NaN (None, strings, booleans, inf from torn values)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return math.nan
    return float(x) if math.isfinite(x) else math.nan


def _epochs_from_logs(logs: list[ParsedLog]) -> pd.DataFrame:
    rows: dict[int, dict[str, float]] = {}
    offset = 0.0  # wall time of earlier attempts, so resumed runs get one time axis
    for log in logs:
        start = log.first("run_start")
        if start is None:
            continue
        for key, col in _LOG_EPOCH_KEYS.items():
            for epoch, value in log.by_epoch(key).items():
                rows.setdefault(epoch, {})[col] = _num(value)
        ends = log.time_by_epoch("eval_stop") or log.time_by_epoch("eval_accuracy")
        for epoch, t in ends.items():
            rows.setdefault(epoch, {})["elapsed(s)"] = offset + (t - start.time_ms) / 1000
        stop = log.first("run_stop") or (log.records[-1] if log.records else start)
        offset += max(0.0, (stop.time_ms - start.time_ms) / 1000)
    return pd.DataFrame.from_dict(rows, orient="index")


def _epochs_from_metrics(records: list[dict[str, Any]]) -> pd.DataFrame:
    rows: dict[int, dict[str, float]] = {}
    offset = 0.0
    for rec in records:
        kind, epoch = rec.get("kind"), rec.get("epoch")
        if kind == "final":  # one attempt ends; the next one's clock restarts at 0
            run_time = _num(rec.get("run_time(s)"))
            offset += 0.0 if math.isnan(run_time) else run_time
            continue
        if kind not in ("epoch", "eval") or not isinstance(epoch, int):
            continue
        row = rows.setdefault(epoch, {})
        for col in EPOCH_COLUMNS[1:]:
            if col in rec:
                row[col] = _num(rec[col]) + (offset if col == "elapsed(s)" else 0.0)
    return pd.DataFrame.from_dict(rows, orient="index")


def _epoch_table(logs: list[ParsedLog], metrics: list[dict[str, Any]]) -> pd.DataFrame:
    # The log wins where both have a value; metrics.jsonl fills the gaps.
    df = _epochs_from_logs(logs).combine_first(_epochs_from_metrics(metrics))
    df = df.reindex(columns=list(EPOCH_COLUMNS[1:])).sort_index()
    df.index.name = "epoch"
    return df.reset_index().astype({"epoch": int}) if len(df) else pd.DataFrame(columns=EPOCH_COLUMNS)


def time_problems(log: ParsedLog) -> list[str]:
    """Why a log's clock cannot give a time to train: it runs backwards or does not advance.

    A log is written in order by one process, so time_ms never decreases from
    one record to the next; run_stop must come strictly after run_start. A log
    that breaks either (edited, concatenated, or a clock that jumped) is no
    measurement, whatever its run_stop says.
    """
    out: list[str] = []
    prev = None
    for rec in log.records:
        if prev is not None and rec.time_ms < prev.time_ms:
            out.append(f"{log.path.name} line {rec.lineno}: time runs backwards "
                       f"({rec.key} at {rec.time_ms:.0f} ms after {prev.key} at {prev.time_ms:.0f} ms)")
            break
        prev = rec
    start, stop = log.first("run_start"), log.first("run_stop")
    if start is not None and stop is not None and stop.time_ms <= start.time_ms:
        out.append(f"{log.path.name}: run_stop - run_start = "
                   f"{(stop.time_ms - start.time_ms) / 1000:.3f} s is not positive")
    return out


def eval_points(log: ParsedLog | None) -> pd.DataFrame:
    """Every eval_accuracy of a log, in order: (samples_count, epoch_num, WER).

    Evaluations may be finer than an epoch (`train.eval_every_samples`), so
    "when" is the samples_count MLPerf logs with each of them, not the epoch.
    """
    rows = []
    for rec in (log.records if log is not None else []):
        if rec.key != "eval_accuracy":
            continue
        sc = rec.metadata.get("samples_count")
        rows.append({"samples_count": _num(sc), "epoch_num": rec.epoch, "wer": _num(rec.value)})
    return pd.DataFrame(rows, columns=["samples_count", "epoch_num", "wer"])


def _cards_from_platform(platform: Any) -> int | None:
    if isinstance(platform, str) and platform.partition("x")[0].isdigit():
        return int(platform.partition("x")[0])
    return None


def load_run(path: Path) -> Run:
    """Read one run directory (never raises for bad content; problems become notes)."""
    path = Path(path)
    notes: list[str] = []
    try:
        cfg = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
        if not isinstance(cfg, dict):
            raise ValueError("not a mapping")
        cfg_error = None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        cfg, cfg_error = {}, f"config.yaml unreadable ({exc.__class__.__name__})"
        notes.append(cfg_error)
    desc = _read_json(path / "description.json", notes)
    result = _read_json(path / "result.json", notes)
    metrics = _read_metrics(path / "metrics.jsonl", notes)
    logs = [parse_log(p) for p in log_segments(path)]
    main = logs[0] if logs and logs[0].path.name == "mlperf.log" else None
    epochs = _epoch_table(logs, metrics)

    def logged(key: str, fallback: Any = None) -> Any:
        """First value of `key` over all log segments, else `fallback` (config, files)."""
        value = next((lg.value(key) for lg in logs if lg.first(key) is not None), None)
        return fallback if value is None else value

    train, model, optim, data = (cfg.get(k) or {} for k in ("train", "model", "optim", "data"))
    platform = logged("submission_platform")
    cards = logged("ds2_cards", _cards_from_platform(platform) or desc.get("cards") or cfg.get("cards"))
    try:
        cards = int(cards) if cards is not None else None
    except (TypeError, ValueError):
        notes.append(f"card count {cards!r} is not a number")
        cards = None
    if platform is None and desc.get("accelerator"):
        platform = f"{cards}x{str(desc['accelerator']).replace(' ', '-')}"
    platform = platform or "unknown"
    # Status: the last attempt's run_stop. result.json speaks only when there is
    # no log at all: a log without run_stop is an incomplete run, whatever else says.
    stop = logs[-1].last("run_stop") if logs else None
    if logs:
        status = str(stop.metadata.get("status") or "unknown") if stop else "no run_stop"
        reason = str(stop.metadata.get("reason") or "") if stop else "the MLPerf log has no run_stop"
    else:
        status = str(result.get("status") or "unknown")
        reason = str(result.get("reason") or "")
    resumed = len(logs) > 1 or any(lg.first("ds2_resumed_from") is not None for lg in logs)
    start_main = main.first("run_start") if main else None
    stop_main = main.first("run_stop") if main else None
    run_time = math.nan  # run_stop - run_start of one uninterrupted attempt
    if start_main and stop_main and not resumed:
        run_time = (stop_main.time_ms - start_main.time_ms) / 1000
    target = _num(logged("ds2_target_wer") if logs else train.get("target_wer"))
    wers = epochs["wer_ref(%)"].dropna() if len(epochs) else pd.Series(dtype=float)
    reached = wers[wers <= target]  # empty when there is no target (NaN compares False)
    # Samples / epochs to target from the eval points themselves (they may be
    # finer than an epoch): the first eval_accuracy at or below the target.
    points = eval_points(main) if not resumed else eval_points(None)
    hit = points[points["wer"] <= target]
    train_samples = _num(logged("train_samples"))
    samples_to_target = float(hit["samples_count"].iloc[0]) if len(hit) else math.nan
    if len(hit) and math.isfinite(samples_to_target) and train_samples > 0:
        epochs_to_target: float | None = samples_to_target / train_samples
    elif len(hit) and hit["epoch_num"].iloc[0] is not None:
        epochs_to_target = float(hit["epoch_num"].iloc[0])
    elif len(reached):
        epochs_to_target = float(epochs.loc[reached.index[0], "epoch"])
    else:
        epochs_to_target = None
    point_wers = points["wer"].dropna()
    scoring_cfg = cfg.get("scoring") or {}
    required = scoring_cfg.get("required_runs") if isinstance(scoring_cfg, dict) else None
    if not isinstance(required, int) or isinstance(required, bool) or required < 1:
        required = ScoringConfig().required_runs
    cpu = desc.get("cpu") if isinstance(desc.get("cpu"), dict) else {}
    init = next((m for m in metrics if m.get("kind") == "init"), {})
    thr = logs[-1].value("ds2_run_throughput") if logs else None
    # Gradient all-reduce (launch → completion per bucket, reference/train/comm.py) as a
    # share of training time; NaN where it was not measured (1 card, accelerators).
    ep_recs = [m for m in metrics if m.get("kind") == "epoch"]
    comm = [m.get("allreduce_time(s)") for m in ep_recs]
    comm_share = math.nan
    if ep_recs and all(isinstance(c, (int, float)) for c in comm):
        train_s = sum(float(m.get("train_time(s)") or 0.0) for m in ep_recs)
        comm_share = 100.0 * sum(comm) / train_s if train_s > 0 else math.nan

    def at_last(col: str) -> float:
        s = epochs[col].dropna() if len(epochs) else pd.Series(dtype=float)
        return float(s.iloc[-1]) if len(s) else math.nan

    row: dict[str, Any] = {
        "run": path.name,
        "path": str(path),
        "benchmark": cfg.get("name") or path.name.split("-")[0],
        "mlperf_benchmark": logged("submission_benchmark"),
        "division": logged("submission_division", cfg.get("division")),
        "platform": platform,
        "accelerator": platform.partition("x")[2] or "unknown",
        "cards": cards,
        "seed": logged("seed", train.get("seed")),
        "status": status,
        "reason": reason,
        "converged": status == "success",
        "epochs": int(epochs.loc[wers.index, "epoch"].max()) if len(wers)
        else int(result.get("epochs_completed") or 0),
        "max_epochs": logged("ds2_max_epochs", train.get("epochs")),
        "target_wer(%)": target,
        "epochs_to_target": epochs_to_target,
        "samples_to_target": samples_to_target,
        "train_samples": train_samples,
        "required_runs": required,
        "host_cores": cpu.get("cores_available"),
        # MLPerf time to train exists only for a converged run; the scores count
        # a non-converged one as infinite (results.scoring), not as its run time.
        "time_to_train(s)": run_time if status == "success" else math.nan,
        "run_time(s)": run_time,
        "final_wer_ref(%)": at_last("wer_ref(%)"),
        "best_wer_ref(%)": float(point_wers.min()) if len(point_wers)
        else float(wers.min()) if len(wers) else _num(result.get("best_wer")),
        "final_wer_corpus(%)": at_last("wer_corpus(%)"),
        "final_cer(%)": at_last("cer(%)"),
        "throughput(utt/s)": _num(thr if thr is not None else result.get("throughput")),
        "allreduce_share(%)": comm_share,
        "resumed": resumed,
        "log_segments": len(logs),
        "config_hash": config_hash(cfg) if cfg_error is None else "unreadable",
        "loss_definition": logged("ds2_loss_definition", train.get("loss") or "ctc_nll"),
        "rnn_type": logged("ds2_rnn_type", model.get("rnn_type")),
        "rnn_hidden": logged("ds2_rnn_hidden", model.get("hidden")),
        "rnn_layers": logged("ds2_rnn_layers", model.get("layers")),
        "bidirectional": logged("ds2_bidirectional", model.get("bidirectional")),
        "batch_per_card": logged("ds2_batch_per_card", train.get("batch_per_card")),
        "global_batch_size": logged("global_batch_size"),
        "opt_name": logged("opt_name", optim.get("name")),
        "base_lr": _num(logged("opt_base_learning_rate", optim.get("lr"))),
        "corpus": data.get("corpus"),
        "seed_loss_at_init": _num(logged("ds2_seed_loss_at_init", init.get("seed_loss"))),
        "ctc_nll_per_utt_at_init": _num(logged("ds2_train_loss_at_init", init.get("ctc_nll_per_utt"))),
        "ctc_nll_per_char_at_init": _num(init.get("ctc_nll_per_char")),
        "has_mlperf_log": main is not None,
        "log_problems": "; ".join(p for lg in logs for p in lg.problems),
        "time_problems": "; ".join(p for lg in logs for p in time_problems(lg)),
        "config_error": cfg_error,
        "notes": "",
    }
    return Run(path, row, epochs, logs, notes)
