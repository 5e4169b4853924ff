#!/usr/bin/env bash
# `make test-compat`: the CPU test suite on real old torch releases, installed
# the way vendor images install them.
#
# For each torch version (COMPAT_TORCH, default "2.1.2 2.4.1"; NumPy
# COMPAT_NUMPY, default 1.26.4):
#  1. scripts/compat_image.sh builds .venv-compat/torch-V/image once: the
#     real PyPI wheels of torch V and NumPy, nothing else (an "image").
#  2. With that venv *activated*, scripts/setup_env.sh makes
#     .venv-compat/torch-V/ds2 exactly as `make setup` does on a Cambricon
#     image: it must reuse that torch and NumPy and add only what is missing.
#  3. The suite (`pytest`, the default selection, a module that fails to
#     import reported and the rest run: unit tests and the e2e runs,
#     2-rank torchrun/gloo ones included; PYTEST_ARGS adds to it) runs with
#     the ds2 venv's python. junit.xml and pytest.log stay in the folder.
# Then a summary table: counts, time and every failing test with its error
# line (.venv-compat/summary.txt). Exit 1 if anything failed. An image venv
# that cannot be built for lack of disk fails too, unless COMPAT_LOW_DISK=skip
# (CI's setting): then the summary says "NOT TESTED" for that torch.
set -uo pipefail
cd "$(dirname "$0")/.."
TORCHES=${COMPAT_TORCH:-2.1.2 2.4.1}
NUMPY=${COMPAT_NUMPY:-1.26.4}
ROOT=${COMPAT_ROOT:-.venv-compat}
export COMPAT_ROOT=$ROOT
mkdir -p "$ROOT"
SUMMARY="$ROOT/summary.txt"
: > "$SUMMARY"
status=0
for T in $TORCHES; do
  D="$ROOT/torch-$T"
  echo "=== torch $T (numpy $NUMPY) ==="
  t0=$(date +%s)
  bash scripts/compat_image.sh "$T" "$NUMPY"; rc=$?
  if [ "$rc" = 3 ] && [ "${COMPAT_LOW_DISK:-fail}" = skip ]; then
    # Not enough disk for the image venv (compat_image.sh said how much); CI
    # sets COMPAT_LOW_DISK=skip so a full shared disk does not read as a test
    # failure. The line stays in the summary: nothing ran on torch $T.
    echo "torch $T: NOT TESTED: too little free disk for its image venv (see above)" | tee -a "$SUMMARY"; continue
  elif [ "$rc" != 0 ]; then
    echo "torch $T: could not build the image venv" | tee -a "$SUMMARY"; status=1; continue
  fi
  t1=$(date +%s)
  # A subshell: `activate` changes PATH/VIRTUAL_ENV for this step only.
  if ! ( source "$D/image/bin/activate" && VENV="$D/ds2" bash scripts/setup_env.sh ); then
    echo "torch $T: scripts/setup_env.sh failed inside the image venv" | tee -a "$SUMMARY"; status=1; continue
  fi
  # The set-up must have reused the image's torch, not installed its own.
  if ! "$D/ds2/bin/python" - "$T" "$D/image" <<'PYEOF'
import os, sys, torch
want, image = sys.argv[1], os.path.realpath(sys.argv[2])
got = torch.__version__.split("+")[0]
where = os.path.realpath(torch.__file__)
if got != want or not where.startswith(image + os.sep):
    sys.exit(f"ds2 venv runs torch {torch.__version__} from {where}, not torch {want} from {image}")
PYEOF
  then status=1; continue
  fi
  t2=$(date +%s)
  # shellcheck disable=SC2086  # PYTEST_ARGS is a list of words on purpose
  ( source "$D/image/bin/activate" &&
    "$D/ds2/bin/python" -m pytest -q -p no:cacheprovider --continue-on-collection-errors \
      --junitxml="$D/junit.xml" ${PYTEST_ARGS:-} ) \
    2>&1 | tee "$D/pytest.log" | tail -n 40
  rc=${PIPESTATUS[0]}
  t3=$(date +%s)
  [ "$rc" = 0 ] || status=1
  "$D/ds2/bin/python" scripts/compat_summary.py --torch "$T" --junit "$D/junit.xml" \
    --image-s $((t1 - t0)) --setup-s $((t2 - t1)) --image-size "$(du -sh "$D/image" | cut -f1)" \
    >> "$SUMMARY" || status=1
done
echo
echo "=== make test-compat summary ($SUMMARY) ==="
cat "$SUMMARY"
exit $status
