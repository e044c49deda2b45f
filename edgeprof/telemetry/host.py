"""Host telemetry through psutil plus a few sysfs files: CPU, memory, swap, temperatures, the worker process.

Cost per tick matters (target: the whole sampler under 1% of one core at 10 Hz), so:

* ``psutil.sensors_temperatures()`` walks every hwmon directory; instead the thermal zones are found once in
  ``probe`` and each tick reads only their ``temp`` files (millidegrees C).
* ``Process.children(recursive=True)`` scans all of /proc; the worker's children are re-listed at most once per
  ``children_refresh_s`` and only their ``/proc/<pid>/stat`` is read on the other ticks.
* CPU percentages come from psutil's delta API (``interval=None``); its first call has no previous sample and
  returns a meaningless 0.0, so ``probe`` primes it and a newly seen worker is primed before it is reported.

``cpu.worker_pct`` is like top's %CPU for the worker's tree: CPU seconds of the worker, its reaped children and
its live children, per wall second, times 100 (so 250 means two and a half cores busy).
"""

from __future__ import annotations

import contextlib
import glob
import os
import platform
import re
import time

import psutil

from .base import Row, Source, read_number, read_text

THERMAL_ROOT = "/sys/class/thermal"
GOVERNOR_PATH = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
CPUINFO_PATH = "/proc/cpuinfo"

_MB = 1024.0 * 1024.0

# ARM "CPU part" numbers from /proc/cpuinfo (arm64 kernels print no model name).
_ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1",
    "0xd41": "Cortex-A78",
    "0xd42": "Cortex-A78AE",
}


def _sensor_name(raw: str) -> str:
    """'cpu-thermal' -> 'cpu_thermal'; metric names stay [a-z0-9_]."""
    name = re.sub(r"[^a-z0-9]+", "_", raw.strip().lower()).strip("_")
    return name or "zone"


def find_thermal_zones(thermal_root: str = THERMAL_ROOT) -> list[tuple[str, str]]:
    """[(sensor name, path of its temp file)] for each readable thermal zone, names made unique."""
    zones: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for zone in sorted(glob.glob(os.path.join(thermal_root, "thermal_zone*")), key=_zone_index):
        temp_path = os.path.join(zone, "temp")
        if read_number(temp_path) is None:
            continue
        name = _sensor_name(read_text(os.path.join(zone, "type")) or os.path.basename(zone))
        count = seen.get(name, 0)
        seen[name] = count + 1
        zones.append((name if count == 0 else f"{name}{count}", temp_path))
    return zones


def _zone_index(path: str) -> int:
    digits = re.sub(r"\D", "", os.path.basename(path))
    return int(digits) if digits else 0


def read_governor(governor_path: str = GOVERNOR_PATH) -> str | None:
    return read_text(governor_path) or None


def cpu_model(cpuinfo_path: str = CPUINFO_PATH) -> str | None:
    """x86 'model name', else the ARM core type from 'CPU part', else platform.processor()."""
    text = read_text(cpuinfo_path) or ""
    part = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "model name" and value:
            return value
        if key == "cpu part" and part is None:
            part = value.lower()
    if part:
        return _ARM_PARTS.get(part, f"ARM CPU part {part}")
    return platform.processor() or None


def static_info(governor_path: str = GOVERNOR_PATH, cpuinfo_path: str = CPUINFO_PATH) -> dict:
    """What does not change during a run: governor (a string, so not a metric), CPU, cores, RAM, kernel."""
    return {
        "governor": read_governor(governor_path),
        "cpu_model": cpu_model(cpuinfo_path),
        "cpu_count_logical": psutil.cpu_count(logical=True),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "ram_total_mb": round(psutil.virtual_memory().total / _MB, 1),
        "kernel": platform.release(),
    }


def _hwmon_rows() -> list[Row]:
    rows: list[Row] = []
    seen: set[str] = set()
    try:
        sensors = psutil.sensors_temperatures()
    except Exception:
        return rows
    for chip, entries in sensors.items():
        for i, entry in enumerate(entries):
            name = _sensor_name(f"{chip}_{entry.label}" if entry.label else (chip if i == 0 else f"{chip}{i}"))
            if name not in seen and entry.current is not None:
                seen.add(name)
                rows.append((f"temp.{name}_c", float(entry.current), "C"))
    return rows


class _Worker:
    """Cached psutil handles for one worker pid and the CPU-time state behind cpu.worker_pct."""

    def __init__(self, pid: int):
        self.pid = pid
        self.proc = psutil.Process(pid)
        self.children: dict[int, psutil.Process] = {}
        self.children_listed_at = 0.0
        self.last_cpu_s: float | None = None
        self.last_wall: float | None = None


class HostSource(Source):
    """psutil-backed CPU/memory/swap/temperature source; always available where psutil runs."""

    name = "host"

    def __init__(
        self,
        thermal_root: str = THERMAL_ROOT,
        per_core_freq: bool = True,
        children_refresh_s: float = 1.0,
        hwmon_interval_s: float = 1.0,
    ):
        super().__init__()
        self.hwmon_interval_s = hwmon_interval_s
        self._hwmon = False  # fall back on psutil.sensors_temperatures() when there is no thermal zone
        self._hwmon_at: float | None = None
        self.thermal_root = thermal_root
        self.per_core_freq = per_core_freq
        self.children_refresh_s = children_refresh_s
        self._zones: list[tuple[str, str]] = []
        self._has_freq = False
        self._worker: _Worker | None = None

    def _probe(self) -> tuple[bool, str]:
        psutil.cpu_percent(percpu=False)  # prime the delta state: the first call has no previous sample
        psutil.cpu_percent(percpu=True)
        try:
            self._has_freq = bool(psutil.cpu_freq(percpu=False))
        except Exception:
            self._has_freq = False
        self._zones = find_thermal_zones(self.thermal_root)
        temps = ", ".join(name for name, _ in self._zones)
        if not self._zones:
            hwmon = _hwmon_rows()
            self._hwmon = bool(hwmon)
            if hwmon:
                temps = "hwmon via psutil: " + ", ".join(m for m, _, _ in hwmon)
            else:
                temps = f"none under {self.thermal_root}"
        return True, (
            f"psutil {psutil.__version__}, {psutil.cpu_count()} CPUs, "
            f"cpu freq {'yes' if self._has_freq else 'no'}, temperatures: {temps}"
        )

    def read(self, worker_pid: int | None = None) -> list[Row]:
        rows: list[Row] = [("cpu.total_pct", psutil.cpu_percent(percpu=False), "%")]
        for i, pct in enumerate(psutil.cpu_percent(percpu=True)):
            rows.append((f"cpu.core{i}_pct", pct, "%"))
        if self._has_freq:
            rows.extend(self._freq_rows())
        vm = psutil.virtual_memory()
        rows.append(("mem.used_mb", vm.used / _MB, "MB"))
        rows.append(("mem.available_mb", vm.available / _MB, "MB"))
        with contextlib.suppress(Exception):
            rows.append(("swap.used_mb", psutil.swap_memory().used / _MB, "MB"))
        for name, path in self._zones:
            value = read_number(path, 0.001)
            if value is not None:
                rows.append((f"temp.{name}_c", value, "C"))
        if self._hwmon:
            now = time.monotonic()
            if self._hwmon_at is None or now - self._hwmon_at >= self.hwmon_interval_s:
                self._hwmon_at = now  # sensors_temperatures() walks all of hwmon: at most once a second
                rows.extend(_hwmon_rows())
        if worker_pid is not None:
            rows.extend(self._worker_rows(worker_pid))
        return rows

    def _freq_rows(self) -> list[Row]:
        rows: list[Row] = []
        try:
            freq = psutil.cpu_freq(percpu=False)
            if freq and freq.current:
                rows.append(("cpu.freq_mhz", float(freq.current), "MHz"))
            if self.per_core_freq:
                per = psutil.cpu_freq(percpu=True) or []
                if len(per) > 1:
                    rows.extend(
                        (f"cpu.core{i}_freq_mhz", float(f.current), "MHz") for i, f in enumerate(per) if f.current
                    )
        except Exception:
            pass
        return rows

    def _worker_rows(self, pid: int) -> list[Row]:
        worker = self._worker
        if worker is None or worker.pid != pid:
            try:
                worker = self._worker = _Worker(pid)
            except psutil.Error:
                self._worker = None
                return []
        now = time.monotonic()
        if now - worker.children_listed_at >= self.children_refresh_s:
            worker.children_listed_at = now
            try:
                listed = worker.proc.children(recursive=True)
            except psutil.Error:
                listed = []
            worker.children = {c.pid: worker.children.get(c.pid, c) for c in listed}
        try:
            with worker.proc.oneshot():
                t = worker.proc.cpu_times()
                cpu_s = t.user + t.system + t.children_user + t.children_system
                rss = float(worker.proc.memory_info().rss)
        except psutil.Error:  # worker gone: report nothing for it
            self._worker = None
            return []
        for cpid, child in list(worker.children.items()):
            try:
                ct = child.cpu_times()
                cpu_s += ct.user + ct.system
                rss += child.memory_info().rss
            except psutil.Error:
                del worker.children[cpid]
        rows: list[Row] = [("mem.worker_rss_mb", rss / _MB, "MB")]
        if worker.last_cpu_s is not None and worker.last_wall is not None and now > worker.last_wall:
            pct = max(0.0, (cpu_s - worker.last_cpu_s) / (now - worker.last_wall) * 100.0)
            rows.insert(0, ("cpu.worker_pct", pct, "%"))
        worker.last_cpu_s, worker.last_wall = cpu_s, now
        return rows
