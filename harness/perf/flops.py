"""Analytic FLOP count of the DeepSpeech2 model (forward and training), per utterance.

Counted: multiply-adds of the dense layers as 2 FLOPs each.

* conv (no padding): ``2 · Cin · Cout · kh · kw · Hout · Wout``; the reference
  front end is Conv2d(1, 32, (41, 11), stride (2, 2)) then
  Conv2d(32, 32, (21, 11), stride (2, 1)) over (frequency bins × frames).
* RNN layer, per time step and direction: ``2 · gates · H · (I + H)``
  (gates: GRU 3, LSTM 4; input and recurrent matrices), × 2 when
  bidirectional (the directions are summed, so the next layer's input is H).
* head: ``2 · H · 29`` per output step.
* Ignored: biases, batch norm, Hardtanh, gate non-linearities and element-wise
  products, log-softmax and the CTC loss (all O(H) or O(29·T) per step).

Only an utterance's own frames are counted (the RNN runs on packed sequences);
the padding the convolutions also process is wasted work and is not counted,
as usual for model-FLOPs utilisation.

Training convention: backward ≈ 2 × forward (one product for the input
gradient, one for the weight gradient). The first convolution's input is the
feature tensor, which needs no gradient, so its backward is only the weight
gradient (1 × forward): training = 2·conv1 + 3·(conv2 + RNN + head).
`exact=False` gives the plain 3 × forward.

Pure Python (no torch import); `tests/harness/perf/test_perf.py` checks the shapes
against `reference.model.deepspeech2.DeepSpeech2`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# The reference front end (reference/model/deepspeech2.py); kept here as plain numbers.
# Channels come from ModelShape.conv_channels (32 in the reference).
CONV_CHANNELS = 32
CONV1 = {"kernel": (41, 11), "stride": (2, 2)}
CONV2 = {"kernel": (21, 11), "stride": (2, 1)}
NUM_CLASSES = 29
GATES = {"gru": 3, "lstm": 4}


def conv_out(size: int, kernel: int, stride: int) -> int:
    """Output length of an unpadded, undilated convolution (0 when the input is too short)."""
    return max(0, (size - kernel) // stride + 1)


def conv_flops(cin: int, cout: int, kh: int, kw: int, hout: int, wout: int) -> int:
    return 2 * cin * cout * kh * kw * hout * wout


def rnn_step_flops(rnn_type: str, inp: int, hidden: int, bidirectional: bool) -> int:
    """FLOPs of one time step of one RNN layer (both directions when bidirectional)."""
    try:
        gates = GATES[rnn_type]
    except KeyError:
        raise ValueError(f"unknown rnn_type {rnn_type!r} (gru or lstm)") from None
    return 2 * gates * hidden * (inp + hidden) * (2 if bidirectional else 1)


@dataclass(frozen=True)
class ModelShape:
    """What the FLOP count depends on (a subset of `reference.config.ModelConfig`)."""

    rnn_type: str = "gru"
    hidden: int = 2560
    layers: int = 3
    bidirectional: bool = False
    bins: int = 161  # 16 kHz, 20 ms window → n_fft 320 → 161 bins (or the mel bands)
    conv_channels: int = CONV_CHANNELS
    freq_kernels: tuple[int, int] = (CONV1["kernel"][0], CONV2["kernel"][0])

    @classmethod
    def of(cls, model_cfg, bins: int = 161) -> "ModelShape":
        """From a `ModelConfig`-like object (rnn_type, hidden, layers, bidirectional,
        conv_channels, conv_freq_kernels)."""
        return cls(model_cfg.rnn_type, model_cfg.hidden, model_cfg.layers,
                   bool(model_cfg.bidirectional), bins,
                   int(getattr(model_cfg, "conv_channels", CONV_CHANNELS)),
                   tuple(getattr(model_cfg, "conv_freq_kernels", cls.freq_kernels)))

    @property
    def conv1_bins(self) -> int:
        return conv_out(self.bins, self.freq_kernels[0], CONV1["stride"][0])

    @property
    def conv2_bins(self) -> int:
        return conv_out(self.conv1_bins, self.freq_kernels[1], CONV2["stride"][0])

    @property
    def rnn_input(self) -> int:
        return self.conv_channels * self.conv2_bins  # 32 × 21 = 672 at 161 bins


@dataclass
class Flops:
    """Forward FLOPs of one utterance, by part, and the training total."""

    frames: int
    conv1_frames: int
    out_frames: int
    conv1: int
    conv2: int
    rnn: list[int] = field(default_factory=list)
    head: int = 0

    @property
    def forward(self) -> int:
        return self.conv1 + self.conv2 + sum(self.rnn) + self.head

    def training(self, exact: bool = True) -> int:
        """Forward + backward: 2·conv1 + 3·rest (exact) or 3·forward."""
        return 3 * self.forward - (self.conv1 if exact else 0)

    def as_dict(self) -> dict:
        return {"frames": self.frames, "conv1_frames": self.conv1_frames,
                "out_frames": self.out_frames, "conv1": self.conv1, "conv2": self.conv2,
                "rnn": list(self.rnn), "head": self.head, "forward": self.forward,
                "training": self.training(True), "training_3x": self.training(False)}


def utterance_flops(frames: int, shape: ModelShape) -> Flops:
    """Forward FLOPs of one utterance of `frames` feature frames."""
    t1 = conv_out(frames, CONV1["kernel"][1], CONV1["stride"][1])
    t2 = conv_out(t1, CONV2["kernel"][1], CONV2["stride"][1])
    (kh1, kh2), kw1, kw2 = shape.freq_kernels, CONV1["kernel"][1], CONV2["kernel"][1]
    ch = shape.conv_channels
    c1 = conv_flops(1, ch, kh1, kw1, shape.conv1_bins, t1)
    c2 = conv_flops(ch, ch, kh2, kw2, shape.conv2_bins, t2)
    rnn = []
    for layer in range(shape.layers):
        inp = shape.rnn_input if layer == 0 else shape.hidden
        rnn.append(t2 * rnn_step_flops(shape.rnn_type, inp, shape.hidden, shape.bidirectional))
    head = 2 * shape.hidden * NUM_CLASSES * t2
    return Flops(frames, t1, t2, c1, c2, rnn, head)


def batch_training_flops(frames: list[int], shape: ModelShape, exact: bool = True) -> int:
    """Training FLOPs of a batch: the sum over its utterances (padding not counted)."""
    return sum(utterance_flops(int(f), shape).training(exact) for f in frames)


def parameters(shape: ModelShape) -> int:
    """Weights of the dense layers (for cross-checks; BN and biases excluded)."""
    (kh1, kh2), kw1, kw2 = shape.freq_kernels, CONV1["kernel"][1], CONV2["kernel"][1]
    ch = shape.conv_channels
    n = ch * kh1 * kw1 + ch * ch * kh2 * kw2
    gates = GATES[shape.rnn_type]
    dirs = 2 if shape.bidirectional else 1
    for layer in range(shape.layers):
        inp = shape.rnn_input if layer == 0 else shape.hidden
        n += dirs * gates * shape.hidden * (inp + shape.hidden)
    return n + shape.hidden * NUM_CLASSES
