"""`python -m harness perf`: training throughput, MFU, data-pipeline rate, logging overhead.

A benchmark, not a test: everything is measured in one process, in one run,
on one device at the run's thread count (``--threads``, default all cores),
and printed as a table next to the targets plus a JSON file (``--json``,
default ``runs/perf/perf-<UTC>.json``). The one exception is the comparison
with the seed trainer, which was measured at 1 thread: the full run measures
the same model (GRU 2×256 unidirectional, batch 8) once more at 1 thread
(``gru2x256_b8_t1``), and the "≥ 3× seed" target is held to that row; the
all-threads row is printed for information. Every training record says the
thread count it ran at (``threads``).

Training steps call the trainer's own step functions (`reference.train.step`), in
the trainer's order (`reference.train.trainer.Trainer._train_epoch`): collate (audio
already decoded, as with ``data.cache_audio``) → tempo cap and augmentation
parameters → features on the device (gain + tempo) → `DeepSpeech2` forward →
CTC NLL and per-character NLL (the seed's quantity only at an epoch's end, as
in the trainer, so not in the timed steps) → backward → gradient-norm clip →
optimizer step (masked on the device when the loss or gradient is not
finite; on CPU the host reads that flag, which is free there). Clocks are read
after `reference.device.synchronize`;
warm-up steps are excluded; throughput = timed utterances / timed wall time.

Batches: real audio from ``data/embedded`` when present — length-sorted
batches (as the bucketed sampler builds them) whose mean duration is closest
to the corpus mean, so every step has the corpus's typical length — else
deterministic noise waveforms of ~2 s with random feasible targets. The
JSON says which (``data.source``).

MFU = achieved model training FLOP/s (`harness.perf.flops`, useful frames only)
÷ the best GEMM rate at the precision the model runs (IEEE fp32 on CPU, or
bf16 where that is faster for a row whose CPU GRU GEMMs take bf16 operands, as
tiny trains with ``train.fp32_precision: bf16``: the record names it,
``mfu_peak_precision``; TF32 on CUDA with cuDNN's default; bf16/fp16 under
autocast), taken over squares
and the measured models' own GEMM shapes (`harness.perf.peaks`), in the same
run, on the same device and at the same thread count: the 1-thread row is
divided by rates measured at 1 thread (``matmul.one_thread``), never by the
all-threads peak. Each record carries the rate it used (``mfu_peak_gflops``),
the recurrence's memory-bandwidth bound beside it, and (tiny, reference) the
instrumented host syncs of one step (`harness.perf.syncs`).

Modules: `system` (cores, load, matmul rate), `peaks` (per-precision GEMM peaks,
bandwidth bound), `syncs` (host-sync counter), `sources` (batches), `step`
(one training step as the trainer takes it), `measure` (training, pipeline,
logging), `report` (records, targets, table), `cli` (arguments, the run).
"""
from __future__ import annotations


def main(argv: list[str]) -> int:
    """Run the benchmark (`harness.perf.cli.main`); exit status."""
    # Imported here so that importing the package (e.g. by `python -m harness`
    # for another sub-command) does not pull in torch and the reference code.
    from harness.perf.cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]
