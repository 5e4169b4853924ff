"""Rules generated from `benchmarks/*.yaml`: what a log of one benchmark must show.

The benchmark definitions are the one source of truth. For the benchmark a
log names (`ds2_benchmark`), `benchmark_rules` writes a rules file in the
format of mlperf_logging's compliance engine that requires:

* in every division: the quality target and eval schedule of the definition
  (`harness.mlperf.pinned.IDENTITY_KEYS`) and the dataset identity of its
  `dataset:` section - every train manifest utterance accounted for
  (`train_samples` + the `ds2_train_rejected` counts), the whole eval set
  (`eval_samples`), the eval set's digest (`ds2_eval_digest`);
* in the closed division (only where the definition says `division: closed`):
  every value of `harness.mlperf.pinned.pinned_values` - hyper-parameters,
  model shape, loss definition, data filters - and `cache_clear` true.

`python -m harness.mlperf.compliance.generate NAME [closed|open]` prints the
rules of one benchmark; `python -m harness.mlperf.compliance.generate
--identity TRAIN.jsonl EVAL.jsonl` prints the `dataset:` section for a corpus.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

BENCHMARKS_DIR = Path(__file__).resolve().parents[3] / "benchmarks"


class UnknownBenchmark(LookupError):
    """The log names no benchmark definition (or a division it does not define)."""


_DEFINITIONS: dict[tuple, dict[str, Any]] = {}  # (dir, files' stat) -> definitions


def benchmark_definitions(directory: Path = BENCHMARKS_DIR) -> dict[str, Any]:
    """name -> BenchmarkConfig for every `*.yaml` benchmark definition in `directory`.

    Memoised on the files' names, sizes and mtimes: checking a set of logs
    parses the definitions once, and an edited definition is read again.
    """
    from reference.config import ConfigError, load_config

    paths = sorted(Path(directory).glob("*.yaml"))
    stamp = (str(directory), tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths))
    if stamp in _DEFINITIONS:
        return _DEFINITIONS[stamp]
    found = {}
    for path in paths:
        try:
            cfg = load_config(path)
        except ConfigError:
            continue  # not a benchmark definition (or a broken one: it has no rules)
        found[cfg.name] = cfg
    _DEFINITIONS[stamp] = found
    return found


def _literal(value: Any) -> str:
    """A Python expression for a JSON-like value (what the engine evaluates)."""
    return repr(value)


def _check(key: str, value: Any, why: str) -> dict[str, Any]:
    return {"KEY": {"NAME": key, "REQ": "EXACTLY_ONE",
                    "CHECK": [f"same(v['value'], {_literal(value)})  # {why}"]}}


def benchmark_rules(cfg: Any, division: str) -> str:
    """The generated rules (YAML text) for a log of benchmark `cfg` in `division`."""
    from harness.mlperf.pinned import pinned_values

    if division == "closed" and cfg.division != "closed":
        raise UnknownBenchmark(f"benchmark {cfg.name} defines no closed division "
                               f"(benchmarks/{cfg.name}.yaml says division: {cfg.division})")
    src = f"benchmarks/{cfg.name}.yaml"
    rules: list[dict[str, Any]] = [{"BEGIN": {"CODE": (
        "globals().update(same=lambda a, b: (a == b and type(a) is type(b)) "
        "or (isinstance(a, (int, float)) and isinstance(b, (int, float)) "
        "and not isinstance(a, bool) and not isinstance(b, bool) "
        "and abs(a - b) <= 1e-9 * max(1.0, abs(b))))\n"
        "s.update({'train_samples': None, 'rejected': None})")}}]
    for key, value in pinned_values(cfg, division).items():
        rules.append(_check(key, value, f"{cfg.name} ({division}) requires {key} {value!r} ({src})"))
    ds = cfg.dataset
    if ds.eval_utterances:
        rules.append({"KEY": {"NAME": "eval_samples", "REQ": "EXACTLY_ONE", "CHECK": [
            f"v['value'] == {ds.eval_utterances}  # {cfg.name} requires eval_samples "
            f"{ds.eval_utterances}: the whole eval set, never filtered ({src})"]}})
    if ds.eval_digest:
        rules.append(_check("ds2_eval_digest", ds.eval_digest,
                            f"{cfg.name} requires the eval set of {src} (ds2_eval_digest "
                            f"{ds.eval_digest[:12]}...)"))
    if ds.train_utterances:
        check = ([f"v['value'] == {ds.train_samples}  # {cfg.name} requires train_samples "
                  f"{ds.train_samples}: what its filters keep of the train manifest ({src})"]
                 if ds.train_samples else [])
        rules.append({"KEY": {"NAME": "train_samples", "REQ": "EXACTLY_ONE", **(
            {"CHECK": check} if check else {}), "POST": "s['train_samples'] = v['value']"}})
        rules.append({"KEY": {"NAME": "ds2_train_rejected", "REQ": "EXACTLY_ONE",
                              "POST": "s['rejected'] = v['value']"}})
        rules.append({"END": {"CHECK": [
            "isinstance(s['rejected'], dict) and isinstance(s['train_samples'], int) and "
            f"s['train_samples'] + sum(n for n in s['rejected'].values() if isinstance(n, int)) "
            f"== {ds.train_utterances}  # {cfg.name} requires its whole train manifest of "
            f"{ds.train_utterances} utterances: train_samples + ds2_train_rejected counts ({src})"]}})
    if division == "closed":
        rules.append({"KEY": {"NAME": "cache_clear", "REQ": "EXACTLY_ONE", "CHECK": [
            "v['value'] is True  # closed division requires cache_clear true (the page cache "
            "really flushed before the run)"]}})
    return yaml.safe_dump(rules, sort_keys=False, width=1000)


def rules_for(benchmark: Any, division: str, directory: Path = BENCHMARKS_DIR) -> str:
    """Rules for the benchmark named in a log; UnknownBenchmark when there is none."""
    defs = benchmark_definitions(directory)
    if not isinstance(benchmark, str) or benchmark not in defs:
        raise UnknownBenchmark(f"ds2_benchmark {benchmark!r} is not a benchmark definition of "
                               f"{directory} (known: {', '.join(sorted(defs))})")
    return benchmark_rules(defs[benchmark], division)


def identity_section(train_manifest: Path, eval_manifest: Path) -> str:
    """The `dataset:` section that pins a corpus (reads manifests and transcripts only)."""
    from reference.data.manifest import load_manifest, manifest_digest

    train, ev = load_manifest(train_manifest), load_manifest(eval_manifest)
    return yaml.safe_dump({"dataset": {"train_utterances": len(train),
                                       "eval_utterances": len(ev),
                                       "eval_digest": manifest_digest(ev)}}, sort_keys=False)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "--identity":
        print(identity_section(Path(argv[1]), Path(argv[2])), end="")
        return 0
    if len(argv) not in (1, 2):
        print("usage: python -m harness.mlperf.compliance.generate NAME [closed|open] | "
              "--identity TRAIN.jsonl EVAL.jsonl", file=sys.stderr)
        return 2
    try:
        print(rules_for(argv[0], argv[1] if len(argv) == 2 else "closed"), end="")
    except UnknownBenchmark as err:
        print(err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
