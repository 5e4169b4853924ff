"""The software and device stack a run uses: versions, devices, backend, precision, threads.

One function, `stack_facts`, gathers them for `make doctor` (which also
imports and exercises the dependencies) and for every run's
`description.json`. Everything is feature-checked: a fact this torch or
vendor stack cannot tell is `None`, never a guess.
"""
from __future__ import annotations

import glob
import importlib
import os
import platform
import re
import shutil
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# Python modules a run imports (module name → distribution name).
DEPENDENCIES = {"numpy": "numpy", "scipy": "scipy", "soundfile": "soundfile", "yaml": "PyYAML",
                "mlperf_logging": "mlperf-logging", "pandas": "pandas",
                "matplotlib": "matplotlib", "espeakng_loader": "espeakng-loader"}
ENV_PREFIXES = ("NCCL_", "CNCL_", "MLU_", "CNRT_", "CUDA_", "NVIDIA_", "TORCH_", "OMP_", "MKL_",
                "SLURM_JOB", "PYTORCH_")
ENV_KEYS = ("VIRTUAL_ENV", "NEUWARE_HOME", "MASTER_ADDR", "MASTER_PORT", "LIBRISPEECH")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _call(fn: Any) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a fact this stack cannot tell is None
        return None


def nvidia_driver() -> str | None:
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
    except OSError:
        return None
    m = re.search(r"Kernel Module\s+(\S+)", text)
    return m.group(1) if m else text.splitlines()[0].strip()


def neuware_libs() -> dict[str, str]:
    """Versions of Cambricon's CNCL / CNNL / CNRT libraries, from their file names."""
    home = os.environ.get("NEUWARE_HOME", "/usr/local/neuware")
    out: dict[str, str] = {}
    for lib in ("cncl", "cnnl", "cnrt"):
        names = sorted(glob.glob(os.path.join(home, "lib64", f"lib{lib}.so.*")), key=len)
        if names:
            out[lib] = names[-1].rsplit(".so.", 1)[1]
    return out


def torch_facts() -> dict[str, Any]:
    import torch

    cudnn = torch.backends.cudnn
    nccl = getattr(torch.cuda, "nccl", None)
    facts = {
        "version": torch.__version__,
        "location": str(Path(torch.__file__).parent),
        "cuda": getattr(torch.version, "cuda", None),
        "hip": getattr(torch.version, "hip", None),
        "cudnn": _call(lambda: cudnn.version() if cudnn.is_available() else None),
        "nccl": _call(lambda: ".".join(map(str, nccl.version())) if torch.cuda.is_available()
                      else None),
        "nvidia_driver": nvidia_driver(),
        "torch_mlu": _version("torch_mlu") or _version("torch-mlu"),
        "neuware": neuware_libs() or None,
    }
    return facts


def device_facts(preference: str, cards: int) -> dict[str, Any]:
    """The device a run would use (or why it cannot), its devices and its backend."""
    import torch.distributed as dist

    from reference.device import DeviceError, check_cards, decide, device_module

    out: dict[str, Any] = {"requested": preference, "cards": cards, "kind": None, "reason": None,
                           "error": None, "backend": None, "backend_available": None,
                           "devices": []}
    try:
        d = decide(preference)
        out.update(kind=d.kind, reason=d.reason, backend=d.backend)
        check_cards(d, cards)
    except DeviceError as err:
        out["error"] = str(err)
        return out
    mod = device_module(d.kind)
    for i in range(d.count):
        props = _call(lambda i=i: mod.get_device_properties(i))
        mem = getattr(props, "total_memory", None)
        out["devices"].append({"index": i, "name": _call(lambda i=i: mod.get_device_name(i)),
                               "memory(GiB)": round(mem / 2**30, 1) if mem else None})
    checks = {"gloo": "is_gloo_available", "nccl": "is_nccl_available"}
    if not dist.is_available():
        out["backend_available"] = False
    elif d.backend in checks:
        out["backend_available"] = bool(getattr(dist, checks[d.backend], lambda: False)())
    else:  # vendor backends register themselves with torch.distributed.Backend
        out["backend_available"] = d.backend in getattr(dist.Backend, "backend_list", [])
    return out


def thread_facts(kind: str | None, cards: int) -> dict[str, Any]:
    from reference.train.trainer import default_threads

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cores_available": cores, "ranks_per_node": cards,
            "threads_per_rank": default_threads(cards) if kind == "cpu" else None,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


def disk_facts(runs: Path) -> dict[str, Any]:
    probe = Path(runs).resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return {"runs": str(runs), "free(GiB)": round(shutil.disk_usage(probe).free / 2**30, 1)}


def env_facts() -> dict[str, str]:
    return {k: v for k, v in sorted(os.environ.items())
            if k.startswith(ENV_PREFIXES) or k in ENV_KEYS}


def stack_facts(preference: str = "auto", cards: int = 1, runs: Path = Path("runs")
                ) -> dict[str, Any]:
    """Everything above, for `make doctor` and description.json (no imports of the deps)."""
    from reference.train.precision import precision_flags

    dev = device_facts(preference, cards)
    return {
        "python": {"version": platform.python_version(), "executable": sys.executable,
                   "prefix": sys.prefix, "implementation": platform.python_implementation()},
        "torch": torch_facts(),
        "device": dev,
        "precision_flags_default": precision_flags(),
        "threads": thread_facts(dev["kind"], cards),
        "disk": disk_facts(runs),
        "dependencies": {mod: _version(dist) for mod, dist in DEPENDENCIES.items()},
        "env": env_facts(),
    }


def import_checks() -> dict[str, str | None]:
    """Import every dependency and exercise the joints that break on vendor images:
    module → None when fine, else the problem."""
    out: dict[str, str | None] = {}
    for mod in DEPENDENCIES:
        try:
            importlib.import_module(mod)
            out[mod] = None
        except Exception as err:  # noqa: BLE001 - a broken install raises anything
            out[mod] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    if out.get("numpy") is None:
        out["torch.from_numpy"] = _from_numpy_problem()
    if out.get("soundfile") is None:
        out["soundfile FLAC"] = _flac_problem()
    return out


def _from_numpy_problem() -> str | None:
    """torch built against NumPy 1.x cannot use NumPy 2 (and says so only as a warning)."""
    import warnings

    import numpy as np
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ok = torch.from_numpy(np.arange(3, dtype=np.float32)).sum().item() == 3.0
        except Exception as err:  # noqa: BLE001
            return f"{type(err).__name__}: {err}"
    noisy = [str(w.message) for w in caught if "numpy" in str(w.message).lower()]
    if not ok or noisy:
        return (noisy[0].splitlines()[0] if noisy else "wrong result") + \
            f" (NumPy {np.__version__}, torch {torch.__version__})"
    return None


def _flac_problem() -> str | None:
    import io

    import numpy as np
    import soundfile as sf

    try:
        buf = io.BytesIO()
        sf.write(buf, np.zeros(160, dtype=np.int16), 16000, format="FLAC")
        buf.seek(0)
        return None if len(sf.read(buf, dtype="int16")[0]) == 160 else "FLAC round trip lost samples"
    except Exception as err:  # noqa: BLE001 - libsndfile missing or without FLAC
        return f"{type(err).__name__}: {err}"
