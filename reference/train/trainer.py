"""The DS2 training loop: run to target, one code path for CPU, CUDA and MLU.

Life cycle (driven by the harness)::

    trainer = Trainer(cfg, run_dir, hooks, dist)
    trainer.prepare_data()   # manifests + preflight (outside the timed region)
    trainer.setup()          # model, optimizer, sampler, resume state
    result = trainer.fit()   # run_start ... run_stop; audio is read only here

Honest numbers: clocks are read after a device synchronisation; the first
`WARMUP_STEPS` steps of a run are excluded from throughput; a non-finite loss
or gradient skips the step's update on every rank (masked on the device, see
`reference/train/step.py`) and is counted. The step loop reads device state
only at poll points (every `POLL_EVERY_STEPS` steps, log points, epoch end).
"""
from __future__ import annotations

import json
import math
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
from reference.train.ema import WeightAverage
from reference.config import BenchmarkConfig, dump_config
from reference.data.loader import Batch, BatchLoader, UtteranceSet
from reference.model.decoder import greedy_decode
from reference.device import synchronize
from reference.train.distributed import DistContext
from reference.train.hooks import TrainerHooks
from reference.train.metrics import summarize, utterance_errors
from reference.model.deepspeech2 import DeepSpeech2, count_parameters
from reference.model.loss import ctc_per_utterance
from reference.train.host_malloc import tune_host_malloc
from reference.train.optim import build_optimizer, epoch_lr, optimizer_impl, set_lr, step_lr
from reference.data.sampler import TrainBatches, eval_batches
from reference.train.progress import EpochProgress
from reference.train.schedule import epoch_position, eval_steps, evaluates_epoch_end
from reference.train.prep.splits import load_split, resolve_manifest, write_rejected
from reference.train.warmup import longest_samples, warm_up
from reference.train.step import (POLL_EVERY_STEPS, StepFlags, batch_losses, device_features,
                                  match_step_counts, max_tempo, prefetch, train_step,
                                  use_device_step_counts)

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
    epochs_trained: float = 0.0  # at the last evaluation; fractional after a mid-epoch one
    global_step: int = 0
    best_wer: float | None = None
    final_eval: dict[str, Any] | None = None
    train_samples: int = 0
    train_time_s: float = 0.0
    throughput: float | None = None  # utt/s, warm-up excluded
    skipped_steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def ddp_options(ddp_cls: type) -> dict[str, Any]:
    """DDP flags this model allows, where the installed torch has them.

    * ``gradient_as_bucket_view``: gradients are views into the all-reduce
      buckets (no copy in and out of them each step, less memory);
    * ``static_graph``: every step uses every parameter in the same order (the
      step always back-propagates, even a masked one), so DDP may skip its
      per-step search for unused parameters and reorder buckets once.
    """
    import inspect

    names = inspect.signature(ddp_cls.__init__).parameters
    wanted = {"gradient_as_bucket_view": True, "static_graph": True}
    return {k: v for k, v in wanted.items() if k in names}


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
        self._t0 = time.perf_counter()  # fit()'s start, for the evaluations' elapsed(s)
        self._progress: EpochProgress | None = None
        self.ema: WeightAverage | None = None  # set up in setup() when train.ema_decay > 0

    # ------------------------------------------------------------------ data
    def prepare_data(self) -> dict[str, Any]:
        """Read manifests and validate every utterance (cached across runs)."""
        cfg, w = self.cfg, self.preflight_workers
        # Reads the manifests and their verified records only: no audio before run_start.
        self.train = load_split(cfg, resolve_manifest(cfg, cfg.data.train_manifest), self.run_dir,
                                self.dist, w, role="train")
        self.eval = load_split(cfg, resolve_manifest(cfg, cfg.data.eval_manifest), self.run_dir,
                               self.dist, w, role="eval")
        if self.dist.is_main:
            write_rejected(self.run_dir, {"train": self.train, "eval": self.eval})
        return {"train_rejected": len(self.train.rejected), "eval_rejected": len(self.eval.rejected)}

    # ----------------------------------------------------------------- setup
    def setup(self) -> dict[str, Any]:
        cfg, dev = self.cfg, self.dist.device
        threads = cfg.train.threads or default_threads(self.dist.local_world_size)
        if dev.type == "cpu":
            torch.set_num_threads(threads)
        host_malloc = tune_host_malloc(cfg.train.host_malloc == "tuned")
        precision.check_fp32_precision(cfg.train.fp32_precision, dev.type)
        fp32_flags = precision.apply_fp32_precision(cfg.train.fp32_precision)
        self.amp = precision.plan_amp(cfg.train.amp, cfg.model, cfg.features, dev)
        torch.manual_seed(cfg.train.seed)
        self.model = DeepSpeech2(cfg.model, cfg.features).to(dev)
        self.ddp: nn.Module = self.model
        self.comm_timer: comm.AllReduceTimer | None = None
        if self.dist.distributed:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=None if dev.type == "cpu" else [dev.index],
                **ddp_options(nn.parallel.DistributedDataParallel))
            self.comm_timer = comm.install(self.ddp, dev, self.dist.world_size, self.dist.backend)
        self.batches = TrainBatches(self.train.durations, cfg.train.batch_per_card,
                                    self.dist.world_size, cfg.train.seed, cfg.data.sortagrad,
                                    cfg.data.bucket_batches)
        if self.batches.steps_per_epoch == 0:
            raise ValueError(f"train set has {len(self.train.durations)} usable utterances, fewer "
                             f"than one global batch of {self.batches.global_batch}")
        self.optimizer = build_optimizer(cfg.optim, self.model.parameters(),
                                         self.batches.global_batch)
        use_device_step_counts(self.optimizer, dev)  # before any state is loaded
        self.ema = WeightAverage(self.model, cfg.train.ema_decay) if cfg.train.ema_decay else None
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
            "train_rejected": self.train.rejected_counts,
            "eval_digest": self.eval.digest,
            "global_batch": self.batches.global_batch,
            "steps_per_epoch": self.batches.steps_per_epoch,
            "dropped_per_epoch": self.batches.dropped_per_epoch,
            "threads": threads if dev.type == "cpu" else None,
            "device": str(dev),
            "world_size": self.dist.world_size,
            "optimizer_impl": optimizer_impl(self.optimizer),
            "host_malloc": host_malloc,
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
            "ema": self.ema.state_dict() if self.ema is not None else None,
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
        self.optimizer.load_state_dict(match_step_counts(state["optimizer"], self.optimizer))
        ckpt.set_rng_state(state["rng"], self.dist.device)
        if self.amp.scaler is not None and state.get("grad_scaler"):
            self.amp.scaler.load_state_dict(state["grad_scaler"])
        if self.ema is not None:
            if not state.get("ema"):
                raise ValueError(f"{path}: train.ema_decay is set but the checkpoint has no "
                                 "weight average to continue")
            self.ema.load_state_dict(state["ema"])
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
        counted_d = torch.zeros((), dtype=torch.float64, device=dev)
        # The seed quantity's epoch mean (the Cambricon trainer's printed
        # "Average Loss"): only where it is computed every step (its objective).
        sum_seed = torch.zeros((), dtype=torch.float64, device=dev)
        skipped = 0
        last_seed = float("nan")
        synchronize(dev)
        if self.comm_timer is not None:
            self.comm_timer.take()  # drop anything from before this epoch
        t_epoch = time.perf_counter()
        t_timed, timed_steps = None, 0
        steps_total = start + len(batches)
        flags = StepFlags(dev)
        skipped_before = self.result.skipped_steps
        zero = torch.zeros((), dtype=torch.float64, device=dev)
        gb = self.batches.global_batch
        mid_evals = set(eval_steps(self.batches.steps_per_epoch, gb, cfg.train.eval_every_samples,
                                   epoch, cfg.train.eval_start_samples))
        # Seconds spent in mid-epoch evaluations: not training time, not throughput.
        eval_s, eval_s_timed = 0.0, 0.0
        steps_done, reached = start, False
        progress = EpochProgress(epoch, steps_total, start, gb, cfg.train.log_every_steps,
                                 enabled=self.dist.is_main)
        self._progress = progress
        for k, batch in enumerate(prefetch(self.train_loader.iterate(batches), dev), start=start):
            last_step = k == steps_total - 1
            at_eval = (k + 1) in mid_evals
            # Poll points: the only host reads of the step loop's device state
            # (the stop request of any rank, the masked-step count).
            alone = not self.dist.distributed  # a lone rank's own flag is the decision
            if (k - start) % POLL_EVERY_STEPS == 0 or (alone and self.stop_requested):
                skipped = self._poll(flags, epoch, skipped_before)
                if self.stop_requested or flags.stop_reason:
                    progress.close()
                    self.save(epoch, k)
                    raise TerminationRequested(self.stop_requested or flags.stop_reason)
            if self.global_step == WARMUP_STEPS or (t_timed is None and self.global_step > WARMUP_STEPS):
                synchronize(dev)
                t_timed = time.perf_counter()
            if batch is None:
                raise RuntimeError(f"epoch {epoch} step {k}: every utterance of the batch failed to load")
            if cfg.optim.anneal_every == "step":
                set_lr(self.optimizer, step_lr(cfg.optim, gb, epoch, k, self.batches.steps_per_epoch))
            cap = torch.tensor([self.max_tempo[i] for i in batch.indices], dtype=torch.float32)
            # The seed's quantity is only reported for the last step of an epoch:
            # no extra CTC pass in the hot loop unless it is the objective.
            out = train_step(self.ddp, self.optimizer, batch, feat=cfg.features, aug=cfg.augment,
                             seed=cfg.train.seed, epoch=epoch, tempo_cap=cap, device=dev,
                             clip_norm=cfg.optim.clip_norm, loss_kind=cfg.train.loss,
                             with_seed=last_step or at_eval, autocast=self._autocast,
                             scaler=self.amp.scaler)
            # Masked sums: a skipped step adds nothing, decided on the device.
            flags.count(out.ok)
            sum_utt += torch.where(out.ok, out.nll_utt.detach().to(torch.float64), zero)
            sum_char += torch.where(out.ok, out.nll_char.detach().to(torch.float64), zero)
            counted_d += out.ok.to(torch.float64)
            if out.seed is not None and cfg.train.loss != "ctc_nll":
                sum_seed += torch.where(out.ok, out.seed.detach().to(torch.float64), zero)
            self.global_step += 1
            if self.ema is not None:
                self.ema.update()
            if t_timed is not None:
                timed_steps += 1
            steps_done = k + 1
            if last_step or at_eval:
                last_seed = float(out.seed.detach())
            log_now = (k + 1) % cfg.train.log_every_steps == 0
            if log_now:
                skipped = self._poll(flags, epoch, skipped_before)
            progress.update(float(out.nll_utt.detach()) if log_now and self.dist.is_main else None)
            every = cfg.train.checkpoint_every_steps
            if at_eval:
                synchronize(dev)
                progress.pause()
                t_ev = time.perf_counter()
                reached = self._eval_point(epoch, k + 1)  # saves the checkpoint itself
                dt = time.perf_counter() - t_ev
                eval_s += dt
                eval_s_timed += dt if t_timed is not None else 0.0
                progress.resume()
                self.ddp.train()
                if reached:
                    break
            elif every and self.global_step % every == 0 and k + 1 < steps_total:
                self.save(epoch, k + 1)
        skipped = self._poll(flags, epoch, skipped_before)
        progress.close()
        self._progress = None
        synchronize(dev)
        t_end = time.perf_counter()
        comm_s, comm_buckets = self.comm_timer.take() if self.comm_timer else (None, 0)
        sums = torch.stack([sum_utt, sum_char, counted_d, sum_seed])
        self.dist.all_reduce_sum(sums)
        n = max(sums[2].item(), 1.0)
        every_step_seed = cfg.train.loss != "ctc_nll"
        seed_mean = sums[3].item() / n if every_step_seed and sums[2].item() > 0 else None
        seed_last = self._mean_over_ranks([last_seed])[0]
        samples = (steps_done - start) * gb
        timed_samples = timed_steps * gb
        timed_time = (t_end - t_timed - eval_s_timed) if t_timed is not None else 0.0
        train_time = t_end - t_epoch - eval_s
        self.result.train_samples += samples
        self.result.train_time_s += train_time
        self._timed[0] += timed_samples
        self._timed[1] += timed_time
        return {
            "kind": "epoch", "epoch": epoch, "global_step": self.global_step,
            "samples": samples, "samples_count": self.global_step * gb,
            # False when the target was reached at an evaluation inside the epoch.
            "complete": steps_done >= self.batches.steps_per_epoch, "target_reached": reached,
            "train_time(s)": train_time, "eval_time_in_epoch(s)": eval_s,
            "throughput(utt/s)": timed_samples / timed_time if timed_time > 0 else None,
            "warmup_steps_excluded": (steps_done - start) - timed_steps,
            "loss_ctc_nll_per_utt": sums[0].item() / n,
            "loss_ctc_nll_per_char": sums[1].item() / n,
            "seed_loss_last_iter": seed_last,
            "seed_loss_epoch_mean": seed_mean,
            "skipped_steps": skipped, "lr": lr,
            # Gradient buckets' launch → completion, summed over the epoch (comm.py):
            # overlaps backward; None where a host clock cannot measure it.
            "allreduce_time(s)": comm_s, "allreduce_buckets": comm_buckets,
        }

    def _poll(self, flags: StepFlags, epoch: int, skipped_before: int) -> int:
        """Read the step loop's device flags (one small all-reduce): stop requests of
        any rank and the epoch's masked steps; reports new skips, enforces the budget."""
        if self.stop_requested:
            flags.request_stop(self.stop_requested)
        stop, skipped = flags.poll(self.dist.all_reduce_sum if self.dist.distributed else None,
                                   self.dist.world_size)
        if stop and not flags.stop_reason:
            flags.request_stop("a stop request on another rank")
        new = skipped_before + skipped - self.result.skipped_steps
        if new > 0:
            self.result.skipped_steps += new
            print(f"[train] epoch {epoch}: {new} step(s) with a non-finite loss or gradient "
                  f"skipped (update masked; {self.result.skipped_steps} in this run)",
                  file=sys.stderr)
            self._check_nonfinite_budget()
        return skipped

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
        """Greedy-decode the eval split (with the weight average when configured)."""
        if self.ema is None:  # also in `harness eval`, which loads the average itself
            return self._evaluate()
        with self.ema.swapped():
            return self._evaluate()

    def _evaluate(self) -> dict[str, Any]:
        """Greedy-decode the eval split; metrics identical for any rank count."""
        self.ddp.eval()
        self._sync_buffers()
        mine = eval_batches(self.eval.durations, self.cfg.data.eval_batch, self.dist.rank,
                            self.dist.world_size)
        errors, losses = [], []
        with torch.no_grad():
            for batch in self.eval_loader.iterate(mine):
                if batch is None:
                    continue
                feats, frames = self._to_device(batch, epoch=None)
                with self._autocast():
                    logits, out_lens = self.model(feats, frames)
                for idx, hyp in zip(batch.indices, greedy_decode(logits.float(), out_lens)):
                    errors.append(utterance_errors(idx, self.eval.texts[idx], hyp))
                # The eval set is not filtered: a CTC-infeasible utterance (target longer
                # than the output) is decoded and scored, only its loss is infinite.
                per_utt = ctc_per_utterance(logits, out_lens.to(logits.device),
                                            batch.targets.to(logits.device),
                                            batch.target_lengths.to(logits.device))
                losses.extend(zip(batch.indices, per_utt.double().cpu().tolist()))
        gathered = [e for part in self.dist.all_gather_object(errors) for e in part]
        all_losses = sorted(x for part in self.dist.all_gather_object(losses) for x in part)
        finite = [v for _, v in all_losses if math.isfinite(v)]
        out = summarize(gathered)
        # Mean CTC NLL per utterance over the utterances where it is finite; how many
        # were left out of that mean (never out of the WER) is reported next to it.
        out["loss_ctc_nll_per_utt"] = sum(finite) / len(finite) if finite else None
        out["loss_excluded"] = len(all_losses) - len(finite)
        return out

    def _warm_up(self) -> None:
        """On an accelerator: one step at the longest batch, undone (reference/train/warmup.py).

        Skipped on CPU, where there is no allocator growth or kernel selection to
        take out of the timed region. It also runs before a resumed run: it
        restores every state it touches (RNG included), so the run is the same.
        """
        dev, cfg = self.dist.device, self.cfg
        if dev.type == "cpu" or not self.train.durations:
            return
        samples = longest_samples(max(self.train.durations.values()), cfg.features, cfg.augment)
        seconds = warm_up(self.ddp, self.model, self.optimizer, batch_size=cfg.train.batch_per_card,
                          samples=samples, feat=cfg.features, aug=cfg.augment, device=dev,
                          clip_norm=cfg.optim.clip_norm, loss_kind=cfg.train.loss,
                          autocast=self._autocast)
        if self.dist.is_main:
            print(f"[train] warm-up before run_start: one step at {samples} samples x "
                  f"{cfg.train.batch_per_card}, {seconds:.1f} s (state restored)", file=sys.stderr)

    # ------------------------------------------------------------------- fit
    def _emit(self, record: dict[str, Any]) -> None:
        self.result.history.append(record)
        if self.dist.is_main:
            with (self.run_dir / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(record) + "\n")

    def _eval_point(self, epoch: int, steps_done: int) -> bool:
        """Evaluate after `steps_done` steps of `epoch`, record it, checkpoint; True at target.

        Mid-epoch points come from `schedule.eval_steps`; the epoch-end one has
        `steps_done == steps_per_epoch`. The checkpoint is written after the
        evaluation, so a resume from it continues with the next step.
        """
        res, target = self.result, self.cfg.train.target_wer
        spe = self.batches.steps_per_epoch
        pos = epoch_position(epoch, steps_done, spe)
        samples = self.global_step * self.batches.global_batch
        self.hooks.on_eval_start(pos)
        t_eval = time.perf_counter()
        ev = self.evaluate()
        ev = {"kind": "eval", "epoch": epoch, "epoch_num": pos, "samples_count": samples,
              "at_epoch_end": steps_done >= spe, **ev,
              "eval_time(s)": time.perf_counter() - t_eval,
              "elapsed(s)": time.perf_counter() - self._t0}
        res.final_eval = ev
        res.epochs_trained = float(pos)
        wer = ev["wer_ref(%)"]
        res.best_wer = wer if res.best_wer is None else min(res.best_wer, wer)
        self._emit(ev)
        self.hooks.on_eval_end(pos, ev)
        reached = target is not None and wer <= target
        if reached:
            res.status, res.reason = "success", f"reference WER {wer:.2f} <= target {target}"
        self.save(epoch, steps_done)
        if self.dist.is_main and steps_done < spe:
            msg = (f"[eval] epoch {pos:.3f} ({samples} samples) WER(ref) {wer:.2f}% "
                   f"WER(corpus) {ev['wer_corpus(%)']:.2f}% CER {ev['cer(%)']:.2f}% "
                   f"elapsed {ev['elapsed(s)']:.0f}s")
            if self._progress is not None:
                self._progress.write(msg)
            else:
                print(msg, file=sys.stderr, flush=True)
        return reached

    def fit(self) -> RunResult:
        cfg, res = self.cfg, self.result
        target = cfg.train.target_wer
        t0 = self._t0 = time.perf_counter()
        try:
            self._warm_up()  # before run_start, as MLPerf allows; results unchanged
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
                reached = rec["target_reached"]  # at an evaluation inside the epoch
                if not reached:
                    res.epochs_completed = epoch
                    spe = self.batches.steps_per_epoch
                    if evaluates_epoch_end(epoch, cfg.train.epochs, spe, self.batches.global_batch,
                                           cfg.train.eval_start_samples):
                        reached = self._eval_point(epoch, spe)
                        ev = res.final_eval
                        scores = (f"WER(ref) {ev['wer_ref(%)']:.2f}% WER(corpus) "
                                  f"{ev['wer_corpus(%)']:.2f}% CER {ev['cer(%)']:.2f}% ")
                        tail = f"elapsed {ev['elapsed(s)']:.0f}s"
                    else:  # before train.eval_start_samples: no evaluation, a checkpoint all the same
                        res.epochs_trained = float(epoch)
                        self.save(epoch, spe)
                        scores, tail = "", f"(no evaluation before {cfg.train.eval_start_samples} samples)"
                    if self.dist.is_main:
                        print(f"[epoch {epoch}] loss(nll/utt) {rec['loss_ctc_nll_per_utt']:.3f} {scores}"
                              f"thr {rec['throughput(utt/s)'] or float('nan'):.1f} utt/s {tail}",
                              file=sys.stderr, flush=True)
                self.hooks.on_block_end(epoch)
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
