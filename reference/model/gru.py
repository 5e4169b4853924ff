"""GRU directions with a hand-written backward pass (CPU training fast path).

PyTorch's CPU GRU has no fused backward: autograd replays every time step's
small ops, and the weight gradients are accumulated step by step — T small
GEMMs of (B × 3H) × (H × I) instead of one. At the reference size (H 2560,
batch 8) that makes the recurrent weights stream through memory twice per step
in backward. This version

* computes the input projection W_ih·x for all time steps in one GEMM,
* runs the recurrence under no autograd, keeping the gates it needs,
* in backward, runs only the recurrence (one (B × 3H)·(3H × H) GEMM per step)
  and then computes dx, dW_ih, dW_hh and the biases with one GEMM each over
  all T·B rows,
* runs D independent directions (D = 2 for a bidirectional layer) in the same
  loop as batched GEMMs, so a small model pays the per-step operator overhead
  once instead of twice (at H 256 that overhead, not arithmetic, is the cost).

At large H the per-step products run as oneDNN inner products on weights
packed once per step (see `ONEDNN_MIN_HIDDEN`).

Measured on this project's 2-core CPU: 3.5× faster for a whole reference-size
training step (22.5 s → 6.4 s, batch 8, 2 s utterances); at the tiny size
(bidirectional H 256, batch 16) the two directions in one loop halve the RNN's
time. Same equations and gate order (r, z, n) as `torch.nn.GRU`, zero initial
state; float64 outputs and gradients agree with autograd through `nn.GRU` to
1e-10 (tests/reference/model/test_gru.py).
"""
from __future__ import annotations

from typing import Any

import torch

from reference.device import autocast_enabled
from reference.model.kernels import fast_paths_enabled


# At large H the per-step product (B × H)·(H × 3H) is bound by streaming the
# weights from memory; MKL's sgemm reaches ~6 GB/s of the machine's ~23 GB/s on
# it, oneDNN's inner product on a pre-packed weight ~2.5× more (measured at
# B 8, H 2560: 20.4 → 7.2 ms forward, 17.2 → 7.5 ms backward; packing costs
# ~57 ms per weight, paid once per step and layer). At H 256 it gains nothing.
ONEDNN_MIN_HIDDEN = 1024


def _onednn_ok(x: torch.Tensor, h_size: int) -> bool:
    return (h_size >= ONEDNN_MIN_HIDDEN and x.dtype == torch.float32
            and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))


class _Recurrence:
    """y_d = a_d·W_d^T (+ b_d) for every direction d, for one step of the loop.

    `weight` is (D, out, in). Batched GEMM by default; oneDNN inner products
    on weights packed once per call of the autograd Function when large.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, onednn: bool) -> None:
        self.bias = bias
        self.packed = None
        if onednn:
            self.packed = [torch.ops.mkldnn._reorder_linear_weight(weight[d].contiguous(), None)
                           for d in range(weight.shape[0])]
        else:
            self.w_t = weight.transpose(1, 2).contiguous()  # (D, in, out)
            self.b_u = None if bias is None else bias.unsqueeze(1)

    def __call__(self, a: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """a (D, B, in) → (D, B, out); `add` (D, B, out) is added when given."""
        if self.packed is None:
            if add is not None:
                return torch.baddbmm(add, a, self.w_t)
            return torch.baddbmm(self.b_u, a, self.w_t) if self.b_u is not None \
                else torch.bmm(a, self.w_t)
        outs = [torch.ops.mkldnn._linear_pointwise(
            a[d].contiguous(), w, None if self.bias is None else self.bias[d], "none", [], "")
            for d, w in enumerate(self.packed)]
        out = outs[0].unsqueeze(0) if len(outs) == 1 else torch.stack(outs)
        return out if add is None else out.add_(add)


class _GRUFunction(torch.autograd.Function):
    """x (D, T, B, I); weights (D, 3H, I), (D, 3H, H); biases (D, 3H) → h (T, D, B, H)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
                b_ih: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        dirs, t_len, batch, _ = x.shape
        h_size = w_hh.shape[2]
        # Time-major (T, D, B, ·) so that each step's slice is contiguous.
        gi = torch.baddbmm(b_ih.unsqueeze(1), x.reshape(dirs, t_len * batch, -1),
                           w_ih.transpose(1, 2))
        gi = gi.view(dirs, t_len, batch, 3 * h_size).transpose(0, 1).contiguous()
        # b_hr and b_hz only ever add to the input part: fold them in once, so the
        # step's product needs no bias (a broadcast bias is copied per call);
        # b_hn stays apart, as r multiplies W_hn·h + b_hn.
        gi[..., :2 * h_size] += b_hh[:, :2 * h_size].unsqueeze(1)
        b_hn = b_hh[:, 2 * h_size:].unsqueeze(1)  # (D, 1, H)
        onednn = _onednn_ok(x, h_size)
        ctx.onednn = onednn
        recur = _Recurrence(w_hh, None, onednn)     # h → W_hh·h
        hs = x.new_empty(t_len + 1, dirs, batch, h_size)  # hs[t] = state before step t
        hs[0].zero_()
        rz = x.new_empty(t_len, dirs, batch, 2 * h_size)  # sigmoid gates r, z
        ns = x.new_empty(t_len, dirs, batch, h_size)      # candidate n
        ghn = x.new_empty(t_len, dirs, batch, h_size)     # W_hn·h + b_hn (needed for dr)
        h = hs[0]
        for t in range(t_len):
            gh = recur(h)
            torch.add(gi[t, ..., :2 * h_size], gh[..., :2 * h_size], out=rz[t]).sigmoid_()
            r, z = rz[t, ..., :h_size], rz[t, ..., h_size:]
            torch.add(gh[..., 2 * h_size:], b_hn, out=ghn[t])
            n = torch.addcmul(gi[t, ..., 2 * h_size:], r, ghn[t], out=ns[t]).tanh_()
            h = torch.addcmul(n, z, h - n, out=hs[t + 1])  # (1 − z)·n + z·h
        ctx.save_for_backward(x, w_ih, w_hh, hs, rz, ns, ghn)
        return hs[1:]

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):
        x, w_ih, w_hh, hs, rz, ns, ghn = ctx.saved_tensors
        t_len, dirs, batch, h_size = ns.shape
        grad_out = grad_out.contiguous()
        r, z = rz[..., :h_size], rz[..., h_size:]
        # Everything the recurrence multiplies dh by, for all steps at once (a few
        # large elementwise ops instead of ~15 small ones per step): with
        # a = (1 - z)(1 - n²) (through the blend and the tanh),
        #   d(r pre-activation) = dh · a · ghn · r(1 - r)
        #   d(z pre-activation) = dh · (h_prev - n) · z(1 - z)
        #   d(W_hn·h + b_hn)    = dh · a · r
        #   d(n pre-activation) = dh · a            (the input part of n)
        a = (1 - z) * (1 - ns * ns)
        factors = torch.stack([a * ghn * r * (1 - r), (hs[:-1] - ns) * z * (1 - z), a * r, a],
                              dim=3)  # (T, D, B, 4, H)
        # Per step: [d_r, d_z, d_hn | d_n_in] = dh · factors[t] (one op), then
        # dh(t-1) = grad_out(t-1) + dh · z + [d_r, d_z, d_hn]·W_hh (two).
        d_all = x.new_empty(t_len, dirs, batch, 4 * h_size)
        back = _Recurrence(w_hh.transpose(1, 2), None, ctx.onednn)  # d_gh → d_gh·W_hh
        dh = grad_out[t_len - 1]
        for t in range(t_len - 1, -1, -1):
            torch.mul(dh.unsqueeze(2), factors[t], out=d_all[t].view(dirs, batch, 4, h_size))
            if t:
                dh = back(d_all[t, ..., :3 * h_size], add=torch.addcmul(grad_out[t - 1], dh, z[t]))
        rows = t_len * batch

        def by_dir(v: torch.Tensor) -> torch.Tensor:  # (T, D, B, k) → (D, T·B, k)
            return v.transpose(0, 1).reshape(dirs, rows, v.shape[-1])

        d_all_d = by_dir(d_all)
        d_gh_d = d_all_d[..., :3 * h_size]
        d_gi_d = torch.cat([d_all_d[..., :2 * h_size], d_all_d[..., 3 * h_size:]], dim=2)
        x_d = x.reshape(dirs, rows, -1)
        grad_x = torch.bmm(d_gi_d, w_ih).view_as(x) if ctx.needs_input_grad[0] else None
        grad_w_ih = torch.bmm(d_gi_d.transpose(1, 2), x_d)
        grad_w_hh = torch.bmm(d_gh_d.transpose(1, 2), by_dir(hs[:-1]))
        return grad_x, grad_w_ih, grad_w_hh, d_gi_d.sum(1), d_gh_d.sum(1)


def use_fast_gru(rnn: torch.nn.Module, x: torch.Tensor) -> bool:
    """The hand-written backward applies: a one-layer unidirectional GRU training on fp32 CPU."""
    return (isinstance(rnn, torch.nn.GRU) and rnn.num_layers == 1 and not rnn.bidirectional
            and rnn.bias and not rnn.batch_first and x.device.type == "cpu"
            and x.dtype == torch.float32 and torch.is_grad_enabled()
            and not autocast_enabled("cpu") and fast_paths_enabled())


def gru_directions(rnns: list[torch.nn.GRU], xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Outputs (T, B, H) of one-layer GRUs (zero state) on equally shaped inputs, in one loop.

    Each `rnns[d]` runs on `xs[d]`; all must satisfy `use_fast_gru`. One direction
    passes its tensors as views; two are stacked (a copy of the weights per step
    of training, small next to the GEMMs it saves).
    """
    def stacked(name: str) -> torch.Tensor:
        ts = [getattr(r, name) for r in rnns]
        return ts[0].unsqueeze(0) if len(ts) == 1 else torch.stack(ts)

    x = xs[0].unsqueeze(0) if len(xs) == 1 else torch.stack(xs)
    out = _GRUFunction.apply(x, stacked("weight_ih_l0"), stacked("weight_hh_l0"),
                             stacked("bias_ih_l0"), stacked("bias_hh_l0"))
    return list(out.unbind(1))
