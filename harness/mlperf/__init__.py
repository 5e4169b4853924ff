"""MLPerf: the rank-0 `mllog` wrapper, the trainer hooks that write it, submission.yaml, and the compliance checker with its rules."""
