"""reference.data.features: batched torch features vs an independent numpy computation, on real audio."""
import numpy as np
import pytest
import soundfile as sf
import torch

from reference.data.audio import load_audio
from reference.config import FeatureConfig
from reference.data.features import (featurize, features_numpy, frame_counts, num_bins, num_frames,
                                stft_params)

SR = 16000
CFG = FeatureConfig()


def _chirp(seconds, f0=300.0, f1=6000.0, noise=0.0, seed=0):
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * (f0 * t + 0.5 * (f1 - f0) / seconds * t * t)
    y = 0.5 * np.sin(phase)
    if noise:
        y = y + noise * np.random.default_rng(seed).standard_normal(len(t))
    return np.clip(y, -1, 1)


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """A 1.5 s chirp with noise, through a 16-bit FLAC file and reference.data.audio.load_audio."""
    path = tmp_path_factory.mktemp("audio") / "chirp.flac"
    sf.write(str(path), _chirp(1.5, noise=0.05), SR, subtype="PCM_16", format="FLAC")
    wav = load_audio(path)
    assert wav.dtype == np.float32 and wav.ndim == 1 and len(wav) == int(1.5 * SR)
    return wav


@pytest.fixture(scope="module")
def clean_chirp(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "clean.flac"
    sf.write(str(path), _chirp(2.0), SR, subtype="PCM_16", format="FLAC")
    return load_audio(path)


def _batch(waves):
    lengths = torch.tensor([len(w) for w in waves])
    out = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        out[i, :len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
    return out, lengths


LENGTHS = [24000, 3201, 12345, 16000, 7999]


def test_stft_geometry():
    assert stft_params(CFG) == (320, 160)
    assert num_bins(CFG) == 161
    assert num_frames(16000, CFG) == 101
    assert num_frames(16159, CFG) == 101 and num_frames(16160, CFG) == 102


def test_batched_features_equal_per_utterance_numpy(audio):
    waves = [audio[:n] for n in LENGTHS]
    wave, lengths = _batch(waves)
    feats, frames = featurize(wave, lengths, CFG)
    assert feats.shape == (len(waves), 1, 161, int(frames.max()))
    for i, w in enumerate(waves):
        ref = features_numpy(w, CFG)
        assert ref.shape == (161, num_frames(len(w), CFG))
        assert frames[i] == ref.shape[1]
        got = feats[i, 0, :, :ref.shape[1]].numpy()
        assert np.abs(got - ref).max() < 1e-4


def test_batch_composition_does_not_change_features(audio):
    a = audio[:9000]
    alone, _ = featurize(*_batch([a]), CFG)
    with_longer, _ = featurize(*_batch([audio, a]), CFG)
    n = alone.shape[-1]
    assert torch.allclose(with_longer[1, :, :, :n], alone[0], atol=1e-5)


def test_padded_frames_are_exactly_zero(audio):
    waves = [audio[:n] for n in LENGTHS]
    for tempo in (None, torch.tensor([0.9, 1.15, 1.0, 0.85, 1.1])):
        feats, frames = featurize(*_batch(waves), CFG, tempo=tempo)
        for i in range(len(waves)):
            n = int(frames[i])
            assert n < feats.shape[-1] or i == int(frames.argmax())
            assert torch.count_nonzero(feats[i, :, :, n:]) == 0
            assert torch.count_nonzero(feats[i, :, :, :n]) > 0.99 * 161 * n


def test_per_utterance_normalisation(audio):
    waves = [audio[:n] for n in LENGTHS]
    feats, frames = featurize(*_batch(waves), CFG,
                              gain_db=torch.tensor([0.0, 5.0, -4.0, 8.0, -6.0]),
                              tempo=torch.tensor([1.0, 0.85, 1.15, 1.05, 0.95]))
    for i in range(len(waves)):
        valid = feats[i, 0, :, :int(frames[i])].double()
        assert abs(valid.mean().item()) < 1e-5
        assert abs(valid.std().item() - 1.0) < 1e-4


def test_frame_counts_match_featurize(audio):
    waves = [audio[:n] for n in LENGTHS]
    wave, lengths = _batch(waves)
    _, frames = featurize(wave, lengths, CFG)
    assert torch.equal(frame_counts(lengths, CFG), frames)
    assert frames.tolist() == [1 + n // 160 for n in LENGTHS]
    tempo = torch.tensor([1.15, 0.85, 1.0, 1.031, 0.9])
    _, frames_t = featurize(wave, lengths, CFG, tempo=tempo)
    assert torch.equal(frame_counts(lengths, CFG, tempo), frames_t)


def test_tempo_shortens_and_lengthens(audio):
    wave, lengths = _batch([audio])
    base = int(num_frames(len(audio), CFG))
    for tempo in (1.15, 0.85):
        _, frames = featurize(wave, lengths, CFG, tempo=torch.tensor([tempo]))
        n = int(frames[0])
        assert n == int(np.floor(base / np.float32(tempo)))
        assert abs(n / base - 1 / tempo) < 0.01
    _, fast = featurize(wave, lengths, CFG, tempo=torch.tensor([1.15]))
    assert 0.85 < int(fast[0]) / base < 0.88  # ~13 % fewer frames = 15 % faster


def test_tempo_one_is_identity(audio):
    waves = [audio[:n] for n in LENGTHS]
    wave, lengths = _batch(waves)
    plain, f0 = featurize(wave, lengths, CFG)
    same, f1 = featurize(wave, lengths, CFG, tempo=torch.ones(len(waves)))
    assert torch.equal(f0, f1)
    assert torch.allclose(plain, same, atol=1e-6)


def test_tempo_preserves_pitch_and_stretches_time(clean_chirp):
    """A chirp's frequency track at output frame j is the input's at frame j × tempo."""
    wave, lengths = _batch([clean_chirp])
    plain, _ = featurize(wave, lengths, CFG)
    tempo = 1.15
    fast, frames = featurize(wave, lengths, CFG, tempo=torch.tensor([tempo]))
    peak_in = plain[0, 0].argmax(dim=0)
    peak_out = fast[0, 0].argmax(dim=0)
    js = range(5, int(frames[0]) - 5)
    diffs = [abs(int(peak_out[j]) - int(peak_in[round(j * tempo)])) for j in js]
    assert max(diffs) <= 1
    # and the track is really moving (not a constant tone): ~5.7 kHz / 50 Hz bins
    assert int(peak_in[-5]) - int(peak_in[5]) > 90


def test_gain_changes_features_but_zero_db_is_identity(audio):
    waves = [audio[:16000], audio[:12000]]
    wave, lengths = _batch(waves)
    plain, _ = featurize(wave, lengths, CFG)
    zero, _ = featurize(wave, lengths, CFG, gain_db=torch.zeros(2))
    assert torch.equal(plain, zero)
    loud, _ = featurize(wave, lengths, CFG, gain_db=torch.tensor([0.0, 6.0]))
    assert torch.equal(loud[0], plain[0])  # per-utterance gain: row 0 untouched
    assert (loud[1] - plain[1]).abs().max() > 1e-2  # log1p is not scale-invariant
    # the gain is an amplitude factor of 10^(dB/20) on the waveform
    ref = features_numpy(waves[1] * 10 ** (6.0 / 20), CFG)
    assert np.abs(loud[1, 0, :, :ref.shape[1]].numpy() - ref).max() < 1e-4


def test_hann_window_option(audio):
    cfg = FeatureConfig(window="hann")
    w = audio[:8000]
    feats, _ = featurize(*_batch([w]), cfg)
    ref = features_numpy(w, cfg)
    assert np.abs(feats[0, 0].numpy() - ref).max() < 1e-4
    hamming, _ = featurize(*_batch([w]), CFG)
    assert (hamming - feats).abs().max() > 1e-3


ACTIVE = FeatureConfig(normalize="active")


def test_active_normalisation_matches_numpy_per_utterance(audio):
    quiet = np.concatenate([np.zeros(4000, np.float32), audio[:12000], np.zeros(2400, np.float32)])
    waves = [audio[:n] for n in LENGTHS] + [quiet]
    feats, frames = featurize(*_batch(waves), ACTIVE)
    for i, w in enumerate(waves):
        ref = features_numpy(w, ACTIVE)
        assert np.abs(feats[i, 0, :, :ref.shape[1]].numpy() - ref).max() < 1e-4


@pytest.mark.parametrize("pad_s", [0.0, 0.25, 0.5])
def test_active_normalisation_ignores_edge_silence(clean_chirp, pad_s):
    """Speech keeps its feature values whatever silence surrounds it with
    `normalize: active`; with the reference's whole-utterance statistics they move.
    Both versions start from 80 ms of silence (the corpus's edges), so the frames
    across the speech boundary are the same in both."""
    hop = stft_params(CFG)[1]

    def edged(seconds):  # a whole number of hops of silence on each side
        z = np.zeros(int(seconds * SR), np.float32)
        return np.concatenate([z, clean_chirp, z])

    base, other = edged(0.08), edged(0.08 + pad_s)
    shift = int(pad_s * SR) // hop
    for cfg, moves in ((ACTIVE, False), (CFG, pad_s > 0)):
        (a, _), (b, _) = featurize(*_batch([base]), cfg), featurize(*_batch([other]), cfg)
        n = a.shape[-1] - 2  # the last frame sees the end differently
        diff = float((a[0, 0, :, :n] - b[0, 0, :, shift:shift + n]).abs().max())
        assert (diff > 0.05) if moves else (diff < 1e-4), (cfg.normalize, pad_s, diff)
