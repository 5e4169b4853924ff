"""Benchmark configuration: YAML → typed, validated dataclasses.

Every field has a type and (where it matters) a range; unknown keys and bad
values raise `ConfigError` naming the dotted field, e.g.
`benchmarks/tiny.yaml: train.batch_per_card: must be >= 1 (got 0)`.
Command-line overrides use the same dotted names: `train.epochs=3`.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml


class ConfigError(ValueError):
    """A configuration value is unknown, mistyped or out of range."""


@dataclass
class ModelConfig:
    rnn_type: Literal["gru", "lstm"] = "gru"
    hidden: int = 2560
    layers: int = 3
    bidirectional: bool = False
    # The reference puts a BatchNorm1d (over time steps) before RNN layers 2..n.
    rnn_batch_norm: bool = True
    # Channels of both front-end convolutions; the reference has 32. Fewer make a
    # small open-division model cheaper (the convolutions dominate its FLOPs).
    conv_channels: int = 32
    # Frequency extent of the two convolution kernels (the reference's 41 and 21
    # span a 161-bin linear spectrogram; a 64-band mel input needs smaller ones).
    conv_freq_kernels: tuple[int, int] = (41, 21)

    def validate(self, where: str) -> None:
        _check(all(k >= 1 for k in self.conv_freq_kernels), where, "conv_freq_kernels",
               "must be >= 1", self.conv_freq_kernels)
        _check(self.hidden >= 1, where, "hidden", "must be >= 1", self.hidden)
        _check(self.conv_channels >= 1, where, "conv_channels", "must be >= 1",
               self.conv_channels)
        _check(self.layers >= 1, where, "layers", "must be >= 1", self.layers)


@dataclass
class FeatureConfig:
    sample_rate: int = 16000
    window_ms: float = 20.0
    hop_ms: float = 10.0
    window: Literal["hamming", "hann"] = "hamming"
    # Which values the per-utterance mean and std are taken over. "utterance":
    # the whole spectrogram, as the reference does, so the length of the leading
    # and trailing silence moves every speech value. "active": only the frames
    # whose mean log-magnitude is at least ACTIVE_FRAME_RATIO of the loudest
    # frame's, so added or removed silence leaves the speech features unchanged.
    normalize: Literal["utterance", "active"] = "utterance"
    # 0: the reference's linear-frequency spectrogram (n_fft/2 + 1 bins). N > 0:
    # N triangular mel-scale bands over 0 .. sample_rate/2 instead
    # (reference/data/features.py `mel_filterbank`).
    mel_bins: int = 0

    @property
    def n_fft(self) -> int:
        """STFT size in samples: one window."""
        return int(round(self.sample_rate * self.window_ms / 1000))

    @property
    def bins(self) -> int:
        """Feature bins per frame: the mel bands when configured, else n_fft/2 + 1."""
        return self.mel_bins or self.n_fft // 2 + 1

    def validate(self, where: str) -> None:
        _check(self.sample_rate > 0, where, "sample_rate", "must be > 0", self.sample_rate)
        _check(self.mel_bins >= 0, where, "mel_bins", "must be >= 0", self.mel_bins)
        _check(self.window_ms > 0, where, "window_ms", "must be > 0", self.window_ms)
        _check(0 < self.hop_ms <= self.window_ms, where, "hop_ms",
               "must be in (0, window_ms]", self.hop_ms)


@dataclass
class AugmentConfig:
    enabled: bool = True
    tempo_min: float = 0.85
    tempo_max: float = 1.15
    gain_db_min: float = -6.0
    gain_db_max: float = 8.0
    # Waveform augmentation (reference/data/augment.py); off by default, as in the
    # reference. Leading and trailing silence, each U(0, silence_max_s) seconds,
    # so that the edges of an utterance predict nothing.
    silence_max_s: float = 0.0
    # How much silence the data already keeps at each edge (the embedded corpus
    # trims to 80 ms), so it may be cut: with silence_trim_s = t each edge ends
    # U(0, silence_max_s) s long in total (cut when the draw is below t), and
    # "no silence at all" is trained as well as half a second.
    silence_trim_s: float = 0.0
    # Background noise with probability noise_prob: coloured Gaussian noise
    # (power spectrum ~ 1/f^beta, beta U(0, noise_color_max); 0 white, 1 pink,
    # 2 brown) over the whole padded signal at an SNR U(noise_snr_db_min, max).
    noise_prob: float = 0.0
    # First epoch (1-based) with edge silence and noise: a curriculum in which the
    # first (SortaGrad, shortest-first) epoch learns on the clean corpus.
    waves_from_epoch: int = 1
    noise_snr_db_min: float = 10.0
    noise_snr_db_max: float = 40.0
    noise_color_max: float = 2.0
    # Voice augmentation (from waves_from_epoch, like the waveform changes), off by
    # default. espeak voices differ by formant frequencies (a variant scales them
    # by 0.6-1.5), formant levels and echo; a model trained on a few dozen voices
    # learns those voices. Frequency warp (VTLP, Jaitly & Hinton 2013): each
    # utterance's spectrum is stretched by a factor U(warp_min, warp_max), the
    # Nyquist bin kept in place. EQ: a smooth random gain over frequency within
    # +-eq_db dB. Echo: with probability echo_prob one delayed copy of the
    # utterance, delay U(echo_delay_s_min, max) s, relative level U(echo_gain_min, max).
    warp_min: float = 1.0
    warp_max: float = 1.0
    eq_db: float = 0.0
    echo_prob: float = 0.0
    echo_delay_s_min: float = 0.03
    echo_delay_s_max: float = 0.16
    echo_gain_min: float = 0.1
    echo_gain_max: float = 0.6

    def validate(self, where: str) -> None:
        _check(0 < self.tempo_min <= self.tempo_max, where, "tempo_min",
               "must satisfy 0 < tempo_min <= tempo_max", self.tempo_min)
        _check(self.gain_db_min <= self.gain_db_max, where, "gain_db_min",
               "must be <= gain_db_max", self.gain_db_min)
        _check(0 <= self.silence_max_s <= 5, where, "silence_max_s", "must be in [0, 5]",
               self.silence_max_s)
        _check(0 <= self.silence_trim_s <= self.silence_max_s, where, "silence_trim_s",
               "must be in [0, silence_max_s]", self.silence_trim_s)
        _check(self.waves_from_epoch >= 1, where, "waves_from_epoch", "must be >= 1",
               self.waves_from_epoch)
        _check(0 <= self.noise_prob <= 1, where, "noise_prob", "must be in [0, 1]", self.noise_prob)
        _check(self.noise_snr_db_min <= self.noise_snr_db_max, where, "noise_snr_db_min",
               "must be <= noise_snr_db_max", self.noise_snr_db_min)
        _check(0 <= self.noise_color_max <= 3, where, "noise_color_max", "must be in [0, 3]",
               self.noise_color_max)
        _check(0.5 <= self.warp_min <= self.warp_max <= 2, where, "warp_min",
               "must satisfy 0.5 <= warp_min <= warp_max <= 2", self.warp_min)
        _check(0 <= self.eq_db <= 24, where, "eq_db", "must be in [0, 24]", self.eq_db)
        _check(0 <= self.echo_prob <= 1, where, "echo_prob", "must be in [0, 1]", self.echo_prob)
        _check(0 < self.echo_delay_s_min <= self.echo_delay_s_max <= 1, where, "echo_delay_s_min",
               "must satisfy 0 < echo_delay_s_min <= echo_delay_s_max <= 1", self.echo_delay_s_min)
        _check(0 <= self.echo_gain_min <= self.echo_gain_max <= 1, where, "echo_gain_min",
               "must satisfy 0 <= echo_gain_min <= echo_gain_max <= 1", self.echo_gain_min)


@dataclass
class DataConfig:
    # "embedded": the generated corpus; "librispeech": manifests made by `make data`;
    # "manifest": explicit train/eval manifest paths.
    corpus: Literal["embedded", "librispeech", "manifest"] = "embedded"
    root: str = "data/embedded"
    train_manifest: str = "train.jsonl"
    eval_manifest: str = "dev.jsonl"
    max_duration_s: float = 16.7
    cache_audio: bool = True  # decode each file once and keep int16 PCM in RAM
    num_workers: int = 0
    sortagrad: bool = True  # first epoch in length order (DS2 paper)
    bucket_batches: int = 8  # shuffle within groups of this many length-sorted batches
    eval_batch: int = 32
    allow_resample: bool = False
    allow_downmix: bool = False

    def validate(self, where: str) -> None:
        _check(self.max_duration_s > 0, where, "max_duration_s", "must be > 0", self.max_duration_s)
        _check(self.num_workers >= 0, where, "num_workers", "must be >= 0", self.num_workers)
        _check(self.bucket_batches >= 1, where, "bucket_batches", "must be >= 1", self.bucket_batches)
        _check(self.eval_batch >= 1, where, "eval_batch", "must be >= 1", self.eval_batch)


@dataclass
class OptimConfig:
    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 1e-4
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    anneal: float = 1.1  # lr /= anneal after every epoch
    # "epoch": the reference's step at each epoch start; "step": the same decay
    # applied continuously, lr = base / anneal^(epochs done, fractional), so a
    # short run does not spend half an epoch at a rate it has outgrown.
    anneal_every: Literal["epoch", "step"] = "epoch"
    clip_norm: float = 400.0
    # How lr changes with the number of cards: "none" (the seed) or "linear"
    # (lr × global_batch / reference_batch).
    lr_scaling: Literal["none", "linear"] = "none"
    reference_batch: int = 8

    def validate(self, where: str) -> None:
        _check(self.lr > 0, where, "lr", "must be > 0", self.lr)
        _check(0 <= self.momentum < 1, where, "momentum", "must be in [0, 1)", self.momentum)
        _check(self.weight_decay >= 0, where, "weight_decay", "must be >= 0", self.weight_decay)
        _check(self.anneal >= 1, where, "anneal", "must be >= 1", self.anneal)
        _check(self.clip_norm > 0, where, "clip_norm", "must be > 0", self.clip_norm)
        _check(self.reference_batch >= 1, where, "reference_batch", "must be >= 1",
               self.reference_batch)
        _check(not (self.nesterov and self.name == "sgd" and self.momentum == 0), where,
               "nesterov", "needs momentum > 0", self.nesterov)


@dataclass
class TrainConfig:
    batch_per_card: int = 8
    # When set, the global batch is fixed and each card gets global_batch / cards
    # (the launcher resolves batch_per_card), so the optimisation is the same
    # on any card count. None: batch_per_card is fixed (the seed's semantics).
    global_batch: int | None = None
    epochs: int = 10
    target_wer: float | None = 23.0  # reference WER in %; None = never stop early
    seed: int = 1
    # "ctc_nll": log-softmax + CTC, sum / batch (correct, as warp-ctc did).
    # "seed_raw_logits": the Cambricon trainer's objective (raw logits into
    # CTCLoss(mean) / batch), only to reproduce its published number.
    loss: Literal["ctc_nll", "seed_raw_logits"] = "ctc_nll"
    log_every_steps: int = 50
    checkpoint_every_steps: int = 0  # 0 = only at epoch ends
    keep_checkpoints: int = 3
    max_nonfinite_fraction: float = 0.05  # abort when more steps than this were skipped
    threads: int = 0  # torch intra-op threads per rank; 0 = cores / local ranks
    amp: Literal["off", "bf16", "fp16"] = "off"
    # fp32 matmul/conv/RNN precision: "ieee" (true fp32), "tf32" (accelerators), or
    # "bf16" (CPU: the GRU's four large GEMMs and the second convolution take bfloat16
    # operands, fp32 accumulation, bf16-rounded products; the recurrent step and the
    # first convolution stay fp32; reference/train/precision.py).
    fp32_precision: Literal["ieee", "tf32", "bf16"] = "ieee"
    # Evaluate every this many training samples (0: at the end of every epoch only).
    eval_every_samples: int = 0
    # No evaluation, inside or at the end of an epoch, before this many global
    # training samples (MLPerf ResNet's eval_offset, in samples); the last epoch
    # is always evaluated. 0: from the first eval point.
    eval_start_samples: int = 0
    # Evaluate an exponential moving average of the weights with this decay
    # (reference/train/ema.py); 0: evaluate the live weights.
    ema_decay: float = 0.0
    # Host malloc (glibc) settings that keep a step's freed memory for the next
    # step instead of returning it to the kernel (reference/train/host_malloc.py):
    # "tuned", or "default" to leave glibc as it starts. Numerics do not change.
    host_malloc: Literal["tuned", "default"] = "tuned"

    def validate(self, where: str) -> None:
        _check(self.batch_per_card >= 1, where, "batch_per_card", "must be >= 1", self.batch_per_card)
        _check(self.global_batch is None or self.global_batch >= 1, where, "global_batch",
               "must be >= 1 or null", self.global_batch)
        _check(self.epochs >= 1, where, "epochs", "must be >= 1", self.epochs)
        _check(self.target_wer is None or 0 < self.target_wer <= 100, where, "target_wer",
               "must be in (0, 100] or null", self.target_wer)
        _check(self.seed >= 0, where, "seed", "must be >= 0", self.seed)
        _check(self.log_every_steps >= 1, where, "log_every_steps", "must be >= 1",
               self.log_every_steps)
        _check(self.checkpoint_every_steps >= 0, where, "checkpoint_every_steps", "must be >= 0",
               self.checkpoint_every_steps)
        _check(self.keep_checkpoints >= 1, where, "keep_checkpoints", "must be >= 1",
               self.keep_checkpoints)
        _check(0 <= self.max_nonfinite_fraction <= 1, where, "max_nonfinite_fraction",
               "must be in [0, 1]", self.max_nonfinite_fraction)
        _check(self.threads >= 0, where, "threads", "must be >= 0", self.threads)
        _check(self.eval_every_samples >= 0, where, "eval_every_samples", "must be >= 0",
               self.eval_every_samples)
        _check(self.eval_start_samples >= 0, where, "eval_start_samples", "must be >= 0",
               self.eval_start_samples)
        _check(0 <= self.ema_decay < 1, where, "ema_decay", "must be in [0, 1)", self.ema_decay)


@dataclass
class ScoringConfig:
    # Runs a set must have to be scored (MLPerf speech, RNN-T: 10).
    required_runs: int = 10

    def validate(self, where: str) -> None:
        _check(self.required_runs >= 1, where, "required_runs", "must be >= 1",
               self.required_runs)


@dataclass
class DatasetIdentity:
    """What the benchmark's data must be (compliance pins it; 0 / "" = not pinned).

    `train_utterances`/`eval_utterances`: utterances in the train / eval
    manifests (a log's train_samples plus its ds2_train_rejected counts must
    add up to the first; eval_samples must equal the second: the eval set is
    never filtered). `eval_digest`: `reference.data.manifest.manifest_digest`
    of the eval manifest (ids and normalised transcripts, location-independent).
    `train_samples`: how many of the train utterances the benchmark's filters keep.
    """

    train_utterances: int = 0
    eval_utterances: int = 0
    eval_digest: str = ""
    # Usable training utterances after the benchmark's filters (train_samples), where known.
    train_samples: int = 0

    def validate(self, where: str) -> None:
        _check(self.train_utterances >= 0, where, "train_utterances", "must be >= 0",
               self.train_utterances)
        _check(self.eval_utterances >= 0, where, "eval_utterances", "must be >= 0",
               self.eval_utterances)
        _check(0 <= self.train_samples <= (self.train_utterances or self.train_samples), where,
               "train_samples", "must be in [0, train_utterances]", self.train_samples)
        _check(self.eval_digest == "" or re.fullmatch(r"[0-9a-f]{64}", self.eval_digest) is not None,
               where, "eval_digest", "must be a sha256 hex digest or empty", self.eval_digest)


@dataclass
class BenchmarkConfig:
    name: str = "tiny"
    description: str = ""
    division: Literal["open", "closed"] = "open"
    cards: int = 1  # the card count the benchmark is defined for (launch may override)
    model: ModelConfig = field(default_factory=ModelConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    dataset: DatasetIdentity = field(default_factory=DatasetIdentity)

    def validate(self, where: str) -> None:
        _check(bool(self.name), where, "name", "must not be empty", self.name)
        _check(self.cards >= 1, where, "cards", "must be >= 1", self.cards)
        bins = self.features.bins
        _check(conv_output_bins(bins, tuple(self.model.conv_freq_kernels)) >= 1, where + "model.",
               "conv_freq_kernels", f"leave no frequency bins of the {bins} feature bins "
               "(use smaller kernels or more features.mel_bins)",
               list(self.model.conv_freq_kernels))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["optim"]["betas"] = list(self.optim.betas)
        d["model"]["conv_freq_kernels"] = list(self.model.conv_freq_kernels)
        return d


def conv_output_bins(bins: int, kernels: tuple[int, int] = (41, 21)) -> int:
    """Frequency bins left after the model's two unpadded convolutions, both of
    frequency stride 2 (161 → 21 with the reference's kernels)."""
    b1 = (bins - kernels[0]) // 2 + 1
    return (b1 - kernels[1]) // 2 + 1


def _check(ok: bool, where: str, name: str, why: str, got: Any) -> None:
    if not ok:
        raise ConfigError(f"{where}{name}: {why} (got {got!r})")


_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`; return it (ints widen to float)."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return None
        errors = []
        for alt in get_args(tp):
            if alt is type(None):
                continue
            try:
                return _coerce(alt, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: must be one of {', '.join(map(str, choices))} (got {value!r})")
        return value
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where}: must be a list of {len(args)} values (got {value!r})")
        return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where + ".")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false (got {value!r})")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: must be an integer (got {value!r})")
        return value
    if tp is float:
        # PyYAML (YAML 1.1) reads `1e-4` — no dot — as a string; accept it as
        # the number it obviously is, but not words such as 'nan' or 'inf'.
        if isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: must be a number (got {value!r})")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string (got {value!r})")
        return value
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: must be a mapping (got {raw!r})")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(names))})")
    kwargs = {k: _coerce(hints[k], v, prefix + k) for k, v in raw.items()}
    obj = cls(**kwargs)
    obj.validate(prefix)
    return obj


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        nxt = node.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"{dotted}: {k} is not a section")
        node = nxt
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`train.epochs=3` → ("train.epochs", 3); values are parsed as YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw) if raw.strip() else ""


def config_from_dict(raw: dict, overrides: list[str] | None = None,
                     source: str = "config") -> BenchmarkConfig:
    """Build a validated config from a mapping plus dotted `key=value` overrides."""
    tree = copy.deepcopy(raw or {})  # overrides must not write into the caller's mapping
    for ov in overrides or []:
        key, value = parse_override(ov)
        _set_dotted(tree, key, value)
    try:
        return _build(BenchmarkConfig, tree, "")
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def resolve_cards(cfg: BenchmarkConfig, cards: int) -> BenchmarkConfig:
    """Fix batch_per_card for `cards` cards when the benchmark fixes the global batch."""
    gb = cfg.train.global_batch
    if gb is not None:
        if gb % cards:
            # The global batch is part of the recipe (its convergence, its RCPs), so it
            # is never changed to fit the cards; the message says how to choose one.
            fit = gb * cards // math.gcd(gb, cards)
            raise ConfigError(f"train.global_batch: {gb} is not divisible by {cards} cards; "
                              f"run with a multiple of {cards}, e.g. SET=\"train.global_batch={fit}\" "
                              f"(another recipe: compare it with the RCPs of that batch size)")
        cfg.train.batch_per_card = gb // cards
    return cfg


def load_config(path: Path | str, overrides: list[str] | None = None) -> BenchmarkConfig:
    """Load a benchmark YAML (a path, or a name under `benchmarks/`)."""
    p = Path(path)
    if not p.exists() and not p.suffix:
        p = Path(__file__).resolve().parent.parent / "benchmarks" / f"{path}.yaml"
    if not p.is_file():
        raise ConfigError(f"{path}: benchmark definition not found")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML ({err})") from None
    return config_from_dict(raw, overrides, source=str(p))


def dump_config(cfg: BenchmarkConfig) -> str:
    """The resolved config as YAML (written into each run directory)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
