"""A backend that exists only in the tests: ONNX Runtime on the CPU under another name, with an option of its own.
It proves that a backend is one module plus one registration (``EDGEPROF_BACKENDS=backend_for_tests`` with this
folder on PYTHONPATH, or ``registry.register("backend_for_tests")``) and that nothing else in edgeprof knows its name."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from edgeprof.errors import ConfigError
from edgeprof.runtimes import onnx
from edgeprof.runtimes.base import RuntimeStatus
from edgeprof.runtimes.registry import Backend, option

NAME = "test-onnx"


@dataclass(frozen=True)
class Options:
    pause_ms: float = option(0.0, help="a pause after every inference (ms)")

    def __post_init__(self):
        if not isinstance(self.pause_ms, (int, float)) or self.pause_ms < 0:
            raise ConfigError(f"{NAME} option pause_ms must be a number of at least 0, got {self.pause_ms!r}.")


class Session(onnx.OnnxSession):
    def __init__(self, path, threads, options: Options, evictable: bool = False):
        super().__init__(path, threads=threads, provider="cpu", evictable=evictable)
        self.info = dataclasses.replace(self.info, name=NAME)
        self._pause_s = options.pause_ms / 1000.0

    def run(self, feeds):
        out = super().run(feeds)
        if self._pause_s:
            time.sleep(self._pause_s)
        return out


def status() -> RuntimeStatus:
    ort = onnx.status()
    return RuntimeStatus(NAME, ort.available, ort.version, ort.reason)


BACKEND = Backend(name=NAME, formats=("onnx",), summary="ONNX Runtime on the CPU, for the tests", options=Options,
                  open=Session, status=status, runs_on=lambda ran: "npu")
