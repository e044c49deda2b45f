#!/usr/bin/env bash
# Create .venv and install edgeprof's dependencies; edgeprof/install.py decides which (it keeps an installed
# onnxruntime-gpu). Flags: --gpu (ONNX Runtime's CUDA build, x86_64), --tflite-runtime, --dev (test tools and Debian's
# chromium). PYTHON picks the interpreter, VENV the folder (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
for arg in "$@"; do
  [ "$arg" = "--dev" ] && dev=1
done
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m edgeprof.install "$@"
if [ "$dev" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
