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

__all__ = ["EVICTABLE_ONNX_WHY", "RuntimeInfo", "RuntimeStatus", "Session", "TensorSpec", "available_runtimes",
           "check_model_file", "import_runtime", "onnx_spec", "open_session", "runtime_for", "synthetic_inputs"]

# Why --evictable is refused for ONNX Runtime (measured with onnxruntime 1.32.0 on this machine: see
# docs/architecture.md, "Evictable weights").
EVICTABLE_ONNX_WHY = (
    "ONNX Runtime keeps a model's weights in anonymous memory: it parses an .onnx file's initializers into its own "
    "buffers (the bundled files keep their weights inside the file), so no weight page is file-backed and evictable")
EVICTABLE_ONNX_FIX = "Use the TFLite variant (--runtime tflite), whose builtin kernels read weights from the mapped file."


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
    repacked anonymous copy; refused for ONNX (``EVICTABLE_ONNX_WHY``). Raises ModelError, RuntimeUnavailable,
    UsageError."""
    path = check_model_file(path)
    runtime = runtime or runtime_for(path)
    if runtime != runtime_for(path):
        raise UsageError(f"{path.name} is a {runtime_for(path)} model; it cannot run with runtime {runtime!r}.")
    if runtime == "onnx":
        from .onnx import OnnxSession

        if evictable:
            raise UsageError(f"evictable weights are not possible here: {EVICTABLE_ONNX_WHY}.", EVICTABLE_ONNX_FIX)

        return OnnxSession(path, threads=threads, provider=execution_provider)
    from .tflite import TfliteSession

    return TfliteSession(path, threads=threads, interpreter=tflite_interpreter, evictable=evictable)


def available_runtimes() -> list[RuntimeStatus]:
    from . import onnx, tflite

    return [onnx.status(), *tflite.statuses()]
