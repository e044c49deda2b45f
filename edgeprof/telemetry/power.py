"""CPU power from Intel RAPL through the Linux powercap framework (``/sys/class/powercap``), for energy per inference.

The kernel's powercap documentation (Documentation/power/powercap/powercap.rst) lays it out: one zone per RAPL
domain, ``intel-rapl:N`` for each package (``name`` ``package-N``) with subzones ``intel-rapl:N:M`` (``core``,
``uncore``, ``dram``), and on some laptops ``intel-rapl:1`` named ``psys`` (the whole platform). Each zone has
``energy_uj``, a cumulative counter in microjoules that wraps around at ``max_energy_range_uj``.

What is summed: ``psys`` when present (it already covers the package and DRAM), else every ``package-N`` plus every
``dram`` zone (``core`` and ``uncore`` are parts of their package and would be counted twice). Power is the
counter's increase between two readings over the time between them; a wrap (a reading below the last) adds
``max_energy_range_uj``.

Since 2020 (CVE-2020-8694) ``energy_uj`` is readable by root only; virtual machines usually have no powercap zones
at all. The probe says which.
"""

from __future__ import annotations

import glob
import os
import time

from .base import HeldFile, Row, Source, hold, read_number, read_text

POWERCAP_ROOT = "/sys/class/powercap"


def rapl_zones(root: str = POWERCAP_ROOT) -> list[tuple[str, str, float | None]]:
    """[(zone name, path, max_energy_range_uj)] of the zones whose energy is summed (see the module docstring)."""
    zones = []
    for path in sorted(glob.glob(os.path.join(root, "intel-rapl:*"))):
        name = read_text(os.path.join(path, "name"))
        if name:
            zones.append((name, path, read_number(os.path.join(path, "max_energy_range_uj"))))
    psys = [z for z in zones if z[0] == "psys"]
    if psys:
        return psys
    return [z for z in zones if z[0].startswith("package") or z[0] == "dram"]


def energy_delta_uj(prev: float, cur: float, max_range: float | None) -> float | None:
    """Microjoules between two readings of a counter that wraps at ``max_range``; None when it went back without a
    known range (a reset)."""
    if cur >= prev:
        return cur - prev
    if max_range:
        return cur + max_range - prev
    return None


def _metric(name: str) -> str:
    return "power.rapl_" + "".join(c if c.isalnum() else "_" for c in name.lower()) + "_w"


class RaplSource(Source):
    """``power.rapl_w`` (the sum: psys, else packages + DRAM) and ``power.rapl_<zone>_w`` per summed zone, in W."""

    name = "rapl"
    measures = ("cpu",)

    def __init__(self, root: str = POWERCAP_ROOT):
        super().__init__()
        self.root = root
        self._zones: list[tuple[str, HeldFile, float | None]] = []
        self._last: dict[str, tuple[float, float]] = {}

    def _probe(self) -> tuple[bool, str]:
        if not os.path.isdir(self.root) or not glob.glob(os.path.join(self.root, "intel-rapl:*")):
            return False, (f"no Intel RAPL zones in {self.root} (not an Intel/AMD x86 CPU with powercap, or a virtual "
                           "machine, which usually exposes none)")
        found = rapl_zones(self.root)
        unreadable = []
        for name, path, max_range in found:
            held = hold(os.path.join(path, "energy_uj"))
            if held is None or held.number() is None:
                unreadable.append(name)
                if held is not None:
                    held.close()
                continue
            self._zones.append((name, held, max_range))
        if not self._zones:
            return False, (f"RAPL energy counters ({', '.join(unreadable) or 'none found'}) cannot be read: since "
                           "Linux 5.10 energy_uj is readable by root only; run edgeprof as root for energy figures")
        names = ", ".join(name for name, _, _ in self._zones)
        return True, f"Intel RAPL via powercap: {names}"

    def read(self, worker_pid: int | None = None) -> list[Row]:
        now = time.monotonic()
        rows: list[Row] = []
        total, complete = 0.0, True
        for name, held, max_range in self._zones:
            cur = held.number()
            prev = self._last.get(name)
            if cur is None:
                complete = False
                continue
            self._last[name] = (now, cur)
            if prev is None or now <= prev[0]:
                complete = False
                continue
            delta = energy_delta_uj(prev[1], cur, max_range)
            if delta is None:
                complete = False
                continue
            watts = delta / 1e6 / (now - prev[0])
            rows.append((_metric(name), watts, "W"))
            total += watts
        if rows and complete:
            rows.append(("power.rapl_w", total, "W"))
        return rows

    def close(self) -> None:
        for _, held, _ in self._zones:
            held.close()
        self._zones = []
