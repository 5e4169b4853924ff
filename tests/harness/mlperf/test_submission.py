"""Tests of harness.mlperf.submission: loading, validation messages, platform names, system description."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from logfactory import write_valid_log
from mlperf_logging.system_desc_checker.system_desc_checker import check_system_desc

from harness.mlperf.compliance import check_log
from harness.mlperf.submission import (DEFAULT_PATH, ConfigError, load_submission, platform_name,
                                submission_from_dict, submission_log_values, system_description)

HOST = {"host_processor_model_name": "Intel Xeon Platinum 8480", "host_processor_core_count": 56,
        "host_processor_vcpu_count": 112, "host_processors_per_node": 2,
        "host_memory_capacity": "1 TB", "framework": "PyTorch 2.13.0",
        "operating_system": "Ubuntu 22.04", "other_software_stack": "Python 3.11"}


def _raw(**changes: Any) -> dict[str, Any]:
    raw = yaml.safe_load(DEFAULT_PATH.read_text())
    raw.update(changes)
    return raw


def test_default_submission_yaml() -> None:
    sub = load_submission(DEFAULT_PATH)
    assert (sub.submitter, sub.division, sub.status) == ("ds2bench", "open", "research")
    assert sub.hardware.accelerator_model_name == "auto"
    assert platform_name(sub, 1, "CPU") == "1xCPU"


@pytest.mark.parametrize("changes, message", [
    ({"division": "opne"}, "submission.yaml: division: must be one of open, closed (got 'opne')"),
    ({"status": "available"}, "submission.yaml: status: must be one of onprem, cloud, preview, research"),
    ({"submitter": ""}, "submission.yaml: submitter: must not be empty"),
    ({"submiter": "x"}, "submission.yaml: submiter: unknown key"),
    ({"hardware": {"acelerator_model_name": "X"}}, "submission.yaml: hardware.acelerator_model_name: unknown key"),
    ({"hardware": {"host_processor_core_count": "many"}},
     "submission.yaml: hardware.host_processor_core_count: must be an integer >= 1 or 'auto'"),
    ({"hardware": {"accelerators_per_node": 0}}, "hardware.accelerators_per_node: must be an integer >= 1"),
    ({"hardware": {"cooling": True}}, "hardware.cooling: must be text, not a boolean"),
    ({"software": {"framework": ["torch"]}}, "software.framework: must be text"),
    ({"software": "PyTorch"}, "submission.yaml: software: must be a mapping"),
])
def test_bad_values_name_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        submission_from_dict(_raw(**changes), "submission.yaml")
    assert message in str(err.value)


def test_missing_required_field_and_bad_files(tmp_path: Path) -> None:
    raw = _raw()
    del raw["division"]
    with pytest.raises(ConfigError, match="division: required"):
        submission_from_dict(raw)
    path = tmp_path / "submission.yaml"
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match=f"{path}: must be a mapping"):
        load_submission(path)
    path.write_text("division: [open\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_submission(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_submission(tmp_path / "absent.yaml")


def test_load_reports_the_file_it_read(tmp_path: Path) -> None:
    path = tmp_path / "submission.yaml"
    path.write_text(yaml.safe_dump(_raw(division="opne")))
    with pytest.raises(ConfigError, match=r"submission\.yaml: division: must be one of open, closed"):
        load_submission(path)


def test_platform_names() -> None:
    auto = submission_from_dict(_raw())
    mlu = submission_from_dict(_raw(hardware={"accelerator_model_name": "MLU370-X8"}))
    assert platform_name(mlu, 16, "mlu") == "16xMLU370-X8"
    assert platform_name(auto, 1, "CPU") == "1xCPU"
    assert platform_name(auto, 8, "NVIDIA H100 80GB HBM3") == "8xNVIDIA-H100-80GB-HBM3"
    with pytest.raises(ValueError):
        platform_name(auto, 0, "CPU")


def test_system_description_passes_mlperf_checker(tmp_path: Path) -> None:
    sub = submission_from_dict(_raw(
        division="closed", status="onprem",
        hardware={"accelerator_model_name": "MLU370-X8", "accelerator_memory_capacity": "48 GB",
                  "accelerator_on-chip_memories": "", "host_networking": "RoCE 100 Gb/s"}))
    desc = system_description(sub, cards=16, nodes=2, accelerator="mlu", host_info=HOST)
    assert len(desc) == 33 and all(isinstance(v, str) for v in desc.values())
    assert desc["number_of_nodes"] == "2" and desc["accelerators_per_node"] == "8"
    assert desc["accelerator_model_name"] == "MLU370-X8"
    assert desc["status"] == "Available on-premise" and desc["division"] == "closed"
    assert desc["host_processor_core_count"] == "56" and desc["framework"] == "PyTorch 2.13.0"
    assert desc["host_networking"] == "RoCE 100 Gb/s" and desc["system_name"] == "16xMLU370-X8"
    path = tmp_path / "system_desc.json"
    path.write_text(json.dumps(desc))
    valid, name, _, _ = check_system_desc(str(path), "training", "4.1.0")
    assert valid and name == "16xMLU370-X8"


def test_default_cpu_description_is_valid_and_marks_undetected_fields(tmp_path: Path) -> None:
    desc = system_description(load_submission(), cards=1, nodes=1, accelerator="CPU", host_info={})
    assert desc["status"] == "Research, Development, or Internal (RDI)"
    assert desc["host_processor_model_name"] == "unknown" and desc["accelerators_per_node"] == "1"
    path = tmp_path / "system_desc.json"
    path.write_text(json.dumps(desc))
    assert check_system_desc(str(path), "training", "4.1.0")[0]


def test_system_description_rejects_inconsistent_input() -> None:
    sub = load_submission()
    with pytest.raises(ValueError, match="evenly"):
        system_description(sub, cards=3, nodes=2, accelerator="CPU", host_info={})
    with pytest.raises(ValueError, match="host_info: unknown field"):
        system_description(sub, cards=1, nodes=1, accelerator="CPU", host_info={"cpu": "x"})
    fixed = submission_from_dict(_raw(hardware={"accelerators_per_node": 16}))
    with pytest.raises(ValueError, match="accelerators_per_node"):
        system_description(fixed, cards=8, nodes=1, accelerator="CPU", host_info={})


def test_log_values_make_a_compliant_log(tmp_path: Path) -> None:
    sub = submission_from_dict(_raw(status="cloud"))
    values = submission_log_values(sub, 2, "CPU")
    assert values["submission_benchmark"] == "deepspeech2" and values["submission_platform"] == "2xCPU"
    log = write_valid_log(tmp_path / "mlperf.log", cards=2, platform=values["submission_platform"],
                          division=values["submission_division"],
                          submission_org=values["submission_org"],
                          submission_status=values["submission_status"])
    assert check_log(log).ok
