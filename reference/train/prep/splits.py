"""A data split ready to train or evaluate on, from its verified manifest.

`load_split` is what `Trainer.prepare_data` does before the timed region: read
the manifest and its verified record (`reference.train.prep.verified`, written by
`make data` / `make verify` / `harness bench`'s preparation phase) and apply
the filters from the recorded facts - no audio or transcript file is opened
before `run_start`. Roles:

* `train`: every check applies; what the filters drop is reported by reason
  (`rejected_counts`, logged as `ds2_train_rejected`).
* `eval`: never filtered (MLPerf allows dropping training data only). Every
  utterance is scored; one that cannot be used at all (missing, corrupt,
  wrong rate, ...) is an error of data preparation, not a silent drop.

`verified=False` (the offline `harness eval` tool on any manifest) decodes the
files itself instead.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from reference.config import BenchmarkConfig
from reference.train.distributed import DistContext
from reference.labels import decode_ids
from reference.data.manifest import load_manifest

VERIFY_COMMAND = "make verify MANIFEST={manifest}"  # or `make data`, which verifies too


class EvalSetError(ValueError):
    """An eval utterance cannot be scored: the data preparation must be fixed."""


@dataclass
class Split:
    utts: list
    texts: dict[int, str]
    targets: dict[int, list[int]]
    durations: dict[int, float]
    rejected: list
    digest: str = ""  # ids + normalised transcripts (reference.data.manifest.manifest_digest)
    rejected_counts: dict[str, int] = field(default_factory=dict)


def resolve_manifest(cfg: BenchmarkConfig, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else Path(cfg.data.root) / p


def load_split(cfg: BenchmarkConfig, manifest: Path, run_dir: Path | None = None,
               dist: DistContext | None = None, workers: int = 1, role: str = "train",
               verified: bool = True) -> Split:
    """Read `manifest` (and its verified record) and apply the checks of `role`."""
    from reference.train.prep.preflight import judge_facts, measure
    from reference.train.prep.verified import read_verified, split_digest

    if role not in ("train", "eval"):
        raise ValueError(f"role must be train or eval, got {role!r}")
    utts = load_manifest(manifest)
    if verified:
        header, facts = read_verified(manifest, len(utts), cfg.features, cfg.data,
                                      VERIFY_COMMAND.format(manifest=manifest))
        digest = header.get("digest", "")
    else:
        facts = measure(utts, cfg.features, cfg.data, workers=workers)
        digest = split_digest(utts, facts)
    rep = judge_facts(utts, facts, cfg.features, cfg.data, training=role == "train")
    if role == "eval" and rep.rejected:
        shown = "; ".join(f"{r.id} ({r.code}: {r.detail})" for r in rep.rejected[:3])
        raise EvalSetError(
            f"{manifest}: {len(rep.rejected)} eval utterance(s) cannot be scored ({shown}"
            f"{'; ...' if len(rep.rejected) > 3 else ''}). The eval set is scored whole, "
            f"never filtered: fix the data (`{VERIFY_COMMAND.format(manifest=manifest)}` "
            "lists them)")
    if not rep.accepted:
        raise ValueError(f"{manifest}: no usable utterances ({len(rep.rejected)} rejected)")
    texts = {i: decode_ids(rep.targets[i]) for i in rep.accepted}
    counts = {k: v for k, v in rep.counts().items() if k not in ("accepted", "rejected", "total")}
    return Split(utts, texts, rep.targets, rep.durations, rep.rejected, digest, counts)


def write_rejected(run_dir: Path, splits: dict[str, Split]) -> None:
    """`rejected.json` in the run directory (only when something was rejected), one line per split."""
    rejected = {name: [asdict(r) for r in s.rejected] for name, s in splits.items()}
    if not any(rejected.values()):
        return
    (run_dir / "rejected.json").write_text(json.dumps(rejected, indent=1))
    for name, rows in rejected.items():
        print(f"[data] {name}: rejected {len(rows)} utterances (see rejected.json)", file=sys.stderr)
