#!/usr/bin/env bash
# Set up (first time) and start the dashboard on http://127.0.0.1:8501 with the embedded DuckDB file.
set -euo pipefail
cd "$(dirname "$0")/.."
# setup only when something is missing: --check asks pip without an index (no network, no pip upgrade), so a booth
# offline starts at once
if ! { [ -x .venv/bin/python ] && .venv/bin/python -m edgeprof.install --check; }; then
  bash scripts/setup.sh
fi
# two malloc arenas from the start (edgeprof/heap.py says why); set MALLOC_ARENA_MAX yourself to override
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
exec .venv/bin/python -m streamlit run app.py "$@"
