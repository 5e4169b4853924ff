"""The DeepSpeech2 reference model (MLCommons v0.5 / Cambricon port).

Conv2d(1,32,(41,11),s(2,2)) BN Hardtanh(0,20) → Conv2d(32,32,(21,11),s(2,1)) BN
Hardtanh(0,20) (no padding; 32 channels is the reference, `model.conv_channels`
changes it for small open-division models) → RNN stack (GRU or LSTM; BatchNorm1d before layers
2..n; bidirectional outputs summed) → BatchNorm1d(hidden) + Linear(hidden, 29,
bias=False). The model returns raw logits (T, B, 29); the losses apply
log-softmax themselves (see `loss.py`).

After the convolutions, batch norm sees valid frames only and the backward
RNN direction starts at each utterance's own last frame, so padding never
changes an utterance's output (pinned by tests).
"""
from __future__ import annotations

import torch
from torch import nn

from reference.config import FeatureConfig, ModelConfig, conv_output_bins  # noqa: F401 (re-exported)
from reference.model import packed
from reference.model.conv import StridedConv2d
from reference.model.gru import gru_directions, use_fast_gru
from reference.data.features import num_bins, to_device
from reference.labels import NUM_CLASSES

CONV_CHANNELS = 32  # the reference's; ModelConfig.conv_channels defaults to it


def output_frames(frames: torch.Tensor | int) -> torch.Tensor | int:
    """Output time steps for `frames` input frames: stride 2 then width 11 twice."""
    t1 = (frames - 11) // 2 + 1
    return t1 - 10


def min_input_frames(out_frames: int) -> int:
    """Smallest input frame count giving at least `out_frames` output steps."""
    return 2 * (out_frames + 10 - 1) + 11


class _Valid:
    """Index helpers for the valid (non-padded) frames of a (T, B, ·) batch.

    Built from the output lengths where they are — on the host in training,
    where the frame counts are known before any device work — and only then
    copied to the device: the valid-frame index (`nonzero`) of a host mask
    costs no device synchronisation, the same index from a device mask would.
    """

    def __init__(self, lengths: torch.Tensor, t: int, device: torch.device) -> None:
        # Created where `lengths` is; no `device=` for the host (harness/perf/syncs.py
        # reads a device argument as "the device").
        on = None if lengths.device.type == "cpu" else lengths.device
        steps = torch.arange(t, device=on).unsqueeze(1)  # (T, 1)
        mask = steps < lengths.unsqueeze(0)  # (T, B)
        flat = mask.reshape(-1).nonzero().squeeze(1)
        # Time reversal within each utterance's own length (padding stays put):
        # the backward direction must start at the utterance's last real frame.
        last = (lengths - 1).unsqueeze(0)
        reverse = torch.where(mask, last - steps, steps)  # (T, B)
        # As rows of the (T·B, F) view: a row gather (index_select, its backward a
        # row scatter) moves whole F-vectors; `gather` with an expanded index reads an
        # index per element (~4x slower forward, ~2x forward + backward, measured).
        reverse_rows = (reverse * lengths.numel() + torch.arange(lengths.numel(),
                                                                 device=on)).reshape(-1)
        self.lengths = lengths  # where given (the host, normally): for packing
        self.mask = to_device(mask, device)
        self.flat = to_device(flat, device)
        self.reverse_rows = to_device(reverse_rows, device)

    def norm(self, bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
        """BatchNorm over valid frames only; padded frames become zero."""
        t, b, f = x.shape
        flat = x.reshape(t * b, f)
        out = torch.zeros_like(flat).index_copy(0, self.flat, bn(flat.index_select(0, self.flat)))
        return out.view(t, b, f)

    def flip(self, x: torch.Tensor) -> torch.Tensor:
        t, b, f = x.shape
        return x.reshape(t * b, f).index_select(0, self.reverse_rows).view(t, b, f)


class _RNNLayer(nn.Module):
    """One (optionally bidirectional) RNN layer on padded input.

    Runs on padded tensors instead of packed sequences (packed GRU backward is
    several times slower on CPU): the vendor kernels, or for CPU GRU training
    the hand-written backward of `reference/model/gru.py`; exactness
    for every utterance comes from per-utterance time reversal for the
    backward direction and from masking: a forward-direction output at a valid
    frame never depends on padding that comes after it.
    """

    def __init__(self, rnn_type: str, inp: int, hidden: int, bidirectional: bool,
                 batch_norm: bool) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(inp) if batch_norm else None
        cls = nn.GRU if rnn_type == "gru" else nn.LSTM
        self.fwd = cls(inp, hidden, bias=True)
        self.bwd = cls(inp, hidden, bias=True) if bidirectional else None

    def forward(self, x: torch.Tensor, valid: _Valid) -> torch.Tensor:
        if self.bn is not None:
            x = valid.norm(self.bn, x)
        if use_fast_gru(self.fwd, x):
            # CPU GRU training: hand-written backward, both directions in one loop
            # (reference/model/gru.py). LSTM, accelerators and inference: vendor kernels.
            if self.bwd is None:
                return gru_directions([self.fwd], [x])[0]
            out, back = gru_directions([self.fwd, self.bwd], [x, valid.flip(x)])
        elif self.bwd is not None and packed.use_packed(x, valid.lengths):
            # Accelerators: both directions in one packed vendor call (reference/model/packed.py).
            out, back = packed.packed_bidirectional(self.fwd, self.bwd, x, valid.lengths)
            return out + back  # already in time order; padded frames are zero
        else:
            out = self.fwd(x)[0]
            if self.bwd is None:
                return out
            back = self.bwd(valid.flip(x))[0]
        return out + valid.flip(back)  # directions summed, as in the reference


class DeepSpeech2(nn.Module):
    """DS2: conv front end + RNN stack + BN/FC head; forward returns (logits T×B×C, lengths)."""

    def __init__(self, cfg: ModelConfig, feat: FeatureConfig | None = None) -> None:
        super().__init__()
        bins = num_bins(feat or FeatureConfig())
        ch = cfg.conv_channels
        self.conv = nn.Sequential(
            StridedConv2d(1, ch, kernel_size=(cfg.conv_freq_kernels[0], 11), stride=(2, 2)),
            nn.BatchNorm2d(ch),
            nn.Hardtanh(0, 20, inplace=True),
            StridedConv2d(ch, ch, kernel_size=(cfg.conv_freq_kernels[1], 11), stride=(2, 1)),
            nn.BatchNorm2d(ch),
            nn.Hardtanh(0, 20, inplace=True),
        )
        left = conv_output_bins(bins, tuple(cfg.conv_freq_kernels))
        if left < 1:
            raise ValueError(f"model.conv_freq_kernels {list(cfg.conv_freq_kernels)} leave no "
                             f"frequency bins of the {bins} feature bins: use smaller kernels "
                             "or more bins (features.mel_bins)")
        rnn_in = ch * left  # 32 × 21 = 672 at 16 kHz / 20 ms
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
        x = x.view(b, c * f, t).permute(2, 0, 1).contiguous()  # (T', B, C·F')
        # On the frames' device (the host in training): no device read-back.
        lengths = output_frames(frames).clamp(min=1, max=t)
        valid = _Valid(lengths, t, x.device)
        for layer in self.rnns:
            x = layer(x, valid)
        logits = self.fc(valid.norm(self.head_bn, x))
        return logits, lengths


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
