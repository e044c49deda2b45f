#!/usr/bin/env bash
# Set up (first time) and run the whole test suite: lint, unit, end-to-end, AppTest and the real-browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q -p no:cacheprovider --timeout 600 "$@"
