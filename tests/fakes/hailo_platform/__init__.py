"""A stand-in for HailoRT's Python binding (``hailo_platform``) where no Hailo NPU is: only what
``edgeprof.telemetry.hailo`` calls, shaped as HailoRT 4.x has it (``Device().control.get_chip_temperature()`` returns
a ``TemperatureInfo`` with ``ts0_temperature``, ``ts1_temperature`` in C and ``sample_count``; ``Device.release()``).
Put ``tests/fakes`` on PYTHONPATH to use it."""

from __future__ import annotations

from typing import NamedTuple

TS0_C = 51.2
TS1_C = 50.6


class TemperatureInfo(NamedTuple):
    ts0_temperature: float
    ts1_temperature: float
    sample_count: int


class _Control:
    def get_chip_temperature(self) -> TemperatureInfo:
        return TemperatureInfo(TS0_C, TS1_C, 1)


class Device:
    def __init__(self, device_id: str | None = None):
        self.control = _Control()

    def release(self) -> None:
        pass
