"""The DeepSpeech2 reference trainer of ds2bench.

Public API (what `harness/` and `results/` may use)::

    from reference import load_config, Trainer, TrainerHooks, DistContext, RunResult

Names are resolved lazily so that `import reference` does no work (and does not
import torch) until something is actually used.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BenchmarkConfig": "reference.config",
    "ConfigError": "reference.config",
    "load_config": "reference.config",
    "Trainer": "reference.train.trainer",
    "RunResult": "reference.train.trainer",
    "TrainerHooks": "reference.train.hooks",
    "DistContext": "reference.train.distributed",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'reference' has no attribute {name!r}")
