"""Why a run is slow, tested on captured and format-true fixtures (tests/data/telemetry/README.md says where each
comes from) and on made-up facts for the pure parts: memory pressure, energy per inference, operator profiles and
their comparison, the store's columns, the CLI's lines, the report's sentence. Real runs are in test_why_runs.py."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from edgeprof import charts, ops
from edgeprof.cli.text import ops_table, run_summary
from edgeprof.config import RunConfig
from edgeprof.device import memory_pressure
from edgeprof.errors import ConfigError, UsageError
from edgeprof.run.summary import RunFacts, build_summary, energy_summary, pressure_summary, profile_summary
from edgeprof.runtimes.profile import ort_profile, read_trace_events
from edgeprof.store import Store
from edgeprof.store.schema import MIGRATIONS, SCHEMA_VERSION, WHY_COLUMNS
from edgeprof.study import report
from edgeprof.study.config import StudyConfig
from edgeprof.telemetry import memory, power, rpi
from edgeprof.worker.limits import Mechanism

DATA = Path(__file__).resolve().parent / "data"
PSI = DATA / "telemetry" / "psi"
TRACES = DATA / "profiles"


CUDA_RUN = {"name": "onnxruntime", "execution_provider": "cuda"}  # the backend block of a run on the GPU

def values(rows) -> dict:
    return {m: v for m, v, _ in rows}


# ------------------------------------------------------------------------------------------- memory pressure

def test_psi_parser_reads_the_captured_files():
    system = memory.parse_psi((PSI / "proc-pressure-memory").read_text())
    cgroup = memory.parse_psi((PSI / "cgroup2-memory.pressure").read_text())
    assert set(system) == {"some", "full"} and system["some"]["total"] == 52374655
    assert cgroup["some"] == {"avg10": 23.41, "avg60": 5.52, "avg300": 1.2, "total": 4664600}
    assert cgroup["full"]["total"] == 3632330
    assert memory.parse_psi("") == {} and memory.parse_psi("some avg10=x") == {}


def test_memory_stat_figures_of_both_cgroup_versions():
    v1 = memory.stat_figures(memory.parse_memory_stat((PSI / "cgroup1-memory.stat").read_text()), "cgroup1")
    assert v1 == {"major_faults": 888.0, "refaults": 970978.0, "anon": 60186624.0, "file": 10457088.0}
    v2 = memory.stat_figures(memory.parse_memory_stat((PSI / "cgroup2-memory.stat").read_text()), "cgroup2")
    assert v2 == {"major_faults": 877.0, "refaults": 968412.0, "anon": 59736064.0, "file": 10612736.0}
    old = memory.stat_figures({"total_workingset_refault": 12, "total_pgmajfault": 3}, "cgroup1")  # before 5.9
    assert old["refaults"] == 12.0 and old["anon"] is None


def test_worker_major_faults_from_proc_stat():
    text = "1234 (python3 -m edgeprof) R 1 2 3 4 5 6 100 7 42 8 9 10 11 12 13 14 15 16 17 18 19 20"
    assert memory.pid_faults(text) == 42.0 + 8.0
    assert memory.pid_faults(Path(f"/proc/{os.getpid()}/stat").read_text()) >= 0
    assert memory.pid_faults("garbage") is None


def psi_files(tmp_path):
    cg = tmp_path / "cg-memory.pressure"
    system = tmp_path / "proc-pressure-memory"
    stat = tmp_path / "memory.stat"
    shutil.copy(PSI / "cgroup2-memory.pressure", cg)
    shutil.copy(PSI / "proc-pressure-memory", system)
    shutil.copy(PSI / "cgroup1-memory.stat", stat)
    return cg, system, stat


def bump(path: Path, **add):
    """Add to the counters of a PSI (some=, full=) or memory.stat file, as the kernel would between two ticks."""
    out = []
    for line in path.read_text().splitlines():
        key, *rest = line.split()
        if key in add and rest and rest[-1].startswith("total="):
            rest[-1] = f"total={int(rest[-1][6:]) + add[key]}"
        elif key in add:
            rest = [str(int(rest[0]) + add[key])]
        out.append(" ".join([key, *rest]))
    path.write_text("\n".join(out) + "\n")


def test_pressure_source_reports_the_share_of_each_interval(tmp_path, monkeypatch):
    cg, system, stat = psi_files(tmp_path)
    src = memory.MemoryPressureSource(str(cg), str(stat), "cgroup1", system_pressure=str(system))
    ok, reason = src.probe()
    assert ok and "worker's cgroup" in reason and str(stat) in reason
    clock = iter([100.0, 100.5])
    monkeypatch.setattr(memory.time, "monotonic", lambda: next(clock))
    assert "mem.pressure_some_pct" not in values(src.read(4242))  # the first tick only sets the baseline
    bump(cg, some=300_000, full=100_000)  # 0.3 s and 0.1 s of stall in 0.5 s
    bump(stat, total_pgmajfault=50, total_workingset_refault_file=1000)
    got = values(src.read(4242))
    assert got["mem.pressure_some_pct"] == pytest.approx(60.0) and got["mem.pressure_full_pct"] == pytest.approx(20.0)
    assert got["mem.major_faults_per_s"] == pytest.approx(100.0) and got["mem.refaults_per_s"] == pytest.approx(2000.0)
    assert got["mem.anon_mb"] == pytest.approx(60186624 / 2**20) and got["mem.file_mb"] == pytest.approx(10457088 / 2**20)
    assert src.describe() == {"scope": "cgroup", "path": str(cg), "faults_from": str(stat)}
    src.close()


def test_pressure_source_falls_back_to_the_system_labelled_and_says_when_there_is_none(tmp_path):
    cg, system, _ = psi_files(tmp_path)
    src = memory.MemoryPressureSource(str(cg), None, None, system_pressure=str(system))
    assert src.probe()[0]
    src.fall_back("the worker could not join /sys/fs/cgroup/unified/x (Permission denied)")
    doc = src.describe()
    assert doc["scope"] == "system" and doc["path"] == str(system) and "Permission denied" in doc["note"]
    assert doc["faults_from"] == "/proc/<worker>/stat"

    gone = memory.MemoryPressureSource(None, system_pressure=str(tmp_path / "missing"))
    ok, reason = gone.probe()
    assert not ok and "psi=1" in reason and gone.describe() == {"unavailable": reason}


def test_pressure_summary_over_the_steady_phase():
    by = {"mem.pressure_some_pct": [50.0, 70.0], "mem.pressure_full_pct": [10.0, 30.0],
          "mem.major_faults_per_s": [2000.0, 2800.0], "mem.refaults_per_s": [10.0], "mem.anon_mb": [57.0],
          "mem.file_mb": [10.0]}
    doc = pressure_summary(by, {"scope": "cgroup", "path": "/x/memory.pressure"})
    assert doc["pressure"] == {"some_pct": 60.0, "full_pct": 20.0, "scope": "cgroup", "source": "/x/memory.pressure"}
    assert doc["major_faults_per_s"] == 2400.0 and doc["anon_mb"] == 57.0
    system = pressure_summary(by, {"scope": "system", "path": "/proc/pressure/memory"})["pressure"]
    assert system["scope"] == "system" and "every process" in system["note"]
    assert pressure_summary({}, {"unavailable": "no PSI"})["pressure"] == {"unavailable": "no PSI"}
    assert "unavailable" in pressure_summary({}, {"scope": "cgroup", "path": "p"})["pressure"]


def test_devices_says_where_pressure_comes_from():
    v1 = Mechanism("cgroup1", "/sys/fs/cgroup/memory/x", "")
    assert memory_pressure(v1, Path("/sys/fs/cgroup/unified"), True)["scope"] == "cgroup"
    assert memory_pressure(v1, None, True) == {"scope": "system",
                                               "where": "/proc/pressure/memory (system-wide: every process counts)"}
    assert "unavailable" in memory_pressure(v1, None, False)
    assert memory_pressure(Mechanism("cgroup2", "/sys/fs/cgroup/u", ""), None, False)["scope"] == "cgroup"


# ------------------------------------------------------------------------------------------- power and energy

def rapl_tree(tmp_path) -> Path:
    root = tmp_path / "powercap"
    shutil.copytree(DATA / "telemetry" / "powercap", root)
    return root


def test_rapl_sums_packages_and_dram_and_handles_the_wrap(tmp_path, monkeypatch):
    root = rapl_tree(tmp_path)
    src = power.RaplSource(str(root))
    ok, reason = src.probe()
    assert ok and reason == "Intel RAPL via powercap: package-0, dram, package-1"  # core is part of package-0
    clock = iter([10.0, 12.0])
    monkeypatch.setattr(power.time, "monotonic", lambda: next(clock))
    assert src.read() == []
    for zone, add in (("intel-rapl:0", 20_000_000), ("intel-rapl:0:2", 4_000_000)):
        energy = root / zone / "energy_uj"
        energy.write_text(str(int(energy.read_text()) + add))
    (root / "intel-rapl:1" / "energy_uj").write_text("5671150")  # wrapped: 262143328850 - 262143000000 + 5671150
    got = values(src.read())
    assert got["power.rapl_package_0_w"] == pytest.approx(10.0) and got["power.rapl_dram_w"] == pytest.approx(2.0)
    assert got["power.rapl_package_1_w"] == pytest.approx((328850 + 5671150) / 1e6 / 2)
    assert got["power.rapl_w"] == pytest.approx(10.0 + 2.0 + 3.0)


def test_rapl_prefers_psys_and_says_why_it_is_off(tmp_path):
    root = rapl_tree(tmp_path)
    psys = root / "intel-rapl:2"
    psys.mkdir()
    (psys / "name").write_text("psys\n")
    (psys / "energy_uj").write_text("1000\n")
    (psys / "max_energy_range_uj").write_text("262143328850\n")
    assert [z[0] for z in power.rapl_zones(str(root))] == ["psys"]
    ok, reason = power.RaplSource(str(tmp_path / "nothing")).probe()
    assert not ok and "virtual machine" in reason
    for zone in root.iterdir():
        (zone / "energy_uj").unlink()
    ok, reason = power.RaplSource(str(root)).probe()
    assert not ok and "root only" in reason
    assert power.energy_delta_uj(10, 5, None) is None and power.energy_delta_uj(90, 5, 100) == 15


def test_pmic_parser_pairs_rails_by_name():
    text = (DATA / "telemetry" / "vcgencmd" / "pmic_read_adc.txt").read_text()
    rails = rpi.parse_pmic_adc(text)
    assert rails["VDD_CORE"] == {"A": 3.91204, "V": 0.849465} and rails["EXT5V"] == {"V": 5.11016}
    watts = rpi.pmic_power_w(rails)
    assert "EXT5V" not in watts and "BATT" not in watts  # no current: the 5 V input is not measured
    assert watts["VDD_CORE"] == pytest.approx(3.91204 * 0.849465)
    assert watts["total"] == pytest.approx(sum(v["A"] * v["V"] for v in rails.values() if "A" in v and "V" in v))
    assert rpi.pmic_power_w(rpi.parse_pmic_adc("error=1 error_msg=\"Command not registered\"")) == {}
    assert rpi.parse_pmic_adc("  BATT_V volt(25)=nanV\n") == {}


class FakeVcgencmd:
    def __init__(self, pmic: str):
        self.pmic = pmic
        self.calls = []

    def __call__(self, args):
        self.calls.append(args)
        name = {"get_throttled": "get_throttled.txt", "pmic_read_adc": self.pmic}[args[1]]
        return (DATA / "telemetry" / "vcgencmd" / name).read_text()


def test_rpi5_source_reads_pmic_power_and_a_pi4_says_it_has_none():
    rpi4 = DATA / "telemetry" / "sysfs" / "rpi4"
    kw = {"model_path": str(rpi4 / "proc/device-tree/model"),
          "temp_path": str(rpi4 / "sys/class/thermal/thermal_zone0/temp"),
          "cur_freq_path": str(rpi4 / "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")}
    pi5 = rpi.RpiSource(runner=FakeVcgencmd("pmic_read_adc.txt"), **kw)
    ok, reason = pi5.probe()
    assert ok and "PMIC rail power" in reason
    got = values(pi5.read())
    assert got["power.pmic_total_w"] == pytest.approx(rpi.pmic_power_w(rpi.parse_pmic_adc(
        (DATA / "telemetry" / "vcgencmd" / "pmic_read_adc.txt").read_text()))["total"])
    assert "power.pmic_vdd_core_w" in got
    pi4 = rpi.RpiSource(runner=FakeVcgencmd("pmic_read_adc_pi4.txt"), **kw)
    ok, reason = pi4.probe()
    assert ok and "no PMIC ADC" in reason and not any(m.startswith("power.") for m, _, _ in pi4.read())


def test_energy_per_inference_from_the_best_sensor():
    cpu = {"name": "onnxruntime", "execution_provider": "cpu"}
    board = energy_summary({"power.total_w": [5.0, 7.0], "power.rapl_w": [1.0]}, 2.0, 1000, cpu, [])
    assert board == {"mj_per_inference": pytest.approx(12.0), "avg_power_w": 6.0, "scope": "board", "readings": 2,
                     "source": "jtop: the board's input rail (VDD_IN; POM_5V_IN on a Nano)"}
    pmic = energy_summary({"power.pmic_total_w": [4.0]}, 1.0, 100, cpu, [])
    assert pmic["mj_per_inference"] == pytest.approx(40.0) and "5 V input" in pmic["source"]
    rapl = energy_summary({"power.rapl_w": [15.0], "gpu0.power_w": [60.0]}, 3.0, 300, cpu, [])
    assert rapl["avg_power_w"] == 15.0 and rapl["scope"] == "cpu" and "note" not in rapl
    gpu_run = energy_summary({"power.rapl_w": [15.0], "gpu0.power_w": [60.0]}, 3.0, 300, CUDA_RUN,
                             [])
    assert gpu_run["avg_power_w"] == 75.0 and gpu_run["scope"] == "cpu + gpu"
    only_gpu = energy_summary({"gpu0.power_w": [60.0]}, 3.0, 300, CUDA_RUN, [])
    assert only_gpu["scope"] == "gpu" and "CPU's share is not measured" in only_gpu["note"]
    cpu_run_gpu_sensor = energy_summary({"gpu0.power_w": [60.0]}, 3.0, 300, cpu, [])
    assert "ran on the CPU" in cpu_run_gpu_sensor["unavailable"]
    none = energy_summary({}, 3.0, 300, cpu, [{"name": "rapl", "available": False, "reason": "no RAPL zones"},
                                              {"name": "host", "available": True, "reason": "psutil"}])
    assert none == {"unavailable": "no power sensor on this device (rapl: no RAPL zones)"}
    assert "no steady phase" in energy_summary({"power.rapl_w": [1.0]}, None, 0, cpu, [])["unavailable"]


def test_energy_from_the_captured_jtop_and_nvidia_smi_formats():
    """The sources' own rows, from the Jetson and NVML fixtures, are what the energy figure uses."""
    from types import SimpleNamespace

    from test_telemetry import A2, fake_pynvml

    from edgeprof.telemetry import jetson, nvml

    attrs = json.loads((DATA / "telemetry" / "jetson-orin-nano" / "jtop-attributes.json").read_text())
    rows = values(jetson.rows_from_jtop(SimpleNamespace(**attrs)))
    doc = energy_summary({m: [v] for m, v in rows.items()}, 1.0, 100, CUDA_RUN, [])
    assert doc["avg_power_w"] == pytest.approx(7.425) and doc["scope"] == "board"  # VDD_IN, 7425 mW
    assert doc["mj_per_inference"] == pytest.approx(74.25)
    src = nvml.NvmlSource(pynvml=fake_pynvml(A2))
    assert src.probe()[0]
    got = values(src.read())
    doc = energy_summary({m: [v] for m, v in got.items()}, 1.0, 100, CUDA_RUN, [])
    assert doc["avg_power_w"] == pytest.approx(52.37) and doc["source"] == "NVML gpu0 power"
    src.close()


# ------------------------------------------------------------------------------------------- operator profiles

def test_ort_profile_from_captured_traces():
    fp32 = ort_profile(read_trace_events(str(TRACES / "ort-digits-cnn-fp32.json")), skip_runs=2)
    assert fp32["inferences"] == 4 and fp32["warmup_inferences"] == 2
    assert {r["op_type"]: r["calls_per_inference"] for r in fp32["by_type"]}["Conv"] == 3
    assert sum(r["share"] for r in fp32["by_type"]) == pytest.approx(1.0)
    assert fp32["op_total_ms"] == pytest.approx(sum(r["ms_per_inference"] for r in fp32["by_type"]))
    assert fp32["providers"] == {"CPUExecutionProvider": pytest.approx(1.0)}
    assert 0 < fp32["op_total_ms"] <= fp32["run_ms"]
    assert fp32["by_node"][0]["ms_per_inference"] == max(n["ms_per_inference"] for n in fp32["by_node"])
    int8 = ort_profile(read_trace_events(str(TRACES / "ort-digits-cnn-int8-dynamic.json")), skip_runs=2)
    types = {r["op_type"] for r in int8["by_type"]}
    assert {"ConvInteger", "DynamicQuantizeLinear"} <= types and "Conv" not in types
    assert ort_profile(read_trace_events(str(TRACES / "ort-digits-cnn-fp32.json")), skip_runs=99)["unavailable"]


def trace(runs: list[list[tuple[str, float]]]) -> list[dict]:
    """Made-up events: one model_run per inference, its nodes (op type, us) back to back inside it."""
    events, ts = [], 0.0
    for nodes in runs:
        start = ts
        for i, (op, us) in enumerate(nodes):
            events.append({"cat": "Node", "name": f"n{i}_kernel_time", "ts": ts + 1, "dur": us,
                           "args": {"op_name": op, "provider": "CPUExecutionProvider"}})
            ts += us + 2
        events.append({"cat": "Session", "name": "model_run", "ts": start, "dur": ts - start + 1})
        ts += 10
    return events


def test_a_descheduled_inference_does_not_move_the_profile():
    runs = [[("Conv", 100.0), ("Flatten", 10.0)]] * 9 + [[("Conv", 100.0), ("Flatten", 20000.0)]]
    doc = ort_profile(trace([[("Conv", 5000.0)]] + runs), skip_runs=1)  # the warm-up inference is left out
    by = {r["op_type"]: r["ms_per_inference"] for r in doc["by_type"]}
    assert doc["inferences"] == 10 and by == {"Conv": 0.1, "Flatten": 0.01}


def test_profile_summary_adds_coverage_of_the_measured_p50():
    doc = profile_summary({"op_total_ms": 4.5, "run_ms": 5.5, "by_type": []}, 5.0)
    assert doc["coverage"] == pytest.approx(0.9) and doc["run_vs_p50"] == pytest.approx(1.1)
    assert profile_summary(None, 5.0) is None and profile_summary({"unavailable": "x"}, 5.0) == {"unavailable": "x"}


def profile_of(precision: str) -> dict:
    prof = ort_profile(read_trace_events(str(TRACES / f"ort-digits-cnn-{precision}.json")), skip_runs=2)
    return profile_summary(prof, prof["run_ms"])


def test_the_comparison_says_why_int8_dynamic_is_slower():
    a, b = profile_of("fp32"), profile_of("int8-dynamic")
    table = ops.op_table(a, b)
    assert list(table.columns) == ops.TABLE_COLUMNS
    assert table["diff_ms"].abs().is_monotonic_decreasing
    row = table.set_index("op_type").loc["ConvInteger"]
    assert row["ms_a"] == 0 and row["ratio"] is None or np.isnan(row["ratio"])
    assert table["share_of_difference"].sum() == pytest.approx(1.0)
    sentence = ops.explain(table, "fp32", "int8-dynamic")
    assert sentence.startswith("int8-dynamic is slower than fp32 because ")
    t = r"[0-9.]+ (µs|ms)"  # a fast model's operators take microseconds (stats.fmt_ms)
    assert re.search(rf"because ConvInteger(, \w+)*( and \w+)? take {t} that Conv( and \w+)? took {t} in "
                     rf"fp32 \({t} against {t} of operator time per inference\)\.$", sentence), sentence
    back = ops.explain(ops.op_table(b, a), "int8-dynamic", "fp32")
    assert back.startswith("fp32 is faster than int8-dynamic because Conv") and " took " in back and "ConvInteger" in back
    same = ops.explain(ops.op_table(a, a), "fp32", "fp32 again")
    assert same.startswith("fp32 again and fp32 spend about the same operator time")


def test_the_comparison_of_one_operator_that_grew():
    a = {"by_type": [{"op_type": "Conv", "ms_per_inference": 4.0}, {"op_type": "Add", "ms_per_inference": 1.0}]}
    b = {"by_type": [{"op_type": "Conv", "ms_per_inference": 40.0}, {"op_type": "Add", "ms_per_inference": 1.0}]}
    assert ops.explain(ops.op_table(a, b), "no cap", "60 MB cap") == (
        "60 MB cap is slower than no cap because Conv takes 40.0 ms where it took 4.00 ms (41.0 ms against 5.00 ms of "
        "operator "
        "time per inference).")


def test_compare_profiles_names_the_runs_and_says_what_to_do_without_a_profile():
    base = {"model": "m", "runtime": "onnx", "memory_limit_mb": None}
    a = {**base, "run_id": "a" * 32, "precision": "fp32", "op_profile": profile_of("fp32")}
    b = {**base, "run_id": "b" * 32, "precision": "int8-dynamic", "op_profile": profile_of("int8-dynamic")}
    cmp = ops.compare_profiles(a, b)
    assert (cmp.name_a, cmp.name_b) == ("fp32", "int8-dynamic") and cmp.coverage[0] == pytest.approx(
        a["op_profile"]["coverage"])
    text = ops_table(cmp, top=3)
    assert text.splitlines()[0] == cmp.sentence and "share of diff" in text
    assert text.splitlines()[2].split()[:3] == ["operator", "fp32", "int8-dynamic"]
    assert len([ln for ln in text.splitlines() if ln and ln.split()[0] in set(cmp.table["op_type"])]) == 3
    with pytest.raises(UsageError, match="has no operator profile") as err:
        ops.compare_profiles({**a, "op_profile": None, "summary": {}}, b)
    assert "--profile-ops" in err.value.hint
    with pytest.raises(UsageError, match="ai-edge-litert"):
        ops.compare_profiles({**a, "op_profile": {"unavailable": "ai-edge-litert 2.3.0 has no profiler"}}, b)
    assert ops.run_names({**a, "memory_limit_mb": None}, {**a, "memory_limit_mb": 64.0}) == ("no cap", "64 MB cap")
    assert ops.run_names(a, {**a, "run_id": "c" * 32}) == ("run ..aaaaaa", "run ..cccccc")


def test_profile_and_pressure_figures_say_what_they_show():
    fig = charts.op_profile_figure(profile_of("int8-dynamic"), top=3)
    bar = fig.data[0]
    assert list(bar.y)[-1] == profile_of("int8-dynamic")["by_type"][0]["op_type"] and bar.y[0].startswith("other (")
    assert fig.layout.xaxis.title.text.startswith("ms per inference")
    empty = charts.op_profile_figure({"unavailable": "ai-edge-litert 2.3.0 has no profiler"})
    assert "ai-edge-litert" in empty.layout.annotations[0].text
    table = ops.op_table(profile_of("fp32"), profile_of("int8-dynamic"))
    both = charts.op_compare_figure(table, "fp32", "int8-dynamic")
    assert [t.name for t in both.data] == ["fp32", "int8-dynamic"] and both.layout.barmode == "group"
    tel = pd.DataFrame({"t_s": [0.0, 0.1, 0.0, 0.1, 0.1], "metric": ["mem.pressure_some_pct"] * 2 +
                        ["mem.pressure_full_pct"] * 2 + ["mem.major_faults_per_s"], "value": [50, 60, 10, 20, 2400]})
    pf = charts.pressure_figure(tel)
    assert [t.name for t in pf.data] == ["some task stalled (%)", "all tasks stalled (%)", "major faults/s (right)"]
    assert tuple(pf.layout.yaxis.range) == (0, 100)
    assert "no pressure-stall" in charts.pressure_figure(tel.iloc[:0]).layout.annotations[0].text


# ------------------------------------------------------------------------------------------- summary, store, CLI

def facts(**kw) -> RunFacts:
    n = 200
    t = np.arange(n, dtype=np.int64) * 10_000_000
    lat = np.full(n, 5_000_000, dtype=np.int64)
    phase = np.array([0] + [1] * 19 + [2] * 180, dtype=np.int8)
    steady_t = int(t[20])
    tel = [(steady_t + i * 100_000_000, "psi", "mem.pressure_some_pct", 60.0, "%") for i in range(10)]
    tel += [(steady_t + i * 100_000_000, "psi", "mem.pressure_full_pct", 20.0, "%") for i in range(10)]
    tel += [(steady_t + i * 100_000_000, "rapl", "power.rapl_w", 4.0, "W") for i in range(10)]
    tel += [(int(t[-1]) + 500_000_000, "psi", "mem.pressure_some_pct", 99.0, "%")]  # in the profile phase
    base = dict(run_id="r" * 32, config=RunConfig(model="digits-cnn", profile_ops=True), status="ok", reason=None,
                started_ns=0, latency=(t, lat, phase), telemetry=tel,
                phases=[("load", 0, ""), ("first", 0, ""), ("warmup", 1, ""), ("steady", steady_t, "steady"),
                        ("profile", int(t[-1]) + 100_000_000, "")],
                memory={"requested_mb": None, "mechanism": "none"}, backend={"name": "onnxruntime", "threads": 2,
                                                                              "execution_provider": "cpu"},
                memory_pressure={"scope": "cgroup", "path": "/u/edgeprof-1-r/memory.pressure"},
                op_profile=profile_of("int8-dynamic"))
    base.update(kw)
    return RunFacts(**base)


def test_the_summary_carries_the_three_figures_and_leaves_the_profile_phase_out():
    doc = build_summary(facts())
    assert doc["memory"]["pressure"]["some_pct"] == 60.0  # the 99% reading of the profile phase is not in it
    assert doc["memory"]["pressure"]["scope"] == "cgroup"
    steady_s, n = doc["steady_s"], doc["latency_ms"]["n"]
    assert doc["energy"]["mj_per_inference"] == pytest.approx(4.0 * steady_s / n * 1000)
    assert doc["op_profile"]["coverage"] == pytest.approx(doc["op_profile"]["op_total_ms"] / 5.0)
    assert build_summary(facts(op_profile=None, config=RunConfig(model="digits-cnn")))["op_profile"] is None
    old = build_summary(facts(memory_pressure=None))
    assert "not measured" in old["memory"]["pressure"]["unavailable"]


def test_the_store_keeps_the_figures_in_columns_and_migrates_older_files(tmp_path):
    assert any(name.startswith("runs.op_profile") for name, _ in MIGRATIONS) and len(MIGRATIONS) == SCHEMA_VERSION
    store = Store(tmp_path / "runs.duckdb")
    doc = build_summary(facts())
    rid = store.insert_run(None, None, RunConfig(model="digits-cnn").to_dict())
    store.finish_run(rid, "ok", None, doc)
    run = store.get_run(rid)
    assert run["op_profile"]["by_type"][0]["op_type"] == doc["op_profile"]["by_type"][0]["op_type"]
    assert run["mem_pressure_some_pct"] == 60.0 and run["mem_pressure_full_pct"] == 20.0
    assert run["energy_mj_per_inference"] == pytest.approx(doc["energy"]["mj_per_inference"])
    row = store.list_runs().iloc[0]
    assert set(WHY_COLUMNS) <= set(row.index) and row["avg_power_w"] == 4.0


def test_the_migration_fills_the_columns_from_stored_summaries(tmp_path):
    import duckdb

    from edgeprof.store.schema import _WHY

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE runs (run_id TEXT, summary JSON)")
    con.execute("INSERT INTO runs VALUES ('a', ?)", [json.dumps(build_summary(facts()), default=float)])
    for sql in _WHY:
        con.execute(sql)
    some, energy, prof = con.execute("SELECT mem_pressure_some_pct, energy_mj_per_inference, op_profile FROM runs"
                                     ).fetchone()
    con.close()
    assert some == 60.0 and energy > 0 and json.loads(prof)["inferences"] == 4


def test_run_and_show_print_the_why_lines():
    text = run_summary(build_summary(facts()))
    assert ("  pressure     some task stalled on memory 60.0% of the steady phase, all tasks 20.0% (in the worker's "
            "cgroup); major faults ") in text
    assert "  energy       " in text and " mJ per inference at 4.00 W mean power over the steady phase (Intel RAPL" in text
    assert "  op profile   ConvInteger " in text and "of the steady p50 (4 inferences profiled after the steady phase)." in text
    tflite = build_summary(facts(op_profile={"unavailable": "ai-edge-litert 2.3.0 has no per-operator profiler"},
                                 memory_pressure={"unavailable": "the kernel gives no pressure-stall information"}))
    text = run_summary(tflite)
    assert "  op profile   unavailable: ai-edge-litert 2.3.0" in text
    assert "  pressure     unavailable: the kernel gives no pressure-stall information; major faults " in text


def test_profile_ops_is_a_run_and_a_study_setting():
    assert RunConfig(model="digits-cnn", profile_ops=True).to_dict()["profile_ops"] is True
    with pytest.raises(ConfigError, match="profile_ops must be true or false"):
        RunConfig(model="digits-cnn", profile_ops="yes")
    cfg = StudyConfig.from_toml('name = "s"\nmodels = ["digits-cnn"]\nprofile_ops = true\n')
    assert cfg.profile_ops is True and cfg.to_dict()["profile_ops"] is True
    with pytest.raises(ConfigError, match="profile_ops must be true or false"):
        StudyConfig.from_toml('name = "s"\nmodels = ["digits-cnn"]\nprofile_ops = 1\n')


# ------------------------------------------------------------------------------------------- the study report

def study_frame() -> pd.DataFrame:
    rows = []
    for mem, lim, p50, some, full, faults in (("none", None, 5.0, 0.0, 0.0, 0.0), ("2x", 200.0, 5.2, 0.5, 0.0, 3.0),
                                              ("1x", 100.0, 49.0, 61.0, 48.0, 2400.0)):
        for rep in range(2):
            rows.append({"model": "efficientnet-lite0", "precision": "int8-dynamic", "runtime": "onnx", "threads": 2,
                         "rep": rep, "mem": mem, "memory_limit_mb": lim, "status": "ok", "p50_ms": p50,
                         "mem_pressure_some_pct": some, "mem_pressure_full_pct": full, "major_faults_per_s": faults,
                         "pressure_scope": "cgroup", "cpu_system_mean_pct": 50.0, "model_size_mb": 4.7,
                         "warmup_ms": 30.0, "load_ms": 90.0, "first_inference_ms": 20.0,
                         "top_ops": "ConvInteger 89%, Mul 4%, DynamicQuantizeLinear 3%",
                         "energy_source": "unavailable: no power sensor on this device"})
    return report.normalise_frame(pd.DataFrame(rows))


def test_the_memory_claim_cites_pressure_and_faults():
    finding = report.claim_memory_latency(study_frame())
    assert ("At 1x (efficientnet-lite0 int8-dynamic onnx t2), p50 rose 9.8x while 61% of the time some task stalled "
            "on memory (48% all tasks); major faults 2,400/s, against 0% stalled at the most generous limit."
            ) in finding.evidence
    assert finding.groups[0]["some_stalled_pct_tightest"] == 61.0
    system = study_frame().assign(pressure_scope="system")
    assert "(system-wide PSI: every process on the device counts)" in report.claim_memory_latency(system).evidence
    old = study_frame().assign(mem_pressure_some_pct=np.nan)
    assert "No memory-pressure figures were recorded" in report.claim_memory_latency(old).evidence


def test_the_report_has_a_why_table_and_a_pressure_figure():
    df = study_frame()
    why = report.why_table(df)
    assert list(why["limit"]) == ["none", "2x", "1x"]
    assert why.iloc[-1]["memory pressure, some stalled (% of time)"] == 61.0 and why.iloc[-1]["slowest operators"].startswith(
        "ConvInteger")
    page = "\n".join(report.why_html(df))
    assert "Energy per inference: unavailable: no power sensor on this device." in page
    assert "pressure_vs_memory.png" in report.FIGURES
    assert report.render_figures(df)["pressure_vs_memory.png"][:4] == b"\x89PNG"
    old = df.assign(mem_pressure_some_pct=np.nan)  # runs stored before edgeprof read PSI: no empty figure, a reason
    assert "pressure_vs_memory.png" not in report.render_figures(old)
    page = report.render_html({"study_id": "s1", "status": "done"}, old, report.evaluate_claims(old),
                              report.correlation_table(old), report.render_figures(old))
    assert "not drawn, no cell recorded memory pressure" in page
