"""The metric catalog (telemetry.catalog) and the backend registry (runtimes.registry): one home per concept."""

from __future__ import annotations

import re
from pathlib import Path

from edgeprof.telemetry import catalog

PACKAGE = Path(__file__).resolve().parents[1] / "edgeprof"


def test_labels_say_what_a_person_reads():
    assert catalog.label("cpu.worker_pct") == "worker CPU (% of one core)"
    assert catalog.label("mem.file_mb") == "file pages charged to the run (MB)"
    assert catalog.label("cpu.core3_pct") == "core 3 busy (%)"
    assert catalog.label("gpu0.util_pct") == "GPU 0 utilization (%)"
    assert catalog.label("temp.cpu_thermal_c") == "temperature cpu thermal (C)"
    assert catalog.label("vendor.unknown") == "vendor.unknown"
    assert catalog.unit("mem.major_faults_per_s") == "/s"
    assert catalog.device_class("gpu1.power_w") == "gpu"
    assert catalog.power_metrics(["power.total_w", "power.rapl_w", "gpu0.power_w"], "cpu") == ["power.rapl_w"]


def test_every_metric_a_source_writes_is_declared():
    written = set()
    for path in (PACKAGE / "telemetry").glob("*.py"):
        for name in re.findall(r"\(f?\"([a-z]+[0-9{}a-z]*\.[a-z0-9_{}()\[\]:.]+)\",\s*[^,]+,\s*\"", path.read_text()):
            written.add(re.sub(r"\{[^}]*\}", "0", name))
    written -= {"mem.0_mb", "power.total"}  # mem.{key}_mb is anon/file; power.total is the prefix of a rail's rows
    assert written, "the pattern found no metric names"
    undeclared = sorted(n for n in written if catalog.family(n) is None)
    assert not undeclared, f"metrics written by telemetry sources without a family in telemetry.catalog: {undeclared}"
