"""A data split ready to train or evaluate on: manifest read, every file preflighted.

`load_split` is what `Trainer.prepare_data` (and `harness eval`) do before the
timed region: read the manifest, decode and check every utterance (cached
across runs by `reference.train.preflight`), and keep the accepted ones with their
label ids, texts and durations. With several ranks only rank 0 decodes; the
others wait for its marker and read the cached report, instead of every rank
decoding the whole corpus at once on shared cores.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from reference.config import BenchmarkConfig
from reference.train.distributed import DistContext
from reference.labels import decode_ids
from reference.data.manifest import load_manifest

PREFLIGHT_WAIT_S = 6 * 3600.0  # LibriSpeech's 280k files take minutes, not hours


@dataclass
class Split:
    utts: list
    texts: dict[int, str]
    targets: dict[int, list[int]]
    durations: dict[int, float]
    rejected: list


def resolve_manifest(cfg: BenchmarkConfig, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else Path(cfg.data.root) / p


def wait_for(path: Path, what: str, limit_s: float = PREFLIGHT_WAIT_S) -> None:
    """Poll for `path`; if rank 0 dies first, torchrun ends this process anyway."""
    start = last = time.monotonic()
    while not path.exists():
        now = time.monotonic()
        if now - start > limit_s:
            raise TimeoutError(f"waited {limit_s:.0f} s for {what} ({path} never appeared)")
        if now - last >= 60:
            print(f"[train] still waiting for {what} ({now - start:.0f} s)", file=sys.stderr)
            last = now
        time.sleep(0.2)


def load_split(cfg: BenchmarkConfig, manifest: Path, run_dir: Path, dist: DistContext,
               workers: int = 1) -> Split:
    """Read `manifest` and decode every file (offline validation, outside the timed region)."""
    from reference.train.preflight import preflight, report_key

    utts = load_manifest(manifest)
    cache_dir = run_dir.parent / ".preflight-cache"
    # The marker is named by the report's key, so a stale one cannot match.
    marker = key = None
    if dist.distributed:
        key = report_key(utts, cfg.features, cfg.data)
        marker = run_dir / f".preflight-{key[:24]}.done"
        if not dist.is_main:
            wait_for(marker, f"rank 0's data preflight of {manifest}")
    rep = preflight(utts, cfg.features, cfg.data, workers=workers, cache_dir=cache_dir,
                    progress=dist.is_main, key=key)
    if marker is not None and dist.is_main:
        marker.write_text(f"{len(rep.accepted)} accepted, {len(rep.rejected)} rejected\n")
    if not rep.accepted:
        raise ValueError(f"{manifest}: no usable utterances ({len(rep.rejected)} rejected)")
    texts = {i: decode_ids(rep.targets[i]) for i in rep.accepted}
    return Split(utts, texts, rep.targets, rep.durations, rep.rejected)


def write_rejected(run_dir: Path, splits: dict[str, Split]) -> None:
    """`rejected.json` in the run directory (only when something was rejected), one line per split."""
    rejected = {name: [asdict(r) for r in s.rejected] for name, s in splits.items()}
    if not any(rejected.values()):
        return
    (run_dir / "rejected.json").write_text(json.dumps(rejected, indent=1))
    for name, rows in rejected.items():
        print(f"[data] {name}: rejected {len(rows)} utterances (see rejected.json)", file=sys.stderr)
