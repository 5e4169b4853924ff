"""CTC losses: the correct objective and the seed's published quantity.

* `ctc_losses`: log-softmax in fp32, then CTC per utterance; the training
  objective is the per-utterance NLL averaged over the batch (what warp-ctc
  summed and the MLCommons trainer divided by the batch size), and the
  per-character NLL is reported beside it.
* `seed_loss`: what the Cambricon trainer printed and published (0.3443): raw
  logits straight into `nn.CTCLoss()` (default reduction `mean`: each
  utterance's loss divided by its target length, then the batch mean), then
  divided by the batch size again. It is not a log-likelihood and can be
  negative. Computed only to compare like with like (reference-notes §3).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from reference.data.features import to_device
from reference.labels import BLANK_ID


def ctc_per_utterance(logits: torch.Tensor, out_lens: torch.Tensor, targets: torch.Tensor,
                      target_lens: torch.Tensor) -> torch.Tensor:
    """Per-utterance CTC negative log-likelihood (nats), (B,); inf when infeasible."""
    logp = logits.float().log_softmax(dim=-1)
    return F.ctc_loss(logp, targets, out_lens, target_lens, blank=BLANK_ID,
                      reduction="none", zero_infinity=False)


def ctc_losses(logits: torch.Tensor, out_lens: torch.Tensor, targets: torch.Tensor,
               target_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(NLL per utterance averaged over the batch, NLL per target character)."""
    per_utt = ctc_per_utterance(logits, out_lens, targets, target_lens)
    total = per_utt.sum()
    return total / per_utt.shape[0], total / target_lens.sum().to(total)


def seed_loss(logits: torch.Tensor, out_lens: torch.Tensor, targets: torch.Tensor,
              target_lens: torch.Tensor) -> torch.Tensor:
    """The seed trainer's loss: CTCLoss(mean) on raw logits, divided by the batch size.

    The mean is written out as `F.ctc_loss(reduction="mean")` computes it (each
    loss divided by its target length clamped at 1, then the batch mean; the
    same operations, so the same bits), because the built-in one builds its
    divisor on the device from host lengths with a blocking copy.
    """
    batch = logits.shape[1]
    per_utt = F.ctc_loss(logits.float(), targets, out_lens, target_lens, blank=BLANK_ID,
                         reduction="none", zero_infinity=False)
    divisor = to_device(target_lens, per_utt.device).to(per_utt.dtype)
    return (per_utt / divisor.clamp_min(1)).mean() / batch


def training_loss(kind: str, logits: torch.Tensor, out_lens: torch.Tensor,
                  targets: torch.Tensor, target_lens: torch.Tensor) -> torch.Tensor:
    """The objective named by `train.loss`."""
    if kind == "ctc_nll":
        return ctc_losses(logits, out_lens, targets, target_lens)[0]
    if kind == "seed_raw_logits":
        return seed_loss(logits, out_lens, targets, target_lens)
    raise ValueError(f"unknown loss definition {kind!r}")
