"""One telemetry panel (``ui.telemetry_charts`` + ``ui.telemetry_panel``): the Run page (a finished run) and the Runs
page (the same run, stored) show the same charts and sentences, and a device class no chart knows by name (an NPU's
metrics, declared only in the catalog) gets its chart on the Runs page without a page edit."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from helpers import ROOT
from streamlit.testing.v1 import AppTest

from edgeprof import ui
from edgeprof.run import active_runs
from edgeprof.store import Store
from edgeprof.telemetry import catalog

GRID = ("CPU", "Memory", "GPU", "Temperature and frequency", "NPU")
def _frame(metrics: dict[str, float], seconds: int = 3) -> pd.DataFrame:
    rows = [(int(t * 1e9), name.split(".")[0], name, value + t, catalog.unit(name) or "")
            for t in range(seconds) for name, value in metrics.items()]
    return ui.telemetry_frame(rows, 0)


def test_the_cells_follow_the_catalog_device_classes():
    tel = _frame({"cpu.total_pct": 40.0, "cpu.worker_pct": 95.0, "mem.charged_mb": 30.0, "mem.worker_rss_mb": 80.0})
    sources = [{"name": "nvml", "available": False, "reason": "NVML Shared Library Not Found"}]
    cells = ui.telemetry_charts(tel, sources=sources, memory_limit_mb=64.0)
    assert [c.device for c in cells] == ["cpu", "memory", "gpu", "board"]
    cpu, memory, gpu, board = cells
    assert cpu.figure.layout.title.text == "CPU" and cpu.figure.layout.yaxis.title.text == "CPU (%)"
    assert memory.figure.layout.yaxis.title.text == "worker memory (MB)" and memory.caption == ui.MEMORY_CHART_NOTE
    assert gpu.figure is None and gpu.reason == "No GPU telemetry (nvml: NVML Shared Library Not Found)."
    assert board.figure is None and board.reason == "No temperature or CPU-frequency sensor is readable on this device."

    with_npu = ui.telemetry_charts(_frame({"cpu.total_pct": 40.0, "npu0.util_pct": 70.0, "npu0.power_w": 1.9,
                                           "npu0.temp_c": 50.0}))
    board, npu = with_npu[-2:]
    assert npu.device == "npu" and npu.figure.layout.title.text == "NPU"  # the accelerator chart, as the GPU's
    assert npu.figure.layout.yaxis.title.text == "utilization (%)" and npu.figure.layout.yaxis2.title.text == "power (W)"
    assert [t.name for t in npu.figure.data] == ["NPU 0 utilization (%)", "NPU 0 power (W) (right)"]
    assert [t.name for t in board.figure.data] == ["NPU 0 temperature (C)"]  # every temperature on the board chart


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "runs.duckdb"
    monkeypatch.setenv("EDGEPROF_DB", str(path))
    yield path
    for h in active_runs():
        h.stop()
        h.wait(15)


def _grid(at: AppTest) -> dict:
    """What a person reads in the panel: each chart's title with its axis titles and legend, and the sentences."""
    charts = {}
    for e in at.get("plotly_chart"):
        fig = json.loads(e.proto.spec)
        title = fig["layout"].get("title", {}).get("text")
        if title in GRID:
            charts[title] = (fig["layout"]["yaxis"].get("title", {}).get("text"), [t.get("name") for t in fig["data"]])
    said = [str(e.value) for e in list(at.info) + list(at.caption)
            if str(e.value).startswith(("No GPU telemetry", "No temperature")) or e.value == ui.MEMORY_CHART_NOTE]
    return {"charts": charts, "said": said}


def test_the_run_and_runs_pages_draw_one_panel(db):
    at = AppTest.from_file(str(ROOT / "views" / "1_Run.py"), default_timeout=60)
    at.run()
    at.selectbox(key="model").select("digits-cnn")
    at.number_input(key="threads").set_value(1)  # the worker has CPU priority: leave this process a core
    at.number_input(key="duration_s").set_value(0.5)
    at.button(key="start").click().run()
    deadline = time.monotonic() + 90
    while not at.success and time.monotonic() < deadline:
        time.sleep(0.3)
        at.run()
        assert not at.exception, at.exception
    assert "finished normally" in at.success[0].value
    run_page = _grid(at)
    assert {"CPU", "Memory"} <= set(run_page["charts"]) and "NPU" not in run_page["charts"]
    assert run_page["charts"]["CPU"][0] == "CPU (%)" and run_page["charts"]["Memory"][0] == "worker memory (MB)"
    assert ui.MEMORY_CHART_NOTE in run_page["said"]
    assert "GPU" in run_page["charts"] or any(s.startswith("No GPU telemetry (") for s in run_page["said"])

    store = Store(db)
    rid = str(store.list_runs().iloc[0]["run_id"])
    runs = AppTest.from_file(str(ROOT / "views" / "2_Runs.py"), default_timeout=60)
    runs.query_params["run_id"] = rid
    runs.run()
    assert not runs.exception, runs.exception
    stored = _grid(runs)
    assert stored["said"] == run_page["said"]
    assert {t: axis for t, (axis, _) in stored["charts"].items()} == {t: axis for t, (axis, _) in
                                                                     run_page["charts"].items()}

    t0 = int(store.telemetry(rid)["t_ns"].min())
    store.append_telemetry(rid, [(t0 + i * 100_000_000, "hailo", "npu0.util_pct", 60.0 + i, "%") for i in range(10)])
    runs.run()
    assert not runs.exception, runs.exception
    assert _grid(runs)["charts"]["NPU"] == ("utilization (%)", ["NPU 0 utilization (%)"])
