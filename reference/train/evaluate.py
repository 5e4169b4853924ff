"""Evaluate a checkpoint on a manifest: reference WER, corpus WER and CER.

Uses the trainer's own evaluation path (same features, decoder and metrics),
so the numbers equal what the training run logged for the same weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from reference.train.checkpoint import load_checkpoint
from reference.train.ema import load_average_into
from reference.config import config_from_dict
from reference.data.loader import BatchLoader, UtteranceSet
from reference.device import pick_device
from reference.train.distributed import DistContext
from reference.model.deepspeech2 import DeepSpeech2
from reference.train.precision import apply_fp32_precision, plan_amp
from reference.train.prep.splits import load_split
from reference.train.trainer import Trainer, default_threads


def evaluate_checkpoint(checkpoint: Path, manifest: Path, device: str = "auto",
                        batch: int | None = None, threads: int = 0) -> dict[str, Any]:
    """Metrics of `checkpoint` on `manifest`.

    On CPU the thread count changes float summation order, and near-tied
    logits can then decode differently: to reproduce a run's logged numbers
    bit for bit, use the run's threads per rank (description.json).
    """
    state = load_checkpoint(checkpoint)
    cfg = config_from_dict(yaml.safe_load(state["config"]), source=f"{checkpoint} (config)")
    cfg.data.eval_manifest = str(Path(manifest).resolve())
    if batch:
        cfg.data.eval_batch = batch
    dist = DistContext(device=pick_device(device, 0))
    if dist.device.type == "cpu":
        torch.set_num_threads(threads or default_threads(1))
    tr = Trainer(cfg, Path(checkpoint).parent, dist=dist)
    tr.eval = load_split(cfg, Path(cfg.data.eval_manifest), tr.run_dir, dist, role="eval",
                         verified=False)  # an offline tool: decodes the files itself
    tr.model = DeepSpeech2(cfg.model, cfg.features).to(dist.device)
    tr.model.load_state_dict(state["model"])
    if state.get("ema"):  # the run scored its weight average: score the same weights
        load_average_into(tr.model, state["ema"])
    tr.ddp = tr.model
    apply_fp32_precision(cfg.train.fp32_precision)  # evaluate as the run trained
    tr.amp = plan_amp(cfg.train.amp, cfg.model, cfg.features, dist.device)
    tr.eval_loader = BatchLoader(UtteranceSet(tr.eval.utts, tr.eval.targets, cfg.data,
                                              cfg.features, cache=False), 0, False)
    out = tr.evaluate()
    out.update({"checkpoint": str(checkpoint), "manifest": str(manifest),
                "epoch": state["epoch"], "rejected": len(tr.eval.rejected)})
    return out
