"""Mel-band features (`features.mel_bins`) and the convolution kernels that fit them
(`model.conv_freq_kernels`), on real audio written to FLAC and decoded."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from reference.config import ConfigError, FeatureConfig, ModelConfig, load_config
from reference.data.audio import load_audio
from reference.data.features import (featurize, features_numpy, mel_filterbank, num_bins,
                                     num_frames, stft_bins)
from reference.model.deepspeech2 import DeepSpeech2, conv_output_bins

SR = 16000
MEL = FeatureConfig(hop_ms=12.5, mel_bins=64)


def _mel(f: float) -> float:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _flac(tmp_path, y: np.ndarray, name: str) -> np.ndarray:
    path = tmp_path / f"{name}.flac"
    sf.write(str(path), np.clip(y, -1, 1), SR, subtype="PCM_16", format="FLAC")
    return load_audio(path)


def test_filterbank_bands_cover_the_spectrum_in_mel_order():
    fb = mel_filterbank(MEL)
    assert fb.shape == (64, stft_bins(MEL)) == (64, 161)
    assert num_bins(MEL) == 64 and num_bins(FeatureConfig()) == 161
    assert (fb >= 0).all() and (fb.sum(axis=1) > 0).all()  # no constant-zero feature
    freqs = np.arange(161) * SR / 320
    centres = (fb * freqs).sum(axis=1) / fb.sum(axis=1)
    assert (np.diff(centres) >= 0).all()
    # Each band lies between its neighbours' centres, equally spaced in mel.
    edges = np.linspace(0, _mel(SR / 2), 66)
    for k in (5, 30, 63):
        support = freqs[fb[k] > 0]
        assert _mel(support.min()) >= edges[k] - 1e-6 and _mel(support.max()) <= edges[k + 2] + 1e-6
    # High bands are wider than low ones (in Hz), as the mel scale says.
    assert (fb[60] > 0).sum() > 4 * (fb[10] > 0).sum()


@pytest.mark.parametrize("hz", [440.0, 1500.0, 5000.0])
def test_a_tone_lights_the_band_around_its_frequency(tmp_path, hz):
    t = np.arange(SR) / SR
    wave = _flac(tmp_path, 0.5 * np.sin(2 * np.pi * hz * t), f"tone{int(hz)}")
    feats, _ = featurize(torch.from_numpy(wave)[None], torch.tensor([len(wave)]), MEL)
    loudest = int(feats[0, 0].mean(dim=1).argmax())
    edges = np.linspace(0, _mel(SR / 2), 66)
    centre = 700.0 * (10 ** (edges[1:-1] / 2595.0) - 1.0)
    nearest = int(np.argmin(np.abs(centre - hz)))
    assert abs(loudest - nearest) <= 1, (loudest, nearest)


def test_batched_mel_features_equal_per_utterance_numpy(tmp_path):
    t = np.arange(int(1.5 * SR)) / SR
    rng = np.random.default_rng(0)
    chirp = 0.5 * np.sin(2 * np.pi * (300 * t + 0.5 * 5700 / 1.5 * t * t)) + 0.05 * rng.standard_normal(len(t))
    audio = _flac(tmp_path, chirp, "chirp")
    waves = [audio[:n] for n in (24000, 3201, 12345)]
    lengths = torch.tensor([len(w) for w in waves])
    batch = torch.zeros(3, int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, :len(w)] = torch.from_numpy(w)
    feats, frames = featurize(batch, lengths, MEL)
    assert feats.shape == (3, 1, 64, int(frames.max()))
    for i, w in enumerate(waves):
        ref = features_numpy(w, MEL)
        assert ref.shape == (64, num_frames(len(w), MEL))
        got = feats[i, 0, :, :ref.shape[1]].numpy()
        assert np.abs(got - ref).max() < 1e-4
        assert (feats[i, 0, :, ref.shape[1]:] == 0).all()  # padding stays exactly zero


def test_kernels_fit_the_bins_or_fail_naming_the_fields():
    assert conv_output_bins(161) == 21  # the reference geometry
    assert conv_output_bins(64, (11, 11)) == 9
    model = DeepSpeech2(ModelConfig(hidden=16, layers=1, conv_channels=4,
                                    conv_freq_kernels=(11, 11)), MEL)
    feats = torch.randn(2, 1, 64, 90)
    logits, lengths = model(feats, torch.tensor([90, 60]))
    assert logits.shape[1:] == (2, 29) and model.conv[0].weight.shape[2:] == (11, 11)
    with pytest.raises(ValueError, match="conv_freq_kernels .* leave no frequency bins of the 64"):
        DeepSpeech2(ModelConfig(hidden=16, layers=1, conv_channels=4), MEL)
    with pytest.raises(Exception, match="mel_bins"):
        load_config("tiny", ["features.mel_bins=-1"])
    # Caught with the config, before any run directory exists, naming the field.
    with pytest.raises(ConfigError, match=r"model\.conv_freq_kernels: leave no frequency bins of "
                                          r"the 64 feature bins .*\(got \[41, 21\]\)"):
        load_config("tiny", ["model.conv_freq_kernels=[41,21]"])
    assert load_config("tiny", ["model.conv_freq_kernels=[41,21]", "features.mel_bins=0"])
    with pytest.raises(Exception, match="conv_freq_kernels"):
        load_config("tiny", ["model.conv_freq_kernels=[0,11]"])
    cfg = load_config("tiny", ["model.conv_freq_kernels=[11,11]", "features.mel_bins=64"])
    assert tuple(cfg.model.conv_freq_kernels) == (11, 11) and cfg.features.mel_bins == 64
