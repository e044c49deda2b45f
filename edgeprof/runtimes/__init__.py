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

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError, UsageError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple  # ints; None where the dimension is dynamic
    dtype: str  # numpy dtype name
    quantization: tuple | None = None  # (scale, zero_point) for quantized TFLite tensors

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RuntimeInfo:
    name: str  # onnxruntime | litert | tflite-runtime
    version: str
    provider: str  # execution provider (ORT) or delegate (TFLite) that really runs the model
    threads: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RuntimeStatus:
    name: str
    available: bool
    version: str | None
    reason: str
    providers: tuple = ()


class Session:
    """A loaded model. ``run`` takes and returns numpy arrays in the order of ``inputs`` / ``outputs``."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    info: RuntimeInfo

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


def runtime_for(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".tflite":
        return "tflite"
    raise UsageError(f"{Path(path).name}: unknown model format {suffix or '(no extension)'!r}; use a .onnx or .tflite file.")


def check_model_file(path: str | Path) -> Path:
    """Fail early, in one clear sentence, on the file problems every runtime would report cryptically."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model file {p} does not exist.",
                         "Check the path, or run `python -m edgeprof models` to list bundled models.")
    if not p.is_file():
        raise ModelError(f"{p} is not a file.", "Pass the path of a .onnx or .tflite file.")
    size = p.stat().st_size
    if size == 0:
        raise ModelError(f"model file {p} is empty.", "Copy or export the model again.")
    runtime = runtime_for(p)
    head = p.read_bytes()[:16]
    if runtime == "tflite" and head[4:8] != b"TFL3":
        raise ModelError(f"{p.name} is not a TFLite flatbuffer (no TFL3 identifier).", "Export it again with a TFLite converter.")
    if runtime == "onnx" and _looks_like_text(head):
        raise ModelError(f"{p.name} is text, not an ONNX protobuf.", "Export the model again with an ONNX exporter.")
    return p


def _looks_like_text(head: bytes) -> bool:
    return bool(head) and all(32 <= b < 127 or b in (9, 10, 13) for b in head)


def open_session(
    path: str | Path,
    *,
    runtime: str | None = None,
    threads: int = 2,
    interpreter: str | None = None,
    provider: str | None = None,
) -> Session:
    path = check_model_file(path)
    runtime = runtime or runtime_for(path)
    if runtime != runtime_for(path):
        raise UsageError(f"{path.name} is a {runtime_for(path)} model; it cannot run with runtime {runtime!r}.")
    if runtime == "onnx":
        from .onnx import OnnxSession

        return OnnxSession(path, threads=threads, provider=provider)
    from .tflite import TfliteSession

    return TfliteSession(path, threads=threads, interpreter=interpreter)


def available_runtimes() -> list[RuntimeStatus]:
    from . import onnx, tflite

    return [onnx.status(), *tflite.statuses()]


def synthetic_inputs(specs: list[TensorSpec], seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Inputs for a model we have no data for: the right dtype and shape, with dynamic dimensions made concrete.

    Returns the arrays and plain-word notes on every guess made, so a run can say what it fed.
    """
    rng = np.random.default_rng(seed)
    arrays, notes = [], []
    for spec in specs:
        shape = []
        for i, dim in enumerate(spec.shape):
            if isinstance(dim, int) and dim > 0:
                shape.append(dim)
            else:
                guess = 1 if i == 0 else 128 if len(spec.shape) == 2 else 224 if len(spec.shape) == 4 else 16
                shape.append(guess)
                notes.append(f"input {spec.name!r} has a dynamic dimension {i}; fed {guess}")
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            arr = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu" and spec.quantization is None and dtype.itemsize >= 4:
            arr = rng.integers(0, 100, size=shape).astype(dtype)
            notes.append(f"input {spec.name!r} takes integers ({dtype.name}, e.g. token ids); fed random ids in 0..99")
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            arr = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
        elif dtype.kind == "b":
            arr = rng.integers(0, 2, size=shape).astype(dtype)
        else:
            raise ModelError(f"input {spec.name!r} has type {dtype.name}, which edgeprof cannot synthesise.")
        arrays.append(arr)
    if len(specs) > 1:
        notes.append(f"the model has {len(specs)} inputs; each got synthetic data")
    return arrays, notes
