"""The run columns declared once (store.columns): the table matches the database, and what it generates works."""

from __future__ import annotations

import json

import duckdb

from edgeprof.store import Store, columns


def test_the_table_matches_the_database(tmp_path):
    store = Store(tmp_path / "runs.duckdb")
    with duckdb.connect(str(store.path), read_only=True) as con:
        stored = {r[0]: r[1] for r in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'runs'").fetchall()}
    for col in columns.RUN_COLUMNS:
        if col.stored:
            assert col.name in stored, f"{col.name} is declared in store.columns but no migration adds it"
            assert stored[col.name].startswith(col.type.replace("TEXT", "VARCHAR")), (col.name, stored[col.name])
        else:
            assert col.name not in stored
    derived = set(store.list_runs().columns)
    assert {c.name for c in columns.RUN_COLUMNS if not c.stored} <= derived


def test_every_summary_column_is_filled_on_finish_and_by_its_fill(tmp_path):
    summary = {"summary_version": 2, "load_ms": 12.0, "latency_ms": {"p50": 1.5, "n": 10}, "flags": ["hot"],
               "memory": {"oom_killed": False, "mechanism": "cgroup1", "pressure": {"some_pct": 2.5}},
               "gpu": {"utilization_mean_pct": 40.0}, "op_profile": {"ops": []},
               "backend": {"name": "onnxruntime", "execution_provider": "cpu"}}
    store = Store(tmp_path / "runs.duckdb")
    run_id = store.insert_run(None, None, {"model": "m"})
    store.finish_run(run_id, "ok", summary=summary)
    run = store.get_run(run_id)
    assert (run["load_ms"], run["p50_ms"], run["n"], run["gpu_util_mean_pct"]) == (12.0, 1.5, 10, 40.0)
    assert run["flags"] == ["hot"] and run["op_profile"] == {"ops": []} and run["oom_killed"] is False
    assert (run["mem_pressure_some_pct"], run["backend"], run["mem_mechanism"]) == (2.5, "onnxruntime", "cgroup1")
    with duckdb.connect(str(store.path)) as con:  # the SQL fill (migrations, bundles) reads the same paths
        names = [c.name for c in columns.FROM_SUMMARY if c.name not in ("gpu_util_mean_pct",)]
        before = con.execute(f"SELECT {', '.join(names)} FROM runs").fetchone()
        con.execute(f"UPDATE runs SET {', '.join(f'{n} = NULL' for n in names)}")
        for n in names:
            con.execute(columns.fill_sql(n))
        after = con.execute(f"SELECT {', '.join(names)} FROM runs").fetchone()
    def plain(row):
        return {n: json.loads(v) if columns.BY_NAME[n].type == "JSON" and v is not None else v
                for n, v in zip(names, row, strict=True)}

    assert plain(after) == plain(before)
