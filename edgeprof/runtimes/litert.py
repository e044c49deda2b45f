"""The LiteRT backend (ai-edge-litert's Interpreter, XNNPACK for float and INT8): the default for .tflite files.
The interpreter itself is shared with tflite-runtime in ``runtimes.tflite``."""

from __future__ import annotations

from .tflite import interpreter_backend

NAME = "litert"

BACKEND = interpreter_backend(NAME, "LiteRT (ai-edge-litert) interpreter, XNNPACK delegate")
