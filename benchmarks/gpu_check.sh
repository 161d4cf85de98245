#!/usr/bin/env bash
# GPU check for a node with Python, JAX and PyTorch built for CUDA, scikit-learn, h5py and rich,
# but no Keras, no TensorFlow and no network (an air-gapped cluster node). Under 8 minutes.
#
# Before going to the node, on a machine with the network (from the repository root):
#     make gpu-wheels          # pip download --no-deps keras, namex, optree, absl-py into benchmarks/gpu_wheels/
# then bring the tree (with benchmarks/gpu_wheels/, a few MiB) to the node and run there:
#     bash benchmarks/gpu_check.sh             # both backends, full sizes, requires a GPU
#     bash benchmarks/gpu_check.sh --smoke     # seconds, on a CPU too (the test suite runs this)
# Extra arguments go to benchmarks/gpu_check.py. Output: one table and one JSON line per backend.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
PYTHON="${PYTHON:-python3}"
WHEELS="${GPU_WHEELS:-$HERE/gpu_wheels}"
BACKENDS="${GPU_CHECK_BACKENDS:-jax torch}"
ARGS=("$@")
SMOKE=0
for arg in "$@"; do [ "$arg" = "--smoke" ] && SMOKE=1; done
[ "$SMOKE" = 1 ] || ARGS+=("--require-gpu")

# Keras from the wheels brought along, into a private folder: nothing on the node is changed.
# Where Keras is importable already (a CPU test machine), the wheels are optional.
SITE=""
if ! "$PYTHON" -c "import keras" 2>/dev/null; then
    if ! ls "$WHEELS"/keras-*.whl >/dev/null 2>&1; then
        echo "gpu_check: Keras is not installed and no wheel is in $WHEELS; run 'make gpu-wheels' where the network is." >&2
        exit 2
    fi
    SITE="$(mktemp -d)"
    trap 'rm -rf "$SITE"' EXIT
    "$PYTHON" -m pip install --quiet --no-deps --no-index --target "$SITE" "$WHEELS"/*.whl
fi
export PYTHONPATH="$REPO${SITE:+:$SITE}${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL=2

status=0
for backend in $BACKENDS; do
    echo "=== KERAS_BACKEND=$backend ==="
    KERAS_BACKEND="$backend" timeout 240 "$PYTHON" "$HERE/gpu_check.py" "${ARGS[@]}" || status=1
done
exit $status
