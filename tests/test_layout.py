"""The layout's promises: imports only run downwards, and every room stays small.

Layers, lowest first: reference.{config,labels,device} < reference.data < reference.model
< reference.train < harness < results. A module may import its own layer and the
layers below it, never one above (lazy imports inside functions count too).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("reference", "harness", "results")
# Rank of each layer; a module of rank r may import modules of rank <= r.
# `reference/__init__.py` is the package's front door (lazy re-exports of the trainer
# API for the harness), so it ranks with the top of `reference`.
RANKS = {"reference.config": 0, "reference.labels": 0, "reference.device": 0, "reference": 3,
         "reference.data": 1, "reference.model": 2, "reference.train": 3,
         "harness": 4, "results": 5}
MAX_MODULES_PER_FOLDER = 15


def _layer(module: str) -> str:
    best = ""
    for name in RANKS:
        if (module == name or module.startswith(name + ".")) and len(name) > len(best):
            best = name
    return best


def _modules() -> list[tuple[str, Path]]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            out.append((".".join(parts), path))
    return out


def _is_module(dotted: str) -> bool:
    p = REPO.joinpath(*dotted.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _imports(path: Path, module: str) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the package
                base = module.split(".")[: -node.level or None]
                found.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                # `from pkg import mod` imports pkg.mod; `from mod import name` imports mod.
                subs = [f"{node.module}.{a.name}" for a in node.names if _is_module(f"{node.module}.{a.name}")]
                found += subs or [node.module]
    # Lazy name tables ("x": "reference.train.trainer") import too.
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.split(".")[0] in PACKAGES and " " not in node.value \
                and "/" not in node.value and node.value.count(".") >= 1:
            found.append(node.value)
    return [m for m in found if m.split(".")[0] in PACKAGES]


def test_imports_only_run_downwards():
    offences = []
    for module, path in _modules():
        me = _layer(module)
        for target in _imports(path, module):
            other = _layer(target)
            if other and RANKS[other] > RANKS[me]:
                offences.append(f"{path.relative_to(REPO)}: {module} ({me}) imports {target} ({other})")
    assert not offences, "imports that run upwards:\n" + "\n".join(offences)


def test_the_layer_check_sees_an_upward_import(tmp_path):
    # The rule above must be able to fail: an upward import is found.
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from reference.train.trainer import Trainer\n")
    targets = _imports(src, "reference.data.m")
    assert any(RANKS[_layer(t)] > RANKS[_layer("reference.data.m")] for t in targets)


@pytest.mark.parametrize("pkg", PACKAGES)
def test_no_room_holds_more_than_about_15_modules(pkg):
    for folder in [REPO / pkg, *[p for p in (REPO / pkg).rglob("*") if p.is_dir()]]:
        if folder.name == "__pycache__":
            continue
        mods = [p for p in folder.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
        assert len(mods) <= MAX_MODULES_PER_FOLDER, f"{folder.relative_to(REPO)}: {len(mods)} modules"
