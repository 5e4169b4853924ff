"""A real `Trainer` on the mini corpus, set up (data prepared, model built) as this
folder's tests use it: `make(corpus, run_dir, overrides)` with the overrides that
shrink tiny to seconds-long epochs (`SMALL`, or a test file's own list)."""
from __future__ import annotations

from pathlib import Path

from reference.config import load_config
from reference.train.hooks import TrainerHooks
from reference.train.trainer import Trainer

SMALL = ["model.hidden=16", "model.layers=1", "model.bidirectional=false", "model.conv_channels=8",
         "train.global_batch=null", "train.batch_per_card=8", "train.target_wer=null",
         "data.eval_batch=32", "train.log_every_steps=1000", "train.threads=1",
         "train.keep_checkpoints=20", "train.eval_start_samples=0"]


def make(corpus: Path, run_dir: Path, overrides: list[str], resume: bool = False,
         hooks: TrainerHooks | None = None) -> Trainer:
    cfg = load_config("tiny", [f"data.root={corpus}", *overrides])
    run_dir.mkdir(parents=True, exist_ok=True)
    tr = Trainer(cfg, run_dir, hooks=hooks, resume=resume)
    tr.prepare_data()
    tr.setup()
    return tr
