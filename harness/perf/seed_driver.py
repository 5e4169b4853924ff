"""Time the seed's own trainer code on this machine (run as a script, in a subprocess).

`python harness/perf/seed_driver.py --seed-trainer DIR --train-csv CSV --out JSON ...`
imports the seed's modules from the user's checkout of the MLCommons v0.5
`speech_recognition` tree (the seed's trainer: `data/data_loader.py`,
`pytorch/model.py`) and takes the steps of its `pytorch/train.py` loop: its
`SpectrogramDataset` (librosa STFT, `sox` fork per utterance for tempo/gain),
its `AudioDataLoader` with one worker, in manifest order, its `DeepSpeech`
model, CTC on raw activations divided by the batch size, SGD-Nesterov, clip at
400, and a progress line per step. Nothing of ds2bench is imported, so only
the seed's code is timed.

The seed targets PyTorch 0.4; four shims let its unmodified modules run on
the PyTorch installed here (each is reported in the output JSON):

* `warpctc_pytorch.CTCLoss`: warp-ctc's contract (raw activations T×N×C, flat
  int labels, summed over the batch, blank 0) on `torch.nn.functional.ctc_loss`
  after a log-softmax, on the CPU as warp-ctc's CPU binding runs. The warp-ctc
  C++ kernel itself is not available for current PyTorch.
* `torchaudio.load`: the old API (samples × channels, float in [-1, 1]) on
  soundfile; current torchaudio returns channels first, which the seed's
  `load_audio` would average into one number per channel.
* `scipy.signal.hamming` & co.: moved to `scipy.signal.windows` (SciPy 1.13).
* `loss.data[0]` (the seed's loss readout) becomes `loss.item()` here, since a
  0-d tensor cannot be indexed.

Timing: like the seed's `batch_time`, each step is timed from the end of the
previous one (data wait included); the first `--warmup` steps are excluded.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import types
from pathlib import Path

SEED_FILES = ("data/data_loader.py", "pytorch/model.py", "labels.json")


def find_seed_root(path: Path) -> Path:
    """The directory holding `data/` and `pytorch/` of the seed's trainer."""
    for cand in (path, path / "speech_recognition",
                 path / "retired_benchmarks" / "never-adopted" / "speech_recognition"):
        if all((cand / f).is_file() for f in SEED_FILES):
            return cand.resolve()
    raise FileNotFoundError(
        f"{path}: not the seed trainer's tree (expected {', '.join(SEED_FILES)} under it, or under "
        "speech_recognition/ of a checkout of github.com/mlcommons/training)")


def install_shims() -> list[str]:
    import numpy as np
    import scipy.signal
    import scipy.signal.windows
    import soundfile as sf
    import torch
    import torch.nn.functional as F

    applied = []
    for name in ("hamming", "hann", "blackman", "bartlett"):
        if not hasattr(scipy.signal, name):
            setattr(scipy.signal, name, getattr(scipy.signal.windows, name))
            applied.append(f"scipy.signal.{name} = scipy.signal.windows.{name}")

    audio = types.ModuleType("torchaudio")

    def load(path: str, *args, **kwargs):
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
        return torch.from_numpy(np.ascontiguousarray(data)), rate

    audio.load = load
    sys.modules["torchaudio"] = audio
    applied.append("torchaudio.load: soundfile, (samples, channels) float32")

    class CTCLoss(torch.nn.Module):
        """warp-ctc's contract: raw acts (T, N, C); loss summed over the batch, shape (1,)."""

        def forward(self, acts, labels, act_lens, label_lens):
            log_probs = F.log_softmax(acts.float().cpu(), dim=2)
            loss = F.ctc_loss(log_probs, labels.long(), act_lens.long(), label_lens.long(),
                              blank=0, reduction="sum", zero_infinity=False)
            return loss.reshape(1)

    warp = types.ModuleType("warpctc_pytorch")
    warp.CTCLoss = CTCLoss
    sys.modules["warpctc_pytorch"] = warp
    applied.append("warpctc_pytorch.CTCLoss: log_softmax + torch ctc_loss(sum), on the CPU")
    applied.append("loss.data[0] -> loss.item()")
    return applied


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed-trainer", type=Path, required=True)
    p.add_argument("--train-csv", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--rnn", default="gru", choices=("gru", "lstm"))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=1, help="the seed's train loader uses 1")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--steps", type=int, default=0, help="0: one epoch")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=0xdeadbeef)
    args = p.parse_args(argv)

    root = find_seed_root(args.seed_trainer)
    # Resolved before the chdir into the seed's tree below.
    args.out, args.train_csv = args.out.resolve(), args.train_csv.resolve()
    if args.augment and shutil.which("sox") is None:
        raise SystemExit("the seed's augmentation runs the `sox` program, which is not on PATH: "
                         "install it (Debian: apt-get install sox) or pass --no-augment")
    shims = install_shims()
    # The seed runs from pytorch/ with '../' on its path (train.py does sys.path.append('../')).
    sys.path[:0] = [str(root / "pytorch"), str(root)]
    os.chdir(root / "pytorch")

    import torch
    from data.data_loader import AudioDataLoader, SpectrogramDataset  # the seed's
    from model import DeepSpeech, supported_rnns  # the seed's

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    labels = "".join(json.loads((root / "labels.json").read_text()))
    audio_conf = dict(sample_rate=16000, window_size=0.02, window_stride=0.01, window="hamming",
                      noise_dir=None, noise_prob=0.4, noise_levels=(0.0, 0.5))
    dataset = SpectrogramDataset(audio_conf=audio_conf, manifest_filepath=str(args.train_csv),
                                 labels=labels, normalize=True, augment=args.augment)
    loader = AudioDataLoader(dataset, batch_size=args.batch, num_workers=args.workers)
    model = DeepSpeech(rnn_hidden_size=args.hidden, nb_layers=args.layers, labels=labels,
                       rnn_type=supported_rnns[args.rnn], audio_conf=audio_conf,
                       bidirectional=False, rnn_activation="tanh", bias=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, nesterov=True,
                                weight_decay=0)
    criterion = sys.modules["warpctc_pytorch"].CTCLoss()
    model.train()

    steps = len(loader) if args.steps <= 0 else min(args.steps, len(loader))
    step_times: list[float] = []
    utts: list[int] = []
    end = time.perf_counter()
    for i, (inputs, targets, input_percentages, target_sizes) in enumerate(loader):
        if i == steps:
            break
        out = model(inputs).transpose(0, 1)  # T×N×C
        seq_length = out.size(0)
        sizes = input_percentages.mul_(int(seq_length)).int()
        loss = criterion(out, targets, sizes, target_sizes) / inputs.size(0)
        loss_value = loss.item()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 400)
        optimizer.step()
        now = time.perf_counter()
        step_times.append(now - end)
        end = now
        utts.append(int(inputs.size(0)))
        print(f"Epoch: [1][{i + 1}/{len(loader)}]\tTime {step_times[-1]:.3f}\t"
              f"Loss {loss_value:.4f}", flush=True)

    timed = step_times[args.warmup:]
    timed_utts = sum(utts[args.warmup:])
    result = {
        "trainer": "seed (MLCommons v0.5 speech_recognition)",
        "seed_trainer": str(root),
        "shims": shims,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "torch": torch.__version__,
        "steps": len(step_times),
        "warmup_steps_excluded": min(args.warmup, len(step_times)),
        "utterances_timed": timed_utts,
        "time_s": sum(timed),
        "throughput(utt/s)": timed_utts / sum(timed) if timed else None,
        "step_time_median(s)": sorted(timed)[len(timed) // 2] if timed else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("steps", "utterances_timed", "time_s",
                                             "throughput(utt/s)")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
