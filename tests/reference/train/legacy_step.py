"""The training step as it was before the sync-free rewrite (issue #13), kept verbatim.

Features (`int(frames.max())` on the device), the model forward (valid-frame
index from `nonzero()` on the device), the losses (device lengths) and the
trainer's step (all-reduced finite check, `bad.item()`, backward only when
finite). `test_step_equivalence.py` pins the new step's losses, gradients and
updates to this one on the same batch. It reuses the model's modules and the
unchanged helpers; only the code that moved or changed is copied here.
"""
from __future__ import annotations

import torch
from torch import nn

from reference.data.augment import augment_params
from reference.data.features import _reflect_pad_batch, _window, frame_counts, num_frames, stft_params
from reference.model.deepspeech2 import output_frames
from reference.model.gru import gru_directions, use_fast_gru
import torch.nn.functional as F

from reference.labels import BLANK_ID
from reference.model.loss import ctc_per_utterance


def seed_loss(logits, out_lens, targets, target_lens):
    batch = logits.shape[1]
    raw = F.ctc_loss(logits.float(), targets, out_lens, target_lens, blank=BLANK_ID,
                     reduction="mean", zero_infinity=False)
    return raw / batch


def _time_stretch(mag, frames, tempo):
    new_frames = torch.clamp(torch.floor(frames.to(torch.float32) / tempo).to(torch.long), min=1)
    t_out = int(new_frames.max())
    j = torch.arange(t_out, device=mag.device, dtype=torch.float32).unsqueeze(0)
    pos = j * tempo.unsqueeze(1)
    hi_lim = (frames - 1).unsqueeze(1).to(torch.float32)
    pos = torch.minimum(pos, hi_lim)
    lo = pos.floor().to(torch.long)
    hi = torch.minimum(lo + 1, (frames - 1).unsqueeze(1))
    w = (pos - lo.to(torch.float32)).unsqueeze(1)
    f = mag.shape[1]
    g_lo = torch.gather(mag, 2, lo.unsqueeze(1).expand(-1, f, -1))
    g_hi = torch.gather(mag, 2, hi.unsqueeze(1).expand(-1, f, -1))
    return g_lo * (1 - w) + g_hi * w, new_frames


def featurize(wave, lengths, cfg, gain_db=None, tempo=None):
    n_fft, hop = stft_params(cfg)
    wave = wave.to(torch.float32)
    if gain_db is not None:
        wave = wave * torch.pow(10.0, gain_db.to(wave) / 20.0).unsqueeze(1)
    padded = _reflect_pad_batch(wave, lengths, n_fft // 2)
    spec = torch.stft(padded, n_fft=n_fft, hop_length=hop, win_length=n_fft,
                      window=_window(cfg, n_fft, wave.device), center=False, return_complex=True)
    mag = spec.abs()
    frames = num_frames(lengths, cfg)
    t_max = int(frames.max())
    mag = mag[:, :, :t_max]
    if tempo is not None:
        mag, frames = _time_stretch(mag, frames, tempo.to(mag))
        t_max = int(frames.max())
    logm = torch.log1p(mag)
    mask = (torch.arange(t_max, device=wave.device).unsqueeze(0) < frames.unsqueeze(1)).unsqueeze(1)
    count = (frames * logm.shape[1]).to(torch.float32)
    logm = logm * mask
    mean = logm.sum(dim=(1, 2)) / count
    centred = (logm - mean.view(-1, 1, 1)) * mask
    std = torch.sqrt((centred * centred).sum(dim=(1, 2)) / (count - 1).clamp(min=1))
    feats = centred / std.clamp(min=1e-8).view(-1, 1, 1)
    return feats.unsqueeze(1), frames


def device_features(batch, feat, aug, seed, epoch, tempo_cap, device):
    tempo = gain = None
    if epoch is not None:
        tempo, gain = augment_params(aug, seed, epoch, batch.indices)
        if tempo is not None and tempo_cap is not None:
            tempo = torch.minimum(tempo, tempo_cap)
    frames = frame_counts(batch.lengths, feat, tempo)
    wave = batch.wave.to(device, non_blocking=True)
    lengths = batch.lengths.to(device, non_blocking=True)
    with torch.no_grad():
        feats, _ = featurize(wave, lengths, feat, None if gain is None else gain.to(device),
                             None if tempo is None else tempo.to(device))
    return feats, frames


class _Valid:
    def __init__(self, lengths, t, device):
        lengths = lengths.to(device)
        steps = torch.arange(t, device=device).unsqueeze(1)
        self.mask = steps < lengths.unsqueeze(0)
        self.flat = self.mask.reshape(-1).nonzero().squeeze(1)
        last = (lengths - 1).unsqueeze(0)
        self.reverse = torch.where(self.mask, last - steps, steps)

    def norm(self, bn, x):
        t, b, f = x.shape
        flat = x.reshape(t * b, f)
        out = torch.zeros_like(flat).index_copy(0, self.flat, bn(flat.index_select(0, self.flat)))
        return out.view(t, b, f)

    def flip(self, x):
        return x.gather(0, self.reverse.unsqueeze(2).expand_as(x))


def _layer(layer, x, valid):
    if layer.bn is not None:
        x = valid.norm(layer.bn, x)
    if use_fast_gru(layer.fwd, x):
        if layer.bwd is None:
            return gru_directions([layer.fwd], [x])[0]
        out, back = gru_directions([layer.fwd, layer.bwd], [x, valid.flip(x)])
    else:
        out = layer.fwd(x)[0]
        if layer.bwd is None:
            return out
        back = layer.bwd(valid.flip(x))[0]
    return out + valid.flip(back)


def model_forward(model, feats, frames):
    x = model.conv(feats)
    b, c, f, t = x.shape
    x = x.view(b, c * f, t).permute(2, 0, 1).contiguous()
    lengths = output_frames(frames).clamp(min=1, max=t)
    valid = _Valid(lengths, t, x.device)
    for layer in model.rnns:
        x = _layer(layer, x, valid)
    return model.fc(valid.norm(model.head_bn, x)), lengths


def batch_losses(logits, out_lens, batch, device, with_seed=True):
    targets = batch.targets.to(device, non_blocking=True)
    tlens = batch.target_lengths.to(device, non_blocking=True)
    out_lens = out_lens.to(device)
    per_utt = ctc_per_utterance(logits, out_lens, targets, tlens)
    nll_utt = per_utt.sum() / per_utt.shape[0]
    nll_char = per_utt.sum() / tlens.sum()
    seed = seed_loss(logits, out_lens, targets, tlens) if with_seed else None
    return nll_utt, nll_char, seed


def train_step(model, optimizer, batch, feat, aug, seed, epoch, cap, clip_norm, loss_kind="ctc_nll",
               with_seed=True):
    """The trainer's step (single process): returns (skipped, nll_utt, nll_char, seed)."""
    device = next(model.parameters()).device
    feats, frames = device_features(batch, feat, aug, seed, epoch, cap, device)
    logits, out_lens = model_forward(model, feats, frames)
    nll_utt, nll_char, seed_q = batch_losses(logits, out_lens, batch, device,
                                             with_seed=with_seed or loss_kind != "ctc_nll")
    loss = nll_utt if loss_kind == "ctc_nll" else seed_q
    bad = (~torch.isfinite(loss)).to(torch.float32).reshape(1)
    if bad.item() > 0:
        optimizer.zero_grad(set_to_none=True)
        return True, nll_utt, nll_char, seed_q
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    optimizer.step()
    return False, nll_utt, nll_char, seed_q
