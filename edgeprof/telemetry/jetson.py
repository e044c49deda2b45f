"""NVIDIA Jetson (JetPack 6) through jtop, the client of the jetson-stats service (jetson-stats 7.x).

Structures read (documented in the docstrings of ``jtop.jtop``'s properties in jetson-stats 7.2.2):

* ``gpu``: {name: {"type", "status": {"load", ...}, "freq": {"cur", "min", "max" (kHz), "governor"}}}
* ``memory``: {"RAM": {"tot", "used", ...} (KB), "SWAP": {"tot", "used"} (KB), "EMC": {"val" (%), "cur" (kHz)}}
* ``temperature``: {name: {"online", "temp" (C, -256 when offline)}}
* ``power``: {"rail": {name: {"online", "volt" (mV), "curr" (mA), "power" (mW), "avg" (mW)}}, "tot": {...}}
  ``tot`` is VDD_IN on Orin/Xavier NX and POM_5V_IN on Nano (the board input), else the sum of rails.
* ``engine``: {group: {name: {"online", "cur" (kHz), ...}}}

jtop talks to a root service over a socket; ``jtop.start()`` raises ``JtopException`` (messages as jetson-stats
7.2.2 writes them in ``jtop.start``): "The jtop.service is not active" (start the service), "I can't access
jtop.service" (the user may not reach its socket: add the user to the ``jtop`` group and log in again), "Mismatch
version jtop service: [A] and client: [B]" (the jetson-stats in this Python differs from the service's).

The power mode (``power_mode``, a run's column) comes from ``nvpmodel -q``, which prints the mode's name and then
its number (as captured on a Jetson Thor, JetPack 7; Orin's L4T prints the same two lines, with any ``NVPM WARN``
lines before them)::

    NV Power Mode: MAXN
    0

The service refreshes at its own interval (0.5 s at best), so this source declares ``max_hz = 2`` and returns rows
only for a NEW sample. jtop's own thread re-delivers the last data when the service stops answering, so "new" is
judged by the service's own clock, ``jtop.uptime`` (the board's uptime when the service read it); without it, by
the observer count (``jtop.attach``), else by the values. No new sample for ``STALL_INTERVALS`` service intervals
(at least 3 s), a client thread that died (``jtop.ok`` re-raises its error) or a client that stopped raise
``SourceStopped`` with the time of the last good sample: the run records when and why, never the old values again.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from typing import Any

from .base import Row, Source, SourceStopped, read_text

NV_TEGRA_RELEASE_PATH = "/etc/nv_tegra_release"
DEVICE_TREE_COMPATIBLE_PATH = "/proc/device-tree/compatible"
DEVICE_TREE_MODEL_PATH = "/proc/device-tree/model"

SERVICE_FIX = "jtop service is not active: run sudo systemctl restart jtop.service"
GROUP_FIX = ("this user may not reach the jtop service: add it to the jtop group (sudo usermod -a -G jtop $USER), "
             "then log out and in again")
NVPMODEL = "nvpmodel"
STALL_INTERVALS = 6
MIN_STALL_S = 3.0


def explain_jtop_error(text: str) -> str:
    """What a JtopException means and what to do, from its message (as jetson-stats 7.2.2 writes them)."""
    detail = " ".join(str(text).split())
    m = re.search(r"Mismatch version jtop service: \[([^\]]*)\] and client: \[([^\]]*)\]", detail)
    if m:
        return (f"the jtop service runs jetson-stats {m[1]} but this Python has {m[2]}: install the same version "
                f"here (pip install jetson-stats=={m[1]}), or upgrade the service's (sudo pip3 install -U "
                "jetson-stats, then sudo systemctl restart jtop.service) and match it here")
    if "can't access jtop.service" in detail or "Permission denied" in detail:
        return f"{GROUP_FIX} (jtop: {detail})"
    if "not active" in detail:
        return f"{SERVICE_FIX} (jtop: {detail})"
    return f"jtop could not start: {detail}"


def parse_nvpmodel(text: str) -> tuple[str, int | None] | None:
    """``nvpmodel -q`` -> (mode name, mode number or None): ``"NV Power Mode: MAXN\\n0"`` -> ("MAXN", 0); None when
    it names no mode."""
    lines = [line.strip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        m = re.match(r"NV Power Mode:\s*(\S.*)$", line)
        if m:
            following = lines[i + 1] if i + 1 < len(lines) else ""
            return m[1].strip(), int(following) if following.isdigit() else None
    return None


def power_mode(runner: Callable[[list[str]], str] | None = None, nvpmodel: str = NVPMODEL) -> str | None:
    """The Jetson's power mode by name (``MAXN``, ``15W``, ``MAXN_SUPER``) from ``nvpmodel -q``; None where nvpmodel
    is missing, fails or names no mode (it needs no root to query)."""
    import shutil
    import subprocess

    from .rpi import run_command

    if runner is None:
        found = shutil.which(nvpmodel)
        if found is None:
            return None
        runner, nvpmodel = run_command, found
    try:
        parsed = parse_nvpmodel(runner([nvpmodel, "-q"]))
    except (OSError, subprocess.SubprocessError):
        return None
    return parsed[0] if parsed else None


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
    measures = ("gpu", "memory", "board")
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
        self._observing = False
        self._updates = 0  # bumped by jtop's thread on every sample it delivers
        self._last_stamp: Any = None  # what identified the last sample read: uptime, update count, or the rows
        self._last_fresh: float | None = None  # monotonic s of the last new sample
        self._stall_s = MIN_STALL_S

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
                return False, explain_jtop_error(str(exc))
            raise
        self._jtop = j
        interval = getattr(j, "interval", None)
        if isinstance(interval, (int, float)) and interval > 0:
            self._stall_s = max(MIN_STALL_S, STALL_INTERVALS * float(interval))
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
        """Rows of a new jtop sample, or [] when jtop has nothing new. Raises SourceStopped when it stopped."""
        now = time.monotonic()
        j = self._jtop
        ok = getattr(j, "ok", None)
        last = None if self._last_fresh is None else int(self._last_fresh * 1e9)
        try:
            alive = ok(spin=True) if ok is not None else True  # re-raises the jtop thread's error, if any
        except Exception as exc:
            raise SourceStopped(f"the jtop client failed ({type(exc).__name__}: {' '.join(str(exc).split())})",
                                last) from None
        if not alive:
            raise SourceStopped("the jtop client stopped (jtop.service stopped or restarted)", last)
        uptime = getattr(j, "uptime", None)
        if uptime is not None:
            stamp = ("uptime", uptime)
        elif self._observing:
            stamp = ("updates", self._updates)
        else:
            stamp = None
        if stamp is not None and stamp == self._last_stamp:
            return self._stale(now, last)
        rows = rows_from_jtop(j)
        if stamp is None:
            stamp = ("rows", tuple(rows))
            if stamp == self._last_stamp:
                return self._stale(now, last)
        self._last_stamp, self._last_fresh = stamp, now
        return rows

    def _stale(self, now: float, last: int | None) -> list[Row]:
        if self._last_fresh is not None and now - self._last_fresh > self._stall_s:
            raise SourceStopped(f"jtop sent no new sample for {now - self._last_fresh:.1f} s (jtop.service hung or "
                                "stopped; check it with systemctl status jtop.service)", last)
        return []

    def close(self) -> None:
        j, self._jtop = self._jtop, None
        if j is not None:
            with contextlib.suppress(Exception):
                if self._observing:
                    j.detach(self._on_update)
                j.close()
