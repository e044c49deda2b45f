"""Build ``bundle-duckdb-<version>.zip`` and ``source-duckdb-<version>.duckdb`` with the DuckDB of this environment.

Run from the repository root with each Python build: ``.venv/bin/python tests/data/bundles/make_bundle.py`` (DuckDB 2,
Python 3.11+) and ``.venv310/bin/python tests/data/bundles/make_bundle.py`` (DuckDB 1.5, Python 3.10). The runs are the
ones tests/test_store.py uses for its own round trip (awkward text for CSV, a study with a cell, NaN-free numbers).
The source database is copied in storage version v1.5.0 with 16 KiB blocks, so that both builds can read it and the
committed file stays small; tests/test_portability.py imports each bundle into this build's DuckDB and compares it
with the source, so every build checks both directions.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[2]), str(HERE.parents[1])]

from test_store import awkward_run, make_run  # noqa: E402

from edgeprof.store import Store  # noqa: E402
from edgeprof.store.bundle import export_runs  # noqa: E402


def main() -> None:
    version = duckdb.__version__
    bundle, source = HERE / f"bundle-duckdb-{version}.zip", HERE / f"source-duckdb-{version}.duckdb"
    bundle.unlink(missing_ok=True)
    source.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "runs.duckdb")
        store.create_study("s1", "threads sweep", {"threads": [1, 2]})
        ids = [make_run(store, study_id="s1"), make_run(store, status="oom_killed"), awkward_run(store)]
        store.set_cell("s1", "c1", ids[0], "ok")
        export_runs(store, ids, bundle)
        with duckdb.connect() as con:
            con.execute(f"ATTACH '{store.path}' AS src (READ_ONLY)")
            con.execute(f"ATTACH '{source}' AS dst (BLOCK_SIZE 16384, STORAGE_VERSION 'v1.5.0')")
            con.execute("COPY FROM DATABASE src TO dst")
    print(f"wrote {bundle.name} ({bundle.stat().st_size} bytes) and {source.name} ({source.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
