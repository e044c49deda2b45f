"""Memory pressure: the kernel's pressure-stall information (PSI) for memory, major faults, refaults and the
file/anonymous split of the memory charged to the worker: the mechanism behind "less memory, more latency".

PSI (Documentation/accounting/psi.rst) says how much of the time tasks were stalled waiting for memory: ``some`` is
the share of wall time in which at least one task of the group stalled (reclaim, refaulting evicted pages, swap-in),
``full`` the share in which all non-idle tasks stalled at once. Each file holds two lines::

    some avg10=0.00 avg60=0.00 avg300=0.00 total=0
    full avg10=0.00 avg60=0.00 avg300=0.00 total=0

``total`` is cumulative stall time in microseconds; this source reports the share of each tick's interval from its
delta (the avg10/avg60 figures are 10- and 60-second moving averages, too slow for a 10-s run).

Where the numbers come from, in order:

* the worker's own cgroup in a cgroup v2 hierarchy (``memory.pressure``): scope ``cgroup``. On pure cgroup v2 that
  is the cap's cgroup; on a hybrid cgroup v1 machine a v2 hierarchy mounted at ``/sys/fs/cgroup/unified`` still
  tracks PSI per cgroup (PSI is a core v2 file, present without the memory controller), and the runner puts the
  worker into a group of its own there (``worker.limits``);
* else the whole system's ``/proc/pressure/memory``: scope ``system``, labelled so (every process counts).

Faults and the charged split come from the cap's ``memory.stat`` where the worker runs in a memory cgroup: cgroup v1
names them ``total_pgmajfault``, ``total_workingset_refault_file``/``_anon`` (kernel 5.9+; ``total_workingset_refault``
before), ``total_rss`` (anonymous) and ``total_cache`` (page cache, the model's mapped file included); cgroup v2
``pgmajfault``, ``workingset_refault_file``/``_anon`` and ``anon``/``file``. Without a memory cgroup the worker's
major faults come from ``/proc/<pid>/stat`` (fields 12 and 14, majflt and cmajflt) and refaults are not available.
"""

from __future__ import annotations

import contextlib
import os
import time

from .base import HeldFile, Row, Source, hold

PROC_PRESSURE_MEMORY = "/proc/pressure/memory"
PROC_ROOT = "/proc"
_MB = 1024.0 * 1024.0

# memory.stat names: (major faults, refaults (summed), anonymous bytes, file bytes) per cgroup version
STAT_NAMES = {
    "cgroup1": ("total_pgmajfault", ("total_workingset_refault_file", "total_workingset_refault_anon",
                                     "total_workingset_refault"), "total_rss", "total_cache"),
    "cgroup2": ("pgmajfault", ("workingset_refault_file", "workingset_refault_anon", "workingset_refault"),
                "anon", "file"),
}


def parse_psi(text: str) -> dict[str, dict[str, float]]:
    """A PSI file -> {"some": {"avg10": 0.0, "avg60": ..., "avg300": ..., "total": us}, "full": {...}}; a line the
    kernel does not write (``full`` of the system's cpu file before 5.13) is absent."""
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        kind, *fields = line.split()
        if kind not in ("some", "full"):
            continue
        values = {}
        for f in fields:
            key, _, value = f.partition("=")
            try:
                values[key] = float(value)
            except ValueError:
                continue
        if "total" in values:
            out[kind] = values
    return out


def parse_memory_stat(text: str) -> dict[str, int]:
    """``memory.stat`` (both cgroup versions: one ``name value`` pair a line) -> {name: int}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def stat_figures(stat: dict[str, int], kind: str) -> dict[str, float | None]:
    """Major faults, refaults (cumulative counts), anon and file bytes from a parsed memory.stat of ``kind``
    (cgroup1 | cgroup2); None where this kernel does not write the counter."""
    major, refaults, anon, file = STAT_NAMES[kind]
    split = [stat[k] for k in refaults[:2] if k in stat]
    refault = float(sum(split)) if split else (float(stat[refaults[2]]) if refaults[2] in stat else None)
    return {"major_faults": float(stat[major]) if major in stat else None, "refaults": refault,
            "anon": float(stat[anon]) if anon in stat else None, "file": float(stat[file]) if file in stat else None}


def pid_faults(text: str) -> float | None:
    """Major faults of a process and its reaped children from ``/proc/<pid>/stat`` (majflt + cmajflt)."""
    try:
        fields = text[text.rindex(")") + 2:].split()
        return float(fields[9]) + float(fields[10])  # field 12 majflt, 14 cmajflt (fields[0] is field 3)
    except (ValueError, IndexError):
        return None


class MemoryPressureSource(Source):
    """``mem.pressure_some_pct`` and ``mem.pressure_full_pct`` (share of each tick's interval, %), and where readable
    ``mem.major_faults_per_s``, ``mem.refaults_per_s``, ``mem.anon_mb`` and ``mem.file_mb`` of the worker.

    ``cgroup_pressure``: the worker's own cgroup's ``memory.pressure`` (None: none was made); ``stat_path`` the cap's
    ``memory.stat`` and ``stat_kind`` its cgroup version (cgroup1 | cgroup2). ``scope`` says whose stalls are
    counted: ``cgroup`` or ``system``; a worker that could not join its PSI cgroup makes the runner call
    ``fall_back``, and the system's figures are read, labelled so.
    """

    name = "psi"
    measures = ("memory",)

    def __init__(self, cgroup_pressure: str | None = None, stat_path: str | None = None, stat_kind: str | None = None,
                 system_pressure: str = PROC_PRESSURE_MEMORY, proc_root: str = PROC_ROOT):
        super().__init__()
        self.cgroup_pressure = cgroup_pressure
        self.stat_path = stat_path
        self.stat_kind = stat_kind if stat_kind in STAT_NAMES else None
        self.system_pressure = system_pressure
        self.proc_root = proc_root
        self.scope: str | None = None
        self.path: str | None = None
        self.unavailable: str | None = None
        self.note: str | None = None
        self._fallback: HeldFile | None = None
        self._psi: HeldFile | None = None
        self._stat: HeldFile | None = None
        self._pid: int | None = None
        self._pid_stat: HeldFile | None = None
        self._last: dict[str, tuple[float, float]] = {}  # counter -> (monotonic s, value)

    def _probe(self) -> tuple[bool, str]:
        system = hold(self.system_pressure)
        system_ok = system is not None and bool(parse_psi(system.read() or ""))
        cgroup = hold(self.cgroup_pressure) if self.cgroup_pressure else None
        cgroup_ok = cgroup is not None and bool(parse_psi(cgroup.read() or ""))
        if cgroup is not None and not cgroup_ok:
            cgroup.close()
        if cgroup_ok:
            self._psi, self.scope, self.path = cgroup, "cgroup", self.cgroup_pressure
            self._fallback = system if system_ok else None
        elif system_ok:
            self._psi, self.scope, self.path = system, "system", self.system_pressure
            self._fallback = None
        else:
            if system is not None:
                system.close()
            self.unavailable = (f"the kernel gives no pressure-stall information ({self.system_pressure} cannot be "
                                "read: a kernel built without CONFIG_PSI, or booted with psi=0; boot with psi=1)")
            return False, self.unavailable
        self._stat = hold(self.stat_path) if self.stat_path and self.stat_kind else None
        what = f"memory PSI of the worker's cgroup ({self.path})" if self.scope == "cgroup" else \
            f"system-wide memory PSI ({self.path}; every process counts)"
        faults = f"; faults and charged split from {self.stat_path}" if self._stat else \
            "; major faults from /proc/<worker>/stat"
        return True, what + faults

    def fall_back(self, why: str) -> None:
        """Read the system's file instead of the cgroup's (the worker could not join its PSI cgroup: ``why``)."""
        if self.scope != "cgroup":
            return
        if self._psi is not None:
            self._psi.close()
        self._psi, self._fallback = self._fallback, None
        self.scope, self.path = ("system", self.system_pressure) if self._psi is not None else (None, None)
        self.unavailable = None if self._psi is not None else why
        self.note = why

    def _rate(self, key: str, now: float, value: float | None, scale: float = 1.0) -> float | None:
        """Per-second (times ``scale``) increase of a cumulative counter since the last tick; None on the first."""
        if value is None:
            return None
        prev = self._last.get(key)
        self._last[key] = (now, value)
        if prev is None or now <= prev[0] or value < prev[1]:
            return None
        return (value - prev[1]) / (now - prev[0]) * scale

    def read(self, worker_pid: int | None = None) -> list[Row]:
        now = time.monotonic()
        if worker_pid is not None and worker_pid != self._pid:
            self._pid = worker_pid
            self._last.clear()
            if self._pid_stat is not None:
                self._pid_stat.close()
            self._pid_stat = None if self._stat else hold(os.path.join(self.proc_root, str(worker_pid), "stat"))
        rows: list[Row] = []
        psi = parse_psi(self._psi.read() or "") if self._psi else {}
        for kind in ("some", "full"):
            if kind in psi:
                pct = self._rate(f"psi.{kind}", now, psi[kind]["total"], scale=1e-6 * 100.0)
                if pct is not None:
                    rows.append((f"mem.pressure_{kind}_pct", max(0.0, min(100.0, pct)), "%"))
        if self._stat is not None:
            fig = stat_figures(parse_memory_stat(self._stat.read() or ""), self.stat_kind)
            for key, metric in (("major_faults", "mem.major_faults_per_s"), ("refaults", "mem.refaults_per_s")):
                rate = self._rate(key, now, fig[key])
                if rate is not None:
                    rows.append((metric, rate, "/s"))
            for key in ("anon", "file"):
                if fig[key] is not None:
                    rows.append((f"mem.{key}_mb", fig[key] / _MB, "MB"))
        elif self._pid_stat is not None:
            rate = self._rate("major_faults", now, pid_faults(self._pid_stat.read(1024) or ""))
            if rate is not None:
                rows.append(("mem.major_faults_per_s", rate, "/s"))
        return rows

    def describe(self) -> dict:
        """What the run's summary says about the pressure figures: {"scope", "path"} or {"unavailable": why}."""
        self.probe()
        if self.scope is None:
            return {"unavailable": self.unavailable or "no pressure-stall information was read"}
        doc = {"scope": self.scope, "path": self.path,
               "faults_from": self.stat_path if self.stat_path and self.stat_kind else "/proc/<worker>/stat"}
        if self.note:
            doc["note"] = self.note
        return doc

    def close(self) -> None:
        for held in (self._psi, self._stat, self._pid_stat, getattr(self, "_fallback", None)):
            if held is not None:
                held.close()
        self._psi = self._stat = self._pid_stat = self._fallback = None


PROC_SWAPS = "/proc/swaps"


def swap_total_mb(path: str = PROC_SWAPS) -> float:
    """Swap (zram included) configured on this device in MB, from ``/proc/swaps`` (sizes in KiB after a header
    line); 0.0 where it lists none or cannot be read."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return 0.0
    total = 0.0
    for line in lines:
        parts = line.split()
        if len(parts) >= 3:
            with contextlib.suppress(ValueError):
                total += float(parts[2]) / 1024.0
    return total
