"""What differs between the Python 3.10 build (JetPack 6: ONNX Runtime 1.23.2, DuckDB 1.5.6) and the 3.11+ build
(ONNX Runtime 1.32, DuckDB 2.0), and what must not: each difference reaches the user as one sentence that says what to
do, and run bundles move between the builds both ways. CI runs these on both builds (marker ``portability``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import duckdb
import pytest
from helpers import ROOT, cli_env

from edgeprof.errors import ModelError
from edgeprof.store import TABLES, Store
from edgeprof.store.bundle import import_bundle
from edgeprof.store.schema import RENAMED_COLUMNS

pytestmark = pytest.mark.portability
BUNDLES = ROOT / "tests" / "data" / "bundles"
V1_FIXTURE = ROOT / "tests" / "data" / "store" / "v1.duckdb"


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, cwd=ROOT,
                          env=cli_env(), timeout=timeout)


def _ort_version() -> tuple[int, int]:
    import onnxruntime

    return tuple(int(x) for x in onnxruntime.__version__.split(".")[:2])


# -- run bundles: the portable format -------------------------------------------------------------------------------

def test_bundles_of_both_builds_are_committed():
    made_by = {p.name.removeprefix("bundle-duckdb-").removesuffix(".zip")[:3] for p in BUNDLES.glob("bundle-*.zip")}
    assert {"1.5", "2.0"} <= made_by, "run tests/data/bundles/make_bundle.py with both builds"


@pytest.mark.parametrize("bundle", sorted(BUNDLES.glob("bundle-duckdb-*.zip")), ids=lambda p: p.stem)
def test_a_bundle_from_either_build_imports_here_unchanged(bundle, tmp_path):
    source = bundle.with_name(bundle.name.replace("bundle-", "source-").replace(".zip", ".duckdb"))
    dst = Store(tmp_path / "runs.duckdb")
    ids = import_bundle(dst, bundle)
    assert len(ids) == 3
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{source}' AS a (READ_ONLY)")
        con.execute(f"ATTACH '{dst.path}' AS b (READ_ONLY)")
        for table in TABLES:
            cols = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'a' AND table_name = ? "
                "ORDER BY ordinal_position", [table]).fetchall()]
            if not cols:  # a table newer than the bundle's schema (run_groups): nothing came, nothing is there
                assert con.execute(f"SELECT count(*) FROM b.{table}").fetchone()[0] == 0, table
                continue
            sel = ", ".join(f'"{c}"' for c in cols)
            here = ", ".join(f'"{RENAMED_COLUMNS.get(c, c)}"' for c in cols)  # schema 4 renamed two runs columns
            n = con.execute(f"SELECT count(*) FROM a.{table}").fetchone()[0]
            diff = con.execute(f"(SELECT {sel} FROM a.{table} EXCEPT ALL SELECT {here} FROM b.{table}) UNION ALL "
                               f"(SELECT {here} FROM b.{table} EXCEPT ALL SELECT {sel} FROM a.{table})").fetchall()
            assert diff == [], (table, n, diff[:3])
    assert dst.get_run(sorted(ids)[0])["summary"]["latency_ms"]["p50"] == 1.1


# -- DuckDB: a newer file ---------------------------------------------------------------------------------------------

def test_a_duckdb2_database_opens_in_duckdb2_and_says_what_to_do_in_duckdb_1_5(tmp_path):
    """v1-duckdb2.duckdb is in DuckDB 2's own storage format, as every database made by the Python 3.11+ build is."""
    path = tmp_path / "runs.duckdb"
    shutil.copy(V1_FIXTURE.with_name("v1-duckdb2.duckdb"), path)
    r = cli("runs", "--db", str(path), "--json")
    assert "Traceback" not in r.stderr
    if int(duckdb.__version__.split(".")[0]) >= 2:
        assert r.returncode == 0, r.stderr
        assert [run["run_id"] for run in json.loads(r.stdout)] == ["run-v1"]
    else:
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert f"{path} was written by a newer DuckDB than the {duckdb.__version__} installed here" in r.stderr
        assert "`export` there and `import` here" in r.stderr and "--db" in r.stderr


def test_the_newer_duckdb_message_from_duckdb_1_5_text(tmp_path):
    err = duckdb.IOException("IO Error: Trying to read a database file with version number 69, but we can only read "
                             "versions between 64 and 68.\nThe database file was created with a newer version of DuckDB.")
    store = Store.__new__(Store)
    store.path = tmp_path / "runs.duckdb"
    message = str(store._open_error(err, read_only=True))
    assert message.startswith(f"{store.path} was written by a newer DuckDB") and "DuckDB 1.5" in message


# -- ONNX Runtime: int8-dynamic needs ConvInteger with int8 weights ---------------------------------------------------

def test_the_int8_conv_probe_matches_the_onnx_runtime_version():
    from edgeprof.runtimes.onnx import int8_conv_supported

    assert int8_conv_supported() == (_ort_version() >= (1, 24))


@pytest.mark.slow
def test_int8_dynamic_onnx_runs_or_says_what_to_use_instead(tmp_path):
    from edgeprof.runtimes.onnx import int8_conv_supported

    r = cli("run", "--model", "digits-cnn", "--precision", "int8-dynamic", "--runtime", "onnx", "--iterations", "20",
            "--db", str(tmp_path / "runs.duckdb"), "--json", "--quiet")
    assert "Traceback" not in r.stderr
    if int8_conv_supported():
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["status"] == "ok"
    else:
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 3 and len(lines) == 1, r.stderr  # recorded as a failed run
        assert "1.24 or newer" in lines[0] and "int8-static" in lines[0]


def test_an_int8_dynamic_file_made_elsewhere_fails_to_load_in_one_sentence(tmp_path):
    from edgeprof.runtimes import onnx as ort_backend

    exc = RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for "
                       "ConvInteger(10) node with name 'conv_quant'")
    message, fix = ort_backend._explain(tmp_path / "m-int8-dynamic.onnx", exc)
    assert "ConvInteger with int8 weights" in message and "1.24 or newer" in message
    assert "int8-static" in fix
    assert isinstance(ModelError(message, fix), ModelError)
