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
  once instead of twice (at H 256 that overhead, not arithmetic, is the cost),
* keeps each step to five in-place operators on contiguous time-major slices,
  the b_hn bias entering the GEMM through a constant-1 column of the state.

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

import functools
import warnings
from typing import Any, Callable

import torch

from reference.device import autocast_enabled
from reference.model.kernels import GEMM_ROWS_QUANTUM, bf16_gemm, fast_paths_enabled, round_up


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


def _padded_rows(like: torch.Tensor, dirs: int, rows: int, n: int, bf16: bool) -> torch.Tensor:
    """An uninitialised (D, R, n) tensor, R = `rows` rounded up to GEMM_ROWS_QUANTUM,
    its rows from `rows` on zero, bfloat16 under bf16: the GEMMs over all T·B rows
    then see a few dozen shapes a run (reference/model/kernels.py), and zero rows
    add nothing to a product."""
    out = like.new_empty(dirs, round_up(rows, GEMM_ROWS_QUANTUM), n,
                         dtype=torch.bfloat16 if bf16 else like.dtype)
    out[:, rows:].zero_()
    return out


def _rows_padded(a: torch.Tensor, bf16: bool) -> torch.Tensor:
    """(D, T, B, N) or (D, T·B, N) `a` (any strides) copied into `_padded_rows`."""
    rows = a[0, ..., 0].numel()
    out = _padded_rows(a, a.shape[0], rows, a.shape[-1], bf16)
    out[:, :rows].view(a.shape).copy_(a)
    return out


def _product(a: torch.Tensor, b: torch.Tensor, bf16: bool) -> torch.Tensor:
    """The batched product a·b (D, M, K)·(D, K, N) over padded T·B rows (see
    `_rows_padded`), in float32 or, under `train.fp32_precision: bf16`, with
    bfloat16 operands (AMX on recent Xeons, ~5x the fp32 rate here), fp32
    accumulation and a bfloat16 result, which the caller's next pass reads."""
    if bf16:
        a, b = a.to(torch.bfloat16), b.to(torch.bfloat16)
    return torch.bmm(a, b)


def _bulk(a: torch.Tensor, b: torch.Tensor, bf16: bool) -> torch.Tensor:
    """`_product` with the operands' own dtype for a result (float32 under bf16)."""
    out = _product(a, b, bf16)
    return out.float() if bf16 else out


class _Recurrence:
    """The recurrent product of one step, for every direction d at once.

    `weight` is (D, out, in), `bias` (D, out) or None. Batched GEMM by default,
    with the bias as one more input row: the caller's state carries a constant
    1 in an extra last column, so the product adds the bias at no cost (a
    broadcast bias would be copied into the output first, every step). oneDNN
    inner products on weights packed once per call of the autograd Function
    when the weights are large.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, onednn: bool) -> None:
        self.bias = bias
        self.packed = None
        self.n_in = weight.shape[2]
        if onednn:
            self.packed = [torch.ops.mkldnn._reorder_linear_weight(weight[d].contiguous(), None)
                           for d in range(weight.shape[0])]
            return
        w_t = weight.transpose(1, 2)  # (D, in, out)
        if bias is None:
            self.w_t = w_t.contiguous()
        else:
            self.w_t = torch.cat([w_t, bias.unsqueeze(1)], 1)  # (D, in + 1, out)

    def into(self, a: torch.Tensor, out: torch.Tensor) -> None:
        """out = a·W^T (+ b): a (D, B, in), or (D, B, in + 1) ending in ones when
        there is a bias; out (D, B, out), contiguous."""
        if self.packed is None:
            torch.bmm(a, self.w_t, out=out)
            return
        a = a[..., :self.n_in]
        for d, w in enumerate(self.packed):
            out[d] = torch.ops.mkldnn._linear_pointwise(
                a[d].contiguous(), w, None if self.bias is None else self.bias[d], "none", [], "")

    def add_to(self, a: torch.Tensor, acc: torch.Tensor) -> None:
        """acc += a·W^T (no bias), in place; a and acc contiguous (D, B, ·)."""
        if self.packed is None:
            acc.baddbmm_(a, self.w_t)
            return
        for d, w in enumerate(self.packed):
            acc[d] += torch.ops.mkldnn._linear_pointwise(a[d].contiguous(), w, None, "none", [], "")


def _forward_steps(hs: torch.Tensor, gi: torch.Tensor, gh: torch.Tensor, rz: torch.Tensor,
                   ns: torch.Tensor, w: torch.Tensor) -> None:
    """The recurrence in place, step by step: hs[t + 1] from hs[t] (see _GRUFunction).

    At H 256 the loop's cost is per-operator overhead as much as arithmetic: the
    views it needs are made in a few bulk calls, and each step is five operators
    (GEMM with the bias column, add + sigmoid, addcmul + tanh, lerp), in place.
    """
    h_size = ns.shape[-1]
    h_in, h_t = hs.unbind(0), hs[..., :h_size].unbind(0)
    gh_t, rz_t, n_t = gh.unbind(0), rz.unbind(0), ns.unbind(0)
    gi_rz, gi_n = gi[..., :2 * h_size].unbind(0), gi[..., 2 * h_size:].unbind(0)
    gh_rz, gh_n = gh[..., :2 * h_size].unbind(0), gh[..., 2 * h_size:].unbind(0)
    r_t, z_t = rz[..., :h_size].unbind(0), rz[..., h_size:].unbind(0)
    for t in range(gi.shape[0]):
        torch.bmm(h_in[t], w, out=gh_t[t])
        torch.add(gi_rz[t], gh_rz[t], out=rz_t[t]).sigmoid_()
        torch.addcmul(gi_n[t], r_t[t], gh_n[t], out=n_t[t]).tanh_()
        torch.lerp(n_t[t], h_t[t], z_t[t], out=h_t[t + 1])  # (1 − z)·n + z·h


def _gates(t: int, hs: torch.Tensor, gi: torch.Tensor, gh: torch.Tensor, rz: torch.Tensor,
           ns: torch.Tensor) -> None:
    """Step t after its product gh[t] (the oneDNN path's loop): `_forward_steps`' gates."""
    h_size = ns.shape[-1]
    torch.add(gi[t, ..., :2 * h_size], gh[t, ..., :2 * h_size], out=rz[t]).sigmoid_()
    torch.addcmul(gi[t, ..., 2 * h_size:], rz[t, ..., :h_size], gh[t, ..., 2 * h_size:],
                  out=ns[t]).tanh_()
    torch.lerp(ns[t], hs[t, ..., :h_size], rz[t, ..., h_size:], out=hs[t + 1, ..., :h_size])


def _backward_steps(dhs: torch.Tensor, d_gh: torch.Tensor, factors: torch.Tensor,
                    z: torch.Tensor, grad_out: torch.Tensor, w: torch.Tensor) -> None:
    """The recurrence of backward, from the last step down: per step
    d_gh = dh · factors[t] (one op), then dh(t-1) = grad_out(t-1) + dh · z + d_gh · W_hh
    (two, in place)."""
    t_len, dirs, batch, h_size = dhs.shape
    f_t, z_t, go_t = factors.unbind(0), z.unbind(0), grad_out.unbind(0)
    d_t, d4_t = d_gh.unbind(0), d_gh.view(t_len, dirs, batch, 3, h_size).unbind(0)
    dh_t, dhu_t = dhs.unbind(0), dhs.unsqueeze(3).unbind(0)
    for t in range(t_len - 1, -1, -1):
        torch.mul(dhu_t[t], f_t[t], out=d4_t[t])
        if t > 0:
            torch.addcmul(go_t[t - 1], dh_t[t], z_t[t], out=dh_t[t - 1]).baddbmm_(d_t[t], w)


SCRIPT_LOOPS = True  # A/B switch for measurements; the loops are exact either way
_STEPS = {"forward": _forward_steps, "backward": _backward_steps}


@functools.lru_cache(maxsize=None)
def _scripted(name: str) -> Callable[..., None]:
    fn = _STEPS[name]
    try:
        # TorchScript runs the same loop with less interpreter overhead per operator
        # (~15-25 % of the loop at H 256, measured); deprecated in recent torch, so
        # where it is gone or refuses, the plain function runs.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.script(fn)
    except Exception:  # noqa: BLE001 - any refusal means: interpret it
        return fn


def _loop(name: str) -> Callable[..., None]:
    return _scripted(name) if SCRIPT_LOOPS else _STEPS[name]


class _GRUFunction(torch.autograd.Function):
    """x (D, T, B, I); weights (D, 3H, I), (D, 3H, H); biases (D, 3H) → h (T, D, B, H)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
                b_ih: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        dirs, t_len, batch, _ = x.shape
        h_size = w_hh.shape[2]
        # The loop works time-major (T, D, B, ·), so that each step's slices are
        # contiguous: a batched GEMM on strided slices runs ~30 % slower here.
        # The large GEMMs (this one and the three of backward) may run in bf16
        # (train.fp32_precision); the recurrent step's product always runs in fp32.
        ctx.bf16 = bf16_gemm()
        rows = t_len * batch
        # x padded (and cast) once: backward's weight gradient reads the same operand.
        x_rows = _rows_padded(x, ctx.bf16)
        ctx.x_shape = x.shape
        # b_hr and b_hz only ever add to the input part: fold them into b_ih's; b_hn
        # stays with the step's product (r multiplies W_hn·h + b_hn), added by the
        # GEMM through the state's constant-1 column (see _Recurrence).
        bias = torch.cat([b_ih[:, :2 * h_size] + b_hh[:, :2 * h_size], b_ih[:, 2 * h_size:]], 1)
        # One pass from the product (bf16 or fp32, direction-major) to the loop's
        # time-major fp32 gi with the bias added (a cast, a transpose and two bias
        # adds were four passes over T·D·B·3H).
        gi = x.new_empty(t_len, dirs, batch, 3 * h_size)
        torch.add(_product(x_rows, w_ih.transpose(1, 2), ctx.bf16)[:, :rows]
                  .view(dirs, t_len, batch, 3 * h_size).transpose(0, 1),
                  bias.view(1, dirs, 1, 3 * h_size), out=gi)
        onednn = _onednn_ok(x, h_size)
        ctx.onednn = onednn
        hn_bias = torch.cat([torch.zeros_like(b_hh[:, :2 * h_size]), b_hh[:, 2 * h_size:]], 1)
        recur = _Recurrence(w_hh, hn_bias, onednn)  # h → W_hh·h + (0, 0, b_hn)
        # hs[t] = the state before step t, with a constant 1 in column H.
        hs = x.new_empty(t_len + 1, dirs, batch, h_size + 1)
        hs[0].zero_()
        hs[..., h_size] = 1.0
        rz = x.new_empty(t_len, dirs, batch, 2 * h_size)  # sigmoid gates r, z
        ns = x.new_empty(t_len, dirs, batch, h_size)      # candidate n
        gh = x.new_empty(t_len, dirs, batch, 3 * h_size)  # W_hh·h + (0, 0, b_hn)
        if recur.packed is None:
            _loop("forward")(hs, gi, gh, rz, ns, recur.w_t)
        else:
            h_in, gh_t = hs.unbind(0), gh.unbind(0)
            for t in range(t_len):
                recur.into(h_in[t], gh_t[t])
                _gates(t, hs, gi, gh, rz, ns)
        ctx.save_for_backward(x_rows, w_ih, w_hh, hs, rz, ns, gh)
        return hs[1:, ..., :h_size]

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):
        x_rows, w_ih, w_hh, hs, rz, ns, gh = ctx.saved_tensors
        t_len, dirs, batch, h_size = ns.shape
        grad_out = grad_out.contiguous()
        r, z = rz[..., :h_size], rz[..., h_size:]
        ghn = gh[..., 2 * h_size:]  # W_hn·h + b_hn
        h_prev = hs[:-1, ..., :h_size]
        # Everything the recurrence multiplies dh by, for all steps at once (a few
        # large elementwise ops instead of ~15 small ones per step): with
        # a = (1 - z)(1 - n²) (through the blend and the tanh),
        #   d(r pre-activation) = dh · a · ghn · r(1 - r)
        #   d(z pre-activation) = dh · (h_prev - n) · z(1 - z)
        #   d(W_hn·h + b_hn)    = dh · a · r
        #   d(n pre-activation) = dh · a            (the input part of n)
        # (T, D, B, 3, H), each factor written in place: 9 passes over T·D·B·H
        # instead of 15 and a stack.
        omz = torch.rsub(z, 1)
        a = torch.addcmul(omz, omz, ns * ns, value=-1)
        factors = ns.new_empty(t_len, dirs, batch, 3, h_size)
        f_r, f_z, f_n = factors.unbind(3)
        torch.mul(a, r, out=f_n)
        torch.mul(f_n, ghn, out=f_r).addcmul_(f_r, r, value=-1)
        torch.sub(h_prev, ns, out=f_z).mul_(z).mul_(omz)
        # Per step: d_gh = dh · factors[t] (one op), then
        # dh(t-1) = grad_out(t-1) + dh · z + d_gh · W_hh (two, in place).
        d_gh = ns.new_empty(t_len, dirs, batch, 3 * h_size)
        dhs = ns.new_empty(t_len, dirs, batch, h_size)  # dh at every step
        dhs[t_len - 1] = grad_out[t_len - 1]
        back = _Recurrence(w_hh.transpose(1, 2), None, ctx.onednn)  # d_gh → d_gh·W_hh
        if back.packed is None:
            _loop("backward")(dhs, d_gh, factors, z, grad_out, back.w_t)
        else:
            f_t, z_t, go_t = factors.unbind(0), z.unbind(0), grad_out.unbind(0)
            d_t, d4_t = d_gh.unbind(0), d_gh.view(t_len, dirs, batch, 3, h_size).unbind(0)
            dh_t, dhu_t = dhs.unbind(0), dhs.unsqueeze(3).unbind(0)
            for t in range(t_len - 1, -1, -1):
                torch.mul(dhu_t[t], f_t[t], out=d4_t[t])
                if t:
                    prev = torch.addcmul(go_t[t - 1], dh_t[t], z_t[t], out=dh_t[t - 1])
                    back.add_to(d_t[t], prev)
        rows, h3 = t_len * batch, 3 * h_size
        d_n = torch.mul(dhs, a)  # d(n pre-activation), the input part
        # Bias gradients in fp32, summed over T then B (one pass over T·D·B·3H;
        # a single reduction over the two outer dims is ~7x slower here). b_hr and
        # b_hz entered with b_ir and b_iz, so they share their gradients.
        d_b_hh = d_gh.sum(0).sum(1)
        d_b_ih = torch.cat([d_b_hh[:, :2 * h_size], d_n.sum(0).sum(1)], 1)
        # d(W_ih·x) = (d_r, d_z, d_n) straight into its direction-major, padded (and
        # cast) copy for the two products that read it.
        d_gi = _padded_rows(ns, dirs, rows, h3, ctx.bf16)
        body = d_gi[:, :rows].view(dirs, t_len, batch, h3).transpose(0, 1)
        body[..., :2 * h_size].copy_(d_gh[..., :2 * h_size])
        body[..., 2 * h_size:].copy_(d_n)
        grad_x = (_bulk(d_gi, w_ih, ctx.bf16)[:, :rows].view(ctx.x_shape)
                  if ctx.needs_input_grad[0] else None)
        grad_w_ih = _bulk(d_gi.transpose(1, 2), x_rows, ctx.bf16)
        grad_w_hh = _bulk(_rows_padded(d_gh.transpose(0, 1), ctx.bf16).transpose(1, 2),
                          _rows_padded(h_prev.transpose(0, 1), ctx.bf16), ctx.bf16)
        return grad_x, grad_w_ih, grad_w_hh, d_b_ih, d_b_hh


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
