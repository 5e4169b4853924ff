"""The pieces of one training step that the trainer and `make perf` share.

`Trainer` steps a model with them; `harness.perf` times the same functions
instead of keeping its own copy, so the throughput it measures is the
trainer's: tempo cap → augmentation → features on the device → CTC losses.
"""
from __future__ import annotations

import torch

from reference.data.augment import augment_params, augment_waves
from reference.config import AugmentConfig, FeatureConfig
from reference.data.loader import Batch
from reference.data.features import featurize, frame_counts, num_frames
from reference.labels import min_ctc_frames
from reference.model.loss import ctc_per_utterance, seed_loss
from reference.model.deepspeech2 import min_input_frames


def max_tempo(samples: int, target: list[int], feat: FeatureConfig) -> float:
    """Highest tempo that keeps an utterance's CTC target feasible (frames shrink with tempo)."""
    frames = num_frames(samples, feat)
    return max(frames / min_input_frames(min_ctc_frames(target)), 1e-3)


def device_features(batch: Batch, feat: FeatureConfig, aug: AugmentConfig, seed: int,
                    epoch: int | None, tempo_cap: torch.Tensor | None,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(features on `device`, frames per utterance on the host); no augmentation when
    `epoch` is None. `tempo_cap` holds each utterance's `max_tempo`."""
    tempo = gain = None
    wave, lengths = batch.wave, batch.lengths
    if epoch is not None:
        tempo, gain = augment_params(aug, seed, epoch, batch.indices)
        if tempo is not None and tempo_cap is not None:
            # The cap holds for the original length; added silence only adds frames.
            tempo = torch.minimum(tempo, tempo_cap)
        # Edge silence and noise, on the host (the same tensors when off).
        wave, lengths = augment_waves(aug, seed, epoch, batch.indices, wave, lengths,
                                      feat.sample_rate)
    frames = frame_counts(lengths, feat, tempo)  # host, no sync
    wave = wave.to(device, non_blocking=True)
    lengths = lengths.to(device, non_blocking=True)
    with torch.no_grad():
        feats, _ = featurize(wave, lengths, feat,
                             None if gain is None else gain.to(device),
                             None if tempo is None else tempo.to(device))
    return feats, frames


def batch_losses(logits: torch.Tensor, out_lens: torch.Tensor, batch: Batch,
                 device: torch.device, with_seed: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(CTC NLL per utterance, per character, the seed's raw-logit quantity or None)."""
    targets = batch.targets.to(device, non_blocking=True)
    tlens = batch.target_lengths.to(device, non_blocking=True)
    out_lens = out_lens.to(device)
    per_utt = ctc_per_utterance(logits, out_lens, targets, tlens)
    nll_utt = per_utt.sum() / per_utt.shape[0]
    nll_char = per_utt.sum() / tlens.sum()
    seed = seed_loss(logits, out_lens, targets, tlens) if with_seed else None
    return nll_utt, nll_char, seed
