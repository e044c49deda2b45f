"""The column exercise: the Jetson power mode (``nvpmodel -q``) on every run is one row in ``store.columns`` plus its
migration line; it is read where the Jetson's static facts are (``telemetry.jetson``, through ``static_info``) and
flows to the store, `runs --json`, `show --json`, bundles, and older bundles and databases still import and open.

No Jetson is here: a fake ``nvpmodel`` prints what the real one prints (``NV Power Mode: MAXN_SUPER`` then the mode's
number, as captured on Jetsons: see ``telemetry/jetson.py``), and the platform is declared a Jetson in the test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import duckdb
import pytest
from helpers import ROOT, cli_env

from edgeprof import telemetry
from edgeprof.config import RunConfig
from edgeprof.run import runner
from edgeprof.store import Store, columns
from edgeprof.store.bundle import export_runs, import_bundle
from edgeprof.telemetry import jetson

CAPTURED = "NV Power Mode: MAXN\n0\n"  # nvpmodel -q on a Jetson (JetPack 7)
OLD_BUNDLE = ROOT / "tests" / "data" / "bundles" / "bundle-duckdb-1.5.6.zip"
V1_DB = ROOT / "tests" / "data" / "store" / "v1.duckdb"


def test_nvpmodel_output_is_parsed():
    assert jetson.parse_nvpmodel(CAPTURED) == ("MAXN", 0)
    assert jetson.parse_nvpmodel("NVPM WARN: fan mode is not set!\nNV Power Mode: 15W\n1\n") == ("15W", 1)
    assert jetson.parse_nvpmodel("NVPM ERROR: failed to read PARAM\n") is None
    assert jetson.power_mode(runner=lambda args: CAPTURED) == "MAXN"

    def fails(args):
        raise subprocess.CalledProcessError(1, args)

    assert jetson.power_mode(runner=fails) is None
    assert jetson.power_mode(nvpmodel="nvpmodel-not-installed-here") is None


@pytest.fixture
def on_a_jetson(tmp_path, monkeypatch):
    """This machine declared a Jetson whose nvpmodel reports MAXN_SUPER (mode 2, as on an Orin Nano Super)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    fake = folder / "nvpmodel"
    fake.write_text(f"#!{sys.executable}\nimport sys\nassert sys.argv[1:] == ['-q']\n"
                    "print('NV Power Mode: MAXN_SUPER')\nprint(2)\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(telemetry, "platform_kind", lambda *a, **k: "jetson")


def test_static_info_has_the_power_mode_on_a_jetson_only(on_a_jetson, monkeypatch):
    assert telemetry.static_info()["power_mode"] == "MAXN_SUPER"
    monkeypatch.setattr(telemetry, "platform_kind", lambda *a, **k: "generic")
    assert telemetry.static_info()["power_mode"] is None


def test_the_power_mode_flows_to_the_store_the_cli_and_bundles(tmp_path, on_a_jetson):
    db = tmp_path / "runs.duckdb"
    handle = runner.start_run(RunConfig(model="digits-cnn", iterations=20, warmup=3), db)
    result = handle.wait(120)
    assert result and result["status"] == "ok", result
    run_id = handle.run_id
    store = Store(db)
    run = store.get_run(run_id)
    assert run["power_mode"] == "MAXN_SUPER" and run["summary"]["device"]["power_mode"] == "MAXN_SUPER"

    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, timeout=120,
                              env=cli_env(), cwd=ROOT)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert [r["power_mode"] for r in json.loads(cli("runs", "--json", "--db", str(db)))] == ["MAXN_SUPER"]
    assert json.loads(cli("show", run_id, "--json", "--db", str(db)))["power_mode"] == "MAXN_SUPER"
    assert "power mode" in cli("runs", "--db", str(db)).splitlines()[0]

    bundle = export_runs(store, [run_id], tmp_path / "now")
    other = Store(tmp_path / "other.duckdb")
    assert import_bundle(other, bundle) == [run_id]
    assert other.get_run(run_id)["power_mode"] == "MAXN_SUPER"

    # the same bundle as the previous schema wrote it (no power_mode column): the summary refills it
    before = tmp_path / "before"
    shutil.copytree(bundle, before)
    runs = before / "runs.parquet"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT * EXCLUDE (power_mode) FROM '{runs}') TO '{before / 'runs2.parquet'}' (FORMAT parquet)")
    (before / "runs2.parquet").replace(runs)
    manifest = json.loads((before / "manifest.json").read_text())
    manifest["schema_version"] -= 1
    (before / "manifest.json").write_text(json.dumps(manifest))
    third = Store(tmp_path / "third.duckdb")
    assert import_bundle(third, before) == [run_id]
    assert third.get_run(run_id)["power_mode"] == "MAXN_SUPER"


def test_older_bundles_and_databases_read_without_a_power_mode(tmp_path):
    store = Store(tmp_path / "runs.duckdb")
    ids = import_bundle(store, OLD_BUNDLE)
    assert ids and all(store.get_run(i)["power_mode"] is None for i in ids)
    db = tmp_path / "v1.duckdb"
    shutil.copy(V1_DB, db)
    old = Store(db)  # migrated to this schema on open
    assert old.get_run("run-v1")["power_mode"] is None
    assert columns.BY_NAME["power_mode"].summary == "device.power_mode"
