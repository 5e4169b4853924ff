"""Evaluate a checkpoint on a manifest: reference WER, corpus WER and CER.

Uses the trainer's own evaluation path (same features, decoder and metrics),
so the numbers equal what the training run logged for the same weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from reference.checkpoint import load_checkpoint
from reference.config import config_from_dict
from reference.data import BatchLoader, UtteranceSet
from reference.distributed import DistContext, pick_device
from reference.model import DeepSpeech2
from reference.trainer import Trainer


def evaluate_checkpoint(checkpoint: Path, manifest: Path, device: str = "auto",
                        batch: int | None = None) -> dict[str, Any]:
    state = load_checkpoint(checkpoint)
    cfg = config_from_dict(yaml.safe_load(state["config"]), source=f"{checkpoint} (config)")
    cfg.data.eval_manifest = str(Path(manifest).resolve())
    if batch:
        cfg.data.eval_batch = batch
    dist = DistContext(device=pick_device(device, 0))
    tr = Trainer(cfg, Path(checkpoint).parent, dist=dist)
    tr.eval = tr._load_split(Path(cfg.data.eval_manifest))
    tr.model = DeepSpeech2(cfg.model, cfg.features).to(dist.device)
    tr.model.load_state_dict(state["model"])
    tr.ddp = tr.model
    tr.eval_loader = BatchLoader(UtteranceSet(tr.eval.utts, tr.eval.targets, cfg.data,
                                              cfg.features, cache=False), 0, False)
    out = tr.evaluate()
    out.update({"checkpoint": str(checkpoint), "manifest": str(manifest),
                "epoch": state["epoch"], "rejected": len(tr.eval.rejected)})
    return out
