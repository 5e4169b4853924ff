"""Data: audio decoding, manifests, features, augmentation, batching, the embedded corpus and LibriSpeech manifests.

Imports nothing from `reference.model` or `reference.train` (data is the bottom layer).
"""
