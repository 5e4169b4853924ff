"""Seeded, in-process augmentation: tempo, gain, edge silence and background noise.

The reference forked the `sox` binary for every sample (tempo U(0.85, 1.15),
gain U(-6, 8) dB). Here every parameter is a pure function of (seed, epoch,
utterance index), so it is reproducible whatever the number of ranks, data
workers or a resume point.

* `augment_params`: per-utterance tempo and gain; the signal processing happens
  on the device in `features.featurize`.
* `augment_waves`: waveform changes made on the host before the batch moves to
  the device: leading and trailing silence, each U(0, `silence_max_s`) s (the
  embedded corpus trims every utterance to the same ~80 ms edges, which a model
  otherwise learns; with `silence_trim_s` = 0.08 those edges count towards the
  draw and are cut when it is shorter, so an edge can also be no silence at
  all), and with probability `noise_prob` coloured Gaussian noise
  (power ~ 1/f^beta) over the whole padded signal at a random SNR, so that the
  added "silence" is not digital zero either. Noise comes from NumPy's seeded
  generator: nothing is downloaded, nothing depends on the device. With
  probability `echo_prob`, one delayed, attenuated copy of the utterance
  (espeak voices such as `Marco` or `announcer` carry their own echo).
* `spectral_params`: per-utterance frequency warp (VTLP) and a smooth random
  EQ curve, applied to the magnitude spectrogram on the device in
  `features.featurize`; computed here on the host as interpolation positions
  and gains per frequency bin, so the device never waits for the host.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.fft import next_fast_len

from reference.config import AugmentConfig

_TEMPO_GAIN = 0xA06  # stream tags: each kind of draw has its own generator
_WAVE = 0x51C
_SPECTRAL = 0x5BE
EQ_TERMS = 3  # cosines over frequency in the EQ curve: smooth, a few broad bands
WARP_KNEE = 0.9  # VTLP: the warp is linear up to this share of Nyquist, then bends to keep it


def augment_params(cfg: AugmentConfig, seed: int, epoch: int, indices: list[int]
                   ) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
    """Per-utterance (tempo, gain_db) tensors, or (None, None) when disabled."""
    if not cfg.enabled:
        return None, None
    tempo = np.empty(len(indices), dtype=np.float32)
    gain = np.empty(len(indices), dtype=np.float32)
    for k, idx in enumerate(indices):
        rng = np.random.default_rng([seed, epoch, int(idx), _TEMPO_GAIN])
        tempo[k] = rng.uniform(cfg.tempo_min, cfg.tempo_max)
        gain[k] = rng.uniform(cfg.gain_db_min, cfg.gain_db_max)
    return torch.from_numpy(tempo), torch.from_numpy(gain)


def waves_enabled(cfg: AugmentConfig) -> bool:
    return cfg.enabled and (cfg.silence_max_s > 0 or cfg.noise_prob > 0 or cfg.echo_prob > 0)


def spectral_enabled(cfg: AugmentConfig) -> bool:
    return cfg.enabled and (cfg.warp_min != 1.0 or cfg.warp_max != 1.0 or cfg.eq_db > 0)


def warp_positions(alpha: float, bins: int) -> np.ndarray:
    """Source bin (float) of each output bin for a VTLP warp by `alpha`.

    Frequencies f up to the knee f0 = WARP_KNEE * N * min(alpha, 1) / alpha map
    to alpha * f; above it the map is linear so that Nyquist N stays N. The
    output bin k samples the input at the inverse of that map.
    """
    n = float(bins - 1)
    k = np.arange(bins, dtype=np.float64)
    f0 = WARP_KNEE * n * min(alpha, 1.0) / alpha
    low = k / alpha
    high = n - (n - k) * (n - f0) / (n - alpha * f0)
    return np.clip(np.where(k <= alpha * f0, low, high), 0.0, n)


def eq_curve(coef: np.ndarray, bins: int) -> np.ndarray:
    """Gain in dB per bin from (EQ_TERMS, 2) coefficients (amplitude in dB, phase)."""
    x = np.arange(bins, dtype=np.float64) / max(bins - 1, 1)
    terms = np.arange(1, coef.shape[0] + 1, dtype=np.float64)[:, None]
    return (coef[:, :1] * np.cos(np.pi * terms * x + coef[:, 1:])).sum(axis=0)


def spectral_params(cfg: AugmentConfig, seed: int, epoch: int, indices: list[int], bins: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(lower source bin (B, F) int64, its interpolation weight (B, F), linear gain (B, F))
    of each utterance's warp and EQ, or None when both are off.

    The warp factor is U(warp_min, warp_max); the EQ curve is a sum of EQ_TERMS
    cosines over frequency whose amplitudes sum to at most `eq_db` dB.
    """
    if not spectral_enabled(cfg):
        return None
    lo = np.empty((len(indices), bins), dtype=np.int64)
    w = np.empty((len(indices), bins), dtype=np.float32)
    gain = np.empty((len(indices), bins), dtype=np.float32)
    for k, idx in enumerate(indices):
        rng = np.random.default_rng([seed, epoch, int(idx), _SPECTRAL])
        alpha = rng.uniform(cfg.warp_min, cfg.warp_max)
        amp = rng.uniform(-1.0, 1.0, EQ_TERMS) * cfg.eq_db / EQ_TERMS
        phase = rng.uniform(0.0, 2 * np.pi, EQ_TERMS)
        pos = warp_positions(float(alpha), bins)
        lo[k] = np.minimum(np.floor(pos).astype(np.int64), bins - 2)
        w[k] = pos - lo[k]
        gain[k] = 10.0 ** (eq_curve(np.stack([amp, phase], axis=1), bins) / 20.0)
    return torch.from_numpy(lo), torch.from_numpy(w), torch.from_numpy(gain)


def coloured_noise(rng: np.random.Generator, n: int, beta: float) -> np.ndarray:
    """`n` samples of unit-power Gaussian noise whose power spectrum falls as 1/f^beta."""
    if beta == 0 or n < 4:
        out = rng.standard_normal(n)
    else:
        # Shaped at a length with small prime factors, then cut to n: an FFT of an
        # utterance's own length (often a large prime factor) was ~10x slower and
        # a tenth of the training step; the cut keeps the spectrum's shape.
        m = next_fast_len(n, real=True)
        spec = np.fft.rfft(rng.standard_normal(m))
        f = np.arange(spec.shape[0], dtype=np.float64)
        f[0] = f[1]  # no infinite DC gain
        out = np.fft.irfft(spec / f ** (beta / 2), m)[:n]
    return (out / max(float(np.sqrt(np.mean(out * out))), 1e-12)).astype(np.float32)


def wave_params(cfg: AugmentConfig, seed: int, epoch: int, idx: int, sample_rate: int
                ) -> dict[str, float | int | None]:
    """One utterance's (lead, trail) samples and noise (SNR dB, beta) or None.

    `lead`/`trail` < 0 cut that many samples of the utterance's own edge silence
    (at most `silence_trim_s`); > 0 add that much silence.
    """
    rng = np.random.default_rng([seed, epoch, int(idx), _WAVE])
    # Draw everything always, in one order, so a parameter's value does not
    # depend on whether another one is switched on.
    lead_s, trail_s = rng.uniform(0.0, 1.0, 2) * cfg.silence_max_s - cfg.silence_trim_s
    noisy = rng.uniform() < cfg.noise_prob
    snr = rng.uniform(cfg.noise_snr_db_min, cfg.noise_snr_db_max)
    beta = rng.uniform(0.0, cfg.noise_color_max)
    noise_seed = int(rng.integers(0, 2**63 - 1))
    # Drawn after the others: adding echo leaves the earlier draws as they were.
    echoed = rng.uniform() < cfg.echo_prob
    delay = rng.uniform(cfg.echo_delay_s_min, cfg.echo_delay_s_max)
    echo_gain = rng.uniform(cfg.echo_gain_min, cfg.echo_gain_max)
    return {"lead": int(round(lead_s * sample_rate)), "trail": int(round(trail_s * sample_rate)),
            "snr_db": float(snr) if noisy else None, "beta": float(beta), "noise_seed": noise_seed,
            "echo_delay": int(round(delay * sample_rate)) if echoed else 0,
            "echo_gain": float(echo_gain)}


def augment_waves(cfg: AugmentConfig, seed: int, epoch: int, indices: list[int],
                  wave: torch.Tensor, lengths: torch.Tensor, sample_rate: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded host batch (B, S) float32 + sample counts → the augmented batch and counts.

    Unchanged (the same tensors) when waveform augmentation is off. Padding
    after each utterance's new length stays exactly zero.
    """
    if not waves_enabled(cfg):
        return wave, lengths
    src = wave.numpy() if wave.device.type == "cpu" else wave.cpu().numpy()
    lens = [int(n) for n in lengths]
    params = [wave_params(cfg, seed, epoch, i, sample_rate) for i in indices]
    # (first kept sample, kept samples, samples of silence added before) per row;
    # a cut never takes more than half an utterance (a guard for short data).
    spans = []
    for p, n in zip(params, lens):
        cut_l, cut_t = min(max(-p["lead"], 0), n // 4), min(max(-p["trail"], 0), n // 4)
        spans.append((cut_l, n - cut_l - cut_t, max(p["lead"], 0), max(p["trail"], 0)))
    # An echo's tail extends the utterance by its delay (before the trailing silence).
    new_lens = [pad_l + kept + p["echo_delay"] + pad_t
                for p, (_, kept, pad_l, pad_t) in zip(params, spans)]
    out = np.zeros((len(lens), max(new_lens) if new_lens else 0), dtype=np.float32)
    for k, (p, (start, n, pad_l, _)) in enumerate(zip(params, spans)):
        speech = src[k, start:start + n].astype(np.float32)
        row = out[k, :new_lens[k]]
        row[pad_l:pad_l + n] = speech
        if p["echo_delay"]:
            d = p["echo_delay"]
            row[pad_l + d:pad_l + d + n] += np.float32(p["echo_gain"]) * speech
        if p["snr_db"] is not None:
            power = float(np.mean(speech.astype(np.float64) ** 2)) if n else 0.0
            if power > 0:
                noise = coloured_noise(np.random.default_rng(p["noise_seed"]), new_lens[k],
                                       p["beta"])
                row += noise * np.float32(np.sqrt(power / 10.0 ** (p["snr_db"] / 10.0)))
    return torch.from_numpy(out), torch.tensor(new_lens, dtype=lengths.dtype)
