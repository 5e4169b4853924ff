"""scripts/effective_constraints.py: an installed package keeps its version, a missing one the pin."""
from __future__ import annotations

import importlib.util
from importlib import metadata

from setup_util import REPO


def _module():
    spec = importlib.util.spec_from_file_location("effective_constraints",
                                                  REPO / "scripts" / "effective_constraints.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_installed_package_is_pinned_to_its_own_version_and_missing_keeps_the_line():
    eff = _module().effective([
        'numpy==0.0.1; python_version >= "3.11"',     # installed here: the pin must not apply
        'numpy==0.0.2; python_version < "3.11"',
        "# a comment",
        'not-a-real-package-ds2bench==1.2.3; python_version >= "3.10"  # kept as is',
    ])
    assert eff[0].startswith(f"numpy=={metadata.version('numpy')}")
    assert eff[1] == 'not-a-real-package-ds2bench==1.2.3; python_version >= "3.10"'
    assert eff[2].startswith(f"torch=={metadata.version('torch')}")  # an installed torch is never moved
    assert len(eff) == 3


def test_project_constraints_keep_this_stack_as_installed():
    """On the development venv everything is installed: every line becomes `name==installed`."""
    eff = _module().effective((REPO / "constraints.txt").read_text().splitlines())
    for line in eff:
        name, version = line.split("#")[0].strip().split("==")
        assert metadata.version(name) == version, line
