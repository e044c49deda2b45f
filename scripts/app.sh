#!/usr/bin/env bash
# Set up (first time) and start the dashboard on http://127.0.0.1:8501 with the embedded DuckDB file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# two malloc arenas from the start (edgeprof/heap.py says why); set MALLOC_ARENA_MAX yourself to override
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
exec .venv/bin/python -m streamlit run app.py "$@"
