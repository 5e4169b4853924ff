"""Log-spectrogram features, batched with `torch.stft` on the training device.

As in the reference: hamming window of 20 ms (n_fft = 320 at 16 kHz, 161 bins),
hop 10 ms, magnitude STFT, log1p, then per-utterance normalisation by the mean
and standard deviation of the whole spectrogram (`normalize: utterance`), or
of its active frames only (`normalize: active`, see `ACTIVE_FRAME_RATIO`).

Batching must not change an utterance's features: each utterance is
reflect-padded by n_fft/2 on its own (what `center=True` does for a single
signal) before the batch is framed with `center=False`, and statistics are
taken over its valid frames only. `features_numpy` is the independent
per-utterance computation the tests compare against.
"""
from __future__ import annotations

import numpy as np
import torch

from reference.config import FeatureConfig


# A frame is active when its mean log1p-magnitude is at least this fraction of
# the utterance's loudest frame. Digital silence is 0 there, so any positive
# ratio leaves it out; 0.1 also leaves out near-silence (a few dB of dither or
# a recording's noise floor) while keeping the quiet consonants of speech.
ACTIVE_FRAME_RATIO = 0.1


def stft_params(cfg: FeatureConfig) -> tuple[int, int]:
    """(n_fft, hop) in samples."""
    return cfg.n_fft, int(round(cfg.sample_rate * cfg.hop_ms / 1000))


def stft_bins(cfg: FeatureConfig) -> int:
    """Frequency bins of the STFT (what warp and EQ act on)."""
    return cfg.n_fft // 2 + 1


def num_bins(cfg: FeatureConfig) -> int:
    """Feature bins per frame (the model's input): the mel bands when configured."""
    return cfg.bins


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)  # the HTK mel scale


def mel_filterbank(cfg: FeatureConfig) -> np.ndarray:
    """(mel_bins, n_fft/2 + 1) triangular bands, equally spaced in mel over 0 .. Nyquist.

    Band k rises linearly from edge k to a peak of 1 at edge k+1 and falls to 0
    at edge k+2 (edges: mel_bins + 2 points). Every band covers at least one
    STFT bin, so no feature is constantly zero.
    """
    freqs = np.arange(stft_bins(cfg)) * cfg.sample_rate / stft_params(cfg)[0]
    mel_max = _hz_to_mel(np.array(cfg.sample_rate / 2.0))
    edges = 700.0 * (10 ** (np.linspace(0.0, mel_max, cfg.mel_bins + 2) / 2595.0) - 1.0)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise = (freqs[None, :] - lo) / np.maximum(mid - lo, 1e-9)
    fall = (hi - freqs[None, :]) / np.maximum(hi - mid, 1e-9)
    fb = np.clip(np.minimum(rise, fall), 0.0, None)
    for k in np.flatnonzero(fb.sum(axis=1) == 0):  # narrower than a bin: the nearest bin
        fb[k, int(np.argmin(np.abs(freqs - mid[k, 0])))] = 1.0
    return fb.astype(np.float32)


_FB_CACHE: dict[tuple, torch.Tensor] = {}


def _filterbank(cfg: FeatureConfig, device: torch.device) -> torch.Tensor:
    key = (cfg.sample_rate, cfg.window_ms, cfg.mel_bins, str(device))
    if key not in _FB_CACHE:
        _FB_CACHE[key] = torch.from_numpy(mel_filterbank(cfg)).to(device)
    return _FB_CACHE[key]


def num_frames(samples: torch.Tensor | int, cfg: FeatureConfig) -> torch.Tensor | int:
    """Frames of an utterance of `samples` samples (centred framing)."""
    return 1 + samples // stft_params(cfg)[1]


def _window(cfg: FeatureConfig, n_fft: int, device: torch.device) -> torch.Tensor:
    # Symmetric windows, like scipy.signal.hamming(n) that the reference used.
    fn = torch.hamming_window if cfg.window == "hamming" else torch.hann_window
    return fn(n_fft, periodic=False, dtype=torch.float32, device=device)


def _reflect_pad_batch(wave: torch.Tensor, lengths: torch.Tensor, pad: int) -> torch.Tensor:
    """Per-row reflect padding of `pad` samples around each row's valid part."""
    b, s = wave.shape
    pos = torch.arange(s + 2 * pad, device=wave.device).unsqueeze(0) - pad  # (1, S+2p)
    last = (lengths - 1).unsqueeze(1)
    idx = torch.where(pos < 0, -pos, pos)
    idx = torch.where(idx > last, 2 * last - idx, idx)
    valid = pos < (lengths.unsqueeze(1) + pad)
    idx = idx.clamp(0, s - 1)
    return torch.where(valid, torch.gather(wave, 1, idx.expand(b, -1)), torch.zeros((), device=wave.device))


def frame_counts(lengths: torch.Tensor, cfg: FeatureConfig, tempo: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """Feature frames per utterance after the optional tempo change.

    Computable on the host from sample counts alone, so the model can pack
    sequences without reading anything back from the device.
    """
    frames = num_frames(lengths, cfg)
    if tempo is None:
        return frames
    return torch.clamp(torch.floor(frames.to(torch.float32) / tempo.to(torch.float32)).to(torch.long),
                       min=1)


def _time_stretch(mag: torch.Tensor, frames: torch.Tensor, tempo: torch.Tensor,
                  new_frames: torch.Tensor, t_out: int) -> torch.Tensor:
    """Pitch-preserving tempo change of magnitude spectrograms (linear frame interpolation).

    Output frame j of an utterance samples input position j × tempo, so a tempo
    of 1.15 shortens it by 15 %, as `sox tempo 1.15` does to the audio.
    `new_frames` (device) and `t_out` (their maximum, a host int) come from
    `frame_counts` on the host, so nothing is read back from the device.
    """
    j = torch.arange(t_out, device=mag.device, dtype=torch.float32).unsqueeze(0)
    pos = j * tempo.unsqueeze(1)  # (B, T')
    hi_lim = (frames - 1).unsqueeze(1).to(torch.float32)
    pos = torch.minimum(pos, hi_lim)
    lo = pos.floor().to(torch.long)
    hi = torch.minimum(lo + 1, (frames - 1).unsqueeze(1))
    w = (pos - lo.to(torch.float32)).unsqueeze(1)  # (B, 1, T')
    f = mag.shape[1]
    g_lo = torch.gather(mag, 2, lo.unsqueeze(1).expand(-1, f, -1))
    g_hi = torch.gather(mag, 2, hi.unsqueeze(1).expand(-1, f, -1))
    return g_lo * (1 - w) + g_hi * w


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`t` on `device` without stalling the host: a no-op on the same device; from an
    accelerator's pinned host memory with `non_blocking=True` otherwise (a copy
    from pageable memory would wait for the device)."""
    if t.device.type == "cpu" and device.type != "cpu" and not t.is_pinned():
        t = t.pin_memory()
    return t.to(device, non_blocking=True)  # the tensor itself when already there


def _warp_and_eq(mag: torch.Tensor, spectral: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
                 ) -> torch.Tensor:
    """Frequency warp (linear interpolation between bins) and EQ gain of (B, F, T) magnitudes.

    `spectral` = (lower source bin, weight, gain), each (B, F), from
    `reference.data.augment.spectral_params`.
    """
    dev = mag.device
    lo, w, gain = (to_device(t, dev) for t in spectral)
    t = mag.shape[2]
    idx = lo.unsqueeze(2).expand(-1, -1, t)
    w = w.to(mag).unsqueeze(2)
    warped = torch.gather(mag, 1, idx) * (1 - w) + torch.gather(mag, 1, idx + 1) * w
    return warped * gain.to(mag).unsqueeze(2)


def featurize(wave: torch.Tensor, lengths: torch.Tensor, cfg: FeatureConfig,
              gain_db: torch.Tensor | None = None, tempo: torch.Tensor | None = None,
              spectral: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded waveforms (B, S) + sample counts (B,) → features (B, 1, F, T) and frames (B,).

    `gain_db`, `tempo` (per utterance, or None) and `spectral` (per utterance and
    bin, see `_warp_and_eq`) are the augmentation.
    Padded frames are exactly zero. The features are computed on `wave`'s
    device; `lengths` and `tempo` should be host tensors: the frame counts
    and the padded length are then computed on the host (the same float32
    arithmetic) and only copied to the device, so featurizing never waits for
    the device. The returned frames are on `lengths`' device.
    """
    n_fft, hop = stft_params(cfg)
    dev = wave.device
    wave = wave.to(torch.float32)
    if gain_db is not None:
        wave = wave * torch.pow(10.0, to_device(gain_db, dev).to(wave) / 20.0).unsqueeze(1)
    lengths_d = to_device(lengths, dev)
    padded = _reflect_pad_batch(wave, lengths_d, n_fft // 2)
    spec = torch.stft(padded, n_fft=n_fft, hop_length=hop, win_length=n_fft,
                      window=_window(cfg, n_fft, dev), center=False,
                      return_complex=True)
    mag = spec.abs()  # (B, F, T)
    frames = num_frames(lengths, cfg)  # where `lengths` is: the host, normally
    t_max = int(frames.max())  # free on the host (a sync only if given device lengths)
    mag = mag[:, :, :t_max]
    if tempo is not None:
        stretched = frame_counts(lengths, cfg, tempo)
        t_out = int(stretched.max())
        mag = _time_stretch(mag, to_device(frames, dev), to_device(tempo, dev).to(mag),
                            to_device(stretched, dev), t_out)
        frames, t_max = stretched, t_out
    if spectral is not None:
        mag = _warp_and_eq(mag, spectral)
    if cfg.mel_bins:
        mag = torch.matmul(_filterbank(cfg, dev), mag)  # (M, F) x (B, F, T) -> (B, M, T)
    frames_d = to_device(frames, dev)
    logm = torch.log1p(mag)
    mask = (torch.arange(t_max, device=dev).unsqueeze(0) < frames_d.unsqueeze(1)).unsqueeze(1)
    logm = logm * mask
    # logm and centred are already zero outside `mask`, so the reference's
    # statistics need no second masking; only the active frames' do.
    stats = None
    if cfg.normalize == "active":
        # Statistics over the active frames only, chosen on the device (no sync).
        level = logm.mean(dim=1, keepdim=True)  # (B, 1, T), padded frames 0
        peak = level.amax(dim=2, keepdim=True)
        stats = mask & (level >= ACTIVE_FRAME_RATIO * peak)
    count = (mask if stats is None else stats).sum(dim=(1, 2)).to(torch.float32) * logm.shape[1]
    mean = (logm if stats is None else logm * stats).sum(dim=(1, 2)) / count
    centred = (logm - mean.view(-1, 1, 1)) * mask
    sq = centred * centred
    # Unbiased std over the statistics' values, as torch.Tensor.std() in the reference.
    std = torch.sqrt((sq if stats is None else sq * stats).sum(dim=(1, 2)) / (count - 1).clamp(min=1))
    feats = centred / std.clamp(min=1e-8).view(-1, 1, 1)
    return feats.unsqueeze(1), frames


def features_numpy(wave: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """Independent single-utterance numpy implementation (F, T), for tests."""
    n_fft, hop = stft_params(cfg)
    y = np.pad(wave.astype(np.float64), n_fft // 2, mode="reflect")
    n = 1 + (len(y) - n_fft) // hop
    win = np.hamming(n_fft) if cfg.window == "hamming" else np.hanning(n_fft)
    frames = np.stack([y[i * hop:i * hop + n_fft] * win for i in range(n)], axis=1)
    mag = np.abs(np.fft.rfft(frames, axis=0))
    if cfg.mel_bins:
        mag = mel_filterbank(cfg).astype(np.float64) @ mag
    logm = np.log1p(mag)
    stats = logm
    if cfg.normalize == "active":
        level = logm.mean(axis=0)
        stats = logm[:, level >= ACTIVE_FRAME_RATIO * level.max()]
    return (logm - stats.mean()) / stats.std(ddof=1)
