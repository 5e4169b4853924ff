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
# installed (about 4-5 GB per venv; reused by later runs, pip's cache makes a
# rebuild cheap).
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
rm -rf "$IMAGE"
mkdir -p "$(dirname "$IMAGE")"
echo "[compat] building $IMAGE: torch==$TORCH numpy==$NUMPY (real PyPI wheels)"
start=$(date +%s)
"$PY" -m venv "$IMAGE"
"$IMAGE/bin/python" -m pip install -q "torch==$TORCH" "numpy==$NUMPY"
# The image must work on its own before ds2bench is set up inside it.
"$IMAGE/bin/python" -c "import numpy, torch; torch.from_numpy(numpy.zeros(2)); print('[compat] image ok: torch', torch.__version__, 'numpy', numpy.__version__)"
echo "[compat] built in $(( $(date +%s) - start )) s, $(du -sh "$IMAGE" | cut -f1)"
echo "torch==$TORCH numpy==$NUMPY" > "$STAMP"
