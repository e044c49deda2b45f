"""The DuckDB run store: schema and migrations, round trips, export/import, errors, and a second writing process."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from edgeprof.errors import BundleError, StorageError, UsageError
from edgeprof.store import MIGRATIONS, SCHEMA_VERSION, TABLES, Store, new_run_id
from edgeprof.store.bundle import export_runs, import_bundle
from edgeprof.store.schema import WHY_COLUMNS

REPO = Path(__file__).resolve().parents[1]
V1_FIXTURE = REPO / "tests" / "data" / "store" / "v1.duckdb"

DEVICE = {"hostname": "bench-pi", "machine": "aarch64", "model": "Raspberry Pi 4 Model B", "cpu": "Cortex-A72",
          "cores": 4, "ram_mb": 3792.0, "os": "Debian 12", "kernel": "6.6.31", "extra": {"throttled": "0x0"}}
CONFIG = {"model": "digits-cnn", "precision": "int8-static", "runtime": None, "tflite_interpreter": None,
          "execution_provider": None, "threads": 2, "memory_limit_mb": 256.0, "tags": {"batch": "b1"}}
SOFTWARE = {"python": "3.11.7", "onnxruntime": "1.32.0", "numpy": "1.26.4"}
META = {"path": "/models/digits-cnn-int8.onnx", "sha256": "ab" * 32, "size_bytes": 12345, "runtime": "onnx",
        "execution_provider": "cpu"}
SUMMARY = {
    "load_ms": 12.5, "first_inference_ms": 3.25, "warmup_ms": 40.0, "warmup_iterations": 20,
    "latency_ms": {"p50": 1.1, "p90": 1.4, "p95": 1.6, "p99": 2.9, "mean": 1.2, "std": 0.2, "cov": 0.1666,
                   "n": 500, "median_ci_low": 1.05, "median_ci_high": 1.15},
    "throughput_ips": 833.3,
    "memory": {"requested_mb": 256.0, "mechanism": "cgroup-v2", "peak_charged_mb": 120.5, "peak_rss_mb": 98.25,
               "oom_killed": False},
    "cpu": {"system_mean_pct": 31.0, "worker_mean_pct": 99.5},
    "gpu": None, "temp_max_c": 61.3, "flags": ["thermal-throttle"], "nan_value": float("nan"),
}


def latency_rows(n: int, start: int = 0) -> list[tuple]:
    return [(start + i, 1_000_000 * (start + i), 1_100_000 + (i % 7) * 1000,
             "first" if start + i == 0 else ("warmup" if start + i < 20 else "steady")) for i in range(n)]


def telemetry_rows(n: int) -> list[tuple]:
    rows = []
    for i in range(n):
        rows.append((i * 100_000_000, "host", "cpu_system_pct", 10.0 + i / 3, "%"))
        rows.append((i * 100_000_000, "host", "rss_mb", 90.0 + 0.1 * i, "MB"))
        rows.append((i * 100_000_000, "rpi", "temp_c", None, "C"))
    return rows


def make_run(store: Store, *, study_id: str | None = None, status: str = "ok", n: int = 100) -> str:
    dev = store.upsert_device(DEVICE)
    run_id = store.insert_run(None, dev, CONFIG, SOFTWARE, META, study_id=study_id)
    store.append_latency(run_id, latency_rows(n))
    store.append_telemetry(run_id, telemetry_rows(10))
    store.finish_run(run_id, status, "finished" if status == "ok" else "it broke", SUMMARY)
    return run_id


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "runs.duckdb")


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- schema ---------------------------------------------------------------------------------------------------------


def test_new_database_has_every_table_at_the_current_version(tmp_path):
    store = Store(tmp_path / "sub" / "dir" / "runs.duckdb")
    assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    with duckdb.connect(str(store.path), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        versions = con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert set(TABLES) | {"schema_version"} <= tables
    assert versions == [(v,) for v in range(1, len(MIGRATIONS) + 1)]
    Store(store.path)  # opening again is a no-op
    assert store.schema_version() == SCHEMA_VERSION


def test_v1_fixture_migrates_forward(tmp_path):
    db = tmp_path / "old.duckdb"
    shutil.copy(V1_FIXTURE, db)
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == 1
    store = Store(db)
    assert store.schema_version() == SCHEMA_VERSION
    run = store.get_run("run-v1")
    assert run["tags"] == {"batch": "a"}  # migration 2 lifted config.tags into the new column
    assert run["notes"] is None
    assert run["p50_ms"] == 1.5 and run["device"]["hostname"] == "pi4"
    assert len(store.latency("run-v1")) == 3
    store.set_notes("run-v1", "re-run after the firmware update")
    assert store.get_run("run-v1")["notes"] == "re-run after the firmware update"


def test_migration_3_fills_cpu_others_from_the_stored_summaries(tmp_path):
    db = tmp_path / "old.duckdb"
    shutil.copy(V1_FIXTURE, db)
    with duckdb.connect(str(db)) as con:
        con.execute("""UPDATE runs SET summary = json_merge_patch(coalesce(summary, '{}'),
                       '{"cpu": {"others_mean_pct": 37.5}}') WHERE run_id = 'run-v1'""")
    store = Store(db)
    assert store.get_run("run-v1")["cpu_others_mean_pct"] == 37.5
    new = make_run(store)  # a run finished by this version gets the column from its summary
    store.finish_run(new, "ok", summary={**SUMMARY, "cpu": {**SUMMARY["cpu"], "others_mean_pct": 12.0}})
    assert store.get_run(new)["cpu_others_mean_pct"] == 12.0


def test_migration_4_renames_the_backend_columns_and_old_summaries_read_in_the_new_shape(tmp_path):
    """schema 4: runs.interpreter/provider take the run config's names; a version-1 summary (``format`` and a
    ``runtime`` block) reads as version 2 (``runtime`` and ``backend``), and so does a bundle from schema 3."""
    db = tmp_path / "old.duckdb"
    shutil.copy(V1_FIXTURE, db)
    with duckdb.connect(str(db)) as con:
        con.execute("""UPDATE runs SET interpreter = 'litert', provider = 'xnnpack', summary = '{"format": "tflite",
                       "runtime": {"name": "litert", "version": "2.3.0", "provider": "xnnpack", "threads": 2}}'""")
    store = Store(db)
    run = store.get_run("run-v1")
    assert run["tflite_interpreter"] == "litert" and run["execution_provider"] == "xnnpack"
    assert "interpreter" not in run and "provider" not in run
    assert run["summary"]["runtime"] == "tflite" and run["summary"]["summary_version"] == 2
    assert run["summary"]["backend"] == {"name": "litert", "version": "2.3.0", "execution_provider": None,
                                         "delegate": "xnnpack", "threads": 2}


def test_migration_5_stores_no_limit_as_no_limit(tmp_path):
    """Study cells "none" stored the device's RAM (24,105 MB here) as their limit: after migration 5 the column and
    the summary say no limit, and real caps are untouched."""
    db = tmp_path / "old.duckdb"
    shutil.copy(V1_FIXTURE, db)
    Store(db)
    with duckdb.connect(str(db)) as con:  # a database at schema 4 holding such a run
        con.execute("""UPDATE runs SET memory_limit_mb = 24105, tags = '{"mem": "none"}',
                       summary = '{"memory": {"requested_mb": 24105, "mechanism": "cgroup1"}}'""")
        con.execute("DROP TABLE run_groups")  # back to schema 4: undo migration 6 too
        con.execute("ALTER TABLE runs DROP COLUMN group_id")
        for col in WHY_COLUMNS:  # and the migration after it (why a run is slow)
            con.execute(f"ALTER TABLE runs DROP COLUMN {col}")
        con.execute("ALTER TABLE runs DROP COLUMN device_name")  # and the device names (after 6)
        con.execute("ALTER TABLE devices DROP COLUMN device_name")
        for col in ("backend", "backend_options"):  # and the backend columns
            con.execute(f"ALTER TABLE runs DROP COLUMN {col}")
        for table in ("latency_seconds", "latency_reservoir"):  # and a long run's reduction
            con.execute(f"DROP TABLE {table}")
        con.execute("ALTER TABLE runs DROP COLUMN retention")
        con.execute("ALTER TABLE runs DROP COLUMN power_mode")  # and the power mode
        con.execute("DELETE FROM schema_version WHERE version >= 5")
    store = Store(db)
    assert store.schema_version() == SCHEMA_VERSION
    run = store.get_run("run-v1")
    assert run["memory_limit_mb"] is None and "requested_mb" not in run["summary"]["memory"]
    assert run["summary"]["memory"]["mechanism"] == "cgroup1"
    capped = make_run(store)
    assert store.get_run(capped)["memory_limit_mb"] == 256.0


def test_database_from_a_newer_edgeprof_is_refused(tmp_path):
    store = Store(tmp_path / "runs.duckdb")
    with duckdb.connect(str(store.path)) as con:
        con.execute("INSERT INTO schema_version VALUES (99, now()::TIMESTAMP, 'future')")
    with pytest.raises(StorageError, match="newer"):
        Store(store.path)


# -- round trip -----------------------------------------------------------------------------------------------------


def test_insert_finish_list_get_delete(store):
    dev = store.upsert_device(DEVICE)
    assert store.upsert_device(DEVICE) == dev  # stable id
    run_id = store.insert_run(None, dev, CONFIG, SOFTWARE, META, owner_pid=4242, owner_host="bench-pi")
    assert len(run_id) == 32
    running = store.get_run(run_id)
    assert running["status"] == "running" and running["model"] == "digits-cnn" and running["runtime"] == "onnx"
    assert running["memory_limit_mb"] == 256.0 and running["tags"] == {"batch": "b1"}
    with pytest.raises(StorageError, match="already exists"):
        store.insert_run(run_id, dev, CONFIG)

    assert store.append_latency(run_id, latency_rows(300)) == 300
    assert store.append_telemetry(run_id, telemetry_rows(5)) == 15
    store.finish_run(run_id, "ok", "finished", SUMMARY)

    run = store.get_run(run_id)
    assert run["status"] == "ok" and run["finished_at"] >= run["created_at"]
    assert run["config"] == CONFIG and run["software"] == SOFTWARE
    assert run["summary"]["latency_ms"]["p99"] == 2.9 and run["summary"]["nan_value"] is None
    assert (run["p50_ms"], run["p99_ms"], run["n"], run["peak_rss_mb"]) == (1.1, 2.9, 500, 98.25)
    assert run["mem_mechanism"] == "cgroup-v2" and run["oom_killed"] is False and run["gpu_util_mean_pct"] is None
    assert run["flags"] == ["thermal-throttle"] and run["device"]["info"]["extra"] == {"throttled": "0x0"}

    lat = store.latency(run_id)
    assert list(lat["seq"]) == list(range(300)) and set(lat["phase"]) == {"first", "warmup", "steady"}
    tel = store.telemetry(run_id, metrics=["rss_mb"])
    assert len(tel) == 5 and set(tel["unit"]) == {"MB"}
    assert store.telemetry(run_id, metrics="temp_c")["value"].isna().all()

    other = make_run(store, status="oom_killed")
    assert set(store.list_runs()["run_id"]) == {run_id, other}
    assert list(store.list_runs(status="oom_killed")["run_id"]) == [other]
    assert list(store.list_runs(limit=1)["run_id"]) == [other]  # newest first
    assert len(store.list_runs(device="bench-pi", model="digits-cnn", precision=["int8-static"])) == 2
    assert store.list_runs(since="2999-01-01").empty and len(store.list_runs(until="2999-01-01")) == 2
    assert store.get_run("nope") is None

    assert store.delete_runs([run_id]) == 1
    assert store.get_run(run_id) is None and store.latency(run_id).empty and store.telemetry(run_id).empty
    assert list(store.list_runs()["run_id"]) == [other]


def test_latency_arrays_are_in_seq_order_whatever_the_insertion_order(store):
    """Placed by seq from an unordered scan; a run with a gap (samples lost to a failed write) is read sorted."""
    import numpy as np

    dev = store.upsert_device(DEVICE)
    whole = store.insert_run(None, dev, CONFIG, SOFTWARE, META)
    rows = latency_rows(300_000)
    for lo in (200_000, 0, 100_000):  # three flushes, stored out of order
        store.append_latency(whole, rows[lo:lo + 100_000])
    gappy = store.insert_run(None, dev, CONFIG, SOFTWARE, META)
    store.append_latency(gappy, rows[150:] + rows[:100])  # seq 100..149 missing

    def expect(subset):
        return (np.array([r[1] for r in subset]), np.array([r[2] for r in subset]),
                np.array([{"first": 0, "warmup": 1, "steady": 2}[r[3]] for r in subset], dtype=np.int8))

    for got, want in ((store.latency_arrays(whole), expect(rows)),
                      (store.latency_arrays(whole, below_seq=123_457), expect(rows[:123_457])),
                      (store.latency_arrays(gappy), expect(rows[:100] + rows[150:])),
                      (store.latency_arrays(gappy, below_seq=120), expect(rows[:100])),
                      (store.latency_arrays("no-such-run"), expect([]))):
        assert [a.dtype for a in got] == [np.int64, np.int64, np.int8]
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


def test_bad_values_are_refused_and_change_nothing(store):
    run_id = make_run(store)
    with pytest.raises(StorageError, match="not one of"):
        store.finish_run(run_id, "exploded", None, {})
    with pytest.raises(StorageError, match="phase"):
        store.append_latency(run_id, [(1000, 1, 1, "steady"), (1001, 1, 1, "cooldown")])
    with pytest.raises(StorageError, match="no run"):
        store.finish_run("missing", "ok", None, {})
    assert len(store.latency(run_id)) == 100 and store.get_run(run_id)["status"] == "ok"


def test_a_failed_write_leaves_the_database_as_it_was(store):
    run_id = make_run(store)
    bad = pd.DataFrame({"seq": [1000, 1001], "t_ns": [1, 2], "latency_ns": [5, "not a number"],
                        "phase": ["steady", "steady"]})
    with pytest.raises(StorageError, match="cannot write"):
        store.append_latency(run_id, bad)
    assert len(store.latency(run_id)) == 100


def test_batched_append_speed(store, capsys):
    run_id = store.insert_run(None, None, CONFIG)
    rows = latency_rows(10_000)
    frame = pd.DataFrame(rows, columns=["seq", "t_ns", "latency_ns", "phase"])
    timings = []
    for batch in (rows, frame):
        t0 = time.perf_counter()
        store.append_latency(run_id, batch)
        timings.append(time.perf_counter() - t0)
    tel = telemetry_rows(3_334)
    t0 = time.perf_counter()
    store.append_telemetry(run_id, tel)
    t_tel = time.perf_counter() - t0
    assert len(store.latency(run_id)) == 20_000
    with capsys.disabled():
        print(f"\n10k latency rows as tuples: {timings[0] * 1e3:.1f} ms ({1e4 / timings[0]:,.0f} rows/s), "
              f"as a DataFrame: {timings[1] * 1e3:.1f} ms ({1e4 / timings[1]:,.0f} rows/s); "
              f"{len(tel)} telemetry rows: {t_tel * 1e3:.1f} ms (each including open, commit, close)")


# -- studies and interrupted runs -----------------------------------------------------------------------------------


def test_studies_and_cells(store):
    store.create_study("s1", "threads sweep", {"threads": [1, 2, 4]})
    store.create_study("s1", "renamed", {})  # resuming keeps the original
    run_id = make_run(store, study_id="s1")
    store.set_cell("s1", "threads=1", run_id, "ok")
    store.set_cell("s1", "threads=2", None, "pending")
    store.set_cell("s1", "threads=2", None, "running")
    cells = store.cells("s1")
    assert list(cells["cell_key"]) == ["threads=1", "threads=2"] and list(cells["status"]) == ["ok", "running"]
    studies = store.list_studies()
    assert studies.loc[0, "name"] == "threads sweep" and studies.loc[0, "n_cells"] == 2 and studies.loc[0, "n_ok"] == 1
    assert list(store.list_runs(study_id="s1")["run_id"]) == [run_id]
    store.set_study_status("s1", "ok")
    assert store.list_studies().loc[0, "status"] == "ok"


def test_mark_interrupted(store):
    alive = store.insert_run(None, None, CONFIG, owner_pid=111, owner_host="h")
    dead = store.insert_run(None, None, CONFIG, owner_pid=222, owner_host="h")
    done = make_run(store)
    assert store.mark_interrupted(lambda pid, host: pid == 111) == [dead]
    assert store.get_run(dead)["status"] == "interrupted" and "pid 222" in store.get_run(dead)["reason"]
    assert store.get_run(alive)["status"] == "running" and store.get_run(done)["status"] == "ok"
    assert store.mark_interrupted(lambda pid, host: False) == [alive]
    # the default checks pids on this host: this process is alive, a finished child is not
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    mine = store.insert_run(None, None, CONFIG)
    gone = store.insert_run(None, None, CONFIG, owner_pid=int(proc.stdout))
    assert store.mark_interrupted() == [gone] and store.get_run(mine)["status"] == "running"


# -- export / import ------------------------------------------------------------------------------------------------


def assert_same_tables(db_a: Path, db_b: Path) -> None:
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{db_a}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{db_b}' AS b (READ_ONLY)")
        for table in TABLES:
            n_a = con.execute(f"SELECT count(*) FROM a.{table}").fetchone()[0]
            n_b = con.execute(f"SELECT count(*) FROM b.{table}").fetchone()[0]
            only_a = con.execute(f"SELECT * FROM a.{table} EXCEPT ALL SELECT * FROM b.{table}").fetchall()
            only_b = con.execute(f"SELECT * FROM b.{table} EXCEPT ALL SELECT * FROM a.{table}").fetchall()
            assert (n_a, only_a, only_b) == (n_b, [], []), table


def awkward_run(store: Store) -> str:
    """A run whose text needs quoting in CSV: commas, quotes, newlines, an empty string and a literal \\N."""
    dev = store.upsert_device({**DEVICE, "hostname": 'odd, "host"\nname', "os": ""})
    run_id = store.insert_run(None, dev, {**CONFIG, "tags": {"note": "a,b \"c\" \\N"}}, {"x": "\\N"}, META)
    store.append_latency(run_id, latency_rows(50))
    store.append_telemetry(run_id, [(1, "host", "weird,metric", 0.1 + 0.2, "\\N"), (2, "host", "m", 1e-310, "")])
    store.finish_run(run_id, "crashed", 'segfault in "op" 7,\nthen exit', {**SUMMARY, "load_ms": 1 / 3})
    return run_id


@pytest.mark.parametrize("fmt,suffix", [("parquet", ""), ("csv", ""), ("parquet", ".zip"), ("csv", ".zip")])
def test_export_import_round_trips_exactly(tmp_path, fmt, suffix):
    src = Store(tmp_path / "src.duckdb")
    src.create_study("s1", "sweep", {"a": 1})
    ids = [make_run(src, study_id="s1"), make_run(src, status="oom_killed"), awkward_run(src)]
    src.set_cell("s1", "c1", ids[0], "ok")
    src.insert_run(None, None, CONFIG)  # not exported

    bundle = export_runs(src, ids, tmp_path / f"bundle{suffix}", fmt=fmt)
    assert bundle.exists() and (bundle.is_file() if suffix else (bundle / "manifest.json").is_file())
    with pytest.raises(UsageError, match="already exists"):  # a usage error: the CLI exits 2
        export_runs(src, ids, bundle, fmt=fmt)

    dst = Store(tmp_path / "dst.duckdb")
    assert sorted(import_bundle(dst, bundle)) == sorted(ids)
    src.delete_runs([r for r in src.list_runs()["run_id"] if r not in ids])
    assert_same_tables(src.path, dst.path)
    assert import_bundle(dst, bundle) == []  # idempotent
    assert_same_tables(src.path, dst.path)


def test_import_skips_runs_already_present_and_adds_new_ones(tmp_path):
    src = Store(tmp_path / "src.duckdb")
    first, second = make_run(src), make_run(src)
    export_runs(src, [first], tmp_path / "one")
    export_runs(src, None, tmp_path / "all.zip", fmt="csv")
    dst = Store(tmp_path / "dst.duckdb")
    assert import_bundle(dst, tmp_path / "one") == [first]
    assert import_bundle(dst, tmp_path / "all.zip") == [second]
    assert_same_tables(src.path, dst.path)


def test_export_of_unknown_runs_and_import_of_non_bundles(store, tmp_path):
    with pytest.raises(UsageError, match="no run nope"):  # a wrong id is the user's to fix: exit 2
        export_runs(store, ["nope"], tmp_path / "x")
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".edgeprof-export-*"))
    (tmp_path / "junk").mkdir()
    with pytest.raises(BundleError, match="not an edgeprof bundle: it has no manifest.json"):
        import_bundle(store, tmp_path / "junk")
    (tmp_path / "junk.zip").write_text("not a zip")
    with pytest.raises(BundleError, match="junk.zip is refused: it is not a readable zip file"):
        import_bundle(store, tmp_path / "junk.zip")


# -- bad paths ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/proc/edgeprof-test/runs.duckdb", "/proc/runs.duckdb"])
def test_unwritable_path_is_a_storage_error(path):
    with pytest.raises(StorageError) as err:
        Store(path)
    msg = str(err.value)
    assert msg.startswith(f"cannot write the database at {path}:") and "pass --db with a writable path" in msg
    assert "\n" not in msg


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory_is_a_storage_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(StorageError, match="cannot write the database at"):
            Store(ro / "runs.duckdb")
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("content", [b"hello, I am a text file\n" * 100, b"", b"x" * 8 + b"DUCK" + b"\0" * 4096])
def test_non_duckdb_file_is_refused_and_untouched(tmp_path, content):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    before = (file_digest(path), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path)))
    with pytest.raises(StorageError, match="pass --db with another path") as err:
        Store(path)
    assert str(path) in str(err.value)
    assert (file_digest(path), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path))) == before


def test_foreign_duckdb_database_is_refused(tmp_path):
    path = tmp_path / "other.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE stuff (a INTEGER)")
    before = file_digest(path)
    with pytest.raises(StorageError, match="did not create"):
        Store(path)
    assert file_digest(path) == before


def test_directory_path_is_refused(tmp_path):
    with pytest.raises(StorageError, match="directory"):
        Store(tmp_path)


# -- locks and a second process -------------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    from edgeprof.store import Store
    store = Store(sys.argv[1])
    run_id, count = sys.argv[2], int(sys.argv[3])
    seq, batches = 0, 0
    while batches < count:
        rows = [(seq + i, time.monotonic_ns(), 1000 + i, "steady") for i in range(500)]
        store.append_latency(run_id, rows)
        store.append_telemetry(run_id, [(time.monotonic_ns(), "host", "cpu", 1.0, "%")])
        seq += 500
        batches += 1
    store.finish_run(run_id, "ok", None, {"latency_ms": {"n": seq}})
    print(seq, batches)
""")


def test_reader_and_writer_processes_share_the_file(store, capsys):
    """A writer process appends 12 batches while this process reads in a loop: every batch lands whole, the reader
    never fails, and neither starves the other (a count, not a time, so a loaded machine only makes it slower)."""
    run_id = store.insert_run(None, None, CONFIG)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(store.path), run_id, "12"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reads = 0
    seen = 0
    while proc.poll() is None:
        assert len(store.list_runs()) == 1
        now = len(store.latency(run_id))
        assert now >= seen  # batches land whole and never go away
        assert now % 500 == 0
        seen = now
        reads += 1
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    total, batches = map(int, out.split())
    lat = store.latency(run_id)
    assert len(lat) == total and lat["seq"].is_unique and list(lat["seq"]) == list(range(total))
    assert len(store.telemetry(run_id)) == batches
    assert store.get_run(run_id)["status"] == "ok"
    with capsys.disabled():
        print(f"\nwriter process: {batches} batches of 500 rows in {time.monotonic() - t0:.1f} s while this process "
              f"made {reads} reads")
    assert batches == 12 and total == 6000 and reads > 5


def test_lock_held_too_long_names_the_holder(tmp_path):
    store = Store(tmp_path / "runs.duckdb", timeout_s=0.5)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
         " time.sleep(30)", str(store.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(StorageError) as err:
            store.list_runs()
        assert 0.4 < time.monotonic() - t0 < 3
        assert f"process {holder.pid}" in str(err.value) and "busy" in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    assert store.list_runs().empty  # free again


def test_new_run_ids_sort_by_time():
    a = new_run_id()
    time.sleep(0.002)
    b = new_run_id()
    assert a < b and len(a) == len(b) == 32
