"""reference.model.loss: proper CTC NLL vs a brute-force enumeration, and the seed's quantity."""
import itertools
import math

import numpy as np
import pytest
import torch

from reference.model.loss import ctc_losses, ctc_per_utterance, seed_loss, training_loss


def _collapse(path):
    out, prev = [], None
    for s in path:
        if s != prev and s != 0:
            out.append(s)
        prev = s
    return out


def _brute_force_nll(logits_tc: np.ndarray, target: list[int]) -> float:
    """-log sum over all alignments (C^T paths) that collapse to `target`."""
    x = logits_tc.astype(np.float64)
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    t, c = logp.shape
    total = 0.0
    for path in itertools.product(range(c), repeat=t):
        if _collapse(path) == list(target):
            total += math.exp(sum(logp[i, s] for i, s in enumerate(path)))
    return -math.log(total) if total > 0 else math.inf


@pytest.fixture
def example():
    """T=3, B=4, C=3 (blank 0 and two labels), mixed output lengths."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 3, generator=g) * 2
    targets = torch.tensor([[1, 0], [1, 2], [1, 1], [2, 0]])
    target_lens = torch.tensor([1, 2, 2, 1])
    out_lens = torch.tensor([3, 3, 3, 2])
    return logits, out_lens, targets, target_lens


def test_per_utterance_matches_enumeration(example):
    logits, out_lens, targets, target_lens = example
    got = ctc_per_utterance(logits, out_lens, targets, target_lens)
    assert got.shape == (4,)
    for b in range(4):
        want = _brute_force_nll(logits[:out_lens[b], b].numpy(),
                                targets[b, :target_lens[b]].tolist())
        assert got[b].item() == pytest.approx(want, rel=1e-5)


def test_losses_are_sum_over_batch_and_over_characters(example):
    logits, out_lens, targets, target_lens = example
    per = [_brute_force_nll(logits[:out_lens[b], b].numpy(), targets[b, :target_lens[b]].tolist())
           for b in range(4)]
    per_utt, per_char = ctc_losses(logits, out_lens, targets, target_lens)
    assert per_utt.item() == pytest.approx(sum(per) / 4, rel=1e-5)
    assert per_char.item() == pytest.approx(sum(per) / 6, rel=1e-5)  # 1+2+2+1 characters
    assert training_loss("ctc_nll", logits, out_lens, targets, target_lens).item() == \
        pytest.approx(per_utt.item())


def test_concatenated_targets_give_the_same_loss(example):
    logits, out_lens, targets, target_lens = example
    flat = torch.cat([targets[b, :target_lens[b]] for b in range(4)])
    a = ctc_per_utterance(logits, out_lens, targets, target_lens)
    b = ctc_per_utterance(logits, out_lens, flat, target_lens)
    torch.testing.assert_close(a, b)


def test_loss_is_invariant_to_a_logit_shift(example):
    # log-softmax is applied inside: adding a constant per frame changes nothing
    logits, out_lens, targets, target_lens = example
    a = ctc_per_utterance(logits, out_lens, targets, target_lens)
    b = ctc_per_utterance(logits + 5.0, out_lens, targets, target_lens)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_seed_loss_is_ctcloss_on_raw_logits_divided_by_batch(example):
    logits, out_lens, targets, target_lens = example
    want = torch.nn.CTCLoss()(logits, targets, out_lens, target_lens) / logits.shape[1]
    got = seed_loss(logits, out_lens, targets, target_lens)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    assert training_loss("seed_raw_logits", logits, out_lens, targets, target_lens).item() == \
        pytest.approx(want.item(), rel=1e-6)
    per_utt, per_char = ctc_losses(logits, out_lens, targets, target_lens)
    assert abs(got.item() - per_utt.item()) > 0.1
    assert abs(got.item() - per_char.item()) > 0.1
    # the seed quantity is not invariant to a logit shift (raw logits are not log-probs)
    shifted = seed_loss(logits + 5.0, out_lens, targets, target_lens)
    assert abs(shifted.item() - got.item()) > 0.1


def test_seed_loss_equals_proper_per_char_over_batch_on_log_probs(example):
    # On log-probabilities CTCLoss(mean) is the mean over utterances of NLL / target length.
    logits, out_lens, targets, target_lens = example
    logp = logits.log_softmax(-1)
    per = ctc_per_utterance(logits, out_lens, targets, target_lens)
    want = (per / target_lens).mean() / 4
    assert seed_loss(logp, out_lens, targets, target_lens).item() == pytest.approx(want.item(),
                                                                                  rel=1e-5)


def test_seed_loss_can_be_negative():
    # large positive raw logits make the "loss" negative: it is not a log-likelihood
    logits = torch.full((6, 2, 5), 4.0)
    targets = torch.tensor([[1, 2], [3, 4]])
    v = seed_loss(logits, torch.tensor([6, 6]), targets, torch.tensor([2, 2]))
    assert v.item() < 0
    per_utt, _ = ctc_losses(logits, torch.tensor([6, 6]), targets, torch.tensor([2, 2]))
    assert per_utt.item() > 0


def test_infeasible_targets_give_inf():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 3, 3, generator=g)
    targets = torch.tensor([[1, 2, 1], [1, 1, 0], [1, 1, 0]])
    target_lens = torch.tensor([3, 2, 2])
    out_lens = torch.tensor([2, 2, 3])  # 3 labels in 2 frames; a repeat in 2 frames; feasible
    per = ctc_per_utterance(logits, out_lens, targets, target_lens)
    assert math.isinf(per[0].item()) and per[0] > 0
    assert math.isinf(per[1].item())
    assert math.isfinite(per[2].item())
    assert per[2].item() == pytest.approx(_brute_force_nll(logits[:, 2].numpy(), [1, 1]), rel=1e-5)


def test_unknown_loss_kind():
    logits = torch.zeros(3, 1, 3)
    with pytest.raises(ValueError, match="unknown loss"):
        training_loss("mse", logits, torch.tensor([3]), torch.tensor([[1]]), torch.tensor([1]))
