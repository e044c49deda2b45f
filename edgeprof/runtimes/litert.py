"""The LiteRT backend (ai-edge-litert's Interpreter, XNNPACK for float and INT8): the default for .tflite files.
The interpreter itself is shared with tflite-runtime in ``runtimes.tflite``."""

from __future__ import annotations

from .registry import Backend
from .tflite import TfliteSession, interpreter_status

NAME = "litert"

BACKEND = Backend(
    name=NAME, formats=("tflite",), summary="LiteRT (ai-edge-litert) interpreter, XNNPACK delegate",
    open=lambda path, threads, options, evictable: TfliteSession(path, threads=threads, interpreter=NAME,
                                                                 evictable=evictable),
    status=lambda: interpreter_status(NAME),
)
