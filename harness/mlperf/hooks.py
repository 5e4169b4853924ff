"""Trainer events → the MLPerf log (DESIGN.md key sequence), via `MLPerfLogger`.

This is the only place that knows which MLPerf keys a DS2 run writes; the
trainer only emits events and `MLPerfLogger` only writes on rank 0.
"""
from __future__ import annotations

from typing import Any

from harness.mlperf.log import MLPerfLogger
from reference.config import BenchmarkConfig
from reference.train.hooks import TrainerHooks
from reference.train.optim import base_lr


class MLPerfHooks(TrainerHooks):
    def __init__(self, log: MLPerfLogger, cfg: BenchmarkConfig, cards: int,
                 submission: dict[str, str]) -> None:
        self.log = log
        self.cfg = cfg
        self.cards = cards
        self.submission = submission  # submission_* key → value
        self.samples = 0

    def log_init_start(self, resumed_from: str | None = None) -> None:
        """Everything up to the end of the hyper-parameters (before the model is built)."""
        cfg, log = self.cfg, self.log
        log.event("cache_clear", True)
        log.start("init_start")
        for key, value in self.submission.items():
            log.event(key, value)
        log.event("seed", cfg.train.seed)
        gb = cfg.train.batch_per_card * self.cards
        log.event("global_batch_size", gb)
        o = cfg.optim
        log.event("opt_name", o.name)
        log.event("opt_base_learning_rate", base_lr(o, gb))
        if o.name == "sgd":
            log.event("opt_momentum", o.momentum)
            log.event("opt_nesterov", o.nesterov)
        else:
            log.event("opt_adam_beta_1", o.betas[0])
            log.event("opt_adam_beta_2", o.betas[1])
        log.event("opt_weight_decay", o.weight_decay)
        log.event("opt_learning_rate_decay_factor", o.anneal)
        log.event("opt_gradient_clip_norm", o.clip_norm)
        log.event("ds2_lr_scaling", o.lr_scaling)
        log.event("ds2_batch_per_card", cfg.train.batch_per_card)
        log.event("ds2_cards", self.cards)
        log.event("ds2_rnn_type", cfg.model.rnn_type)
        log.event("ds2_rnn_hidden", cfg.model.hidden)
        log.event("ds2_rnn_layers", cfg.model.layers)
        log.event("ds2_bidirectional", cfg.model.bidirectional)
        log.event("ds2_conv_channels", cfg.model.conv_channels)
        log.event("ds2_loss_definition", cfg.train.loss)
        log.event("ds2_target_wer", cfg.train.target_wer)
        log.event("ds2_max_epochs", cfg.train.epochs)
        log.event("ds2_augmentation", cfg.augment.enabled)
        log.event("ds2_amp", cfg.train.amp)
        if resumed_from:
            log.event("ds2_resumed_from", resumed_from)

    def on_setup_done(self, info: dict[str, Any]) -> None:
        self.log.event("train_samples", info["train_samples"])
        self.log.event("eval_samples", info["eval_samples"])
        self.log.event("ds2_parameters", info["parameters"])
        self.log.event("ds2_steps_per_epoch", info["steps_per_epoch"])
        self.log.event("ds2_dropped_per_epoch", info["dropped_per_epoch"])
        # The precision that runs (reference/train/precision.py), not only what was asked:
        # fp32 math mode as set on every backend, the RNN's measured dtype under the AMP
        # setting (ds2_amp above), and whether a GradScaler guards fp16.
        prec = info.get("precision")
        if prec:
            self.log.event("ds2_fp32_precision", prec["fp32_precision"])
            self.log.event("ds2_rnn_dtype", prec["rnn_dtype"])
            self.log.event("ds2_grad_scaler", prec["grad_scaler"])
        self.log.end("init_stop")

    def on_run_start(self) -> None:
        self.log.run_start()

    def on_init_loss(self, values: dict[str, Any]) -> None:
        self.log.event("ds2_seed_loss_at_init", values["seed_loss"])
        self.log.event("ds2_train_loss_at_init", values["ctc_nll_per_utt"])

    def on_epoch_start(self, epoch: int) -> None:
        self.log.start("block_start", metadata={"first_epoch_num": epoch, "epoch_count": 1})
        self.log.start("epoch_start", metadata={"epoch_num": epoch})

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        self.samples += record["samples"]
        md = {"epoch_num": epoch}
        self.log.event("ds2_train_loss", record["loss_ctc_nll_per_utt"], metadata=md)
        self.log.event("ds2_train_loss_per_char", record["loss_ctc_nll_per_char"], metadata=md)
        self.log.event("ds2_seed_loss", record["seed_loss_last_iter"], metadata=md)
        if record["throughput(utt/s)"] is not None:
            self.log.event("ds2_throughput", record["throughput(utt/s)"],
                           metadata={**md, "unit": "utt/s"})
        self.log.event("ds2_skipped_steps", record["skipped_steps"], metadata=md)
        self.log.end("epoch_stop", metadata={**md, "samples_count": self.samples})

    def on_eval_start(self, epoch: int) -> None:
        self.log.start("eval_start", metadata={"epoch_num": epoch})

    def on_eval_end(self, epoch: int, record: dict[str, Any]) -> None:
        md = {"epoch_num": epoch, "samples_count": self.samples}
        self.log.event("eval_accuracy", record["wer_ref(%)"], metadata=md)
        self.log.event("ds2_eval_wer_corpus", record["wer_corpus(%)"], metadata=md)
        self.log.event("ds2_eval_cer", record["cer(%)"], metadata=md)
        self.log.end("eval_stop", metadata={"epoch_num": epoch})
        self.log.end("block_stop", metadata={"first_epoch_num": epoch})

    def on_run_end(self, status: str, reason: str, summary: dict[str, Any]) -> None:
        if summary.get("throughput") is not None:
            self.log.event("ds2_run_throughput", summary["throughput"], metadata={"unit": "utt/s"})
        self.log.event("ds2_skipped_steps_total", summary.get("skipped_steps", 0))
        # An aborted run may have lost a peer: a barrier could only hang.
        self.log.run_stop(status, reason, sync=status == "success")
