"""Both directions of a bidirectional RNN layer in one vendor call, on packed sequences.

On accelerators, cuDNN (and CNNL) run the two directions of a packed
bidirectional RNN concurrently in one call; the padded path
(`reference/model/deepspeech2.py`) needs two calls and two gathers for the
per-utterance time reversal. Packed sequences are exact per utterance (no
step ever sees padding), so the outputs at valid frames are those of the two
separate directions; padded frames come out zero.

No host synchronisation: the lengths are host tensors, the batch is sorted by
length on the host and the permutation copied to the device without waiting
(`pack_padded_sequence(enforce_sorted=False)` would copy it with a blocking
copy). The layer's own `fwd`/`bwd` modules keep their parameters (the state
dict does not change); they are handed to the same `torch._VF` entry point
`nn.GRU`/`nn.LSTM.forward` use.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from reference.data.features import to_device


def use_packed(x: torch.Tensor, lengths: torch.Tensor) -> bool:
    """The fused path applies: an accelerator, with the lengths on the host."""
    return x.device.type != "cpu" and lengths.device.type == "cpu"


def _weights(rnn: nn.Module) -> list[torch.Tensor]:
    return [rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0]


def packed_bidirectional(fwd: nn.Module, bwd: nn.Module, x: torch.Tensor,
                         lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(forward outputs, backward outputs), each (T, B, H) in `x`'s batch order.

    `fwd` and `bwd` are one-layer unidirectional `nn.GRU`s or `nn.LSTM`s with
    biases; `lengths` (B,) on the host, each in 1..T.
    """
    t, b, _ = x.shape
    order = torch.argsort(lengths, descending=True, stable=True)  # host
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(b)
    packed = pack_padded_sequence(x.index_select(1, to_device(order, x.device)), lengths[order],
                                  enforce_sorted=True)
    hidden = fwd.hidden_size
    h0 = torch.zeros(2, b, hidden, device=x.device, dtype=x.dtype)
    weights = _weights(fwd) + _weights(bwd)
    if isinstance(fwd, nn.LSTM):
        out = torch._VF.lstm(packed.data, packed.batch_sizes, (h0, torch.zeros_like(h0)), weights,
                             True, 1, 0.0, fwd.training, True)[0]
    else:
        out = torch._VF.gru(packed.data, packed.batch_sizes, h0, weights, True, 1, 0.0,
                            fwd.training, True)[0]
    padded, _ = pad_packed_sequence(PackedSequence(out, packed.batch_sizes), total_length=t)
    padded = padded.index_select(1, to_device(inverse, x.device))
    return padded[..., :hidden], padded[..., hidden:]
