"""The tflite-runtime backend (2.14, its last release; optional, numpy < 2; no XNNPACK for INT8 on x86). The
interpreter itself is shared with LiteRT in ``runtimes.tflite``."""

from __future__ import annotations

from .tflite import interpreter_backend

NAME = "tflite-runtime"

BACKEND = interpreter_backend(NAME, "tflite-runtime 2.14 interpreter (optional)")
