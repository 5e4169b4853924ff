#!/usr/bin/env bash
# Build (once) an "image-like" venv for `make test-compat`: the real PyPI wheel
# of an old torch and NumPy 1.x in a venv of its own, laid out as a vendor
# image keeps them (Cambricon: `source /torch/venv3/pytorch/bin/activate`).
# ds2bench's own set-up then runs with this venv *activated*, so the path a
# user takes on such an image (scripts/setup_env.sh) is the one tested.
#
#   scripts/compat_image.sh 2.1.2 [numpy-version]  ->  .venv-compat/torch-2.1.2/image
#
# The PyPI Linux wheels of torch 2.1-2.4 are CUDA builds: `import torch`
# preloads libcublas & co. and fails without the nvidia-*-cu12 wheels they
# require, even on a CPU-only machine, so the full dependency set is
# installed (about 4-5 GB per venv, reused by later runs).
#
# Disk: the wheels (~2.6 GB compressed) sit in pip's temporary folder while
# they unpack into the venv (~5 GB), so the build checks first that
# COMPAT_MIN_FREE_GIB (default 9) GiB are free where the venv goes and, if
# not, says so in one line and exits 3 without touching anything. pip's cache
# is off (--no-cache-dir): it would keep another copy of the wheels for a
# venv that is built once.
set -euo pipefail
TORCH=${1:?usage: compat_image.sh TORCH_VERSION [NUMPY_VERSION]}
NUMPY=${2:-1.26.4}
PY=${PYTHON:-python3}
ROOT=${COMPAT_ROOT:-.venv-compat}
IMAGE="$ROOT/torch-$TORCH/image"
STAMP="$IMAGE/.image-ready"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "torch==$TORCH numpy==$NUMPY" ]; then
  echo "[compat] image venv $IMAGE is ready (torch==$TORCH numpy==$NUMPY)"
  exit 0
fi
mkdir -p "$(dirname "$IMAGE")"
# Free space counts what a stale venv (about to be replaced) already holds; too
# little: one line, exit 3, nothing touched.
"$PY" - "$(dirname "$IMAGE")" "$IMAGE" "$TORCH" "${COMPAT_MIN_FREE_GIB:-9}" <<'PYEOF' || exit 3
import os, shutil, sys
where, image, torch, need = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
held = sum(os.lstat(os.path.join(root, f)).st_size
           for root, _, files in os.walk(image) for f in files)
free = (shutil.disk_usage(where).free + held) / 2**30
if free < need:
    sys.exit(f"[compat] torch {torch}: not built: {free:.1f} GiB free under {where}, "
             f"the image venv needs about {need:g} GiB (COMPAT_MIN_FREE_GIB)")
PYEOF
rm -rf "$IMAGE"
echo "[compat] building $IMAGE: torch==$TORCH numpy==$NUMPY (real PyPI wheels)"
start=$(date +%s)
"$PY" -m venv "$IMAGE"
"$IMAGE/bin/python" -m pip install -q --no-cache-dir "torch==$TORCH" "numpy==$NUMPY"
# The image must work on its own before ds2bench is set up inside it.
"$IMAGE/bin/python" -c "import numpy, torch; torch.from_numpy(numpy.zeros(2)); print('[compat] image ok: torch', torch.__version__, 'numpy', numpy.__version__)"
echo "[compat] built in $(( $(date +%s) - start )) s, $(du -sh "$IMAGE" | cut -f1)"
echo "torch==$TORCH numpy==$NUMPY" > "$STAMP"
