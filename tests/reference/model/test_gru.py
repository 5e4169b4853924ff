"""reference.model.gru: the hand-written GRU backward equals autograd through torch.nn.GRU."""
import pytest
import torch

from reference.model.gru import gru_directions, use_fast_gru


def _outputs_and_grads(run, grus, xs, ws):
    outs = run(grus, xs)
    params = [p for g in grus for p in g.parameters()]
    loss = sum((o * w).sum() for o, w in zip(outs, ws))
    return outs, torch.autograd.grad(loss, [*xs, *params])


def _assert_same_as_nn_gru(grus, xs, tol_out, tol_grad):
    """gru_directions vs autograd through each nn.GRU: outputs and every gradient."""
    ws = [torch.randn(*x.shape[:2], g.hidden_size, dtype=x.dtype) for g, x in zip(grus, xs)]
    ref_out, ref_grads = _outputs_and_grads(lambda gs, ys: [g(y)[0] for g, y in zip(gs, ys)],
                                            grus, xs, ws)
    outs, grads = _outputs_and_grads(gru_directions, grus, xs, ws)
    for o, r in zip(outs, ref_out):
        torch.testing.assert_close(o, r, rtol=tol_out, atol=tol_out)
    for i, (a, b) in enumerate(zip(grads, ref_grads)):
        torch.testing.assert_close(a, b, rtol=tol_grad, atol=tol_grad, msg=f"gradient {i}")


@pytest.mark.parametrize("dirs", [1, 2])
@pytest.mark.parametrize("inp, hidden, t_len, batch", [(5, 7, 6, 3), (12, 4, 1, 2), (3, 9, 17, 1)])
def test_matches_nn_gru_in_float64(dirs, inp, hidden, t_len, batch):
    torch.manual_seed(inp + hidden + dirs)
    grus = [torch.nn.GRU(inp, hidden).double() for _ in range(dirs)]
    xs = [torch.randn(t_len, batch, inp, dtype=torch.double, requires_grad=True)
          for _ in range(dirs)]
    # The Function itself is dtype-agnostic: float64 checks the algebra.
    _assert_same_as_nn_gru(grus, xs, tol_out=1e-12, tol_grad=1e-10)


def test_float32_path_selection_and_closeness():
    torch.manual_seed(0)
    gru = torch.nn.GRU(6, 8)
    x = torch.randn(10, 4, 6, requires_grad=True)
    assert use_fast_gru(gru, x)
    with torch.no_grad():
        assert not use_fast_gru(gru, x)  # inference keeps the stock kernel
    assert not use_fast_gru(torch.nn.GRU(6, 8, bidirectional=True), x)
    assert not use_fast_gru(torch.nn.LSTM(6, 8), x)
    out = gru_directions([gru], [x])[0]
    ref, _ = gru(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    g = torch.autograd.grad(out.sum(), gru.weight_hh_l0)[0]
    g_ref = torch.autograd.grad(ref.sum(), gru.weight_hh_l0)[0]
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dirs", [1, 2])
def test_onednn_recurrence_matches_nn_gru(monkeypatch, dirs):
    """The large-H path (oneDNN inner products on packed weights), forced at a small H."""
    import reference.model.gru as G

    monkeypatch.setattr(G, "ONEDNN_MIN_HIDDEN", 1)
    torch.manual_seed(3)
    grus = [torch.nn.GRU(6, 8) for _ in range(dirs)]
    xs = [torch.randn(12, 3, 6, requires_grad=True) for _ in range(dirs)]
    if not G._onednn_ok(xs[0], 8):
        pytest.skip("this torch build has no oneDNN linear ops")
    _assert_same_as_nn_gru(grus, xs, tol_out=1e-5, tol_grad=1e-4)


def test_stock_kernels_switch(monkeypatch):
    from reference.model.kernels import ENV, stock_kernels

    gru = torch.nn.GRU(6, 8)
    x = torch.randn(5, 2, 6, requires_grad=True)
    assert use_fast_gru(gru, x)
    with stock_kernels():
        assert not use_fast_gru(gru, x)
    monkeypatch.setenv(ENV, "1")
    assert not use_fast_gru(gru, x)
    monkeypatch.setenv(ENV, "0")
    assert use_fast_gru(gru, x)


def test_bf16_large_gemms_are_close_and_really_bf16(monkeypatch):
    """train.fp32_precision bf16: the four large GEMMs take bfloat16 operands. Outputs and
    gradients stay float32 and within bf16's rounding of the fp32 ones; they differ from
    them (the switch does something), and the switch is read at forward time."""
    import reference.model.gru as G
    from reference.model import kernels

    torch.manual_seed(0)
    grus = [torch.nn.GRU(24, 32) for _ in range(2)]
    xs = [torch.randn(12, 4, 24, requires_grad=True) for _ in range(2)]
    ws = [torch.randn(12, 4, 32) for _ in range(2)]
    ref_out, ref_grads = _outputs_and_grads(gru_directions, grus, xs, ws)
    calls = []
    real_bmm = torch.bmm
    monkeypatch.setattr(G.torch, "bmm", lambda a, b, **kw: calls.append(a.dtype) or real_bmm(a, b, **kw))
    monkeypatch.setattr(kernels, "_bf16_gemm", True)
    out, grads = _outputs_and_grads(gru_directions, grus, xs, ws)
    monkeypatch.setattr(G.torch, "bmm", real_bmm)
    assert calls.count(torch.bfloat16) == 4  # input projection, d_x, d_W_ih, d_W_hh
    assert all(o.dtype == torch.float32 for o in out) and all(g.dtype == torch.float32 for g in grads)
    for o, r in zip(out, ref_out):
        assert not torch.equal(o, r)
        torch.testing.assert_close(o, r, rtol=2e-2, atol=2e-2)
    for a, b in zip(grads, ref_grads):
        assert (a - b).norm() <= 2e-2 * b.norm()


@pytest.mark.parametrize("bf16", [False, True])
def test_large_gemms_see_quantized_rows(monkeypatch, bf16):
    """The four GEMMs over all T·B rows run on rows padded to GEMM_ROWS_QUANTUM (oneDNN's
    kernel cache, reference/model/kernels.py): the T·B dimension of every operand is a
    multiple of it, and outputs and gradients equal the unpadded ones (float64 algebra
    is pinned above; here float32 against the same code with a quantum of 1)."""
    import reference.model.gru as G
    from reference.model import kernels

    monkeypatch.setattr(kernels, "_bf16_gemm", bf16)
    torch.manual_seed(3)
    grus = [torch.nn.GRU(10, 12) for _ in range(2)]
    xs = [torch.randn(13, 3, 10, requires_grad=True) for _ in range(2)]  # 39 rows
    ws = [torch.randn(13, 3, 12) for _ in range(2)]
    monkeypatch.setattr(G, "GEMM_ROWS_QUANTUM", 1)
    ref_out, ref_grads = _outputs_and_grads(gru_directions, grus, xs, ws)
    monkeypatch.setattr(G, "GEMM_ROWS_QUANTUM", 16)
    shapes = []
    real = G._product  # every large GEMM goes through it
    monkeypatch.setattr(G, "_product",
                        lambda a, b, bf: shapes.append((a.shape, b.shape)) or real(a, b, bf))
    out, grads = _outputs_and_grads(gru_directions, grus, xs, ws)
    # input projection and d_x: (D, rows, ·)·(D, ·, ·);
    # d_W_ih and d_W_hh: (D, ·, rows)·(D, rows, ·)
    assert shapes[0][0][1] == 48 and shapes[1][0][1] == 48
    assert all(s[1][1] == 48 for s in shapes[2:]) and len(shapes) == 4
    for o, r in zip(out, ref_out):
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_scripted_loops_equal_the_interpreted_ones_and_fall_back(monkeypatch):
    """The step loops run under TorchScript where it compiles them: the same operators
    in the same order, so outputs and gradients are bitwise those of the Python loops;
    where torch.jit.script is gone or refuses, the Python function itself runs."""
    import reference.model.gru as G

    torch.manual_seed(5)
    grus = [torch.nn.GRU(10, 12) for _ in range(2)]
    xs = [torch.randn(9, 3, 10, requires_grad=True) for _ in range(2)]
    ws = [torch.randn(9, 3, 12) for _ in range(2)]
    monkeypatch.setattr(G, "SCRIPT_LOOPS", False)
    ref_out, ref_grads = _outputs_and_grads(gru_directions, grus, xs, ws)
    monkeypatch.setattr(G, "SCRIPT_LOOPS", True)
    out, grads = _outputs_and_grads(gru_directions, grus, xs, ws)
    assert isinstance(G._scripted("forward"), torch.jit.ScriptFunction)
    assert all(torch.equal(a, b) for a, b in zip([*out, *grads], [*ref_out, *ref_grads]))

    def refuse(fn):
        raise RuntimeError("no TorchScript here")

    G._scripted.cache_clear()
    try:
        monkeypatch.setattr(torch.jit, "script", refuse)
        assert G._scripted("forward") is G._forward_steps
        assert G._scripted("backward") is G._backward_steps
        out, grads = _outputs_and_grads(gru_directions, grus, xs, ws)
        assert all(torch.equal(a, b) for a, b in zip([*out, *grads], [*ref_out, *ref_grads]))
    finally:
        monkeypatch.undo()
        G._scripted.cache_clear()
