"""Launching runs: `harness bench`, torchrun/SLURM launch, the worker process, run directories and their self-description."""
