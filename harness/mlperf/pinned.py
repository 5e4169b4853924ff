"""The MLPerf log values a benchmark definition fixes, computed from its config.

One function, `config_values`, turns a `BenchmarkConfig` into the values of
the log keys that come from the config. `MLPerfHooks` logs exactly these
values, and `harness.mlperf.compliance.generate` writes rules that require
them (from `benchmarks/*.yaml`), so what a run logs and what the checker
demands can never drift apart. `closed_overrides` uses the same values to
refuse command-line changes of a closed benchmark before a run exists.

Two groups:
* `IDENTITY_KEYS` - what makes two results of one benchmark comparable in any
  division: the quality target and the definition of the metric.
* everything else - the hyper-parameters, model shape, loss, data filters and
  schedule that the closed division pins.
Dataset identity (sample counts, eval digest) is pinned too, from the
benchmark's `dataset:` section, by the rule generator.
"""
from __future__ import annotations

from typing import Any

from reference.config import BenchmarkConfig

IDENTITY_KEYS = ("ds2_target_wer", "ds2_eval_every_samples", "ds2_eval_start_samples")


def config_values(cfg: BenchmarkConfig) -> dict[str, Any]:
    """Log key -> value for every config-derived key (card-count independent).

    `opt_base_learning_rate` is only included when the learning rate does not
    scale with the global batch (`optim.lr_scaling: none`); otherwise it is a
    function of the card count and is logged by the hooks from the resolved
    batch.
    """
    o, m, t, a, d, f = cfg.optim, cfg.model, cfg.train, cfg.augment, cfg.data, cfg.features
    v: dict[str, Any] = {"opt_name": o.name}
    if o.lr_scaling == "none":
        v["opt_base_learning_rate"] = o.lr
    if o.name == "sgd":
        v["opt_momentum"] = o.momentum
        v["opt_nesterov"] = o.nesterov
    else:
        v["opt_adam_beta_1"] = o.betas[0]
        v["opt_adam_beta_2"] = o.betas[1]
    v.update({
        "opt_weight_decay": o.weight_decay,
        "opt_learning_rate_decay_factor": o.anneal,
        "ds2_lr_decay_every": o.anneal_every,
        "opt_gradient_clip_norm": o.clip_norm,
        "ds2_lr_scaling": o.lr_scaling,
        "ds2_rnn_type": m.rnn_type,
        "ds2_rnn_hidden": m.hidden,
        "ds2_rnn_layers": m.layers,
        "ds2_bidirectional": m.bidirectional,
        "ds2_rnn_batch_norm": m.rnn_batch_norm,
        "ds2_conv_channels": m.conv_channels,
        "ds2_conv_freq_kernels": list(m.conv_freq_kernels),
        "ds2_features": {"sample_rate": f.sample_rate, "window_ms": f.window_ms,
                         "hop_ms": f.hop_ms, "window": f.window,
                         "normalize": f.normalize, "mel_bins": f.mel_bins},
        "ds2_loss_definition": t.loss,
        "ds2_target_wer": t.target_wer,
        "ds2_max_epochs": t.epochs,
        "ds2_eval_every_samples": t.eval_every_samples,
        "ds2_eval_start_samples": t.eval_start_samples,
        "ds2_augmentation": a.enabled,
        "ds2_augmentation_params": ({"tempo": [a.tempo_min, a.tempo_max],
                                     "gain_db": [a.gain_db_min, a.gain_db_max],
                                     "silence_max_s": a.silence_max_s,
                                     "silence_trim_s": a.silence_trim_s,
                                     "waves_from_epoch": a.waves_from_epoch,
                                     "noise_prob": a.noise_prob,
                                     "noise_snr_db": [a.noise_snr_db_min, a.noise_snr_db_max],
                                     "noise_color_max": a.noise_color_max,
                                     "warp": [a.warp_min, a.warp_max],
                                     "eq_db": a.eq_db,
                                     "echo_prob": a.echo_prob,
                                     "echo_delay_s": [a.echo_delay_s_min, a.echo_delay_s_max],
                                     "echo_gain": [a.echo_gain_min, a.echo_gain_max]}
                                    if a.enabled else None),
        "ds2_max_duration_s": d.max_duration_s,
        "ds2_sortagrad": d.sortagrad,
        # MLPerf RNN-T's key: evaluation scores an EMA of the weights (0: the live ones).
        "model_eval_ema_factor": t.ema_decay,
    })
    return v


def batch_values(cfg: BenchmarkConfig) -> dict[str, Any]:
    """The batch the benchmark fixes: the global batch, or the batch per card."""
    if cfg.train.global_batch is not None:
        return {"global_batch_size": cfg.train.global_batch}
    return {"ds2_batch_per_card": cfg.train.batch_per_card}


def pinned_values(cfg: BenchmarkConfig, division: str) -> dict[str, Any]:
    """What a log of `cfg` in `division` must show (dataset identity not included)."""
    values = {**config_values(cfg), **batch_values(cfg)}
    if division == "closed":
        return values
    return {k: values[k] for k in IDENTITY_KEYS}


def closed_overrides(base: BenchmarkConfig, changed: BenchmarkConfig) -> list[str]:
    """Log keys whose closed-division value differs between two configs, sorted.

    The dataset's identity counts too: another `dataset:` section or other
    manifests are another benchmark.
    """
    a, b = pinned_values(base, "closed"), pinned_values(changed, "closed")
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    if base.dataset != changed.dataset:
        diff.append("dataset (identity)")
    for name in ("train_manifest", "eval_manifest", "corpus"):
        if getattr(base.data, name) != getattr(changed.data, name):
            diff.append(f"data.{name}")
    return diff
