"""Data commands: `harness data` (corpus, LibriSpeech manifests, seed layout) and `harness verify`."""
