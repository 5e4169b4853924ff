"""Training: the trainer loop, the step, optimiser, checkpoints, distribution, evaluation and metrics, preflight of splits.

The top layer of `reference`: may import `reference.data` and `reference.model`.
"""
