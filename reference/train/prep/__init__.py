"""Preparing a split for a run: the offline verification record of a manifest (`verified`),
the per-utterance checks (`preflight`), and what a run reads before `run_start` (`splits`)."""
