"""Build ``v1.duckdb``: a database at schema version 1, as the first edgeprof release wrote it.

Run from the repository root: ``python tests/data/store/make_v1.py``. It uses only the version-1 DDL (migration 1)
and a 16 KiB block size so the committed file stays small (DuckDB's default block is 256 KiB), in storage version
v1.5.0 so that DuckDB 1.5 (the Python 3.10 build) opens it as well as DuckDB 2. Run with DuckDB 2 it also writes
``v1-duckdb2.duckdb``, the same database in DuckDB 2's own storage version, which DuckDB 1.5 cannot open
(tests/test_portability.py checks what the user is told then).
The test in tests/test_store.py copies it and checks that Store() migrates it to the current version.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from edgeprof.store import MIGRATIONS  # noqa: E402  (migration 1 is frozen: it is exactly the v1 schema)

OUT = HERE / "v1.duckdb"
OUT_DUCKDB2 = HERE / "v1-duckdb2.duckdb"


def main() -> None:
    write(OUT, ", STORAGE_VERSION 'v1.5.0'")
    if int(duckdb.__version__.split(".")[0]) >= 2:
        write(OUT_DUCKDB2, "")


def write(out: Path, storage: str) -> None:
    out.unlink(missing_ok=True)
    con = duckdb.connect()
    con.execute(f"ATTACH '{out}' AS v1 (BLOCK_SIZE 16384{storage})")
    con.execute("USE v1")
    description, steps = MIGRATIONS[0]
    for sql in steps:
        con.execute(sql)
    con.execute("INSERT INTO schema_version VALUES (1, '2026-01-01 00:00:00', ?)", [description])
    con.execute("""INSERT INTO devices (device_id, hostname, machine, model, cores, ram_mb, info, first_seen, last_seen)
                   VALUES ('dev1', 'pi4', 'aarch64', 'Raspberry Pi 4 Model B', 4, 3792, '{}',
                           '2026-01-01 00:00:00', '2026-01-01 00:00:00')""")
    config = {"model": "digits-cnn", "precision": "int8-static", "threads": 2, "tags": {"batch": "a"}}
    con.execute("""INSERT INTO runs (run_id, device_id, created_at, finished_at, status, model, precision, runtime,
                                     threads, config, software, summary, p50_ms, n)
                   VALUES ('run-v1', 'dev1', ?, ?, 'ok', 'digits-cnn', 'int8-static', 'onnx', 2, ?, '{}',
                           '{"latency_ms": {"p50": 1.5, "n": 3}}', 1.5, 3)""",
                [datetime(2026, 1, 1, 0, 0, 1), datetime(2026, 1, 1, 0, 0, 9), json.dumps(config)])
    con.execute("INSERT INTO latency VALUES ('run-v1', 0, 10, 2000000, 'first'), ('run-v1', 1, 20, 1500000, 'steady'),"
                " ('run-v1', 2, 30, 1500000, 'steady')")
    con.execute("INSERT INTO telemetry VALUES ('run-v1', 15, 'host', 'cpu_system_pct', 42.0, '%')")
    con.execute("USE memory")
    con.execute("DETACH v1")
    con.close()
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
