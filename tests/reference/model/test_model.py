"""reference.model.deepspeech2: DS2 layout, parameter counts, output lengths, padding independence."""
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from reference.config import FeatureConfig, ModelConfig
from reference.labels import NUM_CLASSES
from reference.model.deepspeech2 import (CONV_CHANNELS, DeepSpeech2, _RNNLayer, _Valid, conv_output_bins,
                             count_parameters, min_input_frames, output_frames)

BINS = 161


def _expected_params(rnn_type, hidden, layers, bidirectional, rnn_bn=True, rnn_in=672):
    conv = (32 * 1 * 41 * 11 + 32) + 2 * 32 + (32 * 32 * 21 * 11 + 32) + 2 * 32
    gates = 3 if rnn_type == "gru" else 4
    dirs = 2 if bidirectional else 1
    total = conv
    for i in range(layers):
        inp = rnn_in if i == 0 else hidden  # directions are summed, not concatenated
        total += dirs * gates * (hidden * inp + hidden * hidden + 2 * hidden)
        if rnn_bn and i > 0:
            total += 2 * inp
    return total + 2 * hidden + hidden * NUM_CLASSES


def _meta_model(cfg, feat=None):
    with torch.device("meta"):
        return DeepSpeech2(cfg, feat)


@pytest.mark.parametrize("rnn_type, expected", [("gru", 103_851_808), ("lstm", 138_355_488)])
def test_reference_size_parameter_counts(rnn_type, expected):
    cfg = ModelConfig(rnn_type=rnn_type, hidden=2560, layers=3, bidirectional=False)
    model = _meta_model(cfg)
    assert count_parameters(model) == expected
    assert _expected_params(rnn_type, 2560, 3, False) == expected
    # the notes' rounded figures
    assert round(expected / 1e6) == {"gru": 104, "lstm": 138}[rnn_type]


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("rnn_bn", [False, True])
def test_small_parameter_counts(rnn_type, bidirectional, rnn_bn):
    cfg = ModelConfig(rnn_type=rnn_type, hidden=48, layers=3, bidirectional=bidirectional,
                      rnn_batch_norm=rnn_bn)
    assert count_parameters(_meta_model(cfg)) == \
        _expected_params(rnn_type, 48, 3, bidirectional, rnn_bn)


def test_conv_output_is_21_bins_by_32_channels():
    assert conv_output_bins(BINS) == 21
    assert CONV_CHANNELS == 32
    model = DeepSpeech2(ModelConfig(hidden=16, layers=1))
    assert model.rnns[0].fwd.input_size == 21 * 32 == 672
    model.eval()
    with torch.no_grad():
        out = model.conv(torch.randn(1, 1, BINS, 100))
    assert tuple(out.shape) == (1, 32, 21, output_frames(100))


def test_rnn_input_follows_the_feature_config():
    feat = FeatureConfig(window_ms=25.0)  # n_fft 400 -> 201 bins
    model = _meta_model(ModelConfig(hidden=16, layers=1), feat)
    bins = 201
    assert model.rnns[0].fwd.input_size == 32 * conv_output_bins(bins) == 32 * 31


def test_layer_layout():
    model = _meta_model(ModelConfig(rnn_type="lstm", hidden=40, layers=3))
    assert [type(layer.fwd) for layer in model.rnns] == [nn.LSTM] * 3
    assert model.rnns[0].bn is None
    assert all(isinstance(layer.bn, nn.BatchNorm1d) for layer in model.rnns[1:])
    assert model.fc.bias is None and model.fc.out_features == NUM_CLASSES == 29
    assert model.head_bn.num_features == 40


@pytest.mark.parametrize("frames", [0, 1, 10, 30, 31, 32, 33, 100, 257, 1000])
def test_output_frames_formula(frames):
    t1 = (frames - 11) // 2 + 1  # conv1: width 11, stride 2
    assert output_frames(frames) == t1 - 10  # conv2: width 11, stride 1
    assert torch.equal(output_frames(torch.tensor([frames])), torch.tensor([t1 - 10]))


@pytest.mark.parametrize("out", [1, 2, 5, 50])
def test_min_input_frames_is_tight(out):
    n = min_input_frames(out)
    assert output_frames(n) >= out
    assert output_frames(n - 1) < out


def _small(rnn_type="gru", bidirectional=True, layers=2, hidden=24, seed=0):
    torch.manual_seed(seed)
    model = DeepSpeech2(ModelConfig(rnn_type=rnn_type, hidden=hidden, layers=layers,
                                    bidirectional=bidirectional))
    # Non-trivial running statistics, so that eval-mode batch norm does something.
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("frames", [31, 32, 57, 120, 201])
def test_forward_shapes_match_output_frames(frames):
    model = _small(bidirectional=False, layers=1, hidden=8)
    with torch.no_grad():
        logits, lens = model(torch.randn(2, 1, BINS, frames), torch.tensor([frames, frames]))
    assert tuple(logits.shape) == (output_frames(frames), 2, NUM_CLASSES)
    assert lens.tolist() == [output_frames(frames)] * 2


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_independence(rnn_type, bidirectional):
    model = _small(rnn_type, bidirectional)
    torch.manual_seed(1)
    frames = [84, 33, 52, 41]
    t_max = max(frames)
    utts = [torch.randn(1, BINS, n) for n in frames]
    with torch.no_grad():
        alone = [model(u.unsqueeze(0), torch.tensor([u.shape[-1]]))[0][:, 0] for u in utts]
        for pad_value in (0.0, 7.5):  # the padding content must not matter either
            batch = torch.full((len(utts), 1, BINS, t_max), pad_value)
            for i, u in enumerate(utts):
                batch[i, :, :, :u.shape[-1]] = u
            logits, lens = model(batch, torch.tensor(frames))
            assert logits.shape[:2] == (output_frames(t_max), len(frames))
            for i, n in enumerate(frames):
                k = output_frames(n)
                assert lens[i] == k
                assert alone[i].shape[0] == k
                torch.testing.assert_close(logits[:k, i], alone[i], atol=1e-5, rtol=1e-5)
                assert torch.all(logits[k:, i] == 0)


def test_bidirectional_changes_the_output():
    # The backward direction sees the future: the first frame's logits depend on later frames.
    torch.manual_seed(2)
    x = torch.randn(1, 1, BINS, 80)
    y = x.clone()
    y[..., 60:] += 3.0
    for bi, should_differ in ((False, False), (True, True)):
        model = _small(bidirectional=bi)
        with torch.no_grad():
            a = model(x, torch.tensor([80]))[0][0]
            b = model(y, torch.tensor([80]))[0][0]
        assert (not torch.allclose(a, b, atol=1e-6)) == should_differ


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_bidirectional_sums_directions(rnn_type):
    """Padded two-direction layer == torch's packed bidirectional RNN, directions summed."""
    torch.manual_seed(3)
    hidden = 12
    layer = _RNNLayer(rnn_type, 20, hidden, bidirectional=True, batch_norm=False).eval()
    cls = nn.GRU if rnn_type == "gru" else nn.LSTM
    ref = cls(20, hidden, bidirectional=True).eval()
    with torch.no_grad():
        for name, p in layer.fwd.named_parameters():
            getattr(ref, name).copy_(p)
        for name, p in layer.bwd.named_parameters():
            getattr(ref, name + "_reverse").copy_(p)
    x = torch.randn(9, 3, 20)
    lengths = torch.tensor([9, 4, 6])
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    with torch.no_grad():
        out = layer(x, _Valid(lengths, 9, x.device))
        raw, _ = ref(packed)
        raw, _ = pad_packed_sequence(raw, total_length=9)
    assert out.shape == (9, 3, hidden)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[:n, b], raw[:n, b, :hidden] + raw[:n, b, hidden:])


def test_unidirectional_output_is_hidden():
    layer = _RNNLayer("gru", 20, 12, bidirectional=False, batch_norm=True).eval()
    x = torch.randn(5, 2, 20)
    with torch.no_grad():
        assert layer(x, _Valid(torch.tensor([5, 3]), 5, x.device)).shape == (5, 2, 12)


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_packed_bidirectional_equals_two_directions(rnn_type, monkeypatch):
    """The accelerator path (both directions in one packed call, forced here on CPU)
    gives each utterance's outputs and gradients of the padded two-call path."""
    import reference.model.packed as packed_mod
    from reference.data.features import to_device

    torch.manual_seed(4)
    layer = _RNNLayer(rnn_type, 10, 8, bidirectional=True, batch_norm=False).eval()
    lengths = torch.tensor([4, 9, 6])
    x = torch.randn(9, 3, 10, requires_grad=True)
    with torch.no_grad():
        ref = layer(x, _Valid(lengths, 9, x.device))
    calls = []
    monkeypatch.setattr(packed_mod, "use_packed", lambda *a: calls.append(1) or True)
    from reference.model.kernels import stock_kernels

    with stock_kernels():  # not the CPU fast GRU: the vendor-kernel branch, as on a device
        out = layer(x, _Valid(lengths, 9, x.device))
    assert calls and out.shape == (9, 3, 8)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[:n, b], ref[:n, b])
        assert torch.count_nonzero(out[n:, b]) == 0
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and all(p.grad is not None for p in layer.parameters())
    assert to_device(lengths, x.device) is lengths  # CPU: no copy
