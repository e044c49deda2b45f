"""The NPU exercise: a Hailo NPU read from ``hailortcli`` is one telemetry module (``telemetry/hailo.py``), its
families in ``catalog.FAMILIES`` and one entry in ``telemetry.SOURCES``; everything downstream (the summary with its
energy, the store, ``show``, charts, Compare's overlay, ``devices``) shows it without naming it.

No Hailo NPU is here, so a fake ``hailortcli`` prints the real output formats (tests/data/telemetry/hailo-8l-pi5,
see its README) and a fake ``hailo_platform`` (tests/fakes) gives the chip temperature as HailoRT's binding does; the
source is enabled only in these tests, through ``$EDGEPROF_SOURCES`` (it is registered for the Raspberry Pi)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT, cli_env

from edgeprof import charts, compare, telemetry
from edgeprof.store import Store
from edgeprof.telemetry import catalog, hailo

DATA = ROOT / "tests" / "data" / "telemetry" / "hailo-8l-pi5"
FAKES = ROOT / "tests" / "fakes"
SOURCE = "edgeprof.telemetry.hailo:HailoSource"

FAKE_HAILORTCLI = '''#!{python}
"""hailortcli as HailoRT 4.21 prints on a Pi 5 with a Hailo-8L (captured formats in {data})."""
import pathlib, sys, time
data = pathlib.Path({data!r})
args = sys.argv[1:]
if args[:2] == ["fw-control", "identify"]:
    sys.stdout.write((data / "identify.txt").read_text())
elif args == ["measure-power"]:
    sys.stdout.write((data / "measure-power.txt").read_text())
elif args == ["monitor"]:
    screen = (data / "monitor.txt").read_text()
    sys.stdout.write("\\x1b[?1049h")
    while True:
        sys.stdout.write("\\x1b[H" + screen + "\\x1b[2J")
        sys.stdout.flush()
        time.sleep(0.2)
else:
    sys.exit("hailortcli: unknown command " + " ".join(args))
'''


@pytest.fixture
def fake_hailortcli(tmp_path):
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "hailortcli"
    script.write_text(FAKE_HAILORTCLI.format(python=sys.executable, data=str(DATA)))
    script.chmod(0o755)
    return script


def test_the_parsers_read_the_captured_formats():
    ident = hailo.parse_identify((DATA / "identify.txt").read_text())
    assert ident["architecture"] == "HAILO8L" and ident["board"] == "Hailo-8"  # the board name is not the chip
    assert ident["firmware"].startswith("4.21.0 ") and ident["device"] == "0000:01:00.0"
    screen = (DATA / "monitor.txt").read_text()
    assert hailo.parse_monitor("\x1b[?1049h\x1b[H" + screen + "\x1b[2J") == {"0000:01:00.0": (37.5, "HAILO8L")}
    assert hailo.parse_monitor("Monitor did not retrieve any files.\n") == {}
    assert hailo.parse_power((DATA / "measure-power.txt").read_text()) == 1.87
    assert hailo.parse_power("Failed power measurement, status 8") is None
    sys.path.insert(0, str(FAKES))
    try:
        import hailo_platform

        assert hailo.chip_temperature_c(hailo_platform.Device().control.get_chip_temperature()) == pytest.approx(50.9)
    finally:
        sys.path.remove(str(FAKES))


def test_the_catalog_declares_the_npu():
    assert catalog.label("npu0.util_pct") == "NPU 0 utilization (%)"
    assert catalog.label("npu0.power_w") == "NPU 0 power (W)"
    assert catalog.device_class("npu0.temp_c") == "npu" and catalog.unit("npu0.temp_c") == "C"
    assert catalog.power_metrics(["npu0.power_w", "gpu0.power_w"], "npu") == ["npu0.power_w"]
    assert [s.name for s in telemetry.default_sources("rpi")] == ["host", "rpi", "hailo"]


def test_without_hailortcli_the_source_says_why():
    src = hailo.HailoSource(hailortcli="hailortcli-not-installed-here")
    assert src.status() == ("hailo", False, "no Hailo NPU found (hailortcli-not-installed-here not found: install "
                                            "hailo-all)", None)


def test_the_source_reads_utilization_power_and_temperature(fake_hailortcli, monkeypatch):
    monkeypatch.syspath_prepend(str(FAKES))
    src = hailo.HailoSource(hailortcli=str(fake_hailortcli), power_interval_s=0.0, temp_interval_s=0.0)
    try:
        available, reason = src.probe()
        assert available, reason
        assert reason.startswith("HAILO-8L AI ACC M.2 B+M KEY MODULE EXT TMP (HAILO8L, firmware 4.21.0)")
        import time

        rows: dict[str, float] = {}
        for _ in range(100):  # the monitor's first screen arrives from its own process
            rows.update({m: v for m, v, _ in src.read()})
            if "npu0.util_pct" in rows:
                break
            time.sleep(0.05)
        assert rows == {"npu0.util_pct": 37.5, "npu0.power_w": 1.87, "npu0.temp_c": pytest.approx(50.9)}
    finally:
        src.close()


def test_a_run_with_the_npu_source_shows_it_everywhere(tmp_path, fake_hailortcli):
    """A real run of a bundled model on the tests' backend (which declares it runs on an NPU) with the fake Hailo
    source: the stored telemetry, the summary's NPU block and energy, `show`, `devices`, a chart and the overlay."""
    db = tmp_path / "runs.duckdb"
    env = {**cli_env(), "EDGEPROF_SOURCES": SOURCE, "EDGEPROF_BACKENDS": "backend_for_tests",
           "PATH": f"{fake_hailortcli.parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), str(FAKES)])}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, timeout=300,
                              env=env, cwd=ROOT)

    r = cli("run", "--model", "digits-cnn", "--backend", "test-onnx", "--backend-option", "pause_ms=40",
            "--iterations", "60", "--warmup", "5", "--db", str(db), "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    run_id = json.loads(r.stdout)["run_id"]
    store = Store(db)
    tel = store.telemetry(run_id, source="hailo")
    assert {"npu0.util_pct", "npu0.power_w", "npu0.temp_c"} <= set(tel["metric"].astype(str))
    summary = store.get_run(run_id)["summary"]
    assert summary["npu"]["util_mean_pct"] == pytest.approx(37.5)
    assert summary["npu"]["power_mean_w"] == pytest.approx(1.87)
    assert summary["npu"]["temp_max_c"] == pytest.approx(50.9)
    energy = summary["energy"]
    assert "npu" in energy["scope"] and "hailortcli npu0 power" in energy["source"], energy
    assert energy["avg_power_w"] >= 1.87

    shown = cli("show", run_id, "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    assert "  NPU          util mean 37.5%, power mean 1.87 W, temperature max 50.9 C" in shown.stdout
    assert "hailortcli npu0 power" in shown.stdout  # the energy line names the sensor

    devices = cli("devices", "--json", "--db", str(db))
    assert devices.returncode == 0, devices.stderr
    assert json.loads(devices.stdout)["measures"]["npu"] == ["hailo"]

    frame = store.telemetry(run_id)
    frame = frame.assign(t_s=(frame["t_ns"] - frame["t_ns"].min()) / 1e9)
    fig = charts.accelerator_figure(frame, "npu")
    assert fig.layout.title.text == "NPU"
    assert [t.name for t in fig.data] == ["NPU 0 utilization (%)", "NPU 0 power (W) (right)"]
    assert fig.layout.yaxis2.title.text == "power (W)"
    assert "NPU 0 temperature (C)" in [t.name for t in charts.thermal_figure(frame).data]
    assert charts.gpu_figure(frame) is None  # no GPU here: the GPU chart still says nothing
    overlay = compare.overlay_metrics(store, [run_id])
    assert overlay["npu0.power_w"] == "NPU 0 power (W)" and overlay["npu0.util_pct"] == "NPU 0 utilization (%)"
    assert list(overlay)[:2] == ["cpu.worker_pct", "cpu.total_pct"]


def test_the_overlay_offers_no_accelerator_a_run_did_not_measure(tmp_path):
    store = Store(tmp_path / "empty.duckdb")
    assert list(compare.overlay_metrics(store, [])) == list(compare.OVERLAY_METRICS)
