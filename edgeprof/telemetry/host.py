"""Host telemetry: CPU, memory, swap, temperatures, and the worker process (psutil plus a few proc/sys files).

Linux only (/proc). Cost per tick matters (target: the whole sampler under 1% of one core at 10 Hz; on a VM each
cold open+read of a proc file costs ~100-150 us of CPU after the thread has slept), so files are opened once in
``probe`` and re-read with pread at offset 0 (``base.HeldFile``), and each tick reads as few of them as it can:

* /proc/stat once for total and per-core CPU percent (psutil's formula: busy = total - idle - iowait, guest time
  not counted twice). psutil.cpu_percent() would read it twice for total + per-core, and its delta state is
  global to the process: any other caller (a dashboard in the same process) would move our baseline.
* /proc/meminfo once for memory and swap; psutil.swap_memory() also reads /proc/vmstat. Same formulas as psutil:
  used = MemTotal - MemAvailable, swap used = SwapTotal - SwapFree.
* cpufreq: one ``scaling_cur_freq`` per policy (Pi 4: one policy for all four cores), expanded to per-core rows
  with ``related_cpus`` read at probe. Without cpufreq (most VMs) psutil.cpu_freq() (/proc/cpuinfo) is read at
  most once per ``slow_interval_s``.
* ``psutil.sensors_temperatures()`` walks every hwmon directory; the thermal zones are found once in ``probe`` and
  each tick reads only their ``temp`` files (millidegrees C); hwmon via psutil is a fallback at most once per
  ``slow_interval_s``.
* ``Process.children(recursive=True)`` scans all of /proc; the worker's children are re-listed at most once per
  ``children_refresh_s``. Each tick reads one held ``/proc/<pid>/stat`` per process (CPU times and RSS in one
  file); a held fd keeps pointing at the original process, so a reused pid cannot be mistaken for the worker.

``cpu.worker_pct`` is like top's %CPU for the worker's tree: CPU seconds of the worker, its reaped children and
its live children, per wall second, times 100 (so 250 means two and a half cores busy; never above 100 x cores,
which the 10-ms granularity of CPU times can overshoot over one short tick). The first sample of a
worker only sets the baseline, so that metric appears from the second tick on (never a made-up 0).
"""

from __future__ import annotations

import contextlib
import glob
import os
import platform
import re
import time

import psutil

from .base import HeldFile, Row, Source, hold, read_number, read_text

THERMAL_ROOT = "/sys/class/thermal"
CPUFREQ_ROOT = "/sys/devices/system/cpu/cpufreq"
PROC_STAT_PATH = "/proc/stat"
MEMINFO_PATH = "/proc/meminfo"
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
    """What does not change during a run: governor (a string, so not a metric), CPU, cores, RAM, kernel.

    Key names follow the store's devices table (cpu, cores, ram_mb).
    """
    return {
        "governor": read_governor(governor_path),
        "cpu": cpu_model(cpuinfo_path),
        "cores": psutil.cpu_count(logical=True),
        "cores_physical": psutil.cpu_count(logical=False),
        "ram_mb": round(psutil.virtual_memory().total / _MB, 1),
        "kernel": platform.release(),
    }


def _psutil_freq_rows(per_core: bool) -> list[Row]:
    rows: list[Row] = []
    try:
        per = psutil.cpu_freq(percpu=True) or []
    except Exception:
        return rows
    current = [f.current for f in per if f.current]
    if current:
        rows.append(("cpu.freq_mhz", sum(current) / len(current), "MHz"))
    if per_core and len(per) > 1:
        rows.extend((f"cpu.core{i}_freq_mhz", float(f.current), "MHz") for i, f in enumerate(per) if f.current)
    return rows


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


def parse_proc_stat(text: str) -> dict[str, tuple[float, float]]:
    """/proc/stat -> {"cpu": (total, idle), "cpu0": ...} in clock ticks, counted the way psutil counts them."""
    out: dict[str, tuple[float, float]] = {}
    for line in text.splitlines():
        if not line.startswith("cpu"):
            break  # the cpu lines come first
        name, *fields = line.split()
        v = [float(x) for x in fields] + [0.0] * (10 - len(fields))
        # user nice system idle iowait irq softirq steal guest guest_nice; guest is already inside user/nice
        out[name] = (sum(v[:8]), v[3] + v[4])
    return out


def busy_pct(prev: tuple[float, float], cur: tuple[float, float]) -> float | None:
    """Percent busy between two (total, idle) samples; None when no time passed."""
    d_total = cur[0] - prev[0]
    if d_total <= 0:
        return None
    return max(0.0, min(100.0, (d_total - (cur[1] - prev[1])) / d_total * 100.0))


def parse_meminfo(text: str) -> dict[str, float]:
    """/proc/meminfo -> {"MemTotal": bytes, ...}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            out[key] = float(parts[0]) * (1024.0 if len(parts) > 1 and parts[1] == "kB" else 1.0)
    return out


def memory_rows(meminfo: dict[str, float]) -> list[Row]:
    rows: list[Row] = []
    total, avail = meminfo.get("MemTotal"), meminfo.get("MemAvailable")
    if total is not None and avail is not None:
        rows.append(("mem.used_mb", (total - avail) / _MB, "MB"))
        rows.append(("mem.available_mb", avail / _MB, "MB"))
    if "SwapTotal" in meminfo and "SwapFree" in meminfo:
        rows.append(("swap.used_mb", (meminfo["SwapTotal"] - meminfo["SwapFree"]) / _MB, "MB"))
    return rows


def _parse_cpu_list(text: str) -> list[int]:
    """'0-3' / '0 1 2 3' / '0,2-3' -> [0, 1, 2, 3]."""
    cpus: list[int] = []
    for part in re.split(r"[\s,]+", text.strip()):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def find_cpufreq_policies(cpufreq_root: str = CPUFREQ_ROOT) -> list[tuple[str, list[int]]]:
    """[(scaling_cur_freq path, cpus it clocks)] for each readable cpufreq policy."""
    policies = []
    for policy in sorted(glob.glob(os.path.join(cpufreq_root, "policy*")), key=_zone_index):
        cur = os.path.join(policy, "scaling_cur_freq")
        if read_number(cur) is None:
            continue
        cpus_text = read_text(os.path.join(policy, "related_cpus")) or read_text(os.path.join(policy, "affected_cpus"))
        try:
            cpus = _parse_cpu_list(cpus_text) if cpus_text else []
        except ValueError:
            cpus = []
        policies.append((cur, cpus))
    return policies


PROC_ROOT = "/proc"
_CLK_TCK = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
_PAGE = float(os.sysconf("SC_PAGE_SIZE")) if hasattr(os, "sysconf") else 4096.0


def parse_pid_stat(text: str) -> tuple[float, float, float] | None:
    """/proc/<pid>/stat -> (own CPU s, reaped children's CPU s, RSS bytes). The comm field may hold spaces."""
    try:
        fields = text[text.rindex(")") + 2 :].split()
        # after comm: state(3) ... utime(14) stime(15) cutime(16) cstime(17) ... rss(24); fields[0] is field 3
        utime, stime, cutime, cstime = (float(x) for x in fields[11:15])
        rss_pages = float(fields[21])
    except (ValueError, IndexError):
        return None
    return (utime + stime) / _CLK_TCK, (cutime + cstime) / _CLK_TCK, rss_pages * _PAGE


class _Worker:
    """Held /proc/<pid>/stat files for the worker and its children, and the state behind cpu.worker_pct."""

    def __init__(self, pid: int, proc_root: str):
        self.pid = pid
        self.proc_root = proc_root
        self.stat = HeldFile(os.path.join(proc_root, str(pid), "stat"))  # OSError when gone
        self.children: dict[int, HeldFile] = {}
        self.children_listed_at: float | None = None
        self.last_cpu_s: float | None = None
        self.last_wall: float | None = None

    def list_children(self) -> None:
        try:
            pids = {c.pid for c in psutil.Process(self.pid).children(recursive=True)}
        except psutil.Error:
            pids = set()
        for gone in set(self.children) - pids:
            self.children.pop(gone).close()
        for new in pids - set(self.children):
            held = hold(os.path.join(self.proc_root, str(new), "stat"))
            if held is not None:
                self.children[new] = held

    def close(self) -> None:
        self.stat.close()
        for held in self.children.values():
            held.close()
        self.children.clear()


class HostSource(Source):
    """CPU/memory/swap/temperature of the host and the worker's tree; available wherever /proc is."""

    name = "host"
    measures = ("cpu", "memory", "board")

    def __init__(
        self,
        thermal_root: str = THERMAL_ROOT,
        cpufreq_root: str = CPUFREQ_ROOT,
        proc_stat_path: str = PROC_STAT_PATH,
        meminfo_path: str = MEMINFO_PATH,
        proc_root: str = PROC_ROOT,
        per_core_freq: bool = True,
        children_refresh_s: float = 2.0,
        slow_interval_s: float = 1.0,
    ):
        super().__init__()
        self.thermal_root = thermal_root
        self.cpufreq_root = cpufreq_root
        self.proc_stat_path = proc_stat_path
        self.meminfo_path = meminfo_path
        self.proc_root = proc_root
        self._stat: HeldFile | None = None
        self._meminfo: HeldFile | None = None
        self.per_core_freq = per_core_freq
        self.children_refresh_s = children_refresh_s
        self.slow_interval_s = slow_interval_s
        self._zones: list[tuple[str, HeldFile]] = []
        self._policies: list[tuple[HeldFile, list[int]]] = []
        self._psutil_freq = False  # no cpufreq in sysfs: psutil.cpu_freq() at most once per slow_interval_s
        self._hwmon = False  # no thermal zone: psutil.sensors_temperatures() at most once per slow_interval_s
        self._slow_at: float | None = None
        self._last_stat: dict[str, tuple[float, float]] = {}
        self._worker: _Worker | None = None

    def _probe(self) -> tuple[bool, str]:
        self._stat = hold(self.proc_stat_path)
        stat = self._stat.read() if self._stat else None
        if not stat or "cpu" not in (parsed := parse_proc_stat(stat)):
            return False, f"cannot read CPU times from {self.proc_stat_path}"
        self._last_stat = parsed  # baseline: the first read reports percentages since the probe
        self._meminfo = hold(self.meminfo_path)
        self._policies = [(f, cpus) for path, cpus in find_cpufreq_policies(self.cpufreq_root) if (f := hold(path))]
        if not self._policies:
            with contextlib.suppress(Exception):
                self._psutil_freq = bool(psutil.cpu_freq(percpu=False))
        self._zones = [(name, f) for name, path in find_thermal_zones(self.thermal_root) if (f := hold(path))]
        temps = ", ".join(name for name, _ in self._zones)
        if not self._zones:
            hwmon = _hwmon_rows()
            self._hwmon = bool(hwmon)
            temps = ("hwmon via psutil: " + ", ".join(m for m, _, _ in hwmon)) if hwmon else "none"
        if self._policies:
            freq = f"cpufreq: {len(self._policies)} polic{'y' if len(self._policies) == 1 else 'ies'}"
        else:
            freq = "cpu freq: " + ("psutil (no cpufreq in sysfs)" if self._psutil_freq else "none")
        ncpu = sum(1 for k in parsed if k != "cpu")
        return True, f"psutil {psutil.__version__}, {ncpu} CPUs, {freq}, temperatures: {temps}"

    def read(self, worker_pid: int | None = None) -> list[Row]:
        rows: list[Row] = []
        stat_text = self._stat.read() if self._stat else None
        if stat_text:
            stat = parse_proc_stat(stat_text)
            last = self._last_stat
            for name, cur in stat.items():
                prev = last.get(name)
                pct = busy_pct(prev, cur) if prev else None
                if pct is not None:
                    rows.append(("cpu.total_pct" if name == "cpu" else f"cpu.core{name[3:]}_pct", pct, "%"))
            self._last_stat = stat
        meminfo = self._meminfo.read() if self._meminfo else None
        if meminfo:
            rows.extend(memory_rows(parse_meminfo(meminfo)))
        if self._policies:
            rows.extend(self._freq_rows())
        for name, held in self._zones:
            value = held.number(0.001)
            if value is not None:
                rows.append((f"temp.{name}_c", value, "C"))
        if self._psutil_freq or self._hwmon:
            now = time.monotonic()
            if self._slow_at is None or now - self._slow_at >= self.slow_interval_s:
                self._slow_at = now
                if self._psutil_freq:
                    rows.extend(_psutil_freq_rows(self.per_core_freq))
                if self._hwmon:
                    rows.extend(_hwmon_rows())
        if worker_pid is not None:
            rows.extend(self._worker_rows(worker_pid))
        return rows

    def _freq_rows(self) -> list[Row]:
        rows: list[Row] = []
        per_core: dict[int, float] = {}
        values = []
        for held, cpus in self._policies:
            mhz = held.number(0.001)  # kHz -> MHz
            if mhz is None:
                continue
            values.append((mhz, max(len(cpus), 1)))
            for cpu in cpus:
                per_core[cpu] = mhz
        if values:  # mean over cores, as psutil.cpu_freq() reports it
            rows.append(("cpu.freq_mhz", sum(v * n for v, n in values) / sum(n for _, n in values), "MHz"))
        if self.per_core_freq and len(per_core) > 1:
            rows.extend((f"cpu.core{cpu}_freq_mhz", mhz, "MHz") for cpu, mhz in sorted(per_core.items()))
        return rows

    def _worker_rows(self, pid: int) -> list[Row]:
        worker = self._worker
        if worker is None or worker.pid != pid:
            if worker is not None:
                worker.close()
            try:
                worker = self._worker = _Worker(pid, self.proc_root)
            except OSError:
                self._worker = None
                return []
        now = time.monotonic()
        if worker.children_listed_at is None or now - worker.children_listed_at >= self.children_refresh_s:
            worker.children_listed_at = now
            worker.list_children()
        own = parse_pid_stat(worker.stat.read(1024) or "")
        if own is None:  # worker gone: report nothing for it
            return []
        cpu_s, rss = own[0] + own[1], own[2]
        for cpid, held in list(worker.children.items()):
            child = parse_pid_stat(held.read(1024) or "")
            if child is None:
                worker.children.pop(cpid).close()
                continue
            cpu_s += child[0]
            rss += child[2]
        rows: list[Row] = [("mem.worker_rss_mb", rss / _MB, "MB")]
        if worker.last_cpu_s is not None and worker.last_wall is not None and now > worker.last_wall:
            pct = (cpu_s - worker.last_cpu_s) / (now - worker.last_wall) * 100.0
            # CPU times come in clock ticks (10 ms): over a 0.1-s tick that a busy sampler ran late or early, the
            # quotient can exceed what the cores can give (499.7% seen on 2 cores); no process uses more than all
            pct = min(max(0.0, pct), 100.0 * (os.cpu_count() or 1))
            rows.insert(0, ("cpu.worker_pct", pct, "%"))
        worker.last_cpu_s, worker.last_wall = cpu_s, now
        return rows

    def close(self) -> None:
        for held in [self._stat, self._meminfo, *(f for _, f in self._zones), *(f for f, _ in self._policies)]:
            if held is not None:
                held.close()
        if self._worker is not None:
            self._worker.close()
            self._worker = None
