"""reference.gru: the hand-written GRU backward equals autograd through torch.nn.GRU."""
import pytest
import torch

from reference.gru import _GRUFunction, gru_forward, use_fast_gru


@pytest.mark.parametrize("inp, hidden, t_len, batch", [(5, 7, 6, 3), (12, 4, 1, 2), (3, 9, 17, 1)])
def test_matches_nn_gru_in_float64(inp, hidden, t_len, batch):
    torch.manual_seed(inp + hidden)
    gru = torch.nn.GRU(inp, hidden).double()
    x = torch.randn(t_len, batch, inp, dtype=torch.double, requires_grad=True)
    ref, _ = gru(x)
    w = torch.randn_like(ref)
    ref_grads = torch.autograd.grad((ref * w).sum(), [x, *gru.parameters()])
    out = _GRUFunction.apply(x, gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad((out * w).sum(), [x, *gru.parameters()])
    for name, a, b in zip(["x", "w_ih", "w_hh", "b_ih", "b_hh"], grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=name)


def test_float32_path_selection_and_closeness():
    torch.manual_seed(0)
    gru = torch.nn.GRU(6, 8)
    x = torch.randn(10, 4, 6, requires_grad=True)
    assert use_fast_gru(gru, x)
    with torch.no_grad():
        assert not use_fast_gru(gru, x)  # inference keeps the stock kernel
    assert not use_fast_gru(torch.nn.GRU(6, 8, bidirectional=True), x)
    assert not use_fast_gru(torch.nn.LSTM(6, 8), x)
    out = gru_forward(gru, x)
    ref, _ = gru(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    g = torch.autograd.grad(out.sum(), gru.weight_hh_l0)[0]
    g_ref = torch.autograd.grad(ref.sum(), gru.weight_hh_l0)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5)
