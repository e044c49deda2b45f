"""ONNX Runtime backend: explicit intra-op threads, the best available execution provider, the one that really ran.

ConvInteger with int8 weights (what ``quantize_dynamic`` writes for every convolution) exists in ONNX Runtime's CPU
provider only from 1.24 (microsoft/onnxruntime#26585); 1.23.2, the last release for Python 3.10 (JetPack 6), says
"Could not find an implementation for ConvInteger(10)". ``int8_conv_supported`` asks the runtime itself with a one-node
model, and the error for such a model says what to use instead.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import ModelError, RuntimeUnavailable
from . import RuntimeInfo, RuntimeStatus, Session, TensorSpec

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def _ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise RuntimeUnavailable(
            f"ONNX Runtime is not installed ({exc}).", "Install it with `pip install -r requirements.txt`."
        ) from None
    return onnxruntime


def status() -> RuntimeStatus:
    try:
        ort = _ort()
    except RuntimeUnavailable as exc:
        return RuntimeStatus("onnxruntime", False, None, str(exc))
    providers = tuple(k for k, v in PROVIDER_NAMES.items() if v in ort.get_available_providers())
    return RuntimeStatus("onnxruntime", True, ort.__version__, "importable", providers)


def best_provider() -> str:
    """CUDA where the GPU build and a device exist; TensorRT only on request (its engine build takes minutes)."""
    ort = _ort()
    return "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"


INT8_CONV_MISSING = ("int8-dynamic ONNX models use ConvInteger with int8 weights, which ONNX Runtime {version} cannot run "
                     "(it needs 1.24 or newer; 1.23.2 is the last release for Python 3.10).")
INT8_CONV_FIX = ("Choose int8-static, or the TFLite int8-dynamic variant (--runtime tflite), or use Python 3.11+ with the "
                 "newer ONNX Runtime.")


@functools.lru_cache(maxsize=1)
def int8_conv_supported() -> bool:
    """Whether this ONNX Runtime loads ConvInteger with uint8 input and int8 weights (a one-node model, ~10 ms)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    ort = _ort()
    weight = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.int8), "w")
    graph = helper.make_graph([helper.make_node("ConvInteger", ["x", "w"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1, 2, 2])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        if "ConvInteger" in str(exc):
            return False
        raise
    return True


def int8_conv_message() -> tuple[str, str]:
    return INT8_CONV_MISSING.format(version=_ort().__version__), INT8_CONV_FIX


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else None for d in arg.shape)
    return TensorSpec(arg.name, shape, _ORT_TYPES.get(arg.type, arg.type))


class OnnxSession(Session):
    def __init__(self, path: Path, *, threads: int = 2, provider: str | None = None):
        ort = _ort()
        provider = provider or best_provider()
        wanted = PROVIDER_NAMES[provider]
        if wanted not in ort.get_available_providers():
            raise RuntimeUnavailable(
                f"execution provider {provider!r} is not available in this ONNX Runtime build "
                f"(available: {', '.join(ort.get_available_providers())}).",
                "Choose --execution-provider cpu, or install onnxruntime-gpu built for this device.",
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        chain = [wanted] + (["CUDAExecutionProvider"] if provider == "tensorrt" else []) + ["CPUExecutionProvider"]
        chain = list(dict.fromkeys(chain))
        try:
            self._sess = ort.InferenceSession(str(path), sess_options=opts, providers=chain)
        except Exception as exc:  # ORT raises its own pybind classes; turn each into one sentence
            raise ModelError(*_explain(path, exc)) from None
        self.inputs = [_spec(a) for a in self._sess.get_inputs()]
        self.outputs = [_spec(a) for a in self._sess.get_outputs()]
        self._in_names = [a.name for a in self._sess.get_inputs()]
        self._out_names = [a.name for a in self._sess.get_outputs()]
        ran = self._sess.get_providers()[0]
        short = next((k for k, v in PROVIDER_NAMES.items() if v == ran), ran)
        self.info = RuntimeInfo("onnxruntime", ort.__version__, short, threads)

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        return self._sess.run(self._out_names, dict(zip(self._in_names, feeds, strict=False)))

    def close(self) -> None:
        self._sess = None


def _explain(path: Path, exc: Exception) -> tuple[str, str]:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    kind = type(exc).__name__
    if kind == "InvalidProtobuf" or "Protobuf parsing failed" in text:
        return (f"{path.name} is not a valid ONNX model (truncated or not a protobuf).", "Export or copy the model again.")
    if "external data" in text.lower() or ("No such file" in text and "data" in text.lower()):
        return (
            f"{path.name} keeps its weights in an external data file that is missing ({text[:200]}).",
            "Put the .data file next to the model, or export the model with its weights inside.",
        )
    if "ConvInteger" in text and ("NOT_IMPLEMENTED" in text or "Could not find an implementation" in text):
        return int8_conv_message()
    if kind == "NotImplemented" or "Could not find an implementation" in text:
        return (
            f"ONNX Runtime cannot run {path.name}: an operator is not implemented ({text[:200]}).",
            "Export with another opset, or try the TFLite runtime.",
        )
    if kind in ("InvalidGraph", "Fail", "InvalidArgument"):
        return (f"ONNX Runtime rejected {path.name}: {text[:300]}", "Check the export, or re-export with opset 13-17.")
    return (f"ONNX Runtime could not load {path.name}: {text[:300]}", "Check the file, or re-export the model.")
