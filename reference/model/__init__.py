"""Model: the DS2 network (conv front end, RNN stack, head), CPU fast kernels, CTC losses, greedy decoder.

Imports `reference.data` (feature geometry) and nothing from `reference.train`.
"""
