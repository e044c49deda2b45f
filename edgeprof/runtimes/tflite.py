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
import re
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelError, RuntimeUnavailable
from .base import RuntimeInfo, RuntimeStatus, Session, TensorSpec

INTERPRETERS = {
    "litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
}
# What was looked for, and why it is not used (ai-edge-litert 2.3.0, tflite-runtime 2.14): see docs/architecture.md.
TFLITE_NO_PROFILER = {
    "litert": ("ai-edge-litert {version} has no per-operator profiler that Python can reach: its Interpreter and "
               "CompiledModel classes expose none, its bundled benchmark script times whole inferences only, and its "
               "profiling_info proto is the output format of LiteRT's C++ benchmark tool, which the wheel does not "
               "ship (libLiteRt.so's profiler C API is for CompiledModel only and does not export the call that "
               "switches profiling on)"),
    "tflite-runtime": ("tflite-runtime {version}'s Python Interpreter has no per-operator profiler (TFLite's op "
                       "profiling lives in its C++ benchmark tool, which the wheel does not ship)"),
}
OPTIONAL_FIX = ("It is optional: install it with `pip install -r requirements-tflite-runtime.txt` (Python <= 3.11; "
                "it holds numpy below 2), or choose the TFLite interpreter litert (--tflite-interpreter litert).")


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
                "Choose the TFLite interpreter litert (--tflite-interpreter litert), or install it in an environment of "
                "its own with `pip install -r requirements.txt -r requirements-tflite-runtime.txt`.")
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


def interpreter_status(name: str) -> RuntimeStatus:
    try:
        _, version = _load(name)
        return RuntimeStatus(name, True, version, "importable")
    except RuntimeUnavailable as exc:
        return RuntimeStatus(name, False, None, str(exc))


def statuses() -> list[RuntimeStatus]:
    return [interpreter_status(name) for name in INTERPRETERS]


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
    """-1 in ``shape_signature`` is a dynamic dimension; ``shape`` then holds the size the converter traced with."""
    sig = [int(x) for x in d.get("shape_signature", d["shape"])]
    stored = [int(x) for x in d["shape"]]
    shape = tuple(x if x >= 0 else None for x in sig)
    scale, zero = d.get("quantization", (0.0, 0))
    quant = (float(scale), int(zero)) if scale else None
    dtype = np.dtype(d["dtype"])
    name = "string" if dtype.kind in "OSU" else dtype.name
    return TensorSpec(d["name"], shape, name, quant, type_name=name,
                      stored_shape=tuple(stored) if None in shape and len(stored) == len(shape) else None)


class TfliteSession(Session):
    """Tensors are allocated once the input shapes are known (``prepare``, or the first ``run``): a dynamic input
    resized after the first ``allocate_tensors`` fails in XNNPACK ("failed to reshape"), and a [-1, -1] input left
    unresized can overflow the arena ("BytesRequired ... overflowed")."""

    resizable = True

    def __init__(self, path: Path, *, threads: int = 2, interpreter: str | None = None, evictable: bool = False):
        name = interpreter or best_interpreter()
        mod, version = _load(name)
        self._path, self._name, self._version = path, name, version
        # Without the default delegate the builtin kernels read most weights from the memory-mapped file (page
        # cache: evictable under a cap); XNNPACK repacks them into anonymous memory at load.
        extra = {"experimental_op_resolver_type": mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES} \
            if evictable else {}
        try:
            self._interp = mod.Interpreter(model_path=str(path), num_threads=threads, **extra)
        except Exception as exc:
            raise ModelError(*_explain(path, name, version, exc), detail=str(exc)) from None
        self._in = self._interp.get_input_details()
        self._out = self._interp.get_output_details()
        self.inputs = [_spec(d) for d in self._in]
        self.outputs = [_spec(d) for d in self._out]
        self._allocated = False
        delegate = "xnnpack (default delegate)" if name == "litert" else "xnnpack for float ops only (default delegate)"
        if evictable:
            delegate = "none (builtin kernels, weights file-backed: evictable)"
        self.info = RuntimeInfo(name, version, threads, delegate=delegate)

    def prepare(self, shapes: list[tuple]) -> None:
        """Resize every dynamic input (and any whose shape differs), then allocate. Raises InputError when the
        interpreter refuses a shape it was given or had to guess, ModelError when the model itself cannot be prepared."""
        interp = self._interp
        chosen = False
        try:
            for d, spec, shape in zip(self._in, self.inputs, shapes, strict=False):
                if None in spec.shape or tuple(shape) != tuple(int(x) for x in d["shape"]):
                    interp.resize_tensor_input(d["index"], list(shape))
                    chosen = True
            interp.allocate_tensors()
        except Exception as exc:
            missing = _missing_capability(self._path, self._name, self._version, " ".join(str(exc).split()))
            if missing is not None:
                raise ModelError(*missing, detail=str(exc)) from None
            if chosen:
                raise InputError(f"{self._name} could not prepare {self._path.name} at the input shapes "
                                 f"{', '.join(str(list(s)) for s in shapes)} ({' '.join(str(exc).split())[:300]}).",
                                 detail=str(exc)) from None
            raise ModelError(*_explain(self._path, self._name, self._version, exc), detail=str(exc)) from None
        self._in = interp.get_input_details()
        self._out = interp.get_output_details()
        self._allocated = True

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        interp = self._interp
        if not self._allocated:
            self.prepare([x.shape for x in feeds])
        for d, x in zip(self._in, feeds, strict=False):
            if tuple(x.shape) != tuple(d["shape"]):
                interp.resize_tensor_input(d["index"], x.shape)
                interp.allocate_tensors()
                self._in = interp.get_input_details()
            interp.set_tensor(d["index"], x)
        interp.invoke()
        return [interp.get_tensor(d["index"]) for d in self._out]

    def profile_unavailable(self) -> str | None:
        return TFLITE_NO_PROFILER.get(self._name, TFLITE_NO_PROFILER["litert"]).format(version=self._version)

    def close(self) -> None:
        self._interp = None


def _missing_capability(path: Path, name: str, version: str, text: str) -> tuple[str, str] | None:
    """A model that needs what no pip interpreter has: Select TF (Flex) ops, or int16 activations (the int16x8
    scheme) in kernels that do not implement them. Neither --shape, --fill nor the other interpreter helps: no pip
    TFLite interpreter (ai-edge-litert, tflite-runtime) links TensorFlow's Flex delegate."""
    if "Select TensorFlow op" in text or re.search(r"\bFlex\w+", text):
        ops = sorted(set(re.findall(r"\bFlex\w+", text)))
        named = f" ({', '.join(ops)})" if ops else ""
        return (f"{path.name} uses Select TensorFlow ops{named}, which need TensorFlow's Flex delegate; no pip TFLite "
                f"interpreter has it, {name} {version} included.",
                "Convert the model with builtin ops only (TFLITE_BUILTINS, without SELECT_TF_OPS), or run its ONNX "
                "export.")
    if re.search(r"int16", text, re.IGNORECASE) and re.search(r"failed to prepare|not (currently )?supported", text,
                                                               re.IGNORECASE):
        return (f"{name} {version} cannot prepare {path.name}: it uses int16 activations with int8 weights (the int16x8 "
                "quantization scheme) in an operator whose kernel does not implement them.",
                "Convert it as full-integer int8 or dynamic-range instead; no input shape or value changes this.")
    return None


def _explain(path: Path, name: str, version: str, exc: Exception) -> tuple[str, str]:
    """One sentence for a model an interpreter cannot load. Advice names the OTHER interpreter only when it exists
    and could help; never the one already in use, nor any for a capability no interpreter has."""
    text = " ".join(str(exc).split())[:300]
    missing = _missing_capability(path, name, version, " ".join(str(exc).split()))
    if missing is not None:
        return missing
    other = next((n for n in INTERPRETERS if n != name), None)
    if "Didn't find op for builtin opcode" in text or "Op builtin_code out of range" in text:
        hint = ("Choose the TFLite interpreter litert (--tflite-interpreter litert), or convert with an older TensorFlow."
                if name != "litert" else "Convert it with an older TensorFlow, or upgrade ai-edge-litert.")
        return (f"{path.name} needs a newer TFLite interpreter than {name} {version} ({text}).", hint)
    if "custom op" in text.lower():
        return (
            f"{path.name} uses a custom op that {name} does not have ({text}).",
            "Convert the model with builtin ops only (no SELECT_TF_OPS or custom ops).",
        )
    if "Model provided has model identifier" in text or "Could not open" in text or "flatbuffer" in text.lower():
        return (f"{path.name} is not a valid TFLite model ({text}).", "Convert or copy the model again.")
    hint = (f"Check the file, or try the TFLite interpreter {other} (--tflite-interpreter {other})." if other
            else "Check the file.")
    return (f"{name} {version} could not load {path.name}: {text}", hint)


def interpreter_backend(name: str, summary: str):
    """The registry's declaration of one TFLite interpreter (``litert`` or ``tflite-runtime``): both share this
    session, so their backend modules differ only in name and summary."""
    from .registry import Backend

    return Backend(
        name=name, formats=("tflite",), summary=summary,
        open=lambda path, threads, options, evictable: TfliteSession(path, threads=threads, interpreter=name,
                                                                     evictable=evictable),
        status=lambda: interpreter_status(name),
    )
