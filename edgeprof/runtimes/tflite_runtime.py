"""The tflite-runtime backend (2.14, its last release; optional, numpy < 2; no XNNPACK for INT8 on x86). The
interpreter itself is shared with LiteRT in ``runtimes.tflite``."""

from __future__ import annotations

from .registry import Backend
from .tflite import TfliteSession, interpreter_status

NAME = "tflite-runtime"

BACKEND = Backend(
    name=NAME, formats=("tflite",), summary="tflite-runtime 2.14 interpreter (optional)",
    open=lambda path, threads, options, evictable: TfliteSession(path, threads=threads, interpreter=NAME,
                                                                 evictable=evictable),
    status=lambda: interpreter_status(NAME),
)
