"""`python -m harness seedcmp`: the seed's trainer and ds2bench, side by side on this machine.

Both train the same model (default: the seed's CPU timing configuration, GRU
2×256 unidirectional, reference conv front end, batch 8, SGD-Nesterov 1e-4,
1 torch thread, tempo/gain augmentation) for one epoch on the same files: the
embedded corpus exported in the seed's own layout (WAV + txt + duration-sorted
`libri_train_manifest.csv`), which ds2bench reads through that same CSV.

* The seed: `harness/perf/seed_driver.py` in a subprocess, importing the seed's
  modules from a checkout the user names (`--seed-trainer`; nothing is
  downloaded). It needs librosa and the `sox` program; `make seed-cmp` installs
  librosa into `.venv-seed-libs` (kept out of the project's venv).
* ds2bench: `python -m harness bench --benchmark seed_cmp_gru2x256`, a normal
  run (mlperf.log, metrics.jsonl), its manifests pointed at the exported CSVs.

Each side's throughput(utt/s) excludes its first 3 steps; the ratio is
ds2bench ÷ seed. Writes `RUNS/seedcmp/<UTC>/seedcmp.json` with both sides'
records, the shims the seed needed, and the machine's load during each side.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.run.describe import busy_cores
from harness.perf.seed_driver import find_seed_root

REPO = Path(__file__).resolve().parents[2]
BENCHMARK = "seed_cmp_gru2x256"
REF_WARMUP = 3  # steps excluded on both sides, as the trainer's WARMUP_STEPS
SEED_LIBS = REPO / ".venv-seed-libs"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness seedcmp", description=__doc__.split("\n")[0])
    p.add_argument("--seed-trainer", type=Path, default=os.environ.get("SEED_TRAINER"),
                   help="checkout of the seed's trainer: speech_recognition/ of "
                        "github.com/mlcommons/training at 0badcd17 (or the repository root)")
    p.add_argument("--data", type=Path, default=REPO / "data" / "embedded",
                   help="embedded corpus root (train.jsonl, dev.jsonl)")
    p.add_argument("--runs", type=Path, default=REPO / "runs")
    p.add_argument("--seed-libs", type=Path, default=SEED_LIBS,
                   help="extra site directory with librosa for the seed (make seed-cmp fills it)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="tempo/gain augmentation on both sides (the seed's runs sox per utterance)")
    p.add_argument("--model", choices=("seed_cmp", "reference"), default="seed_cmp",
                   help="seed_cmp (default): GRU 2x256, 1 thread, one full epoch on each side, "
                        "ds2bench as a normal run. reference: GRU 3x2560 at the machine's thread "
                        "count, 3 + --steps batches of typical length (the middle of the sorted "
                        "CSV, in order) on each side; ds2bench's step timed as make perf times it")
    p.add_argument("--steps", type=int, default=8,
                   help="--model reference: timed steps per side, after 3 warm-up steps")
    return p


def _seed_env(libs: Path) -> dict[str, str]:
    env = dict(os.environ)
    if libs.is_dir():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(libs), env.get("PYTHONPATH")]))
    return env


def _check_seed_deps(env: dict[str, str], libs: Path) -> None:
    probe = subprocess.run([sys.executable, "-c", "import librosa, scipy, soundfile"], env=env,
                           capture_output=True, text=True)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        raise SystemExit(f"the seed's data loader needs librosa ({last}); install it with "
                         f"`make seed-cmp-setup` (pip install --target {libs} librosa)")


def export_layout(data: Path, out: Path) -> tuple[Path, Path]:
    """The corpus in the seed's layout under `out`; reused while newer than the manifests."""
    from reference.data.seed_export import export_seed_layout

    csvs = []
    for split in ("train", "dev"):
        src = data / f"{split}.jsonl"
        if not src.is_file():
            raise SystemExit(f"{src}: no such manifest (build the corpus first: make corpus)")
        csv_path = out / f"libri_{split}_manifest.csv"
        if not csv_path.is_file() or csv_path.stat().st_mtime < src.stat().st_mtime:
            csv_path = export_seed_layout(src, out, split, ordered=True)
        csvs.append(csv_path.resolve())
    return csvs[0], csvs[1]


def run_seed(root: Path, train_csv: Path, out_dir: Path, augment: bool, steps: int,
             env: dict[str, str], model: list[str] | None = None) -> dict[str, Any]:
    out = out_dir / "seed.json"
    cmd = [sys.executable, str(REPO / "harness" / "perf" / "seed_driver.py"), "--seed-trainer", str(root),
           "--train-csv", str(train_csv), "--out", str(out), "--steps", str(steps),
           "--augment" if augment else "--no-augment", *(model or [])]
    print(f"[seedcmp] seed trainer: {' '.join(cmd)}", file=sys.stderr, flush=True)
    with (out_dir / "seed.log").open("w") as log:
        rc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    if rc != 0 or not out.is_file():
        raise SystemExit(f"the seed's trainer failed (exit {rc}); see {out_dir / 'seed.log'}")
    return json.loads(out.read_text())


def run_ours(train_csv: Path, dev_csv: Path, out_dir: Path, augment: bool) -> dict[str, Any]:
    runs = out_dir / "ds2bench"
    cmd = [sys.executable, "-m", "harness", "bench", "--benchmark", BENCHMARK, "--runs", str(runs),
           "--set", f"data.train_manifest={train_csv}", "--set", f"data.eval_manifest={dev_csv}",
           "--set", f"augment.enabled={'true' if augment else 'false'}"]
    print(f"[seedcmp] ds2bench: {' '.join(cmd)}", file=sys.stderr, flush=True)
    with (out_dir / "ds2bench.log").open("w") as log:
        rc = subprocess.run(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT).returncode
    run_dirs = sorted(p for p in runs.glob(f"{BENCHMARK}-*") if (p / "result.json").is_file())
    # The fixed 1-epoch run has no target, so it ends "aborted" (exit 3) by design.
    if rc not in (0, 3) or not run_dirs:
        raise SystemExit(f"the ds2bench run failed (exit {rc}); see {out_dir / 'ds2bench.log'}")
    records = map(json.loads, (run_dirs[-1] / "metrics.jsonl").read_text().splitlines())
    ep = next(r for r in records if r.get("kind") == "epoch")
    return {"trainer": "ds2bench", "run_dir": str(run_dirs[-1]),
            "utterances_timed": ep["samples"] - ep["warmup_steps_excluded"] * (
                ep["samples"] // max(1, ep["global_step"])),
            "epoch_time_s": ep["train_time(s)"], "throughput(utt/s)": ep["throughput(utt/s)"],
            "warmup_steps_excluded": ep["warmup_steps_excluded"]}


def middle_rows(csv_path: Path, n: int, out_dir: Path) -> Path:
    """A CSV of the `n` rows around the middle of `csv_path` (duration-sorted: typical lengths)."""
    rows = csv_path.read_text().splitlines(keepends=True)
    start = max(0, (len(rows) - n) // 2)
    out = out_dir / "libri_train_middle_manifest.csv"
    out.write_text("".join(rows[start:start + n]))
    return out


def run_ours_steps(train_csv: Path, steps: int, augment: bool) -> dict[str, Any]:
    """ds2bench's training step (`harness.perf`'s `StepRunner`: the trainer's own step
    functions) at reference size on the CSV's first batches, in the seed's order."""
    import torch

    from harness.perf.measure import measure_training
    from harness.perf.sources import DataSource, manifest_batches
    from harness.perf.step import ModelSpec
    from reference.config import AugmentConfig, FeatureConfig, ModelConfig, OptimConfig

    batch, warmup = 8, REF_WARMUP
    lists = manifest_batches(train_csv, batch, warmup + steps)
    n_utts = sum(len(b) for b in lists)
    source = DataSource("embedded", f"first {n_utts} utterances of {train_csv}", n_utts,
                        lambda _b, n: lists[:n], train_csv)
    spec = ModelSpec("reference", "reference: GRU 3x2560 uni, b8", ModelConfig(), batch,
                     OptimConfig(), warmup, steps, 0)
    m = measure_training(spec, source, FeatureConfig(), AugmentConfig(enabled=augment),
                         torch.device("cpu"), lambda msg: print(msg, file=sys.stderr, flush=True))
    return {"trainer": "ds2bench (trainer step, as make perf)", "threads": m.threads,
            "utterances_timed": m.utterances, "time_s": m.time_s,
            "throughput(utt/s)": m.utt_s, "warmup_steps_excluded": warmup,
            "mean_audio_s_per_utt": m.audio_s / max(m.utterances, 1)}


def report(seed: dict[str, Any], ours: dict[str, Any]) -> str:
    ratio = ours["throughput(utt/s)"] / seed["throughput(utt/s)"]
    rows = [("trainer", "throughput(utt/s)", "utterances timed"),
            ("seed (MLCommons v0.5)", f"{seed['throughput(utt/s)']:.2f}", str(seed["utterances_timed"])),
            ("ds2bench", f"{ours['throughput(utt/s)']:.2f}", str(ours["utterances_timed"]))]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, width)) for r in rows]
    lines.append(f"ds2bench / seed = {ratio:.2f}x (same files, model, batch and torch threads)")
    return "\n".join(lines)


def latest(runs: Path, model: str = "seed_cmp") -> dict[str, Any] | None:
    """Summary of the newest `RUNS/seedcmp/*/seedcmp.json` of `model`, or None (for `make perf`)."""
    for path in sorted((runs / "seedcmp").glob("*/seedcmp.json"), reverse=True):
        rec = json.loads(path.read_text())
        if rec.get("model", "seed_cmp") == model:
            return {"path": str(path), "seed_utt_s": rec["seed"]["throughput(utt/s)"],
                    "ds2bench_utt_s": rec["ds2bench"]["throughput(utt/s)"],
                    "ratio": rec["ratio(ds2bench/seed)"], "augment": rec["augment"]}
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.seed_trainer is None:
        raise SystemExit("name the seed trainer's checkout: --seed-trainer DIR (or SEED_TRAINER=DIR)")
    try:
        root = find_seed_root(args.seed_trainer)
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from None
    args.runs = args.runs.resolve()  # the seed's side runs in its own directory
    env = _seed_env(args.seed_libs)
    _check_seed_deps(env, args.seed_libs)
    out_dir = args.runs / "seedcmp" / time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    out_dir.mkdir(parents=True, exist_ok=False)
    train_csv, dev_csv = export_layout(args.data, args.runs / "seedcmp" / "data")
    busy = {"seed_start": busy_cores()}
    if args.model == "reference":
        import torch

        # Utterances of typical length (the middle of the duration-sorted CSV), in order.
        train_csv = middle_rows(train_csv, (REF_WARMUP + args.steps) * 8, out_dir)

        # The seed sets no thread count: torch's default, all cores (as ds2bench's 1 rank).
        ref = ["--hidden", "2560", "--layers", "3", "--warmup", str(REF_WARMUP),
               "--threads", str(torch.get_num_threads())]
        seed = run_seed(root, train_csv, out_dir, args.augment, REF_WARMUP + args.steps, env, ref)
        busy["ds2bench_start"] = busy_cores()
        ours = run_ours_steps(train_csv, args.steps, args.augment)
    else:
        seed = run_seed(root, train_csv, out_dir, args.augment, 0, env)  # 0: the full epoch
        busy["ds2bench_start"] = busy_cores()
        ours = run_ours(train_csv, dev_csv, out_dir, args.augment)
    busy["end"] = busy_cores()
    text = report(seed, ours)
    record = {"schema": "ds2bench.seedcmp/1", "model": args.model, "augment": args.augment, "seed": seed,
              "ds2bench": ours, "ratio(ds2bench/seed)": ours["throughput(utt/s)"] / seed["throughput(utt/s)"],
              "busy_cores_other_processes": busy}
    (out_dir / "seedcmp.json").write_text(json.dumps(record, indent=1) + "\n")
    print(text)
    print(f"[seedcmp] {out_dir / 'seedcmp.json'}")
    return 0
