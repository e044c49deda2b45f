"""TFLite backend: ai-edge-litert when importable (XNNPACK for float and INT8), else tflite-runtime 2.14.

Both are probed at call time, not import time, so a device with only one of them still works. The delegate string
records what each interpreter applies by default with its builtin resolver: XNNPACK for both on float models; only
LiteRT also takes INT8 through XNNPACK on x86, which is why tflite-runtime 2.14 is ~20x slower there on INT8.

tflite-runtime is optional (requirements-tflite-runtime.txt, the ``tflite-runtime`` extra): its last release, 2.14, was
built against numpy 1 and fails under numpy 2 (``_ARRAY_API not found``), so with numpy 2 installed it is reported as
unavailable before anything imports it.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np

from ..errors import ModelError, RuntimeUnavailable
from . import RuntimeInfo, RuntimeStatus, Session, TensorSpec

INTERPRETERS = {
    "litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
}
OPTIONAL_FIX = ("It is optional: install it with `pip install -r requirements-tflite-runtime.txt` (Python <= 3.11; "
                "it holds numpy below 2), or use --tflite-interpreter litert.")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def blocker(name: str, installed: str | None, numpy_version: str) -> tuple[str, str] | None:
    """Why an interpreter cannot be used, known before importing it (message, what to do), or None."""
    if name != "tflite-runtime":
        return None
    if installed is None:
        return "tflite-runtime is not installed.", OPTIONAL_FIX
    if int(numpy_version.split(".")[0]) >= 2:
        return (f"tflite-runtime {installed} needs numpy < 2 (numpy {numpy_version} is installed).",
                "Use --tflite-interpreter litert, or install it in an environment of its own with "
                "`pip install -r requirements.txt -r requirements-tflite-runtime.txt`.")
    return None


def _load(name: str):
    module, dist = INTERPRETERS[name]
    version = _version(dist)
    blocked = blocker(name, version, np.__version__)
    if blocked:
        raise RuntimeUnavailable(*blocked)
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # ImportError, or a binary built against another numpy
        raise RuntimeUnavailable(
            f"TFLite interpreter {name!r} cannot be imported ({type(exc).__name__}: {str(exc)[:160]}).",
            "Install it with `pip install -r requirements.txt`." if name == "litert" else OPTIONAL_FIX,
        ) from None
    return mod, version or "unknown"


def statuses() -> list[RuntimeStatus]:
    out = []
    for name in INTERPRETERS:
        try:
            _, version = _load(name)
            out.append(RuntimeStatus(name, True, version, "importable"))
        except RuntimeUnavailable as exc:
            out.append(RuntimeStatus(name, False, None, str(exc)))
    return out


def best_interpreter() -> str:
    for name in INTERPRETERS:
        try:
            _load(name)
            return name
        except RuntimeUnavailable:
            continue
    raise RuntimeUnavailable(
        "no TFLite interpreter is installed.",
        "Install ai-edge-litert with `pip install -r requirements.txt`.",
    )


def _spec(d: dict) -> TensorSpec:
    shape = tuple(int(x) if x > 0 else None for x in d.get("shape_signature", d["shape"]))
    scale, zero = d.get("quantization", (0.0, 0))
    quant = (float(scale), int(zero)) if scale else None
    return TensorSpec(d["name"], shape, np.dtype(d["dtype"]).name, quant)


class TfliteSession(Session):
    def __init__(self, path: Path, *, threads: int = 2, interpreter: str | None = None):
        name = interpreter or best_interpreter()
        mod, version = _load(name)
        try:
            self._interp = mod.Interpreter(model_path=str(path), num_threads=threads)
            self._interp.allocate_tensors()
        except Exception as exc:
            raise ModelError(*_explain(path, name, version, exc)) from None
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        self.inputs = [_spec(d) for d in self._in]
        self.outputs = [_spec(d) for d in self._out]
        self._resize_dynamic()
        delegate = "xnnpack (default delegate)" if name == "litert" else "xnnpack for float ops only (default delegate)"
        self.info = RuntimeInfo(name, version, delegate, threads)

    def _resize_dynamic(self) -> None:
        resized = False
        for d in self._in:
            sig = d.get("shape_signature", d["shape"])
            if any(x < 0 for x in sig):
                self._interp.resize_tensor_input(d["index"], [x if x > 0 else 1 for x in sig])
                resized = True
        if resized:
            self._interp.allocate_tensors()
            self._in = self._interp.get_input_details()

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        interp = self._interp
        for d, x in zip(self._in, feeds, strict=False):
            if tuple(x.shape) != tuple(d["shape"]):
                interp.resize_tensor_input(d["index"], x.shape)
                interp.allocate_tensors()
                self._in = interp.get_input_details()
            interp.set_tensor(d["index"], x)
        interp.invoke()
        return [interp.get_tensor(d["index"]) for d in self._out]

    def close(self) -> None:
        self._interp = None


def _explain(path: Path, name: str, version: str, exc: Exception) -> tuple[str, str]:
    text = " ".join(str(exc).split())[:300]
    if "Didn't find op for builtin opcode" in text or "Op builtin_code out of range" in text:
        return (
            f"{path.name} needs a newer TFLite interpreter than {name} {version} ({text}).",
            "Choose --tflite-interpreter litert (ai-edge-litert), or convert with an older TensorFlow.",
        )
    if "custom op" in text.lower():
        return (
            f"{path.name} uses a custom op that {name} does not have ({text}).",
            "Convert the model with builtin ops only (no SELECT_TF_OPS or custom ops).",
        )
    if "Model provided has model identifier" in text or "Could not open" in text or "flatbuffer" in text.lower():
        return (f"{path.name} is not a valid TFLite model ({text}).", "Convert or copy the model again.")
    return (f"{name} {version} could not load {path.name}: {text}", "Check the file, or try the other interpreter.")
