"""Embedded default speech corpus, synthesised with espeak-ng at set-up time.

``python -m reference.data.corpus build --out data/embedded`` writes
``{train,dev,unseen}.jsonl`` (3000/200/200 utterances, 1-4 s, 16 kHz FLAC)
and verifies the decoded audio against the committed ``checksums.sha256``.

Public API (imported lazily, so ``import reference.data.corpus`` does no work)::

    build_corpus(out_dir, limit=None, workers=2, force=False, verify=True) -> dict
    verify_corpus(out_dir) -> None        # raises CorpusError
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_corpus": "reference.data.corpus.build",
    "verify_corpus": "reference.data.corpus.verify",
    "is_complete": "reference.data.corpus.verify",
    "CorpusError": "reference.data.corpus.layout",
    "SPLITS": "reference.data.corpus.layout",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'reference.data.corpus' has no attribute {name!r}")
