"""End to end: synthetic run directories with real :::MLLOG logs -> report files."""
from __future__ import annotations

from pathlib import Path

import json
import shutil

import pandas as pd
import pytest
from results_factory import make_run_dir

from results import cli
from results.logparse import parse_log
from results.report import build_report


class _FakeCheck:
    """Compliance stand-in: fails exactly what our rules fail for an aborted run."""

    def __call__(self, path: Path):
        text = Path(path).read_text(errors="replace")
        fails = []
        if '"status": "aborted"' in text:
            fails = ["line 60 run_stop: run_stop status must be success (aborted runs do not count)"]
        return type("R", (), {"path": path, "ok": not fails, "failures": fails})()


def _runs(root: Path) -> Path:
    runs = root / "runs"
    make_run_dir(runs, "tiny-1xCPU-a-s1", cards=1, seed=1, ttt_s=100.0, throughput=50.0)
    make_run_dir(runs, "tiny-1xCPU-b-s2", cards=1, seed=2, ttt_s=140.0, throughput=52.0)
    make_run_dir(runs, "tiny-1xCPU-c-s3", cards=1, seed=3, ttt_s=120.0, throughput=48.0)
    make_run_dir(runs, "tiny-1xCPU-d-s4", cards=1, seed=4, status="aborted", wers=(48.0, 30.0),
                 ttt_s=90.0, throughput=50.0)
    make_run_dir(runs, "tiny-1xCPU-e-s5", cards=1, seed=5, ttt_s=110.0, throughput=51.0)
    make_run_dir(runs, "tiny-2xCPU-a-s1", cards=2, seed=1, ttt_s=60.0, throughput=85.0)
    torn = make_run_dir(runs, "tiny-2xCPU-b-s2", cards=2, seed=2, ttt_s=55.0, throughput=90.0)
    with (torn / "mlperf.log").open("a") as f:
        f.write(':::MLLOG {"namespace": "", "time_ms": 17')  # killed mid-write
    return runs


def test_parse_flags_a_torn_line(tmp_path: Path) -> None:
    runs = _runs(tmp_path)
    good = parse_log(runs / "tiny-1xCPU-a-s1" / "mlperf.log")
    assert good.ok and good.first("run_stop").metadata["status"] == "success"
    bad = parse_log(runs / "tiny-2xCPU-b-s2" / "mlperf.log")
    assert not bad.ok and "torn" in bad.problems[0]


def test_report_end_to_end(tmp_path: Path) -> None:
    runs = _runs(tmp_path)
    out = tmp_path / "report"
    rep = build_report(runs, out, checker=_FakeCheck())
    assert (out / "results.md").is_file() and (out / "results.csv").is_file()
    assert (out / "runs.csv").is_file()
    assert len(list(out.glob("*.png"))) >= 2
    groups = pd.read_csv(out / "results.csv")
    assert sorted(groups["cards"]) == [1, 2]  # one row per card count (one config)
    g1 = groups.set_index("cards").loc[1]
    # 5 of 5 required: 100, 110, 120, 140 and one non-converged (inf):
    # drop 100 and inf -> mean(110, 120, 140)
    assert g1["time_to_train(s)"] == pytest.approx(370.0 / 3)
    assert g1["non_converged"] == 1 and g1["set_runs"] == 5
    assert (g1["ttt(s)_min"], g1["ttt(s)_median"], g1["ttt(s)_max"]) == (100.0, 115.0, 140.0)
    # the non-converged set member still shows how far it got
    assert g1["best_wer(%)_max"] == pytest.approx(30.0)
    g2 = groups.set_index("cards").loc[2]
    # 2 runs of 5 required, one of them torn: no score, and the torn one is a member
    assert pd.isna(g2["time_to_train(s)"]) and g2["time_to_train_rule"] == "no score (2 of 5 runs)"
    assert g2["failed"] == 1 and g2["excluded"] == 0
    assert g2["scaling_efficiency"] == pytest.approx(85.0 / 50.2 / 2)
    assert "not hardware scaling" in g2["scaling_kind"]
    per_run = pd.read_csv(out / "runs.csv").set_index("run")
    assert per_run.loc["tiny-2xCPU-b-s2", "scoring"] == "failed"
    assert "torn" in per_run.loc["tiny-2xCPU-b-s2", "exclusion_reason"]
    md = rep.markdown
    assert md.index("## Summary") < md.index("## Time to train (MLPerf rules)")
    for heading in ("## Throughput and scaling", "## Targets users can expect",
                    "## Comparison with the published 0.3443 loss", "## Seed-objective experiment",
                    "## Runs not scored"):
        assert heading in md
    assert "**no score (2 of 5 runs)**" in md and "about 34" in md
    assert "CPU “cards” are processes on the same host's cores" in md


def _reverse_clock(log: Path) -> None:
    """Swap two records' times after run_start: the log now runs backwards."""
    lines = log.read_text().splitlines()
    recs = [json.loads(line[len(":::MLLOG "):]) for line in lines]
    i = next(k for k, r in enumerate(recs) if r["key"] == "run_start") + 3
    recs[i]["time_ms"], recs[i + 1]["time_ms"] = recs[i + 1]["time_ms"], recs[i]["time_ms"] - 5000
    log.write_text("".join(":::MLLOG " + json.dumps(r) + "\n" for r in recs))


def test_a_copy_whose_log_runs_backwards_is_not_scored(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for i, ttt in enumerate((100.0, 110.0, 120.0, 130.0)):
        make_run_dir(runs, f"tiny-1xCPU-{i}-s{i}", seed=i, ttt_s=ttt)
    copy = runs / "tiny-1xCPU-copy-s9"
    shutil.copytree(runs / "tiny-1xCPU-0-s0", copy)
    _reverse_clock(copy / "mlperf.log")
    neg = make_run_dir(runs, "tiny-1xCPU-neg-s8", seed=8, ttt_s=-30.0)  # run_stop before run_start
    rep = build_report(runs, tmp_path / "out", checker=_FakeCheck(), make_plots=False)
    per_run = rep.runs.set_index("run")
    assert per_run.loc[copy.name, "scoring"] == "failed"
    assert "time runs backwards" in per_run.loc[copy.name, "exclusion_reason"]
    assert per_run.loc[neg.name, "scoring"] == "failed"
    assert "is not positive" in per_run.loc[neg.name, "exclusion_reason"]
    g = rep.groups.iloc[0]
    # 6 members, two of them unusable (infinite): no score, never a negative time
    assert pd.isna(g["time_to_train(s)"]) and "2 of 6" in g["time_to_train_rule"]
    assert g["ttt(s)_min"] == pytest.approx(100.0)


def test_real_compliance_checker_scores_the_good_runs(tmp_path: Path) -> None:
    pytest.importorskip("harness.mlperf.compliance")
    runs = _runs(tmp_path)
    rep = build_report(runs, tmp_path / "out", make_plots=False)
    verdicts = rep.runs.set_index("run")["scoring"]
    assert verdicts["tiny-1xCPU-a-s1"] == "scored", rep.runs.set_index("run").loc[
        "tiny-1xCPU-a-s1", "exclusion_reason"]
    assert verdicts["tiny-1xCPU-d-s4"] == "non-converged"
    assert verdicts["tiny-2xCPU-b-s2"] == "failed"


def test_cli_prints_markdown_and_fails_without_runs(tmp_path: Path, capsys) -> None:
    runs = _runs(tmp_path)
    assert cli.main(["--runs", str(runs), "--out", str(tmp_path / "r"), "--no-plots"]) == 0
    assert "# ds2bench results" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["--runs", str(empty)]) != 0
    assert "no run directories" in capsys.readouterr().err


def test_resumed_run_keeps_its_epochs_but_has_no_time_to_train(tmp_path: Path) -> None:
    d = make_run_dir(tmp_path / "runs", "tiny-1xCPU-r-s9", seed=9, wers=(48.0, 22.0))
    (d / "mlperf.resume1.log").write_text((d / "mlperf.log").read_text())
    rep = build_report(tmp_path / "runs", tmp_path / "out", checker=_FakeCheck(), make_plots=False)
    row = rep.runs.iloc[0]
    assert bool(row["resumed"]) and row["log_segments"] == 2
    assert row["scoring"] == "failed" and "resumed" in row["exclusion_reason"]
    assert pd.isna(row["time_to_train(s)"]) and pd.isna(row["run_time(s)"])
    epochs = pd.read_csv(tmp_path / "out" / "epochs.csv")
    assert list(epochs["epoch"]) == [1, 2] and epochs["wer_ref(%)"].iloc[-1] == 22.0


def test_target_less_fixed_epoch_run_counts_for_throughput_only(tmp_path: Path) -> None:
    make_run_dir(tmp_path / "runs", "seedrepro-16xCPU-s1", cards=16, bench="cambricon_mlu370x8_16",
                 target=None, loss="seed_raw_logits", epochs=10, status="aborted",
                 wers=tuple(90.0 - 3 * i for i in range(10)), throughput=300.0)
    rep = build_report(tmp_path / "runs", tmp_path / "out", make_plots=False)
    row, group = rep.runs.iloc[0], rep.groups.iloc[0]
    assert row["scoring"] == "excluded" and "without a quality target" in row["exclusion_reason"]
    assert pd.isna(row["time_to_train(s)"]) and pd.isna(group["time_to_train(s)"])
    assert group["throughput_mean(utt/s)"] == pytest.approx(300.0)
    assert rep.comparison.iloc[0]["epoch_E"] == 10 and bool(rep.comparison.iloc[0]["seed_objective"])
