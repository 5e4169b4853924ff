"""`submission.yaml` -> typed `Submission`; MLPerf platform names and system descriptions.

The submission file says who runs the benchmark on what system. From it come
the `submission_*` values of every MLPerf log (`submission_log_values`) and
each run's `system_desc.json` (`system_description`, the 33 fields that
mlperf_logging's system_desc_checker requires, all as strings).

Values may be "auto": filled at run time from the device of the run, the
launch geometry (cards / nodes) or `host_info` (what the launcher detected,
keyed by MLPerf field name). Explicit values always win over detection.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from reference.config import ConfigError  # the one config error type of ds2bench

BENCHMARK = "deepspeech2"
AUTO = "auto"
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "submission.yaml"
DIVISIONS = ("open", "closed")
# Short form (MLPerf log `submission_status`) -> long form (system description).
STATUSES = {
    "onprem": "Available on-premise",
    "cloud": "Available cloud",
    "preview": "Preview",
    "research": "Research, Development, or Internal (RDI)",
}
# Counts: a positive integer or "auto". Everything else is free text.
_COUNT_FIELDS = {"accelerators_per_node", "host_processors_per_node",
                 "host_processor_core_count", "host_processor_vcpu_count"}


@dataclass(frozen=True)
class Hardware:
    """MLPerf hardware fields; `str` values, counts as `int`, AUTO where detected."""

    accelerator_model_name: str = AUTO
    accelerators_per_node: int | str = AUTO
    accelerator_frequency: str = ""
    accelerator_host_interconnect: str = ""
    accelerator_interconnect: str = ""
    accelerator_interconnect_topology: str = ""
    accelerator_memory_capacity: str = ""
    accelerator_memory_configuration: str = ""
    accelerator_on_chip_memories: str = ""  # MLPerf spells it accelerator_on-chip_memories
    host_processors_per_node: int | str = AUTO
    host_processor_model_name: str = AUTO
    host_processor_core_count: int | str = AUTO
    host_processor_vcpu_count: int | str = AUTO
    host_processor_frequency: str = ""
    host_processor_caches: str = ""
    host_processor_interconnect: str = ""
    host_memory_capacity: str = AUTO
    host_memory_configuration: str = ""
    host_storage_type: str = ""
    host_storage_capacity: str = ""
    host_networking: str = ""
    host_networking_topology: str = ""
    cooling: str = ""
    hw_notes: str = ""


@dataclass(frozen=True)
class Software:
    framework: str = AUTO
    operating_system: str = AUTO
    other_software_stack: str = AUTO
    sw_notes: str = ""


@dataclass(frozen=True)
class Submission:
    submitter: str
    division: Literal["open", "closed"]
    status: Literal["onprem", "cloud", "preview", "research"]
    system_name: str = AUTO
    hardware: Hardware = Hardware()
    software: Software = Software()


def _mlperf_name(python_name: str) -> str:
    return "accelerator_on-chip_memories" if python_name == "accelerator_on_chip_memories" else python_name


def _python_name(yaml_name: str) -> str:
    return yaml_name.replace("-", "_")


def _field_value(where: str, name: str, value: Any) -> Any:
    """Validate one leaf value: counts are int >= 1 or auto, the rest text."""
    if value is None:
        return ""  # `key:` with nothing after it = no information
    if isinstance(value, bool):  # YAML's yes/no/true pitfalls
        raise ConfigError(f"{where}{name}: must be text, not a boolean (got {value!r})")
    if name in _COUNT_FIELDS:
        if value == AUTO or (isinstance(value, int) and value >= 1):
            return value
        raise ConfigError(f"{where}{name}: must be an integer >= 1 or 'auto' (got {value!r})")
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}{name}: must be text (got {value!r})")
    return value.strip()


def _section(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where.rstrip('.: ')}: must be a mapping (got {raw!r})")
    known = {_mlperf_name(f.name): f.name for f in fields(cls)}
    values = {}
    for key, value in raw.items():
        if key not in known and _python_name(str(key)) not in known.values():
            raise ConfigError(f"{where}{key}: unknown key (known: {', '.join(sorted(known))})")
        values[_python_name(str(key))] = _field_value(where, str(key), value)
    return cls(**values)


def _choice(where: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{where}{name}: must be one of {', '.join(choices)} (got {value!r})")
    return value


def submission_from_dict(raw: Any, where: str = "submission.yaml") -> Submission:
    """Validate a parsed submission mapping (`where` prefixes error messages)."""
    prefix = f"{where}: "
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a mapping of submission fields (got {raw!r})")
    top = {"submitter", "division", "status", "system_name", "hardware", "software"}
    for key in raw:
        if key not in top:
            raise ConfigError(f"{prefix}{key}: unknown key (known: {', '.join(sorted(top))})")
    for key in ("submitter", "division", "status"):
        if key not in raw:
            raise ConfigError(f"{prefix}{key}: required")
    submitter = _field_value(prefix, "submitter", raw["submitter"])
    if not submitter:
        raise ConfigError(f"{prefix}submitter: must not be empty (got {raw['submitter']!r})")
    return Submission(
        submitter=submitter,
        division=_choice(prefix, "division", raw["division"], DIVISIONS),  # type: ignore[arg-type]
        status=_choice(prefix, "status", raw["status"], tuple(STATUSES)),  # type: ignore[arg-type]
        system_name=_field_value(prefix, "system_name", raw.get("system_name", AUTO)) or AUTO,
        hardware=_section(Hardware, raw.get("hardware"), f"{prefix}hardware."),
        software=_section(Software, raw.get("software"), f"{prefix}software."),
    )


def load_submission(path: Path | str = DEFAULT_PATH) -> Submission:
    """Read and validate a submission.yaml; errors name the file and field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    return submission_from_dict(raw, str(path))


def accelerator_model(sub: Submission, accelerator: str) -> str:
    """The accelerator's model name: submission.yaml unless auto, else the run's device."""
    model = sub.hardware.accelerator_model_name
    model = accelerator if model == AUTO else model
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"accelerator model name is empty (got {model!r})")
    return model.strip()


def platform_name(sub: Submission, cards: int, accelerator: str) -> str:
    """MLPerf-style platform: `<cards>x<accelerator>`, e.g. 16xMLU370-X8, 1xCPU.

    Whitespace in the model name becomes '-' so that the name is one token
    (it is also part of run directory names).
    """
    if not isinstance(cards, int) or isinstance(cards, bool) or cards < 1:
        raise ValueError(f"cards must be an integer >= 1 (got {cards!r})")
    model = re.sub(r"[\s/]+", "-", accelerator_model(sub, accelerator))
    return f"{cards}x{model}"


def submission_log_values(sub: Submission, cards: int, accelerator: str) -> dict[str, str]:
    """The `submission_*` MLPerf log values, in the order DESIGN.md logs them."""
    return {
        "submission_benchmark": BENCHMARK,
        "submission_org": sub.submitter,
        "submission_division": sub.division,
        "submission_status": sub.status,
        "submission_platform": platform_name(sub, cards, accelerator),
    }


def system_description(sub: Submission, cards: int, nodes: int, accelerator: str,
                       host_info: dict[str, Any]) -> dict[str, str]:
    """The MLPerf system description (all 33 fields, every value a string).

    `host_info` holds detected values keyed by MLPerf field name (plus
    `system_name`); they fill "auto" fields, an unknown key is a ValueError.
    Auto fields nobody detected become "unknown".
    """
    if not isinstance(nodes, int) or nodes < 1 or cards % nodes:
        raise ValueError(f"{cards} cards cannot be spread evenly over {nodes!r} node(s)")
    per_node = cards // nodes
    hw = {_mlperf_name(f.name): getattr(sub.hardware, f.name) for f in fields(Hardware)}
    sw = {f.name: getattr(sub.software, f.name) for f in fields(Software)}
    allowed = set(hw) | set(sw) | {"system_name"}
    unknown = sorted(set(host_info) - allowed)
    if unknown:
        raise ValueError(f"host_info: unknown field(s) {', '.join(unknown)}")
    if hw["accelerators_per_node"] not in (AUTO, per_node):
        raise ValueError(f"submission.yaml says accelerators_per_node "
                         f"{hw['accelerators_per_node']}, the run uses {cards} cards on "
                         f"{nodes} node(s)")
    hw["accelerators_per_node"] = per_node
    hw["accelerator_model_name"] = accelerator_model(sub, accelerator)
    system_name = sub.system_name
    if system_name == AUTO:
        system_name = host_info.get("system_name") or platform_name(sub, cards, accelerator)

    def fill(name: str, value: Any) -> str:
        if value == AUTO:
            value = host_info.get(name, "unknown")
        return str(value)

    return {
        "submitter": sub.submitter,
        "division": sub.division,
        "status": STATUSES[sub.status],
        "system_name": str(system_name),
        "number_of_nodes": str(nodes),
        **{name: fill(name, value) for name, value in hw.items()},
        **{name: fill(name, value) for name, value in sw.items()},
    }
