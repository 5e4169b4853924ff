"""The DS2 training loop: run to target, one code path for CPU, CUDA and MLU.

Life cycle (driven by the harness)::

    trainer = Trainer(cfg, run_dir, hooks, dist)
    trainer.prepare_data()   # manifests + preflight (outside the timed region)
    trainer.setup()          # model, optimizer, sampler, resume state
    result = trainer.fit()   # run_start ... run_stop; audio is read only here

Honest numbers: clocks are read after a device synchronisation; the first
`WARMUP_STEPS` steps of a run are excluded from throughput; a non-finite loss
skips the step on every rank (never back-propagated) and is counted.
"""
from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from reference.train import checkpoint as ckpt
from reference.train import comm
from reference.train import precision
from reference.config import BenchmarkConfig, dump_config
from reference.data.loader import Batch, BatchLoader, UtteranceSet
from reference.model.decoder import greedy_decode
from reference.device import synchronize
from reference.train.distributed import DistContext
from reference.train.hooks import TrainerHooks
from reference.train.metrics import summarize, utterance_errors
from reference.model.deepspeech2 import DeepSpeech2, count_parameters
from reference.train.optim import build_optimizer, epoch_lr, set_lr
from reference.data.sampler import TrainBatches, eval_batches
from reference.train.splits import load_split, resolve_manifest, write_rejected
from reference.train.step import batch_losses, device_features, max_tempo

WARMUP_STEPS = 3  # excluded from throughput: allocator, kernel selection, worker start-up


class TerminationRequested(RuntimeError):
    """A signal (SIGTERM/SIGINT) asked the run to stop at the next step boundary."""


class NonFiniteAbort(RuntimeError):
    """Too many steps had a non-finite loss."""


@dataclass
class RunResult:
    status: str = "aborted"  # success | aborted
    reason: str = "not started"
    epochs_completed: int = 0
    global_step: int = 0
    best_wer: float | None = None
    final_eval: dict[str, Any] | None = None
    train_samples: int = 0
    train_time_s: float = 0.0
    throughput: float | None = None  # utt/s, warm-up excluded
    skipped_steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def default_threads(local_ranks: int) -> int:
    """Intra-op threads per rank so that threads × ranks never exceeds the cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, local_ranks))


class Trainer:
    def __init__(self, cfg: BenchmarkConfig, run_dir: Path, hooks: TrainerHooks | None = None,
                 dist: DistContext | None = None, resume: bool = False,
                 preflight_workers: int = 1) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.hooks = hooks or TrainerHooks()
        self.dist = dist or DistContext()
        self.resume = resume
        self.preflight_workers = preflight_workers
        self.stop_requested: str | None = None  # set by signal handlers
        self.result = RunResult()
        # Warm-up-excluded (samples, seconds) of this process, for the run throughput.
        self._timed = [0, 0.0]

    # ------------------------------------------------------------------ data
    def prepare_data(self) -> dict[str, Any]:
        """Read manifests and validate every utterance (cached across runs)."""
        cfg, w = self.cfg, self.preflight_workers
        self.train = load_split(cfg, resolve_manifest(cfg, cfg.data.train_manifest), self.run_dir,
                                self.dist, w)
        self.eval = load_split(cfg, resolve_manifest(cfg, cfg.data.eval_manifest), self.run_dir,
                               self.dist, w)
        if self.dist.is_main:
            write_rejected(self.run_dir, {"train": self.train, "eval": self.eval})
        return {"train_rejected": len(self.train.rejected), "eval_rejected": len(self.eval.rejected)}

    # ----------------------------------------------------------------- setup
    def setup(self) -> dict[str, Any]:
        cfg, dev = self.cfg, self.dist.device
        threads = cfg.train.threads or default_threads(self.dist.local_world_size)
        if dev.type == "cpu":
            torch.set_num_threads(threads)
        fp32_flags = precision.apply_fp32_precision(cfg.train.fp32_precision)
        self.amp = precision.plan_amp(cfg.train.amp, cfg.model, cfg.features, dev)
        torch.manual_seed(cfg.train.seed)
        self.model = DeepSpeech2(cfg.model, cfg.features).to(dev)
        self.ddp: nn.Module = self.model
        self.comm_timer: comm.AllReduceTimer | None = None
        if self.dist.distributed:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=None if dev.type == "cpu" else [dev.index])
            self.comm_timer = comm.install(self.ddp, dev, self.dist.world_size)
        self.batches = TrainBatches(self.train.durations, cfg.train.batch_per_card,
                                    self.dist.world_size, cfg.train.seed, cfg.data.sortagrad,
                                    cfg.data.bucket_batches)
        if self.batches.steps_per_epoch == 0:
            raise ValueError(f"train set has {len(self.train.durations)} usable utterances, fewer "
                             f"than one global batch of {self.batches.global_batch}")
        self.optimizer = build_optimizer(cfg.optim, self.model.parameters(),
                                         self.batches.global_batch)
        # Highest tempo per utterance that keeps its CTC target feasible.
        self.max_tempo = {i: max_tempo(int(round(dur * cfg.features.sample_rate)),
                                       self.train.targets[i], cfg.features)
                          for i, dur in self.train.durations.items()}
        pin = dev.type != "cpu"
        cache = cfg.data.cache_audio and cfg.data.num_workers == 0
        self.train_loader = BatchLoader(
            UtteranceSet(self.train.utts, self.train.targets, cfg.data, cfg.features, cache),
            cfg.data.num_workers, pin)
        self.eval_loader = BatchLoader(
            UtteranceSet(self.eval.utts, self.eval.targets, cfg.data, cfg.features, cache),
            cfg.data.num_workers, pin)
        self.start_epoch, self.start_step, self.global_step = 1, 0, 0
        if self.resume:
            self._restore()
        info = {
            "parameters": count_parameters(self.model),
            "train_samples": len(self.train.durations),
            "eval_samples": len(self.eval.durations),
            "global_batch": self.batches.global_batch,
            "steps_per_epoch": self.batches.steps_per_epoch,
            "dropped_per_epoch": self.batches.dropped_per_epoch,
            "threads": threads if dev.type == "cpu" else None,
            "device": str(dev),
            "world_size": self.dist.world_size,
            "resumed_from_epoch": self.start_epoch if self.resume else None,
            "precision": {"fp32_precision": cfg.train.fp32_precision, **self.amp.info(),
                          "flags": fp32_flags},
        }
        self.hooks.on_setup_done(info)
        return info

    # ----------------------------------------------------------- checkpoint
    def _state(self, epoch: int, step_in_epoch: int) -> dict[str, Any]:
        return {
            "version": 1,
            "config": dump_config(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": self.global_step,
            "rng": ckpt.rng_state(self.dist.device),
            "grad_scaler": self.amp.scaler.state_dict() if self.amp.scaler else None,
            "result": asdict(self.result),
        }

    def save(self, epoch: int, step_in_epoch: int) -> None:
        if not self.dist.is_main:
            return
        t0 = time.perf_counter()
        path = ckpt.save_checkpoint(self.run_dir / "checkpoints", epoch, self.global_step,
                                    self._state(epoch, step_in_epoch),
                                    self.cfg.train.keep_checkpoints)
        took = time.perf_counter() - t0
        if self.dist.distributed and took > self.dist.timeout_s / 3:
            # The other ranks wait in the next collective meanwhile.
            print(f"[checkpoint] writing {path.name} took {took:.0f} s, over a third of the "
                  f"{self.dist.timeout_s:.0f} s process-group timeout: raise --timeout",
                  file=sys.stderr)
        self.hooks.on_checkpoint(str(path), epoch, self.global_step)

    def _restore(self) -> None:
        found = ckpt.load_latest(self.run_dir / "checkpoints", map_location="cpu")
        if found is None:
            raise FileNotFoundError(f"{self.run_dir}/checkpoints: no valid checkpoint to resume from")
        path, state = found
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        ckpt.set_rng_state(state["rng"], self.dist.device)
        if self.amp.scaler is not None and state.get("grad_scaler"):
            self.amp.scaler.load_state_dict(state["grad_scaler"])
        self.result = RunResult(**state["result"])
        self.global_step = state["global_step"]
        epoch, step = state["epoch"], state["step_in_epoch"]
        if step >= self.batches.steps_per_epoch:  # saved at the end of an epoch
            epoch, step = epoch + 1, 0
        self.start_epoch, self.start_step = epoch, step
        if self.dist.is_main:
            # metrics.jsonl may hold records written after this checkpoint; keep
            # the old file for the record and restart it from the checkpoint.
            metrics = self.run_dir / "metrics.jsonl"
            if metrics.exists():
                k = 1
                while (self.run_dir / f"metrics.before-resume{k}.jsonl").exists():
                    k += 1
                metrics.rename(self.run_dir / f"metrics.before-resume{k}.jsonl")
            with metrics.open("w") as f:
                for rec in self.result.history:
                    f.write(json.dumps(rec) + "\n")
        print(f"[resume] {path.name}: continuing at epoch {epoch}, step {step}", file=sys.stderr)

    # ----------------------------------------------------------------- steps
    def _to_device(self, batch: Batch, epoch: int | None):
        cap = None
        if epoch is not None:
            cap = torch.tensor([self.max_tempo[i] for i in batch.indices], dtype=torch.float32)
        return device_features(batch, self.cfg.features, self.cfg.augment, self.cfg.train.seed,
                               epoch, cap, self.dist.device)

    def _autocast(self):
        return self.amp.autocast(self.dist.device.type)

    @contextmanager
    def _frozen_bn(self) -> Iterator[None]:
        """Train-mode forward that leaves batch-norm running statistics untouched."""
        saved = {k: v.clone() for k, v in self.model.state_dict().items()
                 if "running_" in k or "num_batches_tracked" in k}
        try:
            yield
        finally:
            self.model.load_state_dict(saved, strict=False)

    def _mean_over_ranks(self, values: list[float]) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.dist.device)
        self.dist.all_reduce_sum(t)
        return (t / self.dist.world_size).tolist()

    def _losses(self, logits, out_lens, batch: Batch, with_seed: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        return batch_losses(logits, out_lens, batch, self.dist.device, with_seed)

    def _init_loss(self) -> dict[str, Any]:
        """Losses of the untrained model on the first batch (the seed-loss baseline)."""
        first = self.batches.rank_batches(1, self.dist.rank)[0]
        batch = next(self.train_loader.iterate([first]))
        self.ddp.train()
        with torch.no_grad(), self._frozen_bn():
            feats, frames = self._to_device(batch, epoch=None)
            logits, out_lens = self.model(feats, frames)
            vals = [float(x) for x in self._losses(logits, out_lens, batch)]
        nll_utt, nll_char, seed = self._mean_over_ranks(vals)
        return {"ctc_nll_per_utt": nll_utt, "ctc_nll_per_char": nll_char, "seed_loss": seed}

    def _train_epoch(self, epoch: int) -> dict[str, Any]:
        cfg = self.cfg
        lr = epoch_lr(cfg.optim, self.batches.global_batch, epoch)
        set_lr(self.optimizer, lr)
        self.ddp.train()
        start = self.start_step if epoch == self.start_epoch else 0
        batches = self.batches.rank_batches(epoch, self.dist.rank, start)
        dev = self.dist.device
        sum_utt = torch.zeros((), dtype=torch.float64, device=dev)
        sum_char = torch.zeros((), dtype=torch.float64, device=dev)
        counted = 0
        skipped = 0
        last_seed = float("nan")
        synchronize(dev)
        if self.comm_timer is not None:
            self.comm_timer.take()  # drop anything from before this epoch
        t_epoch = time.perf_counter()
        t_timed, timed_steps = None, 0
        steps_total = start + len(batches)
        for k, batch in enumerate(self.train_loader.iterate(batches), start=start):
            if self.global_step == WARMUP_STEPS or (t_timed is None and self.global_step > WARMUP_STEPS):
                synchronize(dev)
                t_timed = time.perf_counter()
            if batch is None:
                raise RuntimeError(f"epoch {epoch} step {k}: every utterance of the batch failed to load")
            feats, frames = self._to_device(batch, epoch)
            with self._autocast():
                logits, out_lens = self.ddp(feats, frames)
            # The seed's quantity is only reported for the last step of an epoch:
            # no extra CTC pass in the hot loop unless it is the objective.
            last_step = k == steps_total - 1
            nll_utt, nll_char, seed = self._losses(
                logits, out_lens, batch, with_seed=last_step or cfg.train.loss != "ctc_nll")
            loss = nll_utt if cfg.train.loss == "ctc_nll" else seed
            # Decide on every rank together, in one all-reduce, whether this step is
            # usable and whether to stop: a rank that skipped backward alone, or
            # stopped alone on a signal only it received, would hang the others in
            # the next collective. Flags: [non-finite loss, SIGTERM, SIGINT].
            flags = torch.cat([(~torch.isfinite(loss)).to(torch.float32).reshape(1),
                               self._stop_flags()])
            self.dist.all_reduce_sum(flags)
            bad, term, intr = flags.tolist()
            if term or intr:
                self.optimizer.zero_grad(set_to_none=True)
                self.save(epoch, k)  # step k is not applied: a resume runs it
                raise TerminationRequested("SIGTERM" if term else "SIGINT")
            if bad > 0:
                skipped += 1
                self.result.skipped_steps += 1
                self.optimizer.zero_grad(set_to_none=True)
                print(f"[train] epoch {epoch} step {k}: non-finite loss, step skipped "
                      f"(utterances {batch.indices[:4]}...)", file=sys.stderr)
                self._check_nonfinite_budget()
            else:
                self.optimizer.zero_grad(set_to_none=True)
                self.amp.step(loss, self.optimizer, self.model.parameters(), cfg.optim.clip_norm)
                sum_utt += nll_utt.detach().to(torch.float64)
                sum_char += nll_char.detach().to(torch.float64)
                counted += 1
            self.global_step += 1
            if t_timed is not None:
                timed_steps += 1
            if last_step:
                last_seed = float(seed.detach())
            if self.dist.is_main and (k + 1) % cfg.train.log_every_steps == 0:
                print(f"[train] epoch {epoch} step {k + 1}/{steps_total} "
                      f"loss(nll/utt) {float(nll_utt.detach()):.3f}", file=sys.stderr, flush=True)
            every = cfg.train.checkpoint_every_steps
            if every and self.global_step % every == 0 and k + 1 < steps_total:
                self.save(epoch, k + 1)
        synchronize(dev)
        t_end = time.perf_counter()
        comm_s, comm_buckets = self.comm_timer.take() if self.comm_timer else (None, 0)
        sums = torch.stack([sum_utt, sum_char,
                            torch.tensor(float(counted), dtype=torch.float64, device=dev)])
        self.dist.all_reduce_sum(sums)
        n = max(sums[2].item(), 1.0)
        seed_last = self._mean_over_ranks([last_seed])[0]
        gb = self.batches.global_batch
        samples = len(batches) * gb
        timed_samples = timed_steps * gb
        timed_time = (t_end - t_timed) if t_timed is not None else 0.0
        self.result.train_samples += samples
        self.result.train_time_s += t_end - t_epoch
        self._timed[0] += timed_samples
        self._timed[1] += timed_time
        return {
            "kind": "epoch", "epoch": epoch, "global_step": self.global_step,
            "samples": samples, "train_time(s)": t_end - t_epoch,
            "throughput(utt/s)": timed_samples / timed_time if timed_time > 0 else None,
            "warmup_steps_excluded": len(batches) - timed_steps,
            "loss_ctc_nll_per_utt": sums[0].item() / n,
            "loss_ctc_nll_per_char": sums[1].item() / n,
            "seed_loss_last_iter": seed_last,
            "skipped_steps": skipped, "lr": lr,
            # Gradient buckets' launch → completion, summed over the epoch (comm.py):
            # overlaps backward; None where a host clock cannot measure it.
            "allreduce_time(s)": comm_s, "allreduce_buckets": comm_buckets,
        }

    def _stop_flags(self) -> torch.Tensor:
        """[SIGTERM seen, SIGINT seen] by this rank (set by the worker's signal handlers)."""
        stop = self.stop_requested
        return torch.tensor([stop == "SIGTERM", stop == "SIGINT"], dtype=torch.float32,
                            device=self.dist.device)

    def _check_nonfinite_budget(self) -> None:
        limit = self.cfg.train.max_nonfinite_fraction
        total = self.batches.steps_per_epoch * self.cfg.train.epochs
        if self.result.skipped_steps > max(1, limit * total):
            raise NonFiniteAbort(f"{self.result.skipped_steps} steps had a non-finite loss "
                                 f"(limit {limit:.0%} of {total} steps)")

    def _sync_buffers(self) -> None:
        """Give every rank rank 0's batch-norm statistics (what the checkpoint holds).

        DDP broadcasts buffers at the start of each training forward, so after
        the last step every rank's running statistics include its own last
        batch: evaluating with them would make the metrics depend on the rank
        layout.
        """
        if self.dist.distributed:
            import torch.distributed as tdist

            for buf in self.model.buffers():
                tdist.broadcast(buf, src=0)

    def evaluate(self) -> dict[str, Any]:
        """Greedy-decode the eval split; metrics identical for any rank count."""
        self.ddp.eval()
        self._sync_buffers()
        mine = eval_batches(self.eval.durations, self.cfg.data.eval_batch, self.dist.rank,
                            self.dist.world_size)
        errors = []
        with torch.no_grad():
            for batch in self.eval_loader.iterate(mine):
                if batch is None:
                    continue
                feats, frames = self._to_device(batch, epoch=None)
                with self._autocast():
                    logits, out_lens = self.model(feats, frames)
                for idx, hyp in zip(batch.indices, greedy_decode(logits.float(), out_lens)):
                    errors.append(utterance_errors(idx, self.eval.texts[idx], hyp))
        gathered = [e for part in self.dist.all_gather_object(errors) for e in part]
        return summarize(gathered)

    # ------------------------------------------------------------------- fit
    def _emit(self, record: dict[str, Any]) -> None:
        self.result.history.append(record)
        if self.dist.is_main:
            with (self.run_dir / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(record) + "\n")

    def fit(self) -> RunResult:
        cfg, res = self.cfg, self.result
        target = cfg.train.target_wer
        t0 = time.perf_counter()
        try:
            self.hooks.on_run_start()
            if not self.resume:
                init = {"kind": "init", **self._init_loss()}
                self._emit(init)
                self.hooks.on_init_loss(init)
            res.status, res.reason = "aborted", "running"
            for epoch in range(self.start_epoch, cfg.train.epochs + 1):
                self.hooks.on_epoch_start(epoch)
                rec = self._train_epoch(epoch)
                self._emit(rec)
                self.hooks.on_epoch_end(epoch, rec)
                self.hooks.on_eval_start(epoch)
                t_eval = time.perf_counter()
                ev = self.evaluate()
                ev = {"kind": "eval", "epoch": epoch, **ev,
                      "eval_time(s)": time.perf_counter() - t_eval,
                      "elapsed(s)": time.perf_counter() - t0}
                res.epochs_completed = epoch
                res.final_eval = ev
                res.best_wer = ev["wer_ref(%)"] if res.best_wer is None else min(res.best_wer, ev["wer_ref(%)"])
                self._emit(ev)
                self.hooks.on_eval_end(epoch, ev)
                reached = target is not None and ev["wer_ref(%)"] <= target
                if reached:
                    res.status, res.reason = "success", f"reference WER {ev['wer_ref(%)']:.2f} <= target {target}"
                self.save(epoch, self.batches.steps_per_epoch)
                if self.dist.is_main:
                    print(f"[epoch {epoch}] loss(nll/utt) {rec['loss_ctc_nll_per_utt']:.3f} "
                          f"WER(ref) {ev['wer_ref(%)']:.2f}% WER(corpus) {ev['wer_corpus(%)']:.2f}% "
                          f"CER {ev['cer(%)']:.2f}% thr {rec['throughput(utt/s)'] or float('nan'):.1f} utt/s "
                          f"elapsed {ev['elapsed(s)']:.0f}s", file=sys.stderr, flush=True)
                if reached:
                    break
            else:
                res.reason = (f"target {target} not reached in {cfg.train.epochs} epochs "
                              f"(best reference WER {res.best_wer:.2f})" if target is not None
                              else f"fixed {cfg.train.epochs}-epoch run without a target")
        except TerminationRequested as err:
            res.status, res.reason = "aborted", f"terminated by {err}"
        except NonFiniteAbort as err:
            res.status, res.reason = "aborted", str(err)
        except BaseException as err:
            res.status, res.reason = "aborted", f"{type(err).__name__}: {err}"
            raise
        finally:
            for loader in (self.train_loader, self.eval_loader):
                loader.close()
            res.global_step = self.global_step
            res.throughput = self._timed[0] / self._timed[1] if self._timed[1] > 0 else None
            summary = {k: v for k, v in asdict(res).items() if k != "history"}
            summary["run_time(s)"] = time.perf_counter() - t0
            self._emit({"kind": "final", **summary})
            self.hooks.on_run_end(res.status, res.reason, summary)
        return res
