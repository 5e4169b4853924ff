"""Voice augmentation: echo (host waveform), frequency warp and EQ (device spectrogram).

Each is a pure function of (seed, epoch, utterance index), bounded as
configured, and off unless configured.
"""
import numpy as np
import pytest
import torch

from reference.config import AugmentConfig, ConfigError, FeatureConfig, load_config
from reference.data.augment import (augment_waves, eq_curve, spectral_params, wave_params,
                                    warp_positions)
from reference.data.features import featurize, num_bins
from tests.reference.data.waves import noise_batch  # noqa: E402

SR = 16000
BINS = 161
VOICE = AugmentConfig(warp_min=0.85, warp_max=1.15, eq_db=6.0)


_batch = noise_batch


def test_echo_is_one_delayed_scaled_copy_within_bounds():
    cfg = AugmentConfig(echo_prob=1.0, echo_delay_s_min=0.05, echo_delay_s_max=0.1,
                        echo_gain_min=0.2, echo_gain_max=0.4)
    wave, lens = _batch([4000, 3000])
    out, new = augment_waves(cfg, 2, 3, [5, 6], wave, lens, SR)
    for k, i in enumerate([5, 6]):
        p = wave_params(cfg, 2, 3, i, SR)
        d, g, n = p["echo_delay"], p["echo_gain"], int(lens[k])
        assert 0.05 * SR <= d <= 0.1 * SR and 0.2 <= g <= 0.4
        assert int(new[k]) == n + d
        expect = torch.zeros(n + d)
        expect[:n] += wave[k, :n]
        expect[d:d + n] += np.float32(g) * wave[k, :n]
        assert torch.allclose(out[k, :n + d], expect, atol=1e-6)
        assert not out[k, n + d:].any()


def test_echo_probability_and_other_draws_unchanged():
    # Echo is drawn after the silence and noise draws: switching it on changes none of them.
    base = AugmentConfig(silence_max_s=0.3, noise_prob=0.5)
    echo = AugmentConfig(silence_max_s=0.3, noise_prob=0.5, echo_prob=0.25)
    hits = 0
    for i in range(1000):
        a, b = wave_params(base, 1, 2, i, SR), wave_params(echo, 1, 2, i, SR)
        assert {k: a[k] for k in ("lead", "trail", "snr_db", "beta", "noise_seed")} == \
            {k: b[k] for k in ("lead", "trail", "snr_db", "beta", "noise_seed")}
        assert a["echo_delay"] == 0
        hits += b["echo_delay"] > 0
    assert 200 < hits < 300


def test_warp_positions_monotone_keep_ends_and_scale_below_the_knee():
    for alpha in (0.8, 0.9, 1.0, 1.1, 1.2):
        pos = warp_positions(alpha, BINS)
        assert pos[0] == 0.0 and pos[-1] == BINS - 1
        assert np.all(np.diff(pos) > 0)
        assert pos[40] == pytest.approx(40 / alpha)  # below the knee: k / alpha
    assert np.array_equal(warp_positions(1.0, BINS), np.arange(BINS, dtype=np.float64))


def test_warp_moves_a_tone_by_the_factor():
    # A 2 kHz tone (bin 40 of 161 at 16 kHz / 20 ms) warped by 1.1 peaks at bin 44.
    t = np.arange(SR) / SR
    wave = torch.from_numpy(np.sin(2 * np.pi * 2000 * t).astype(np.float32)).unsqueeze(0)
    feat = FeatureConfig()
    lens = torch.tensor([SR])
    for alpha, peak in ((1.0, 40), (1.1, 44), (0.9, 36)):
        pos = warp_positions(alpha, BINS)
        lo = np.minimum(np.floor(pos).astype(np.int64), BINS - 2)
        spectral = (torch.from_numpy(lo).unsqueeze(0),
                    torch.from_numpy((pos - lo).astype(np.float32)).unsqueeze(0),
                    torch.ones(1, BINS))
        feats, _ = featurize(wave, lens, feat, spectral=spectral)
        assert int(feats[0, 0].mean(dim=1).argmax()) == peak


def test_spectral_params_bounded_deterministic_and_per_utterance():
    lo, w, gain = spectral_params(VOICE, 4, 2, [3, 9, 3], BINS)
    assert lo.shape == w.shape == gain.shape == (3, BINS)
    assert int(lo.min()) >= 0 and int(lo.max()) <= BINS - 2
    assert float(w.min()) >= 0.0 and float(w.max()) <= 1.0
    db = 20 * torch.log10(gain)
    assert float(db.abs().max()) <= 6.0 + 1e-4
    assert torch.equal(lo[0], lo[2]) and torch.equal(gain[0], gain[2])  # same index, same draw
    again = spectral_params(VOICE, 4, 2, [9], BINS)
    assert torch.equal(again[0][0], lo[1]) and torch.equal(again[2][0], gain[1])
    other = spectral_params(VOICE, 4, 3, [9], BINS)  # another epoch
    assert not torch.equal(other[2][0], gain[1])
    # Warp factors spread over the range: the source of bin 40 spans 40/1.15 .. 40/0.85.
    src = [float(spectral_params(VOICE, 1, 1, [i], BINS)[0][0, 40]) for i in range(400)]
    assert min(src) <= 35 and max(src) >= 46


def test_eq_curve_is_smooth_and_within_its_amplitudes():
    coef = np.array([[2.0, 0.3], [-1.5, 1.0], [1.0, 2.0]])
    curve = eq_curve(coef, BINS)
    assert np.abs(curve).max() <= 4.5 + 1e-9
    assert np.abs(np.diff(curve)).max() < 0.2  # a few broad bands, no ripple


def test_spectral_off_by_default_and_when_disabled():
    assert spectral_params(AugmentConfig(), 1, 1, [0], BINS) is None
    assert spectral_params(AugmentConfig(enabled=False, eq_db=3), 1, 1, [0], BINS) is None


@pytest.mark.parametrize("override,field", [
    ("augment.warp_min=1.2", "augment.warp_min"),  # above warp_max (1.0)
    ("augment.eq_db=-1", "augment.eq_db"),
    ("augment.echo_prob=2", "augment.echo_prob"),
    ("augment.echo_delay_s_min=0", "augment.echo_delay_s_min"),
    ("augment.echo_gain_max=1.5", "augment.echo_gain_min"),
])
def test_bad_voice_settings_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field):
        load_config("tiny", [override])


def test_featurize_with_identity_spectral_changes_nothing():
    wave, lens = _batch([8000, 6000])
    feat = FeatureConfig(hop_ms=12.5)
    bins = num_bins(feat)
    ident = (torch.arange(bins).clamp(max=bins - 2).repeat(2, 1),
             (torch.arange(bins) == bins - 1).to(torch.float32).repeat(2, 1),
             torch.ones(2, bins))
    a, fa = featurize(wave, lens, feat)
    b, fb = featurize(wave, lens, feat, spectral=ident)
    assert torch.equal(fa, fb) and torch.allclose(a, b, atol=1e-5)
