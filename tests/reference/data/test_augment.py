"""reference.data.augment: per-utterance (tempo, gain) as a pure function of (seed, epoch, index)."""
import numpy as np
import pytest
import torch

from reference.data.augment import augment_params
from reference.config import AugmentConfig

CFG = AugmentConfig()  # tempo U(0.85, 1.15), gain U(-6, 8) dB


def test_disabled_gives_none():
    assert augment_params(AugmentConfig(enabled=False), 1, 1, [0, 1, 2]) == (None, None)


def test_shapes_and_dtypes():
    tempo, gain = augment_params(CFG, 1, 1, [3, 1, 4, 1, 5])
    assert isinstance(tempo, torch.Tensor) and isinstance(gain, torch.Tensor)
    assert tempo.shape == gain.shape == (5,)
    assert tempo.dtype == gain.dtype == torch.float32
    assert tempo[1] == tempo[3] and gain[1] == gain[3]  # same index, same draw


def test_deterministic():
    a = augment_params(CFG, 7, 3, list(range(50)))
    b = augment_params(CFG, 7, 3, list(range(50)))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_independent_of_batch_composition_and_order():
    idx = [11, 42, 7, 99, 0, 5]
    tempo, gain = augment_params(CFG, 1, 2, idx)
    for k, i in enumerate(idx):
        t1, g1 = augment_params(CFG, 1, 2, [i])
        assert t1[0] == tempo[k] and g1[0] == gain[k]
    perm = [3, 0, 5, 1, 4, 2]
    t2, g2 = augment_params(CFG, 1, 2, [idx[p] for p in perm])
    assert torch.equal(t2, tempo[perm]) and torch.equal(g2, gain[perm])
    # split across "ranks"
    ta, ga = augment_params(CFG, 1, 2, idx[:3])
    tb, gb = augment_params(CFG, 1, 2, idx[3:])
    assert torch.equal(torch.cat([ta, tb]), tempo) and torch.equal(torch.cat([ga, gb]), gain)


def test_within_ranges_and_spread():
    tempo, gain = augment_params(CFG, 1, 1, list(range(2000)))
    assert tempo.min() >= 0.85 and tempo.max() <= 1.15
    assert gain.min() >= -6.0 and gain.max() <= 8.0
    # roughly uniform: covers the range, mean near the middle
    assert tempo.min() < 0.86 and tempo.max() > 1.14
    assert gain.min() < -5.8 and gain.max() > 7.8
    assert abs(float(tempo.mean()) - 1.0) < 0.01
    assert abs(float(gain.mean()) - 1.0) < 0.3
    # tempo and gain are not the same draw rescaled
    assert abs(np.corrcoef(tempo.numpy(), gain.numpy())[0, 1]) < 0.1


def test_custom_ranges():
    cfg = AugmentConfig(tempo_min=1.0, tempo_max=1.0, gain_db_min=2.0, gain_db_max=3.0)
    tempo, gain = augment_params(cfg, 1, 1, list(range(100)))
    assert torch.all(tempo == 1.0)
    assert gain.min() >= 2.0 and gain.max() <= 3.0


@pytest.mark.parametrize("a, b", [((1, 1), (1, 2)), ((1, 1), (2, 1)), ((0, 5), (5, 0))])
def test_different_epochs_or_seeds_differ(a, b):
    idx = list(range(20))
    ta, ga = augment_params(CFG, a[0], a[1], idx)
    tb, gb = augment_params(CFG, b[0], b[1], idx)
    assert not torch.equal(ta, tb) and not torch.equal(ga, gb)
    assert (ta != tb).sum() == 20  # every utterance gets a new draw


# ------------------------------------------------ waveform: edge silence, noise
from reference.data.augment import augment_waves, coloured_noise, wave_params  # noqa: E402
from tests.reference.data.waves import noise_batch  # noqa: E402

SR = 16000
WAVE_CFG = AugmentConfig(silence_max_s=0.5, noise_prob=1.0, noise_snr_db_min=5.0,
                         noise_snr_db_max=30.0)


_batch = noise_batch


def test_waves_unchanged_when_off():
    wave, lens = _batch([800, 500])
    for cfg in (AugmentConfig(), AugmentConfig(enabled=False, silence_max_s=0.5, noise_prob=1)):
        w2, l2 = augment_waves(cfg, 1, 1, [0, 1], wave, lens, SR)
        assert w2 is wave and l2 is lens


def test_silence_is_bounded_placed_and_exact():
    cfg = AugmentConfig(silence_max_s=0.5)  # no noise: the added edges are exact zeros
    wave, lens = _batch([4000, 2500, 3000])
    idx = [7, 8, 9]
    out, new = augment_waves(cfg, 3, 2, idx, wave, lens, SR)
    for k, i in enumerate(idx):
        p = wave_params(cfg, 3, 2, i, SR)
        assert 0 <= p["lead"] <= SR // 2 and 0 <= p["trail"] <= SR // 2
        n = int(lens[k])
        assert int(new[k]) == p["lead"] + n + p["trail"]
        assert torch.equal(out[k, p["lead"]:p["lead"] + n], wave[k, :n])
        assert not out[k, :p["lead"]].any() and not out[k, p["lead"] + n:].any()
    leads = [wave_params(cfg, 1, 1, i, SR)["lead"] for i in range(2000)]
    assert min(leads) < 0.01 * SR and max(leads) > 0.49 * SR  # covers 0 .. 0.5 s


def test_noise_snr_in_range_and_covers_the_edges():
    wave, lens = _batch([16000, 12000, 8000, 16000])
    idx = [1, 2, 3, 4]
    out, new = augment_waves(WAVE_CFG, 5, 1, idx, wave, lens, SR)
    for k, i in enumerate(idx):
        p = wave_params(WAVE_CFG, 5, 1, i, SR)
        n, lead = int(lens[k]), p["lead"]
        speech = wave[k, :n].double()
        noise = out[k, :int(new[k])].double().clone()
        noise[lead:lead + n] -= speech
        snr = 10 * torch.log10(speech.pow(2).mean() / noise.pow(2).mean())
        assert 5.0 <= p["snr_db"] <= 30.0
        assert abs(float(snr) - p["snr_db"]) < 1e-3
        assert out[k, :lead].abs().sum() > 0  # the added silence carries the noise too
        assert not out[k, int(new[k]):].any()  # batch padding stays zero


def test_waves_deterministic_and_independent_of_batch():
    wave, lens = _batch([3000, 5000, 4000])
    a = augment_waves(WAVE_CFG, 9, 4, [10, 20, 30], wave, lens, SR)
    b = augment_waves(WAVE_CFG, 9, 4, [10, 20, 30], wave, lens, SR)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    alone, alone_len = augment_waves(WAVE_CFG, 9, 4, [20], wave[1:2, :5000], lens[1:2], SR)
    n = int(alone_len[0])
    assert int(a[1][1]) == n and torch.equal(a[0][1, :n], alone[0, :n])
    other = augment_waves(WAVE_CFG, 9, 5, [10, 20, 30], wave, lens, SR)  # another epoch
    assert not torch.equal(a[1], other[1])


def test_noise_probability_and_colour():
    cfg = AugmentConfig(noise_prob=0.3)
    noisy = sum(wave_params(cfg, 1, 1, i, SR)["snr_db"] is not None for i in range(2000))
    assert 500 < noisy < 700
    rng = np.random.default_rng(0)
    for beta in (0.0, 1.0, 2.0):
        x = coloured_noise(rng, 32000, beta)
        assert abs(float(np.mean(x * x)) - 1.0) < 1e-4
    # Brown noise puts far more of its power below 500 Hz than white noise.
    def low_share(x):
        p = np.abs(np.fft.rfft(x)) ** 2
        return p[:len(p) * 500 // 8000].sum() / p.sum()
    assert low_share(coloured_noise(rng, 32000, 2.0)) > 0.9 > 0.2 > low_share(coloured_noise(rng, 32000, 0.0))


def test_bad_waveform_settings_name_the_field():
    from reference.config import ConfigError, load_config

    for override, field in (("augment.noise_prob=1.5", "augment.noise_prob"),
                            ("augment.silence_max_s=-1", "augment.silence_max_s"),
                            ("augment.noise_snr_db_min=50", "augment.noise_snr_db_min")):
        with pytest.raises(ConfigError, match=field):
            load_config("tiny", [override])


def test_trim_cuts_the_own_edge_so_edges_span_none_to_max():
    # Edges of 0.08 s already in the data count towards U(0, 0.5): a short draw
    # cuts the utterance's own silence, so "no silence at all" is trained too.
    cfg = AugmentConfig(silence_max_s=0.5, silence_trim_s=0.08)
    lead = [wave_params(cfg, 1, 1, i, SR)["lead"] for i in range(2000)]
    cut = [x for x in lead if x < 0]
    assert min(lead) >= -0.08 * SR and max(lead) <= 0.42 * SR
    assert 0.1 < len(cut) / len(lead) < 0.22  # P(U(0, 0.5) < 0.08) = 0.16
    wave, lens = _batch([8000, 8000, 8000, 8000])
    idx = list(range(40))
    for k0 in range(0, 40, 4):
        ids = idx[k0:k0 + 4]
        out, new = augment_waves(cfg, 1, 1, ids, wave, lens, SR)
        for k, i in enumerate(ids):
            p = wave_params(cfg, 1, 1, i, SR)
            c_l, c_t = max(-p["lead"], 0), max(-p["trail"], 0)
            kept = wave[k, c_l:8000 - c_t]
            pad = max(p["lead"], 0)
            assert int(new[k]) == pad + kept.shape[0] + max(p["trail"], 0)
            assert torch.equal(out[k, pad:pad + kept.shape[0]], kept)


def test_trim_may_not_exceed_the_added_silence():
    from reference.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="augment.silence_trim_s"):
        load_config("tiny", ["augment.silence_trim_s=0.9"])
