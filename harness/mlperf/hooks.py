"""Trainer events → the MLPerf log (DESIGN.md key sequence), via `MLPerfLogger`.

This is the only place that knows which MLPerf keys a DS2 run writes; the
trainer only emits events and `MLPerfLogger` only writes on rank 0.
"""
from __future__ import annotations

from typing import Any

from harness.mlperf.log import MLPerfLogger
from harness.mlperf.pinned import config_values
from reference.config import BenchmarkConfig
from reference.train.hooks import TrainerHooks
from reference.train.optim import base_lr


class MLPerfHooks(TrainerHooks):
    def __init__(self, log: MLPerfLogger, cfg: BenchmarkConfig, cards: int,
                 submission: dict[str, str], cache_cleared: bool = False) -> None:
        self.log = log
        self.cfg = cfg
        self.cards = cards
        self.submission = submission  # submission_* key → value
        # True only when the launcher really flushed the dataset from the page
        # cache before this run (harness.run.cache); never assumed.
        self.cache_cleared = cache_cleared
        self.global_batch = cfg.train.batch_per_card * cards
        self.samples = 0

    def log_init_start(self, resumed_from: str | None = None) -> None:
        """Everything up to the end of the hyper-parameters (before the model is built)."""
        cfg, log = self.cfg, self.log
        log.event("cache_clear", bool(self.cache_cleared))
        log.start("init_start")
        for key, value in self.submission.items():
            log.event(key, value)
        log.event("ds2_benchmark", cfg.name)
        log.event("seed", cfg.train.seed)
        gb = self.global_batch
        log.event("global_batch_size", gb)
        values = config_values(cfg)
        # Logged from the resolved batch when it scales with the card count.
        values.setdefault("opt_base_learning_rate", base_lr(cfg.optim, gb))
        values["ds2_batch_per_card"] = cfg.train.batch_per_card
        values["ds2_cards"] = self.cards
        values["ds2_amp"] = cfg.train.amp
        for key, value in values.items():
            log.event(key, value)
        if resumed_from:
            log.event("ds2_resumed_from", resumed_from)

    def on_setup_done(self, info: dict[str, Any]) -> None:
        self.log.event("train_samples", info["train_samples"])
        self.log.event("eval_samples", info["eval_samples"])
        # What the training filters dropped, by reason (the eval set is never filtered).
        self.log.event("ds2_train_rejected", dict(info.get("train_rejected") or {}))
        if info.get("eval_digest"):
            self.log.event("ds2_eval_digest", info["eval_digest"])
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
            if prec.get("flags"):  # every fp32 switch as read back after setting it
                self.log.event("ds2_precision_flags", prec["flags"])
        if info.get("optimizer_impl"):  # torch's fused / foreach / for-loop update
            self.log.event("ds2_optimizer_impl", info["optimizer_impl"])
        if info.get("host_malloc"):  # glibc malloc tuned, left at its defaults, or the user's
            self.log.event("ds2_host_malloc", info["host_malloc"])
        self.log.end("init_stop")

    def on_run_start(self) -> None:
        self.log.run_start()

    def on_init_loss(self, values: dict[str, Any]) -> None:
        self.log.event("ds2_seed_loss_at_init", values["seed_loss"])
        self.log.event("ds2_train_loss_at_init", values["ctc_nll_per_utt"])

    def on_epoch_start(self, epoch: int) -> None:
        self.log.start("block_start", metadata={"first_epoch_num": epoch, "epoch_count": 1})
        self.log.start("epoch_start", metadata={"epoch_num": epoch})

    def _samples(self, global_step: int) -> int:
        # Samples trained since the start of the run, resumed attempts included
        # (global_step is restored from the checkpoint).
        return global_step * self.global_batch

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        # The trainer's count is global and survives a resume (global_step x batch).
        self.samples = record.get("samples_count", self._samples(record["global_step"]))
        md = {"epoch_num": epoch}
        self.log.event("ds2_train_loss", record["loss_ctc_nll_per_utt"], metadata=md)
        self.log.event("ds2_train_loss_per_char", record["loss_ctc_nll_per_char"], metadata=md)
        self.log.event("ds2_seed_loss", record["seed_loss_last_iter"], metadata=md)
        if record["throughput(utt/s)"] is not None:
            self.log.event("ds2_throughput", record["throughput(utt/s)"],
                           metadata={**md, "unit": "utt/s"})
        self.log.event("ds2_skipped_steps", record["skipped_steps"], metadata=md)
        self.log.end("epoch_stop", metadata={**md, "samples_count": self.samples})

    def on_eval_start(self, epoch_num: int | float) -> None:
        self.log.start("eval_start", metadata={"epoch_num": epoch_num})

    def on_eval_end(self, epoch_num: int | float, record: dict[str, Any]) -> None:
        # An eval inside an epoch (train.eval_every_samples) says where it is.
        self.samples = record.get("samples_count", self.samples)
        md = {"epoch_num": epoch_num, "samples_count": self.samples}
        self.log.event("eval_accuracy", record["wer_ref(%)"], metadata=md)
        self.log.event("ds2_eval_wer_corpus", record["wer_corpus(%)"], metadata=md)
        self.log.event("ds2_eval_cer", record["cer(%)"], metadata=md)
        self.log.event("ds2_eval_utterances", record["utterances"], metadata=md)
        if "loss_excluded" in record:
            self.log.event("ds2_eval_loss", record.get("loss_ctc_nll_per_utt"), metadata=md)
            self.log.event("ds2_eval_loss_excluded", record["loss_excluded"], metadata=md)
        self.log.end("eval_stop", metadata={"epoch_num": epoch_num})

    def on_block_end(self, epoch: int) -> None:
        self.log.end("block_stop", metadata={"first_epoch_num": epoch})

    def on_run_end(self, status: str, reason: str, summary: dict[str, Any]) -> None:
        if summary.get("throughput") is not None:
            self.log.event("ds2_run_throughput", summary["throughput"], metadata={"unit": "utt/s"})
        self.log.event("ds2_skipped_steps_total", summary.get("skipped_steps", 0))
        # An aborted run may have lost a peer: a barrier could only hang.
        self.log.run_stop(status, reason, sync=status == "success")
