"""NVIDIA Jetson (JetPack 6) through jtop, the client of the jetson-stats service (jetson-stats 7.x).

Structures read (documented in the docstrings of ``jtop.jtop``'s properties in jetson-stats 7.2.2):

* ``gpu``: {name: {"type", "status": {"load", ...}, "freq": {"cur", "min", "max" (kHz), "governor"}}}
* ``memory``: {"RAM": {"tot", "used", ...} (KB), "SWAP": {"tot", "used"} (KB), "EMC": {"val" (%), "cur" (kHz)}}
* ``temperature``: {name: {"online", "temp" (C, -256 when offline)}}
* ``power``: {"rail": {name: {"online", "volt" (mV), "curr" (mA), "power" (mW), "avg" (mW)}}, "tot": {...}}
  ``tot`` is VDD_IN on Orin/Xavier NX and POM_5V_IN on Nano (the board input), else the sum of rails.
* ``engine``: {group: {name: {"online", "cur" (kHz), ...}}}

jtop talks to a root service over a socket; ``jtop.start()`` raises ``JtopException`` when that service is not
running or the user may not reach it. The service refreshes at its own interval (0.5 s at best), so this source
declares ``max_hz = 2`` and returns its cached rows until jtop reports new data: an observer registered with
``jtop.attach`` counts updates (without ``attach``, a time cap of 1 / max_hz stands in).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from typing import Any

from .base import Row, Source, read_text

NV_TEGRA_RELEASE_PATH = "/etc/nv_tegra_release"
DEVICE_TREE_COMPATIBLE_PATH = "/proc/device-tree/compatible"
DEVICE_TREE_MODEL_PATH = "/proc/device-tree/model"

SERVICE_FIX = "jtop service is not active: run sudo systemctl restart jtop.service"
# jtop refuses a client whose jetson-stats differs from the service's (7.x compares major.minor):
# "Mismatch version jtop service: [7.1.4] and client: [7.2.2]. Please run: sudo systemctl restart jtop.service".
# Restarting does not help when the venv's jetson-stats (from edgeprof's requirements) is not the system-wide one.
_MISMATCH_RE = re.compile(r"Mismatch version jtop service: \[([^\]]+)\] and client: \[([^\]]+)\]")


def service_problem(detail: str) -> str:
    """The reason for a JtopException, with the fix for the case it names."""
    match = _MISMATCH_RE.search(detail)
    if match:
        service, client = match.groups()
        return (f"the jtop service is jetson-stats {service} but this environment has {client}: install "
                f"jetson-stats=={service} in edgeprof's environment, or upgrade the service to {client} "
                "(sudo pip3 install jetson-stats==" + client + ") and run sudo systemctl restart jtop.service")
    return f"{SERVICE_FIX} (jtop: {detail})"


def is_jetson(
    nv_tegra_release_path: str = NV_TEGRA_RELEASE_PATH,
    compatible_path: str = DEVICE_TREE_COMPATIBLE_PATH,
) -> bool:
    """L4T writes /etc/nv_tegra_release; every Tegra device tree lists 'nvidia,tegra...' as compatible."""
    if os.path.exists(nv_tegra_release_path):
        return True
    return "nvidia,tegra" in (read_text(compatible_path) or "")


def _metric_name(raw: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(raw).lower()).strip("_") or "x"


def _default_factory() -> Any:
    from jtop import jtop

    return jtop(interval=0.5)


def rows_from_jtop(j: Any) -> list[Row]:
    """Flatten a started jtop object (or anything with the same attributes) into rows. Pure; used by tests."""
    rows: list[Row] = []
    gpus = getattr(j, "gpu", None) or {}
    for idx, gpu in enumerate(gpus.values()):
        prefix = f"gpu{idx}"  # same naming as nvml.py, so summaries find gpu<N>.load_pct / util_pct
        load = (gpu.get("status") or {}).get("load")
        if load is not None:
            rows.append((f"{prefix}.load_pct", float(load), "%"))
        cur = (gpu.get("freq") or {}).get("cur")
        if cur:
            rows.append((f"{prefix}.freq_mhz", cur / 1000.0, "MHz"))
    memory = getattr(j, "memory", None) or {}
    ram = memory.get("RAM") or {}
    if "used" in ram:
        rows.append(("mem.used_mb", ram["used"] / 1024.0, "MB"))
    if ram.get("tot"):
        rows.append(("mem.total_mb", ram["tot"] / 1024.0, "MB"))
    if "shared" in ram:
        rows.append(("mem.gpu_shared_mb", ram["shared"] / 1024.0, "MB"))
    swap = memory.get("SWAP") or {}
    if swap.get("tot"):
        rows.append(("swap.used_mb", swap.get("used", 0) / 1024.0, "MB"))
    emc = memory.get("EMC") or {}
    if emc.get("online", True) and "val" in emc:
        rows.append(("emc.load_pct", float(emc["val"]), "%"))
        if emc.get("cur"):
            rows.append(("emc.freq_mhz", emc["cur"] / 1000.0, "MHz"))
    for name, sensor in (getattr(j, "temperature", None) or {}).items():
        temp = sensor.get("temp")
        if sensor.get("online", True) and temp is not None and temp > -256:
            rows.append((f"temp.{_metric_name(name)}_c", float(temp), "C"))
    power = getattr(j, "power", None) or {}
    for name, rail in (power.get("rail") or {}).items():
        if not rail.get("online", True):
            continue
        rows.extend(_rail_rows(f"power.{_metric_name(name)}", rail))
    if power.get("tot"):
        rows.extend(_rail_rows("power.total", power["tot"]))
    for group in (getattr(j, "engine", None) or {}).values():
        for name, engine in group.items():
            if engine.get("online") and engine.get("cur"):
                rows.append((f"engine.{_metric_name(name)}_mhz", engine["cur"] / 1000.0, "MHz"))
    return rows


def _rail_rows(prefix: str, rail: dict) -> list[Row]:
    rows: list[Row] = []
    if rail.get("power") is not None:
        rows.append((f"{prefix}_w", rail["power"] / 1000.0, "W"))
    if rail.get("volt"):
        rows.append((f"{prefix}_v", rail["volt"] / 1000.0, "V"))
    if rail.get("curr") is not None and rail.get("volt"):
        rows.append((f"{prefix}_a", rail["curr"] / 1000.0, "A"))
    return rows


class JetsonSource(Source):
    """jtop-backed Jetson source. ``jtop_factory`` returns an unstarted jtop-like object (tests pass a fake)."""

    name = "jetson"
    max_hz = 2.0

    def __init__(
        self,
        jtop_factory: Callable[[], Any] | None = None,
        nv_tegra_release_path: str = NV_TEGRA_RELEASE_PATH,
        compatible_path: str = DEVICE_TREE_COMPATIBLE_PATH,
        model_path: str = DEVICE_TREE_MODEL_PATH,
    ):
        super().__init__()
        self._factory = jtop_factory
        self.nv_tegra_release_path = nv_tegra_release_path
        self.compatible_path = compatible_path
        self.model_path = model_path
        self._jtop: Any = None
        self._cached: list[Row] = []
        self._cached_at: float | None = None
        self._observing = False
        self._updates = 0  # bumped by jtop's thread on every new sample
        self._seen_updates = -1

    def _on_update(self, _jetson: Any) -> None:
        self._updates += 1

    def _probe(self) -> tuple[bool, str]:
        if not is_jetson(self.nv_tegra_release_path, self.compatible_path):
            return False, "not a Jetson"
        factory = self._factory
        if factory is None:
            try:
                import jtop  # noqa: F401
            except ImportError:
                return False, "jtop not installed (pip install jetson-stats, then reboot or restart jtop.service)"
            factory = _default_factory
        j = factory()
        try:
            j.start()
        except Exception as exc:
            if type(exc).__name__ == "JtopException":
                return False, service_problem(" ".join(str(exc).split()))
            raise
        self._jtop = j
        attach = getattr(j, "attach", None)
        if attach is not None:
            attach(self._on_update)
            self._observing = True
        model = read_text(self.model_path) or "Jetson"
        board = getattr(j, "board", None) or {}
        jetpack = ((board.get("hardware") or {}) if isinstance(board, dict) else {}).get("Jetpack")
        rails = ", ".join((getattr(j, "power", None) or {}).get("rail", {}) or {}) or "no power rails"
        return True, f"{model}{f', JetPack {jetpack}' if jetpack else ''}, jtop: {rails}"

    def read(self, worker_pid: int | None = None) -> list[Row]:
        now = time.monotonic()
        if self._cached_at is not None:
            stale_by_time = now - self._cached_at < 1.0 / self.max_hz
            if (self._updates == self._seen_updates) if self._observing else stale_by_time:
                return list(self._cached)
        j = self._jtop
        ok = getattr(j, "ok", None)
        if ok is not None and not ok(spin=True):  # re-raises the jtop thread's error, if any
            raise RuntimeError("jtop client stopped (jtop.service restarted or stopped?)")
        self._seen_updates = self._updates
        self._cached = rows_from_jtop(j)
        self._cached_at = now
        return list(self._cached)

    def close(self) -> None:
        j, self._jtop = self._jtop, None
        if j is not None:
            with contextlib.suppress(Exception):
                if self._observing:
                    j.detach(self._on_update)
                j.close()
