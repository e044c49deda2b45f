"""One small interface over ONNX Runtime and the two TFLite interpreters.

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

def import_runtime(runtime: str, tflite_interpreter: str | None = None) -> None:
    """Import the runtime's library only (its memory apart from the model's). Raises RuntimeUnavailable."""
    if runtime == "onnx":
        from .onnx import _ort

        _ort()
    else:
        from .tflite import _load, best_interpreter

        _load(tflite_interpreter or best_interpreter())


def open_session(
    path: str | Path,
    *,
    runtime: str | None = None,
    threads: int = 2,
    tflite_interpreter: str | None = None,
    execution_provider: str | None = None,
    evictable: bool = False,
) -> Session:
    """A loaded model: ``runtime`` onnx or tflite (default: from the file's extension), ``threads`` intra-op threads,
    the TFLite interpreter (litert or tflite-runtime; default the best available) or the ONNX Runtime execution
    provider (cpu, cuda, tensorrt; default the best available). ``evictable``: TFLite without its default delegate, so
    the weights stay in the memory-mapped file (page cache the kernel can evict and read back) instead of XNNPACK's
    repacked anonymous copy; ONNX Runtime without pre-packing and with basic graph optimizations, so weights in external
    data (``models.external``) stay memory-mapped. Raises ModelError, RuntimeUnavailable,
    UsageError."""
    path = check_model_file(path)
    runtime = runtime or runtime_for(path)
    if runtime != runtime_for(path):
        raise UsageError(f"{path.name} is a {runtime_for(path)} model; it cannot run with runtime {runtime!r}.")
    if runtime == "onnx":
        from .onnx import OnnxSession


        return OnnxSession(path, threads=threads, provider=execution_provider, evictable=evictable)
    from .tflite import TfliteSession

    return TfliteSession(path, threads=threads, interpreter=tflite_interpreter, evictable=evictable)


def available_runtimes() -> list[RuntimeStatus]:
    from . import onnx, tflite

    return [onnx.status(), *tflite.statuses()]
