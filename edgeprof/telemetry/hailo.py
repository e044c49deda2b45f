"""A Hailo NPU (Hailo-8L on the Raspberry Pi 5's AI Kit / AI HAT+, or a Hailo-8) through HailoRT's ``hailortcli``.

Rows: ``npu<N>.util_pct`` (``hailortcli monitor``), ``npu<N>.power_w`` (``hailortcli measure-power``, where the module
has a current monitor) and ``npu<N>.temp_c`` (HailoRT's Python binding, ``Device.control.get_chip_temperature()``:
the mean of its two sensors, ts0 and ts1, as ``hailortcli``'s own temperature measurement takes it). Their meaning is
declared in ``catalog`` (device class ``npu``, power scope ``npu``).

Output formats, as HailoRT 4.x's ``hailortcli`` sources print them (``hailortcli/fw_control_command.cpp``,
``mon_command.cpp``, ``power_measurement_command.cpp``) and as users captured them on a Pi 5 with a Hailo-8L:

``hailortcli fw-control identify``::

    Executing on device: 0000:01:00.0
    Identifying board
    Control Protocol Version: 2
    Firmware Version: 4.21.0 (release,app,extended context switch buffer)
    Logger Version: 0
    Board Name: Hailo-8
    Device Architecture: HAILO8L
    Serial Number: HLDDLBB241601635
    Part Number: HM21LB1C2LAE
    Product Name: HAILO-8L AI ACC M.2 B+M KEY MODULE EXT TMP

(``Board Name`` says Hailo-8 on a Hailo-8L: ``Device Architecture`` is the one to trust.)

``hailortcli monitor`` redraws three tables about once a second in the terminal's alternate screen (escape codes
around them); the first lists each device, 60-, 25- and 60-character left-aligned columns::

    Device ID                                                   Utilization (%)          Architecture
    -------------------------------------------------------------------------------------------- ...
    0000:01:00.0                                                37.5                     HAILO8L

It has figures only while an application that set ``HAILO_MONITOR=1`` runs a model on the NPU (else it prints
"Monitor did not retrieve any files..."), so it is read as a stream from one long-lived child and a tick only takes
the latest table. ``hailortcli measure-power`` prints ``Current power consumption (W): 1.87`` (one measurement of
the overcurrent-protection monitor on M.2 modules; modules without one fail and the source reports no power).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from .base import Row, Source
from .rpi import Runner, run_command

HAILORTCLI = "hailortcli"
POWER_INTERVAL_S = 1.0
TEMP_INTERVAL_S = 1.0

_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|[()][0-9A-Za-z]|[=>78])")
_POWER = re.compile(r"Current power consumption \((?P<unit>W|mW)\):\s*(?P<value>[-+0-9.eE]+)")


def parse_identify(text: str) -> dict[str, str]:
    """``hailortcli fw-control identify`` -> {"device", "firmware", "board", "architecture", "serial", "part",
    "product"} (the keys it printed; ``<N/A>`` values left out)."""
    keys = {"Executing on device": "device", "Firmware Version": "firmware", "Board Name": "board",
            "Device Architecture": "architecture", "Serial Number": "serial", "Part Number": "part",
            "Product Name": "product"}
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        value = value.strip()
        if sep and key.strip() in keys and value and value != "<N/A>":
            out[keys[key.strip()]] = value
    return out


def parse_monitor(text: str) -> dict[str, tuple[float, str]]:
    """The device table of ``hailortcli monitor``'s last screen in ``text``: {device id: (utilization %, arch)};
    empty when no screen had a device row."""
    latest: dict[str, tuple[float, str]] = {}
    current: dict[str, tuple[float, str]] | None = None
    rows = False
    for raw in _ANSI.sub("", text).splitlines():
        line = raw.rstrip()
        if line.startswith("Device ID") and "Utilization" in line:
            current, rows = {}, False
            continue
        if current is None:
            continue
        if not rows:
            rows = line.startswith("---")
            continue
        fields = line.split()
        if len(fields) < 2:  # the blank lines after the table end it
            if current:
                latest = current
            current = None
            continue
        try:
            current[fields[0]] = (float(fields[1]), fields[2] if len(fields) > 2 else "")
        except ValueError:
            current = None
    if current:
        latest = current
    return latest


def parse_power(text: str) -> float | None:
    """``Current power consumption (W): 1.87`` -> 1.87 (W); None when absent."""
    m = _POWER.search(text)
    if not m:
        return None
    value = float(m["value"])
    return value / 1000.0 if m["unit"] == "mW" else value


def chip_temperature_c(info: Any) -> float | None:
    """HailoRT's ``TemperatureInfo`` (``ts0_temperature``, ``ts1_temperature`` in C) -> their mean, as
    ``hailortcli``'s temperature measurement takes it; None when it has neither."""
    values = [float(v) for v in (getattr(info, "ts0_temperature", None), getattr(info, "ts1_temperature", None))
              if v is not None]
    return sum(values) / len(values) if values else None


def _hailo_device() -> Any:
    from hailo_platform import Device  # HailoRT's Python binding (python3-hailort / hailort wheel)

    return Device()


def _stream_lines(args: list[str]) -> tuple[Iterable[str], Callable[[], None]]:
    """Start ``args`` and return (its stdout's lines, a function that stops it). ``hailortcli`` writes through C
    stdio, which buffers a pipe in blocks of several screens: ``stdbuf -oL`` makes each line arrive when written."""
    stdbuf = shutil.which("stdbuf")
    proc = subprocess.Popen([stdbuf, "-oL", *args] if stdbuf else args, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, errors="replace", bufsize=1)

    def stop() -> None:
        with contextlib.suppress(OSError):
            proc.terminate()
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(2.0)
        if proc.stdout is not None:
            proc.stdout.close()

    return proc.stdout, stop


class HailoSource(Source):
    """npu0.util_pct, power_w and temp_c of the first Hailo device. ``runner`` runs one-shot commands,
    ``streamer(args) -> (lines, stop)`` the monitor, ``device_factory`` opens HailoRT's device for the temperature;
    tests pass fakes built from the formats above."""

    name = "hailo"
    measures = ("npu",)

    def __init__(self, hailortcli: str = HAILORTCLI, runner: Runner | None = None,
                 streamer: Callable[[list[str]], tuple[Iterable[str], Callable[[], None]]] | None = None,
                 device_factory: Callable[[], Any] | None = None, power_interval_s: float = POWER_INTERVAL_S,
                 temp_interval_s: float = TEMP_INTERVAL_S):
        super().__init__()
        self.hailortcli = hailortcli
        self.runner: Runner = runner or run_command
        self.streamer = streamer or _stream_lines
        self.device_factory = device_factory or _hailo_device
        self.power_interval_s = power_interval_s
        self.temp_interval_s = temp_interval_s
        self.identity: dict[str, str] = {}
        self._cli: str | None = None
        self._power = False
        self._device: Any = None
        self._stop_stream: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._util: tuple[int, float] | None = None  # (screen number, utilization) of the latest monitor screen
        self._screens = 0
        self._util_read = 0
        self._last_power: float | None = None
        self._last_temp: float | None = None

    def _probe(self) -> tuple[bool, str]:
        cli = shutil.which(self.hailortcli)
        if cli is None:
            return False, f"no Hailo NPU found ({self.hailortcli} not found: install hailo-all)"
        try:
            self.identity = parse_identify(self.runner([cli, "fw-control", "identify"]))
        except (OSError, subprocess.SubprocessError) as exc:
            return False, f"no Hailo NPU found ({self.hailortcli} fw-control identify failed: {exc})"
        if "architecture" not in self.identity:
            return False, f"no Hailo NPU found ({self.hailortcli} fw-control identify named no device architecture)"
        self._cli = cli
        try:
            self._power = parse_power(self.runner([cli, "measure-power"])) is not None
        except (OSError, subprocess.SubprocessError):
            self._power = False
        try:
            self._device = self.device_factory()
            if chip_temperature_c(self._device.control.get_chip_temperature()) is None:
                raise ValueError("no temperature")
            temp_note = "chip temperature"
        except Exception as exc:  # the binding absent or the device busy: no temperature, the rest still works
            self._device = None
            temp_note = f"no chip temperature ({type(exc).__name__}: {exc})"
        lines, self._stop_stream = self.streamer([cli, "monitor"])
        threading.Thread(target=self._follow, args=(lines,), name="edgeprof-hailo-monitor", daemon=True).start()
        ident = self.identity
        what = ", ".join([f"firmware {ident['firmware'].split()[0]}"] if "firmware" in ident else [])
        return True, (f"{ident.get('product') or ident['architecture']} ({ident['architecture']}"
                      f"{', ' + what if what else ''}); utilization from {self.hailortcli} monitor (the application "
                      f"must set HAILO_MONITOR=1), {'power' if self._power else 'no power monitor'}, {temp_note}")

    def _follow(self, lines: Iterable[str]) -> None:
        screen: list[str] = []
        with contextlib.suppress(Exception):  # the stream ends when the child is stopped
            for line in lines:
                if "Device ID" in line and screen:
                    self._take(screen)
                    screen = []
                screen.append(line)
                if "Model" in line and "FPS" in line:  # the device table is complete once the next one starts
                    self._take(screen)
                    screen = []

    def _take(self, screen: list[str]) -> None:
        devices = parse_monitor("".join(s if s.endswith("\n") else s + "\n" for s in screen))
        if devices:
            util = next(iter(devices.values()))[0]
            with self._lock:
                self._screens += 1
                self._util = (self._screens, util)

    def read(self, worker_pid: int | None = None) -> list[Row]:
        rows: list[Row] = []
        with self._lock:
            util = self._util
        if util is not None and util[0] != self._util_read:  # a new monitor screen only
            self._util_read = util[0]
            rows.append(("npu0.util_pct", util[1], "%"))
        now = time.monotonic()
        if self._power and (self._last_power is None or now - self._last_power >= self.power_interval_s):
            self._last_power = now
            try:
                watts = parse_power(self.runner([self._cli, "measure-power"]))
            except (OSError, subprocess.SubprocessError):
                watts = None
            if watts is not None:
                rows.append(("npu0.power_w", watts, "W"))
        if self._device is not None and (self._last_temp is None or now - self._last_temp >= self.temp_interval_s):
            self._last_temp = now
            try:
                temp = chip_temperature_c(self._device.control.get_chip_temperature())
            except Exception:  # a failed reading leaves the temperature out of this tick
                temp = None
            if temp is not None:
                rows.append(("npu0.temp_c", temp, "C"))
        return rows

    def close(self) -> None:
        stop, self._stop_stream = self._stop_stream, None
        if stop is not None:
            with contextlib.suppress(Exception):
                stop()
        device, self._device = self._device, None
        if device is not None:
            with contextlib.suppress(Exception):
                device.release()
