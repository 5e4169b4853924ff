#!/usr/bin/env bash
# Create the project's virtual environment (.venv, or $VENV) and add only
# what is missing to the Python stack this machine already has.
#
# Where torch comes from, first match wins:
#  1. an activated venv ($VIRTUAL_ENV), as on Cambricon images
#     (`source /torch/venv3/pytorch/bin/activate`): .venv is made from the same
#     base interpreter and a .pth file puts the activated venv's site-packages
#     on .venv's path, so torch, torch_mlu, numpy, ... of the image are used
#     as they are. (`venv --system-site-packages` alone would not see them: it
#     exposes the *base* interpreter's site-packages, not the activated venv's.)
#     The image's venv is only read, never written: ds2bench's own packages
#     go into .venv.
#  2. the interpreter itself ($PYTHON, else python3: NGC images, conda envs):
#     .venv is made with --system-site-packages.
#  3. neither has torch: torch==2.13.0 (CPU-capable) is installed into .venv.
#
# Dependencies an image may already have (numpy, scipy, pandas, matplotlib)
# are ranges in requirements.txt; what the image has is kept (pinned to its
# own version for the install), and only where nothing provides them are the
# exact versions of constraints.txt installed. NumPy is never moved over an
# image's torch: after the install `torch.from_numpy` must work, and if a
# NumPy 2 that we added breaks a torch built against NumPy 1.x, NumPy 1.26 is
# put in its place.
set -euo pipefail
VENV=${VENV:-.venv}
TORCH_VERSION=2.13.0
NUMPY_FOR_OLD_TORCH=1.26.4
say() { echo "[setup] $*"; }
die() { echo "[setup] error: $*" >&2; exit 2; }

ready() {
  [ -x "$VENV/bin/python" ] && [ -f "$VENV/.ds2bench-ready" ] &&
    [ "$VENV/.ds2bench-ready" -nt requirements.txt ] &&
    [ "$VENV/.ds2bench-ready" -nt constraints.txt ]
}
if ready; then exit 0; fi

# --- which interpreter, and which image venv -------------------------------
IMAGE_VENV=""
if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
  # Not when the activated venv is ds2bench's own (`source .venv/bin/activate`).
  if [ "$(realpath -m "$VIRTUAL_ENV")" != "$(realpath -m "$VENV")" ]; then
    IMAGE_VENV=$VIRTUAL_ENV
  fi
fi
if [ -n "$IMAGE_VENV" ]; then
  PY="$IMAGE_VENV/bin/python"
else
  PY=${PYTHON:-python3}
fi
command -v "$PY" >/dev/null 2>&1 || die "no Python interpreter '$PY' (set PYTHON=/path/to/python3)"
"$PY" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 13)))' ||
  die "Python $("$PY" -c 'import platform; print(platform.python_version())') at $PY: ds2bench needs Python 3.10 to 3.13 (set PYTHON=... or activate another venv)"

HAS_TORCH=0
if "$PY" -c 'import torch' >/dev/null 2>&1; then HAS_TORCH=1; fi

# --- the venv ----------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  if [ -n "$IMAGE_VENV" ]; then
    # Mirror the image venv's own view of the system site-packages.
    SYS=""
    if grep -qiE '^include-system-site-packages *= *true' "$IMAGE_VENV/pyvenv.cfg" 2>/dev/null; then
      SYS=--system-site-packages
    fi
    say "making $VENV on top of the activated venv $IMAGE_VENV"
    "$PY" -m venv $SYS "$VENV"
  elif [ "$HAS_TORCH" = 1 ]; then
    say "making $VENV with the system site-packages of $PY (it has torch)"
    "$PY" -m venv --system-site-packages "$VENV"
  else
    "$PY" -m venv "$VENV"
  fi
fi
if [ -n "$IMAGE_VENV" ]; then
  # site.addsitedir (not a bare path) so that the image venv's own .pth files
  # (editable installs, vendor path hooks) are processed too.
  SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  "$PY" - "$SITE/_ds2bench_image_venv.pth" <<'PYEOF'
import sys, sysconfig
dirs = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
with open(sys.argv[1], "w") as f:
    f.write("# written by ds2bench scripts/setup_env.sh: the activated image venv's packages\n")
    for d in dirs:
        f.write(f"import site; site.addsitedir({d!r})\n")
PYEOF
fi
VPY="$VENV/bin/python"
# What the venv itself sees now decides (an existing .venv may have its own torch).
if FOUND=$("$VPY" -c 'import torch; print(torch.__version__, "from", torch.__file__.rsplit("/torch/", 1)[0])' 2>/dev/null); then
  HAS_TORCH=1
  say "reusing torch $FOUND"
else
  HAS_TORCH=0
fi
# pip is not upgraded: the image's pip is enough for -r/-c with markers, and
# leaving it alone keeps a set-up without anything missing off the network.

# --- what is missing -----------------------------------------------------------
EFFECTIVE="$VENV/.ds2bench-constraints.txt"
"$VPY" scripts/effective_constraints.py constraints.txt > "$EFFECTIVE"
if [ "$HAS_TORCH" = 0 ]; then
  say "installing torch==$TORCH_VERSION"
  "$VPY" -m pip install -q "torch==$TORCH_VERSION" -c "$EFFECTIVE"
fi
say "installing what is missing of requirements.txt"
if ! "$VPY" -m pip install -q -r requirements.txt -c "$EFFECTIVE"; then
  die "pip could not install requirements.txt on top of this stack; the versions kept from it are in $EFFECTIVE"
fi

# --- NumPy must still work with this torch ----------------------------------------
# Only this check decides about NumPy (a failing import of anything else must
# not be "fixed" by moving NumPy).
FROM_NUMPY='import numpy, torch; torch.from_numpy(numpy.zeros(2))'
if ! "$VPY" -c "$FROM_NUMPY" >/dev/null 2>&1; then
  say "torch $("$VPY" -c 'import torch; print(torch.__version__)' 2>/dev/null) cannot use NumPy $("$VPY" -c 'import numpy; print(numpy.__version__)'): putting numpy==$NUMPY_FOR_OLD_TORCH in $VENV"
  "$VPY" -m pip install -q "numpy==$NUMPY_FOR_OLD_TORCH"
  "$VPY" -c "$FROM_NUMPY" || die "torch.from_numpy still fails with numpy==$NUMPY_FOR_OLD_TORCH"
fi
"$VPY" -c 'import platform, numpy, torch, soundfile, mlperf_logging, espeakng_loader
print("[setup] ok: python", platform.python_version(), "torch", torch.__version__, "numpy", numpy.__version__)' ||
  die "$VENV cannot import its dependencies (the error is above)"
touch "$VENV/.ds2bench-ready"
