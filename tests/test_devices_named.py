"""Devices are grouped by device id and read by their names: two boards that share a hostname (every Raspberry Pi is
"raspberrypi" until renamed) stay two devices on the Compare page, in the Runs table and its device filter."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from helpers import ROOT
from streamlit.testing.v1 import AppTest

from edgeprof import compare
from edgeprof.config import RunConfig
from edgeprof.run import runner
from edgeprof.store import Store

OTHER = "b" * 16


def test_device_labels_are_names_and_never_merge_two_devices():
    runs = pd.DataFrame({"run_id": ["r1", "r2", "r3", "r4"], "device_id": ["a" * 16, OTHER, OTHER, "c" * 16],
                         "hostname": ["vm", "vm", "vm", "vm"], "device_name": ["pi-03", "pi-07", "pi-07", "vm"]})
    assert compare.device_labels(runs) == {"a" * 16: "pi-03", OTHER: "pi-07", "c" * 16: "vm"}
    runs["device_name"] = ["vm", "vm", "vm", None]
    labels = compare.device_labels(runs)
    assert len(set(labels.values())) == 3 and labels[OTHER] == "vm (bbbbbb)", labels
    old = pd.DataFrame({"run_id": ["r1"], "device_id": [None], "hostname": ["lab-1"]})  # no id: the hostname
    assert compare.device_labels(old) == {"lab-1": "lab-1"}


@pytest.fixture
def two_named_devices(tmp_path, monkeypatch):
    """Two runs of one configuration stored here; the second is moved to another device of the same hostname, and
    the devices are named pi-03 and pi-07 (as ``devices --name`` and an imported bundle would)."""
    db = tmp_path / "runs.duckdb"
    monkeypatch.setenv("EDGEPROF_DB", str(db))
    ids = []
    for _ in range(2):
        h = runner.start_run(RunConfig("digits-cnn", duration_s=0.2, warmup=5, threads=1), db)
        assert h.wait(60)["status"] == "ok"
        ids.append(h.run_id)
    store = Store(db)
    local = store.list_runs().iloc[0]
    store.upsert_device({"device_id": OTHER, "hostname": local["hostname"], "device_name": "pi-07"})
    con = duckdb.connect(str(db))
    try:
        con.execute("UPDATE devices SET device_name = 'pi-03' WHERE device_id = ?", [local["device_id"]])
        con.execute("UPDATE runs SET device_name = 'pi-03'")
        con.execute("UPDATE runs SET device_id = ?, device_name = 'pi-07' WHERE run_id = ?", [OTHER, ids[1]])
    finally:
        con.close()
    return db


def test_compare_sets_two_named_devices_of_one_hostname_side_by_side(two_named_devices):
    runs = Store(two_named_devices).list_runs()
    assert runs["hostname"].nunique() == 1 and runs["device_id"].nunique() == 2
    at = AppTest.from_file(str(ROOT / "views" / "4_Compare.py"), default_timeout=90).run()
    at.radio(key="cmp_mode").set_value("groups of runs by device").run()
    assert not at.exception, at.exception
    assert set(at.multiselect(key="cmp_devices").value) == set(runs["device_id"])
    assert "fewer than two devices" not in " ".join(str(i.value) for i in at.info)
    table = at.dataframe[0].value.to_string()
    assert "pi-03" in table and "pi-07" in table

    at = AppTest.from_file(str(ROOT / "views" / "2_Runs.py"), default_timeout=90).run()
    assert not at.exception, at.exception
    assert set(at.multiselect(key="runs_device").options) == {"pi-03", "pi-07"}
    shown = at.dataframe[0].value
    assert sorted(shown["device"]) == ["pi-03", "pi-07"]
    at.multiselect(key="runs_device").select("pi-07").run()
    assert list(at.dataframe[0].value["device"]) == ["pi-07"]
