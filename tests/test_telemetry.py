"""Telemetry: parsers on fixture strings, sources against committed fake trees and fakes fed with captured-format
values, the host source and the sampler for real on this machine. Everything here runs in a few seconds."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from edgeprof import telemetry
from edgeprof.telemetry import host, jetson, nvml, rpi
from edgeprof.telemetry.base import HeldFile, Source, hold
from edgeprof.telemetry.sampler import Sampler

DATA = Path(__file__).parent / "data" / "telemetry"
RPI4 = DATA / "sysfs" / "rpi4"
ORIN = DATA / "jetson-orin-nano"
VCGENCMD = DATA / "vcgencmd"
MISSING = str(DATA / "does-not-exist")


def values(rows):
    return {metric: value for metric, value, _unit in rows}


# ---------------------------------------------------------------- Raspberry Pi parsers


def test_throttled_bits_decode_from_vcgencmd_line():
    raw = rpi.parse_throttled((VCGENCMD / "get_throttled.txt").read_text())
    assert raw == 0x50005
    bits = rpi.decode_throttled(raw)
    assert bits == {
        "under_voltage_now": True,
        "freq_capped_now": False,
        "throttled_now": True,
        "soft_temp_limit_now": False,
        "under_voltage_occurred": True,
        "freq_capped_occurred": False,
        "throttled_occurred": True,
        "soft_temp_limit_occurred": False,
    }
    assert not any(rpi.decode_throttled(rpi.parse_throttled((VCGENCMD / "get_throttled_ok.txt").read_text())).values())
    assert rpi.parse_throttled("VCHI initialization failed") is None


def test_temp_clock_and_model_parsers():
    assert rpi.parse_measure_temp((VCGENCMD / "measure_temp.txt").read_text()) == pytest.approx(48.3)
    assert rpi.parse_measure_clock((VCGENCMD / "measure_clock_arm.txt").read_text()) == 1500398464.0
    assert rpi.parse_measure_temp("error=1 error_msg=...") is None
    assert rpi.parse_model((RPI4 / "proc/device-tree/model").read_text()) == "Raspberry Pi 4 Model B Rev 1.4"


def test_memory_cgroup_disabled_on_raspberry_pi_os_fixture(tmp_path):
    fix = rpi.memory_cgroup_disabled(str(RPI4 / "proc/cmdline"), str(RPI4 / "proc/cgroups"))
    assert fix is not None and "cgroup_enable=memory cgroup_memory=1" in fix and "/boot/firmware/cmdline.txt" in fix

    enabled = tmp_path / "cgroups"
    enabled.write_text("#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t0\t70\t1\nmemory\t0\t70\t1\n")
    assert rpi.memory_cgroup_disabled(str(RPI4 / "proc/cmdline"), str(enabled)) is None

    # no /proc/cgroups: the last of cgroup_disable / cgroup_enable on the command line decides
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("console=tty1 cgroup_disable=memory rootwait cgroup_enable=cpuset cgroup_enable=memory\n")
    assert rpi.memory_cgroup_disabled(str(cmdline), MISSING) is None
    cmdline.write_text("console=tty1 cgroup_disable=memory rootwait\n")
    assert rpi.memory_cgroup_disabled(str(cmdline), MISSING) == rpi.MEMORY_CGROUP_FIX


class FakeVcgencmd:
    """Answers like vcgencmd from the fixture lines; records the argument lists it was given."""

    def __init__(self, fail: Exception | None = None):
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, args: list[str]) -> str:
        assert isinstance(args, list)  # argument lists only, never a shell string
        self.calls.append(args)
        if self.fail:
            raise self.fail
        name = {"get_throttled": "get_throttled", "measure_temp": "measure_temp", "measure_clock": "measure_clock_arm",
                "pmic_read_adc": "pmic_read_adc_pi4"}  # a Pi 4's firmware has no PMIC ADC command
        return (VCGENCMD / f"{name[args[1]]}.txt").read_text()


def rpi_source(**kw) -> rpi.RpiSource:
    return rpi.RpiSource(
        model_path=str(RPI4 / "proc/device-tree/model"),
        temp_path=str(RPI4 / "sys/class/thermal/thermal_zone0/temp"),
        cur_freq_path=str(RPI4 / "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"),
        **kw,
    )


def test_rpi_source_on_fake_tree():
    runner = FakeVcgencmd()
    src = rpi_source(runner=runner, throttled_interval_s=60)
    ok, reason = src.probe()
    assert ok and reason.startswith("Raspberry Pi 4 Model B Rev 1.4") and "get_throttled ok" in reason
    first = values(src.read())
    assert first["temp.soc_c"] == pytest.approx(48.686)
    assert first["cpu.arm_freq_mhz"] == pytest.approx(1500.0)
    assert first["throttle_flags"] == 0x50005
    assert first["throttle.under_voltage_now"] == 1.0 and first["throttle.freq_capped_now"] == 0.0
    second = values(src.read())  # get_throttled is rate-limited: sysfs values only
    assert set(second) == {"temp.soc_c", "cpu.arm_freq_mhz"}
    assert runner.calls == [["vcgencmd", "get_throttled"], ["vcgencmd", "pmic_read_adc"], ["vcgencmd", "get_throttled"]]


def test_rpi_source_without_vcgencmd_and_vcgencmd_fallbacks():
    src = rpi_source(runner=FakeVcgencmd(fail=FileNotFoundError(2, "No such file or directory")))
    ok, reason = src.probe()
    assert ok and "vcgencmd failed" in reason
    assert not any(m.startswith("throttle.") for m, _, _ in src.read())

    # no sysfs files: temperature and clock come from vcgencmd instead
    src = rpi.RpiSource(
        model_path=str(RPI4 / "proc/device-tree/model"), temp_path=MISSING, cur_freq_path=MISSING, runner=FakeVcgencmd()
    )
    assert src.probe()[0]
    got = values(src.read())
    assert got["temp.soc_c"] == pytest.approx(48.3) and got["cpu.arm_freq_mhz"] == pytest.approx(1500.398464)


def test_rpi_source_off_when_not_a_pi():
    ok, reason = rpi.RpiSource(model_path=MISSING).probe()
    assert not ok and reason.startswith("not a Raspberry Pi")


# ---------------------------------------------------------------- host


def test_host_static_info_and_thermal_zones_from_fake_tree():
    info = host.static_info(
        governor_path=str(RPI4 / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        cpuinfo_path=str(RPI4 / "proc/cpuinfo"),
    )
    assert info["governor"] == "ondemand" and info["cpu"] == "Cortex-A72"
    assert info["cores"] >= 1 and info["ram_mb"] > 0
    assert host.find_thermal_zones(str(RPI4 / "sys/class/thermal")) == [
        ("cpu_thermal", str(RPI4 / "sys/class/thermal/thermal_zone0/temp"))
    ]
    src = host.HostSource(thermal_root=str(RPI4 / "sys/class/thermal"))
    assert src.probe()[0]
    assert values(src.read())["temp.cpu_thermal_c"] == pytest.approx(48.686)


def test_host_parsers_and_fake_tree_reads(tmp_path):
    stat = (RPI4 / "proc/stat").read_text()
    parsed = host.parse_proc_stat(stat)
    assert set(parsed) == {"cpu", "cpu0", "cpu1", "cpu2", "cpu3"}
    later = stat.replace("cpu0 273807 520 72134 5179218", "cpu0 273857 520 72134 5179268").replace(
        "cpu  1093264 2136 283145 20736221", "cpu  1093314 2136 283145 20736271"
    )  # cpu0 and the total: +50 ticks busy, +50 idle
    assert host.busy_pct(parsed["cpu0"], host.parse_proc_stat(later)["cpu0"]) == pytest.approx(50.0)
    assert host.busy_pct(parsed["cpu0"], parsed["cpu0"]) is None  # no time passed: no value, not 0
    mem = values(host.memory_rows(host.parse_meminfo((RPI4 / "proc/meminfo").read_text())))
    assert mem["mem.used_mb"] == pytest.approx((3881880 - 2941552) / 1024)
    assert mem["mem.available_mb"] == pytest.approx(2941552 / 1024)
    assert mem["swap.used_mb"] == pytest.approx((204796 - 183292) / 1024)
    assert host._parse_cpu_list("0-3") == [0, 1, 2, 3] and host._parse_cpu_list("0,2-3 5") == [0, 2, 3, 5]
    assert host.find_cpufreq_policies(str(RPI4 / "sys/devices/system/cpu/cpufreq")) == [
        (str(RPI4 / "sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq"), [0, 1, 2, 3])
    ]

    fake_stat = tmp_path / "stat"
    fake_stat.write_text(stat)
    src = host.HostSource(
        thermal_root=str(RPI4 / "sys/class/thermal"),
        cpufreq_root=str(RPI4 / "sys/devices/system/cpu/cpufreq"),
        proc_stat_path=str(fake_stat),
        meminfo_path=str(RPI4 / "proc/meminfo"),
    )
    ok, reason = src.probe()
    assert ok and "4 CPUs" in reason and "cpufreq: 1 policy" in reason and "cpu_thermal" in reason
    fake_stat.write_text(later)  # same inode: the held fd sees the new text
    got = values(src.read())
    src.close()
    assert got["cpu.core0_pct"] == pytest.approx(50.0) and got["cpu.total_pct"] == pytest.approx(50.0)
    assert "cpu.core1_pct" not in got  # no time passed on cpu1 between the two samples
    assert got["cpu.freq_mhz"] == 1500.0 and got["cpu.core3_freq_mhz"] == 1500.0
    assert got["temp.cpu_thermal_c"] == pytest.approx(48.686) and got["mem.available_mb"] == mem["mem.available_mb"]


def test_held_file_rereads_and_reports_gone(tmp_path):
    f = tmp_path / "x"
    f.write_text("1\n")
    held = HeldFile(str(f))
    assert held.number() == 1.0
    f.write_text("2" * 70000)  # longer than one pread buffer
    assert len(held.read()) == 70000
    held.close()
    assert held.read() is None and hold(MISSING) is None


def test_host_source_reads_a_real_busy_child():
    src = host.HostSource(thermal_root=MISSING)
    ok, reason = src.probe()
    assert ok and "psutil" in reason
    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.2)
        first = values(src.read(child.pid))
        assert "cpu.worker_pct" not in first  # first sample only primes the delta: no fake zero
        assert first["mem.worker_rss_mb"] > 1
        time.sleep(0.4)
        got = values(src.read(child.pid))
    finally:
        child.kill()
        child.wait()
    ncpu = psutil.cpu_count()
    assert 30 < got["cpu.worker_pct"] <= 100 * 1.2  # one busy thread: about one core
    assert 0 <= got["cpu.total_pct"] <= 100
    assert all(0 <= got[f"cpu.core{i}_pct"] <= 100 for i in range(ncpu))
    assert got["mem.used_mb"] > 0 and got["mem.available_mb"] > 0 and got["swap.used_mb"] >= 0
    assert 1 < got["mem.worker_rss_mb"] < 1000
    # worker gone: no worker metrics, nothing raised
    assert not any(m.startswith(("cpu.worker", "mem.worker")) for m in values(src.read(child.pid)))


# ---------------------------------------------------------------- jetson


class FakeJtopException(Exception):
    pass


FakeJtopException.__name__ = "JtopException"


class FakeJtop:
    """Stands in for jtop.jtop: attributes loaded from the fixture, counting reads of ``gpu``.

    ``uptime`` is a timedelta as jtop's property gives it, advanced by ``interval`` with every new sample, as the
    service does. ``thread_error`` makes ``ok`` re-raise it, as jtop does with its reader thread's exception.
    """

    def __init__(self, attrs: dict, fail: Exception | None = None):
        self._attrs = attrs
        self.fail = fail
        self.gpu_reads = 0
        self.closed = False
        self.observers: set = set()
        self.thread_error: Exception | None = None

    def attach(self, observer):
        self.observers.add(observer)

    def detach(self, observer):
        self.observers.discard(observer)

    def new_sample(self, **changes):
        """What jtop's thread does when the service sends data: update, then call the observers."""
        self._attrs.update(changes)
        if "uptime" in self._attrs and "uptime" not in changes:
            self._attrs["uptime"] += self._attrs.get("interval", 0.5)
        for observer in list(self.observers):
            observer(self)

    def redeliver(self):
        """What jtop's thread does when the service stops answering: the last data again, observers called."""
        for observer in list(self.observers):
            observer(self)

    @property
    def uptime(self):
        if "uptime" not in self._attrs:
            raise AttributeError("uptime")
        return datetime.timedelta(seconds=self._attrs["uptime"])

    def start(self):
        if self.fail:
            raise self.fail

    def ok(self, spin=False):
        if self.thread_error is not None:
            raise self.thread_error
        return not self.closed

    def close(self):
        self.closed = True

    @property
    def gpu(self):
        self.gpu_reads += 1
        return self._attrs["gpu"]

    def __getattr__(self, name):
        try:
            return self._attrs[name]
        except KeyError:
            raise AttributeError(name) from None


def orin_attrs() -> dict:
    return json.loads((ORIN / "jtop-attributes.json").read_text())


def jetson_source(factory) -> jetson.JetsonSource:
    return jetson.JetsonSource(
        jtop_factory=factory,
        nv_tegra_release_path=str(ORIN / "etc/nv_tegra_release"),
        compatible_path=MISSING,
        model_path=str(ORIN / "model"),
    )


def test_jetson_source_against_jtop_fixture():
    fake = FakeJtop(orin_attrs())
    src = jetson_source(lambda: fake)
    ok, reason = src.probe()
    assert ok and reason.startswith("NVIDIA Jetson Orin Nano Developer Kit, JetPack 6.2")
    assert "VDD_IN" in reason and src.max_hz == 2.0
    got = values(src.read())
    assert got["gpu0.load_pct"] == pytest.approx(76.4) and got["gpu0.freq_mhz"] == pytest.approx(624.75)
    assert got["mem.used_mb"] == pytest.approx(3564120 / 1024) and got["swap.used_mb"] == pytest.approx(10.0)
    assert got["emc.load_pct"] == 23 and got["emc.freq_mhz"] == pytest.approx(2133.0)
    assert got["temp.tj_c"] == pytest.approx(52.093) and "temp.cv0_c" not in got  # offline sensor left out
    assert got["power.vdd_in_w"] == pytest.approx(7.425) and got["power.vdd_in_v"] == pytest.approx(5.072)
    assert got["power.vdd_cpu_gpu_cv_a"] == pytest.approx(0.512) and got["power.total_w"] == pytest.approx(7.425)
    assert got["engine.vic_mhz"] == pytest.approx(115.2) and "engine.nvdec_mhz" not in got
    reads = fake.gpu_reads
    assert src.read() == [] and fake.gpu_reads == reads  # no new jtop sample: no rows (never the old ones again)
    fake.redeliver()  # jtop repeats its last data when the service hangs: same uptime, so still nothing new
    assert src.read() == [] and fake.gpu_reads == reads
    gpu = json.loads(json.dumps(fake._attrs["gpu"]))
    gpu["gpu"]["status"]["load"] = 12.5
    fake.new_sample(gpu=gpu)
    assert values(src.read())["gpu0.load_pct"] == 12.5
    src.close()
    assert fake.closed and not fake.observers


def test_jetson_probe_reasons(monkeypatch):
    down = FakeJtopException("The jtop.service is not active. Please run:\nsudo jtop --install-service")
    ok, reason = jetson_source(lambda: FakeJtop(orin_attrs(), fail=down)).probe()
    assert not ok and reason.startswith(jetson.SERVICE_FIX)

    # the messages jetson-stats 7.2.2 raises from jtop.start(), word for word
    denied = FakeJtopException("I can't access jtop.service.\nPlease logout or reboot this board.")
    ok, reason = jetson_source(lambda: FakeJtop(orin_attrs(), fail=denied)).probe()
    assert not ok and reason.startswith("this user may not reach the jtop service: add it to the jtop group")
    assert "sudo usermod -a -G jtop $USER" in reason and "log out and in again" in reason
    mismatch = FakeJtopException("Mismatch version jtop service: [4.3.2] and client: [4.5.4]. Please run:\n\n"
                                 "sudo systemctl restart jtop.service")
    ok, reason = jetson_source(lambda: FakeJtop(orin_attrs(), fail=mismatch)).probe()
    assert not ok and reason.startswith("the jtop service runs jetson-stats 4.3.2 but this Python has 4.5.4")
    assert "pip install jetson-stats==4.3.2" in reason

    assert jetson.JetsonSource(nv_tegra_release_path=MISSING, compatible_path=MISSING).probe() == (
        False,
        "not a Jetson",
    )

    monkeypatch.setitem(sys.modules, "jtop", None)  # import jtop -> ImportError
    ok, reason = jetson_source(None).probe()
    assert not ok and reason.startswith("jtop not installed")


def _sample(src, seconds: float, hz: float = 20.0) -> tuple[list, object]:
    rows = []
    sampler = Sampler([src], hz=hz, sink=rows.extend).start()
    time.sleep(seconds)
    sampler.stop()
    return rows, sampler


def test_a_frozen_jtop_records_no_repeated_values_and_says_when_it_stopped(monkeypatch):
    monkeypatch.setattr(jetson, "MIN_STALL_S", 0.4)
    fake = FakeJtop(orin_attrs())
    fake._attrs["interval"] = 0.05
    src = jetson_source(lambda: fake)
    src.max_hz = None  # read every tick: the test is about what a read returns
    assert src.probe()[0]

    def feed():  # four real samples, then the service hangs (jtop keeps re-delivering the last one)
        for i in range(4):
            time.sleep(0.15)  # slower than the 20 Hz sampler, as jtop's 2 Hz is to the sampler's 10 Hz
            fake.new_sample(gpu={"gpu": {"status": {"load": 10.0 + i}, "freq": {"cur": 624750}}})
        for _ in range(20):
            time.sleep(0.05)
            fake.redeliver()

    t0 = time.monotonic_ns()
    feeder = threading.Thread(target=feed)
    feeder.start()
    rows, sampler = _sample(src, 1.8)
    feeder.join()
    loads = [r[3] for r in rows if r[2] == "gpu0.load_pct"]
    assert loads == [76.4, 10.0, 11.0, 12.0, 13.0]  # each real sample once: no value recorded twice
    (status,) = sampler.status()
    assert not status.available and status.reason.startswith("stopped: jtop sent no new sample for")
    last_row = max(r[0] for r in rows)
    assert status.stopped_ns is not None and t0 < status.stopped_ns <= last_row + 60_000_000  # its last good sample


def test_a_jtop_that_raises_stops_with_its_reason():
    fake = FakeJtop(orin_attrs())
    src = jetson_source(lambda: fake)
    src.max_hz = None
    assert src.probe()[0]

    def fail_later():
        time.sleep(0.3)
        fake.thread_error = FakeJtopException("Lost connection with jtop server")

    threading.Thread(target=fail_later).start()
    rows, sampler = _sample(src, 0.8)
    (status,) = sampler.status()
    assert not status.available
    assert status.reason == "stopped: the jtop client failed (JtopException: Lost connection with jtop server)"
    assert len([r for r in rows if r[2] == "gpu0.load_pct"]) == 1  # the one real sample, never repeated
    assert status.stopped_ns is not None


def test_summary_and_charts_show_the_part_of_the_run_a_stopped_source_covers():
    from edgeprof import charts
    from edgeprof.run.summary import coverage

    s = 1_000_000_000
    tel = [(t * s // 10, "host", "cpu.total_pct", 50.0, "%") for t in range(0, 301)]
    tel += [(t * s // 10, "jetson", "gpu0.load_pct", 40.0, "%") for t in range(0, 121)]
    status = [{"name": "host", "available": True, "reason": "psutil"},
              {"name": "jetson", "available": False, "reason": "stopped: jtop sent no new sample for 3.0 s",
               "stopped_s": 12.0, "stopped_ns": 12 * s}]
    cov = coverage(tel, (0, 30 * s), status, 0)
    assert list(cov) == ["jetson"]  # host covered the whole window: nothing to say about it
    assert cov["jetson"]["from_s"] == 0.0 and cov["jetson"]["to_s"] == 12.0 and cov["jetson"]["share"] == 0.4
    assert cov["jetson"]["stopped_s"] == 12.0 and "no new sample" in cov["jetson"]["reason"]

    from edgeprof.cli.text import run_summary

    text = run_summary({"run_id": "r", "status": "ok", "telemetry_coverage": cov})
    assert "jetson figures cover 0.0-12.0 s of the measured 0.0-30.0 s (40%); stopped at 12.0 s" in text

    frame = pd.DataFrame(tel, columns=["t_ns", "source", "metric", "value", "unit"])
    frame["t_s"] = frame["t_ns"] / 1e9
    gaps = frame[(frame["metric"] == "gpu0.load_pct") & ((frame["t_s"] < 5) | (frame["t_s"] > 8))]
    fig = charts.gpu_figure(pd.concat([gaps, frame[frame["metric"] != "gpu0.load_pct"]]),
                            stops={"jetson": (12.0, "stopped")})
    y = np.asarray(fig.data[0].y, dtype=float)
    assert np.isnan(y).sum() == 1  # the 3-s pause is a gap in the line, not a line across it
    assert fig.layout.shapes[0].x0 == 12.0 and fig.layout.annotations[0].text == "jetson stopped"


# ---------------------------------------------------------------- nvml


def parse_nvidia_smi_q(text: str) -> dict:
    """The few fields the fake NVML needs, from an `nvidia-smi -q` text report."""
    out, section = {}, None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            section = key
            continue
        out[f"{section}/{key}" if line.startswith("        ") else key] = value
    num = lambda k: float(out[k].split()[0])  # noqa: E731
    return {
        "driver": out["Driver Version"],
        "cuda": out["CUDA Version"],
        "name": out["Product Name"],
        "total_mib": num("FB Memory Usage/Total"),
        "used_mib": num("FB Memory Usage/Used"),
        "util": num("Utilization/Gpu"),
        "temp": num("Temperature/GPU Current Temp"),
        "power_w": num("GPU Power Readings/Power Draw"),
        "sm_mhz": num("Clocks/SM"),
    }


def fake_pynvml(card: dict, unsupported: tuple[str, ...] = (), init_error: str | None = None):
    """A module-shaped fake of pynvml serving one GPU with the captured values."""
    nv = types.SimpleNamespace(NVML_TEMPERATURE_GPU=0, NVML_CLOCK_SM=1, calls=[])

    class NVMLError(Exception):
        pass

    def api(name, result):
        def call(*args):
            nv.calls.append(name)
            if name in unsupported:
                raise NVMLError("Not Supported")
            return result(*args) if callable(result) else result

        setattr(nv, name, call)

    nv.NVMLError = NVMLError
    mib = 1024 * 1024

    def init():
        if init_error:
            raise NVMLError(init_error)

    api("nvmlInit", lambda: init())
    api("nvmlShutdown", None)
    api("nvmlDeviceGetCount", 1)
    api("nvmlDeviceGetHandleByIndex", lambda i: f"handle{i}")
    api("nvmlDeviceGetName", card["name"])
    api("nvmlSystemGetDriverVersion", card["driver"])
    api("nvmlSystemGetNVMLVersion", "12." + card["driver"])
    api("nvmlDeviceGetUtilizationRates", types.SimpleNamespace(gpu=int(card["util"]), memory=41))
    api(
        "nvmlDeviceGetMemoryInfo",
        types.SimpleNamespace(
            total=int(card["total_mib"] * mib),
            used=int(card["used_mib"] * mib),
            free=int((card["total_mib"] - card["used_mib"]) * mib),
        ),
    )
    api("nvmlDeviceGetTemperature", lambda h, sensor: int(card["temp"]))
    api("nvmlDeviceGetPowerUsage", int(card["power_w"] * 1000))  # milliwatts
    api("nvmlDeviceGetClockInfo", lambda h, clock: int(card["sm_mhz"]))
    return nv


A2 = parse_nvidia_smi_q((DATA / "nvml" / "nvidia-smi-q-a2.txt").read_text())


def test_nvml_source_with_fake_fed_from_nvidia_smi_capture():
    nv = fake_pynvml(A2)
    src = nvml.NvmlSource(pynvml=nv)
    ok, reason = src.probe()
    assert ok and reason == "NVML 12.550.127.05, driver 550.127.05, 1 GPU: NVIDIA A2"
    got = values(src.read())
    assert got == {
        "gpu0.util_pct": 87.0,
        "gpu0.mem_used_mb": 3907.0,
        "gpu0.mem_total_mb": 15356.0,
        "gpu0.temp_c": 63.0,
        "gpu0.power_w": pytest.approx(52.37),
        "gpu0.sm_clock_mhz": 1770.0,
    }
    src.close()
    assert nv.calls[-1] == "nvmlShutdown"


def test_nvml_unsupported_metric_is_left_out_and_init_failure_explained():
    src = nvml.NvmlSource(pynvml=fake_pynvml(A2, unsupported=("nvmlDeviceGetPowerUsage",)))
    assert src.probe()[0]
    assert "gpu0.power_w" not in values(src.read()) and "gpu0.temp_c" in values(src.read())
    ok, reason = nvml.NvmlSource(pynvml=fake_pynvml(A2, init_error="Driver Not Loaded")).probe()
    assert (ok, reason) == (False, "no GPU found (NVML: Driver Not Loaded)")


def test_nvml_probe_on_this_machine_says_why():
    src = nvml.NvmlSource()
    ok, reason = src.probe()
    src.close()
    if ok:
        pytest.skip(f"this machine has an NVIDIA GPU: {reason}")
    assert reason.startswith("no GPU found (NVML: ") and reason.endswith(")")


# ---------------------------------------------------------------- platform choice, static info


def test_platform_choice_and_static_info_from_fake_trees():
    model = str(RPI4 / "proc/device-tree/model")
    assert telemetry.platform_kind(model, MISSING, MISSING) == "rpi"
    assert telemetry.platform_kind(MISSING, str(ORIN / "etc/nv_tegra_release"), MISSING) == "jetson"
    assert telemetry.platform_kind(MISSING, MISSING, MISSING) == "generic"
    assert [s.name for s in telemetry.default_sources("rpi")] == ["host", "rpi", "hailo"]  # the AI Kit's NPU, if any
    assert [s.name for s in telemetry.default_sources("jetson")] == ["host", "jetson"]
    assert [s.name for s in telemetry.default_sources("generic")] == ["host", "nvml", "rapl"]
    info = telemetry.static_info(
        model_path=model,
        dmi_path=MISSING,
        os_release_path=MISSING,
        governor_path=str(RPI4 / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        cpuinfo_path=str(RPI4 / "proc/cpuinfo"),
    )
    assert info["model"] == "Raspberry Pi 4 Model B Rev 1.4" and info["governor"] == "ondemand"
    assert info["cpu"] == "Cortex-A72" and info["platform_kind"] == "rpi"
    for key in ("hostname", "machine", "os", "kernel", "cores", "ram_mb"):
        assert info[key]


def test_probe_all_on_this_machine():
    statuses = telemetry.probe_all()
    assert statuses[0].name == "host" and statuses[0].available
    assert all(isinstance(s.reason, str) and s.reason for s in statuses)


# ---------------------------------------------------------------- sampler


class CountingSource(Source):
    def __init__(self, name="fake", max_hz=None, fail_after=None):
        super().__init__()
        self.name, self.max_hz, self.fail_after = name, max_hz, fail_after
        self.reads = 0
        self.pids: list[int | None] = []
        self.closed = False

    def _probe(self):
        return True, "fake"

    def read(self, worker_pid=None):
        self.reads += 1
        self.pids.append(worker_pid)
        if self.fail_after is not None and self.reads > self.fail_after:
            raise OSError("sensor vanished")
        return [("x", float(self.reads), "n")]

    def close(self):
        self.closed = True


class OffSource(CountingSource):
    def _probe(self):
        return False, "not here"


def test_sampler_ticks_at_10hz_and_survives_bad_sources():
    batches: list[list] = []
    good, capped, bad, off = (
        CountingSource("good"),
        CountingSource("capped", max_hz=2.0),
        CountingSource("bad", fail_after=2),
        OffSource("off"),
    )
    sampler = telemetry.Sampler([good, capped, bad, off], hz=10.0, sink=batches.append, worker_pid=1234)
    sampler.start()
    time.sleep(0.55)
    sampler.set_worker_pid(4321)
    time.sleep(0.5)
    t0 = time.monotonic()
    sampler.stop()
    assert time.monotonic() - t0 < 0.5 and not sampler.running

    assert 9 <= len(batches) <= 12  # once per tick, ~10 Hz for ~1 s
    stamps = [batch[0][0] for batch in batches if batch]
    assert all(all(row[0] == batch[0][0] for row in batch) for batch in batches if batch)  # one t_ns per tick
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False))
    gaps = [(b - a) / 1e6 for a, b in zip(stamps, stamps[1:], strict=False)]
    assert 90 < sum(gaps) / len(gaps) < 115  # ms; absolute deadlines keep the mean period
    assert {row[1] for batch in batches for row in batch} == {"good", "capped", "bad"}
    assert 2 <= capped.reads <= 3  # max_hz = 2
    assert bad.reads == 3 and off.reads == 0
    assert good.pids[0] == 1234 and good.pids[-1] == 4321
    status = {s.name: s for s in sampler.status()}
    assert status["good"].available and not status["off"].available and status["off"].reason == "not here"
    assert not status["bad"].available and "OSError: sensor vanished" in status["bad"].reason
    assert good.closed and bad.closed
    assert sampler.cpu_s > 0


def test_sampler_keeps_going_when_the_sink_raises():
    def sink(rows):
        raise RuntimeError("disk full")

    src = CountingSource()
    with telemetry.Sampler([src], hz=50.0, sink=sink) as sampler:
        time.sleep(0.15)
    assert sampler.sink_errors >= 3 and "disk full" in sampler.last_sink_error
    assert src.reads >= 3
    with pytest.raises(ValueError):
        telemetry.Sampler([], hz=0)


def test_worker_cpu_never_exceeds_all_cores():
    """CPU times tick in 10 ms: over one short, late tick the rate overshot (499.7% on 2 cores); it is capped at
    100% per core."""
    src = host.HostSource(thermal_root=MISSING)
    src.probe()
    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 2\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.2)
        src.read(child.pid)
        src._worker.last_cpu_s -= 1.0  # as if a whole CPU-second had landed in the next millisecond
        src._worker.last_wall = time.monotonic() - 0.001
        got = values(src.read(child.pid))
    finally:
        child.kill()
        child.wait()
    assert got["cpu.worker_pct"] == 100.0 * (os.cpu_count() or 1)


def test_sources_sampled_through_a_short_run_cover_it_and_gaps_print_once_in_one_order():
    """A fresh user's 1-s run printed 'cgroup figures cover 0.3-1.2 s ... (90%)', then the same for host and psi, in
    a different order each time: the sources had sampled every 0.1 s through the window."""
    from edgeprof.cli.text import run_summary
    from edgeprof.run.summary import coverage

    ms = 1_000_000
    tel = [(t * 100 * ms, src, "x", 1.0, "%") for src in ("psi", "host", "cgroup") for t in range(3, 13)]
    assert coverage(tel, (300 * ms, 1300 * ms), [], 0, period_ns=100 * ms) == {}
    late = coverage(tel, (300 * ms, 1300 * ms), [], 0)  # no period known: the 0.1-s gap at the end counts
    assert list(late) == ["cgroup", "host", "psi"]
    text = run_summary({"run_id": "r", "status": "ok", "telemetry_coverage": late})
    notes = [line for line in text.splitlines() if "figures cover" in line]
    assert notes == ["  ! cgroup, host and psi figures cover 0.3-1.2 s of the measured 0.3-1.3 s (90%)"]
