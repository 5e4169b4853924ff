"""`make doctor` / `python -m harness doctor`: the stack a run would use, and what will not work.

Prints Python, torch and the vendor stack (CUDA / cuDNN / NCCL / driver,
torch_mlu / CNCL / CNNL), the device `auto` picks and why, the devices and
their memory, the collective backend, the fp32-precision switches, the
thread split, free disk and whether every dependency imports and works with
this torch. Exit 0 when a run can start; 1 with one `PROBLEM ... FIX ...`
line each otherwise.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from harness.run.rundir import MIN_FREE_BYTES
from harness.run.stack import import_checks, stack_facts

FIXES = {
    "numpy": "pip install the NumPy the image's torch was built with (e.g. 'numpy<2' for a "
             "torch built against NumPy 1.x), then `make setup`",
    "torch.from_numpy": "this torch was built against another NumPy major: install "
                        "'numpy<2' (or the image's own NumPy) into the environment",
    "soundfile FLAC": "install libsndfile with FLAC support (apt-get install libsndfile1)",
}


def problems(facts: dict[str, Any], imports: dict[str, str | None]) -> list[tuple[str, str]]:
    """(what is wrong, how to fix it), in the order a user should fix them."""
    out: list[tuple[str, str]] = []
    dev = facts["device"]
    if dev["error"]:
        out.append((dev["error"], "see docs/STACKS.md (device decision table); DEVICE=cpu runs "
                                  "on the CPU on purpose"))
    elif dev["cards"] > 1 and dev["backend_available"] is False:
        out.append((f"collective backend {dev['backend']} is not available in this torch",
                    "use a torch built with it (or --cards 1)"))
    for name, problem in imports.items():
        if problem:
            out.append((f"{name}: {problem}", FIXES.get(name, "make setup (installs "
                                                              "requirements.txt)")))
    free = facts["disk"]["free(GiB)"]
    if free * 2**30 < MIN_FREE_BYTES:
        out.append((f"{facts['disk']['runs']}: only {free} GiB free",
                    f"free at least {MIN_FREE_BYTES / 2**30:.1f} GiB or set RUNS= elsewhere"))
    return out


def _line(label: str, text: str) -> str:
    return f"  {label:<12}{text}"


def render(facts: dict[str, Any], imports: dict[str, str | None]) -> list[str]:
    t, dev, th = facts["torch"], facts["device"], facts["threads"]
    py = facts["python"]
    lines = ["ds2bench doctor: the stack a run would use",
             _line("python", f"{py['version']} ({py['executable']})"),
             _line("torch", f"{t['version']} at {t['location']}"),
             _line("cuda", ", ".join(f"{k} {t[k]}" for k in ("cuda", "cudnn", "nccl", "nvidia_driver",
                                                             "hip") if t[k]) or "not in this torch"),
             _line("torch_mlu", (t["torch_mlu"] or "not installed")
                   + (" (" + ", ".join(f"{k} {v}" for k, v in t["neuware"].items()) + ")"
                      if t["neuware"] else ""))]
    if dev["error"]:
        lines.append(_line("device", f"{dev['requested']}: cannot run ({dev['error']})"))
    else:
        avail = {True: "available", False: "NOT available", None: "?"}[dev["backend_available"]]
        lines.append(_line("device", f"{dev['requested']} -> {dev['kind']} ({dev['reason']}); "
                                     f"backend {dev['backend']} ({avail})"))
        for d in dev["devices"]:
            lines.append(_line("", f"[{d['index']}] {d['name']}, {d['memory(GiB)']} GiB"))
    flags = " ".join(f"{k}={v}" for k, v in facts["precision_flags_default"].items())
    lines.append(_line("precision", f"{flags} (torch's defaults; each run sets them from "
                                    "train.fp32_precision)"))
    split = (f"{th['threads_per_rank']} thread(s) per rank" if th["threads_per_rank"]
             else "threads: not split (accelerator ranks)")
    lines.append(_line("threads", f"{th['cores_available']} cores, {th['ranks_per_node']} rank(s) "
                                  f"per node, {split}"))
    lines.append(_line("disk", f"{facts['disk']['runs']}: {facts['disk']['free(GiB)']} GiB free"))
    deps = ", ".join(f"{m} {v or 'MISSING'}" for m, v in facts["dependencies"].items())
    lines.append(_line("deps", deps))
    joints = ", ".join(f"{k} {'ok' if v is None else 'FAILS'}" for k, v in imports.items()
                       if k not in facts["dependencies"])
    if joints:
        lines.append(_line("", joints))
    if facts["env"]:
        lines.append(_line("env", " ".join(f"{k}={v}" for k, v in facts["env"].items())))
    return lines


def run_doctor(device: str, cards: int, runs: Path, as_json: bool = False) -> int:
    facts = stack_facts(device, cards, runs)
    imports = import_checks()
    found = problems(facts, imports)
    if as_json:
        print(json.dumps({**facts, "import_checks": imports,
                          "problems": [{"what": w, "fix": f} for w, f in found]}, indent=1))
    else:
        print("\n".join(render(facts, imports)))
        for what, fix in found:
            print(f"PROBLEM {what}\n    FIX {fix}")
        print("OK: a run can start" if not found else f"{len(found)} problem(s): a run will not work")
    return 1 if found else 0
