#!/usr/bin/env bash
# Create the project's virtual environment (.venv) on a fresh machine.
# Reuses a torch that the base Python already has (MLU/GPU images bring their
# own torch, torch_mlu, ...): then the venv sees the system site-packages.
# Otherwise it installs the pinned CPU-capable torch==2.13.0.
set -euo pipefail
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_VERSION=2.13.0
if [ -x "$VENV/bin/python" ] && [ -f "$VENV/.ds2bench-ready" ] && [ "$VENV/.ds2bench-ready" -nt requirements.txt ]; then
  exit 0
fi
if "$PY" -c "import torch" 2>/dev/null; then
  echo "[setup] reusing installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
  "$PY" -m venv --system-site-packages "$VENV"
  NEED_TORCH=0
else
  "$PY" -m venv "$VENV"
  NEED_TORCH=1
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if [ "$NEED_TORCH" = 1 ]; then
  echo "[setup] installing torch==$TORCH_VERSION"
  "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
fi
echo "[setup] installing pinned dependencies (requirements.txt)"
"$VENV/bin/python" -m pip install -q -r requirements.txt
"$VENV/bin/python" -c "import torch, soundfile, mlperf_logging, espeakng_loader; print('[setup] ok: torch', torch.__version__)"
touch "$VENV/.ds2bench-ready"
