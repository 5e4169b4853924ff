"""`python -m harness verify`: output lines, counts, exit codes."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from harness.data.verify import main

# The mixed good/bad corpus is built by the preflight tests; reuse it rather than copy it.
_spec = importlib.util.spec_from_file_location(
    "_preflight_corpus", Path(__file__).resolve().parents[2] / "reference" / "train" / "test_preflight.py")
_corpus_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_corpus_mod)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    m, bad, good = _corpus_mod.build_corpus(root)
    recs = [json.loads(line) for line in m.read_text().splitlines()]
    good_m = root / "good.jsonl"
    good_m.write_text("".join(json.dumps(r) + "\n" for r in recs if r["id"] in good
                              and not r["audio"].endswith("dupid.flac")))
    return root, m, good_m, recs, bad


def test_mixed_manifest_rejects_every_bad_path(corpus, capsys, tmp_path):
    root, m, _, recs, bad = corpus
    out_json = tmp_path / "report.json"
    rc = main(["--manifest", str(m), "--workers", "2", "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 1
    rejects = [ln for ln in out.splitlines() if ln.startswith("REJECT ")]
    assert len(rejects) == len(bad)
    for r in recs:
        key = "#dupid" if r["audio"].endswith("dupid.flac") else r["id"]
        if key in bad:
            line = next(ln for ln in rejects if f" {r['audio']}: " in ln and f"(id {r['id']})" in ln)
            assert line.startswith(f"REJECT {bad[key]} {r['audio']}: ")
    # good utterances are only counted (g2's id reappears on a later, rejected duplicate)
    for g in ("g1", "g3", "g4"):
        assert not any(ln.endswith(f"(id {g})") for ln in rejects)
    assert [ln.split()[2] for ln in rejects if ln.endswith("(id g2)")] == \
        [str(root / "audio" / "dupid.flac") + ":"]
    assert f"{m}: 4/{len(recs)} accepted, {len(bad)} rejected" in out
    assert "corrupt" in out and "FAILED" in out
    doc = json.loads(out_json.read_text())
    assert doc["total"]["rejected"] == len(bad)
    assert {r["code"] for r in doc["manifests"][0]["rejected"]} == set(bad.values())


def test_good_manifest_exits_0(corpus, capsys):
    _, _, good_m, _, _ = corpus
    assert main(["--manifest", str(good_m), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "REJECT" not in out and "4/4 accepted" in out


def test_overlap_between_manifests(corpus, capsys, tmp_path):
    _, _, good_m, _, _ = corpus
    recs = [json.loads(line) for line in good_m.read_text().splitlines()]
    dev = good_m.parent / "dev_overlap.jsonl"
    dev.write_text(json.dumps(recs[0]) + "\n")
    assert main(["--manifest", str(good_m), "--manifest", str(dev), "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert f"REJECT overlap {recs[0]['audio']}: also in {good_m}" in out


def test_unparseable_manifest_exits_2(tmp_path, capsys):
    m = tmp_path / "broken.jsonl"
    m.write_text('{"id": "a", "audio": "a.flac", "text": "x"}\n{not json\n')
    assert main(["--manifest", str(m)]) == 2
    assert f"{m}:2:" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["--manifest"], ["--bogus"], ["--manifest", "x.txt"],
                                  ["--manifest", "nope.jsonl"], ["--workers", "0"]])
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    assert "error" in capsys.readouterr().err


def test_missing_benchmark_exits_2(corpus, capsys):
    _, _, good_m, _, _ = corpus
    assert main(["--manifest", str(good_m), "--benchmark", "no-such-benchmark-xyz"]) == 2
    assert "no-such-benchmark-xyz" in capsys.readouterr().err


def test_benchmark_yaml_sets_data_config(corpus, tmp_path, capsys):
    _, _, good_m, _, _ = corpus
    y = tmp_path / "short.yaml"
    y.write_text("name: short\ndata:\n  max_duration_s: 1.8\naugment:\n  enabled: false\n")
    assert main(["--manifest", str(good_m), "--benchmark", str(y), "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert "REJECT too_long" in out and "max_duration_s 1.8" in out


def test_runs_as_a_script(corpus):
    import subprocess
    _, _, good_m, _, _ = corpus
    root = Path(__file__).resolve().parents[3]
    p = subprocess.run([sys.executable, "-m", "harness.data.verify", "--manifest", str(good_m),
                        "--workers", "1"], cwd=root, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
