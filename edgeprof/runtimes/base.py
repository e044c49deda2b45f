"""What every runtime backend shares: the tensor and runtime descriptions, the ``Session`` interface, and the file
checks made before any runtime sees a file. Leaf module: the backends import it, it imports no backend."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError, UsageError


@dataclass(frozen=True)
class TensorSpec:
    """One declared input or output, as the runtime reads it from the file.

    ``shape``: an int >= 0 is a fixed size (0 is a real, empty dimension), a str a symbolic name (ONNX ``dim_param``)
    and None an unknown size. ``dtype`` is a numpy dtype name, ``"string"``, or the runtime's name for a type numpy
    lacks (``bfloat16``, ``float8e4m3fn``, ``int4``). ``kind`` is tensor, sequence (ONNX ``seq(tensor(T))``, ``dtype``
    is T's), optional or map; ``type_name`` is the type as the runtime spells it. ``stored_shape`` is TFLite's
    ``shape`` where its ``shape_signature`` has -1: the size the converter traced with.
    """

    name: str
    shape: tuple
    dtype: str
    quantization: tuple | None = None  # (scale, zero_point) for quantized TFLite tensors
    kind: str = "tensor"
    type_name: str = ""
    stored_shape: tuple | None = None

    def to_dict(self) -> dict:
        return asdict(self)


_ONNX_ELEMENT = {
    "float": "float32", "float16": "float16", "double": "float64", "bfloat16": "bfloat16", "string": "string",
    "int8": "int8", "uint8": "uint8", "int16": "int16", "uint16": "uint16", "int32": "int32", "uint32": "uint32",
    "int64": "int64", "uint64": "uint64", "bool": "bool", "complex64": "complex64", "complex128": "complex128",
}


def onnx_spec(name: str, shape, type_name: str) -> TensorSpec:
    """A TensorSpec from an ONNX type string as ONNX Runtime writes it (``tensor(float)``, ``seq(tensor(int64))``,
    ``optional(tensor(float))``, ``map(int64,tensor(float))``) and a shape of ints, names and None."""
    kind, inner = "tensor", type_name
    for prefix, k in (("seq(", "sequence"), ("optional(", "optional"), ("map(", "map")):
        if type_name.startswith(prefix):
            kind, inner = k, type_name[len(prefix):-1]
            break
    m = re.fullmatch(r"tensor\((\w+)\)", inner)
    element = m.group(1) if m else inner
    dtype = _ONNX_ELEMENT.get(element, element.lower())
    dims = tuple(d if isinstance(d, (int, str)) and not (isinstance(d, int) and d < 0) else None for d in shape or ())
    return TensorSpec(name, dims, dtype, kind=kind, type_name=type_name)


@dataclass(frozen=True)
class RuntimeInfo:
    """The backend that really ran the model: ``name`` onnxruntime | litert | tflite-runtime, the ONNX Runtime
    ``execution_provider`` that ran it first (cpu, cuda, tensorrt) or the TFLite ``delegate``."""

    name: str
    version: str
    threads: int
    execution_provider: str | None = None
    delegate: str | None = None

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
    """A loaded model. ``run`` takes and returns numpy arrays in the order of ``inputs`` / ``outputs``.

    ``prepare(shapes)`` fixes the input shapes before the first run where the runtime allocates per shape (TFLite);
    ``resizable`` says whether a declared fixed dimension may be changed at all (ONNX Runtime: no).
    """

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    info: RuntimeInfo
    resizable: bool = False

    def prepare(self, shapes: list[tuple]) -> None:  # noqa: B027 - only runtimes that allocate per shape need it
        """Fix the input shapes before the first run."""

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def profile_unavailable(self) -> str | None:
        """Why this backend cannot profile operators (None: it can, with ``op_profile``)."""
        return "this runtime has no per-operator profiler"

    def op_profile(self, feeds: list[np.ndarray], budget, stop=lambda: False) -> dict:
        """A per-operator profile of ``budget`` more inferences (``runtimes.profile``), or {"unavailable": why}.
        May replace the session it profiles: call it after the measured inferences only. ``stop()`` ends it early."""
        return {"unavailable": self.profile_unavailable() or "not implemented"}

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


