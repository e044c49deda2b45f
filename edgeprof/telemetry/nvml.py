"""NVIDIA discrete GPUs through NVML (the ``pynvml`` module of nvidia-ml-py).

Probe: nvmlInit, one handle per device, and a trial read of every metric so that a metric the board does not
support (``NVMLError_NotSupported``, e.g. power on some consumer cards or fan-less datacentre cards) is left out
of every tick instead of failing each time. Without a driver, ``nvmlInit`` raises ``NVMLError_LibraryNotFound``
("NVML Shared Library Not Found") or ``NVMLError_DriverNotLoaded`` ("Driver Not Loaded"); the probe reason
carries that text: "no GPU found (NVML: Driver Not Loaded)".

Units from NVML: memory in bytes, power in milliwatts, temperature in C, clocks in MHz, utilization in percent
of the last sample period (1/6 s to 1 s depending on the product).

Jetson iGPUs are not NVML devices under JetPack 6; they are read by ``jetson.py`` through jtop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from .base import Row, Source

_MB = 1024.0 * 1024.0


def _load_pynvml() -> Any:
    import pynvml  # nvidia-ml-py

    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlSource(Source):
    """gpu{i}.util_pct, mem_used_mb, mem_total_mb, temp_c, power_w, sm_clock_mhz for every NVML device.

    ``pynvml`` may be a module or any object with the same functions (tests pass a fake); None imports the real one.
    """

    name = "nvml"
    measures = ("gpu",)

    def __init__(self, pynvml: Any = None):
        super().__init__()
        self._nv = pynvml
        self._initialized = False
        # per device: (index, handle, [(metric, unit, reader)])
        self._devices: list[tuple[int, Any, list[tuple[str, str, Callable[[Any], float]]]]] = []

    def _readers(self) -> list[tuple[str, str, Callable[[Any], float]]]:
        nv = self._nv
        return [
            ("util_pct", "%", lambda h: float(nv.nvmlDeviceGetUtilizationRates(h).gpu)),
            ("mem_used_mb", "MB", lambda h: nv.nvmlDeviceGetMemoryInfo(h).used / _MB),
            ("mem_total_mb", "MB", lambda h: nv.nvmlDeviceGetMemoryInfo(h).total / _MB),
            ("temp_c", "C", lambda h: float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU))),
            ("power_w", "W", lambda h: nv.nvmlDeviceGetPowerUsage(h) / 1000.0),
            ("sm_clock_mhz", "MHz", lambda h: float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))),
        ]

    def _probe(self) -> tuple[bool, str]:
        if self._nv is None:
            try:
                self._nv = _load_pynvml()
            except ImportError:
                return False, "no GPU found (NVML: nvidia-ml-py (pynvml) is not installed)"
        nv = self._nv
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            return False, f"no GPU found (NVML: {exc})"
        self._initialized = True
        try:
            count = nv.nvmlDeviceGetCount()
            if count == 0:
                self.close()
                return False, "no GPU found (NVML: 0 devices)"
            names = []
            for i in range(count):
                handle = nv.nvmlDeviceGetHandleByIndex(i)
                names.append(_text(nv.nvmlDeviceGetName(handle)))
                supported = []
                for metric, unit, reader in self._readers():
                    try:
                        reader(handle)
                    except nv.NVMLError:
                        continue
                    supported.append((metric, unit, reader))
                self._devices.append((i, handle, supported))
            try:
                nvml_version = _text(nv.nvmlSystemGetNVMLVersion())
                version = f"NVML {nvml_version}, driver {_text(nv.nvmlSystemGetDriverVersion())}"
            except nv.NVMLError:
                version = "NVML"
        except nv.NVMLError as exc:
            self.close()
            return False, f"NVML error while listing GPUs: {exc}"
        return True, f"{version}, {count} GPU{'s' if count > 1 else ''}: {', '.join(names)}"

    def read(self, worker_pid: int | None = None) -> list[Row]:
        rows: list[Row] = []
        error = self._nv.NVMLError
        for index, handle, readers in self._devices:
            for metric, unit, reader in readers:
                try:
                    rows.append((f"gpu{index}.{metric}", reader(handle), unit))
                except error:
                    continue  # a transient failure: leave this metric out of this tick
        return rows

    def close(self) -> None:
        if self._initialized:
            self._initialized = False
            self._devices = []
            with contextlib.suppress(Exception):
                self._nv.nvmlShutdown()
