"""DeepSpeech2 MLPerf compliance: rule files (`rules/*.yaml`) and their checker.

MLPerf has no DeepSpeech2 ruleset, so ds2bench ships its own in the format of
mlperf_logging's compliance engine and runs that engine on each log: the
structure rules of `rules/common_ds2.yaml`, then the rules `generate.py`
writes from the benchmark definition the log names (docs/COMPLIANCE.md):

    from harness.mlperf.compliance import check_log, check_paths, check_set, main
    check_log(Path("runs/x/mlperf.log"))  # -> CheckResult(path, ok, failures, ...)
    check_set(check_paths([Path("runs")]))  # -> [] or the set's problems

`main(argv)` is `python -m harness check`. Importing this package does no work;
mlperf_logging is imported when a log is checked.
"""
from harness.mlperf.compliance.checker import RULES_DIR, CheckResult, check_log
from harness.mlperf.compliance.cli import check_paths, check_seeds_differ, check_set, find_logs, main

__all__ = ["RULES_DIR", "CheckResult", "check_log", "check_paths", "check_seeds_differ", "check_set",
           "find_logs", "main"]
