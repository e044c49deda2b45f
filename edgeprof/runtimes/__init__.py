"""One small interface over the backends declared in ``registry`` (ONNX Runtime, LiteRT, tflite-runtime).

``open_session`` is the only entry point the worker, fidelity and benchmarks use. Runtime imports happen inside the
backends, so importing this package costs nothing and a missing runtime is reported, not raised at import.

Quirks handled here:
- tflite-runtime 2.14 (its last release) needs numpy < 2 and has no XNNPACK path for INT8 on x86 (about 20x slower
  than ai-edge-litert there), so ``litert`` is the default interpreter whenever it imports.
- A .tflite written by a newer converter can need op versions tflite-runtime 2.14 lacks ("Didn't find op for builtin
  opcode ... version ..."): that becomes a ModelError naming the interpreter to use instead.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from . import registry
from .base import (
    RuntimeInfo,
    RuntimeStatus,
    Session,
    TensorSpec,
    check_model_file,
    onnx_spec,
    runtime_for,
)
from .inputs import synthetic_inputs

__all__ = ["RuntimeInfo", "RuntimeStatus", "Session", "TensorSpec", "available_runtimes",
           "check_model_file", "import_runtime", "onnx_spec", "open_session", "runtime_for", "synthetic_inputs"]

def import_runtime(runtime: str, backend: str | None = None) -> None:
    """Import the backend's library only (its memory apart from the model's): the backend's ``status()`` does. What
    is missing is said by ``open_session`` right after."""
    registry.choose(runtime, backend).status()


def open_session(
    path: str | Path,
    *,
    runtime: str | None = None,
    threads: int = 2,
    backend: str | None = None,
    backend_options: dict | None = None,
    tflite_interpreter: str | None = None,
    execution_provider: str | None = None,
    evictable: bool = False,
) -> Session:
    """A loaded model: ``runtime`` the file format (default: from the file's extension), ``threads`` intra-op threads,
    ``backend`` a name in ``registry`` (default: the best available for the format) with its ``backend_options``;
    ``tflite_interpreter`` / ``execution_provider`` are the names of before the registry (``registry.requested``).
    ``evictable``: TFLite without its default delegate, so the weights stay in the memory-mapped file (page cache the
    kernel can evict and read back) instead of XNNPACK's repacked anonymous copy; ONNX Runtime without pre-packing and
    with basic graph optimizations, so weights in external data (``models.external``) stay memory-mapped. Raises
    ModelError, RuntimeUnavailable, UsageError, ConfigError."""
    path = check_model_file(path)
    runtime = runtime or runtime_for(path)
    if runtime != runtime_for(path):
        raise UsageError(f"{path.name} is a {runtime_for(path)} model; it cannot run with runtime {runtime!r}.")
    name, options = registry.requested(runtime, backend, backend_options, tflite_interpreter=tflite_interpreter,
                                       execution_provider=execution_provider)
    return registry.open_backend(path, runtime, name, options, threads, evictable=evictable)


def available_runtimes() -> list[RuntimeStatus]:
    return registry.statuses()
