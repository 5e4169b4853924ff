"""The DeepSpeech2 reference model (MLCommons v0.5 / Cambricon port).

Conv2d(1,32,(41,11),s(2,2)) BN Hardtanh(0,20) → Conv2d(32,32,(21,11),s(2,1)) BN
Hardtanh(0,20) (no padding) → RNN stack (GRU or LSTM; BatchNorm1d before layers
2..n; bidirectional outputs summed) → BatchNorm1d(hidden) + Linear(hidden, 29,
bias=False). The model returns raw logits (T, B, 29); the losses apply
log-softmax themselves (see `loss.py`).

Everything after the convolutions runs on packed sequences, so padding never
enters the RNN, the batch-norm statistics or the output of an utterance.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from reference.config import FeatureConfig, ModelConfig
from reference.features import num_bins
from reference.labels import NUM_CLASSES

CONV_CHANNELS = 32


def conv_output_bins(bins: int) -> int:
    """Frequency bins left after the two strided convolutions (161 → 21)."""
    b1 = (bins - 41) // 2 + 1
    return (b1 - 21) // 2 + 1


def output_frames(frames: torch.Tensor | int) -> torch.Tensor | int:
    """Output time steps for `frames` input frames: stride 2 then width 11 twice."""
    t1 = (frames - 11) // 2 + 1
    return t1 - 10


def min_input_frames(out_frames: int) -> int:
    """Smallest input frame count giving at least `out_frames` output steps."""
    return 2 * (out_frames + 10 - 1) + 11


class _RNNLayer(nn.Module):
    def __init__(self, rnn_type: str, inp: int, hidden: int, bidirectional: bool,
                 batch_norm: bool) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(inp) if batch_norm else None
        cls = nn.GRU if rnn_type == "gru" else nn.LSTM
        self.rnn = cls(inp, hidden, bidirectional=bidirectional, bias=True)
        self.bidirectional = bidirectional
        self.hidden = hidden

    def forward(self, x: PackedSequence) -> PackedSequence:
        if self.bn is not None:
            # BN over the valid frames only: the packed data is (sum of lengths, features).
            x = x._replace(data=self.bn(x.data))
        out, _ = self.rnn(x)
        if self.bidirectional:
            out = out._replace(data=out.data.view(-1, 2, self.hidden).sum(dim=1))
        return out


class DeepSpeech2(nn.Module):
    """DS2: conv front end + RNN stack + BN/FC head; forward returns (logits T×B×C, lengths)."""

    def __init__(self, cfg: ModelConfig, feat: FeatureConfig | None = None) -> None:
        super().__init__()
        bins = num_bins(feat or FeatureConfig())
        self.conv = nn.Sequential(
            nn.Conv2d(1, CONV_CHANNELS, kernel_size=(41, 11), stride=(2, 2)),
            nn.BatchNorm2d(CONV_CHANNELS),
            nn.Hardtanh(0, 20, inplace=True),
            nn.Conv2d(CONV_CHANNELS, CONV_CHANNELS, kernel_size=(21, 11), stride=(2, 1)),
            nn.BatchNorm2d(CONV_CHANNELS),
            nn.Hardtanh(0, 20, inplace=True),
        )
        rnn_in = CONV_CHANNELS * conv_output_bins(bins)  # 672 at 16 kHz / 20 ms
        layers = []
        for i in range(cfg.layers):
            layers.append(_RNNLayer(cfg.rnn_type, rnn_in if i == 0 else cfg.hidden, cfg.hidden,
                                    cfg.bidirectional, batch_norm=cfg.rnn_batch_norm and i > 0))
        self.rnns = nn.ModuleList(layers)
        self.head_bn = nn.BatchNorm1d(cfg.hidden)
        self.fc = nn.Linear(cfg.hidden, NUM_CLASSES, bias=False)

    def forward(self, feats: torch.Tensor, frames: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(feats)  # (B, C, F', T')
        b, c, f, t = x.shape
        x = x.view(b, c * f, t).permute(2, 0, 1)  # (T', B, C·F')
        lengths = output_frames(frames).clamp(min=1, max=t)
        packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
        for layer in self.rnns:
            packed = layer(packed)
        logits_data = self.fc(self.head_bn(packed.data))
        logits, _ = pad_packed_sequence(packed._replace(data=logits_data), total_length=t)
        return logits, lengths


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
