"""ONNX Runtime backend: explicit intra-op threads, the best available execution provider, the one that really ran.

ConvInteger with int8 weights (what ``quantize_dynamic`` writes for every convolution) exists in ONNX Runtime's CPU
provider only from 1.24 (microsoft/onnxruntime#26585); 1.23.2, the last release for Python 3.10 (JetPack 6), says
"Could not find an implementation for ConvInteger(10)". ``int8_conv_supported`` asks the runtime itself with a one-node
model, and the error for such a model says what to use instead.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError, RuntimeUnavailable
from .base import RuntimeInfo, RuntimeStatus, Session, TensorSpec, onnx_spec
from .inputs import UNSUPPORTED_DTYPES
from .profile import ProfileBudget, ort_profile, read_trace_events
from .registry import Backend, option

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
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
INT8_CONV_FIX = ("Choose int8-static, or the TFLite int8-dynamic variant (runtime tflite), or use Python 3.11+ with the "
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
    return onnx_spec(arg.name, arg.shape, arg.type)


class OnnxSession(Session):
    def __init__(self, path: Path, *, threads: int = 2, provider: str | None = None, evictable: bool = False):
        ort = _ort()
        provider = provider or best_provider()
        wanted = PROVIDER_NAMES[provider]
        if wanted not in ort.get_available_providers():
            raise RuntimeUnavailable(
                f"execution provider {provider!r} is not available in this ONNX Runtime build "
                f"(available: {', '.join(ort.get_available_providers())}).",
                "Choose the cpu execution provider, or install onnxruntime-gpu built for this device (README: Devices).",
            )
        self._evictable = evictable
        opts = self._options(ort, threads, evictable)
        chain = [wanted] + (["CUDAExecutionProvider"] if provider == "tensorrt" else []) + ["CPUExecutionProvider"]
        chain = list(dict.fromkeys(chain))
        self._path, self._threads, self._chain = str(path), threads, chain
        try:
            self._sess = ort.InferenceSession(str(path), sess_options=opts, providers=chain)
        except Exception as exc:  # ORT raises its own pybind classes; turn each into one sentence
            raise ModelError(*_explain(path, exc), detail=str(exc)) from None
        self.inputs = [_spec(a) for a in self._sess.get_inputs()]
        self.outputs = [_spec(a) for a in self._sess.get_outputs()]
        self._in_names = [a.name for a in self._sess.get_inputs()]
        self._out_names = [a.name for a in self._sess.get_outputs()]
        ran = self._sess.get_providers()[0]
        short = next((k for k, v in PROVIDER_NAMES.items() if v == ran), ran)
        self.info = RuntimeInfo("onnxruntime", ort.__version__, threads, execution_provider=short)

        # An output numpy cannot hold (float8, int4) makes ``run`` raise after the work is done; such a model is run
        # through OrtValues, which are never converted. Only then: it changes what is timed (no output copy).
        self._ort_values = any(o.dtype in UNSUPPORTED_DTYPES or o.kind != "tensor" and o.kind != "sequence"
                               for o in self.outputs)
        self._ortvalue = ort.OrtValue if self._ort_values else None

    @staticmethod
    def _options(ort, threads: int, evictable: bool = False):
        """``evictable``: weights stay in the memory-mapped external data (``models.external``): no pre-packing
        (which copies them into the kernels' layout) and basic graph optimizations only (the extended ones, such as
        the NCHWc layout, write new initializers)."""
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        if evictable:
            opts.add_session_config_entry("session.disable_prepacking", "1")
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        return opts

    def profile_unavailable(self) -> str | None:
        return None

    def op_profile(self, feeds: list[np.ndarray], budget: ProfileBudget | None = None, stop=lambda: False) -> dict:
        """ONNX Runtime's profiler can only be switched on when a session is created, so the measured session is
        closed first (a second copy of the model must fit under the memory cap) and a second one of the same file,
        with the same options plus ``enable_profiling``, runs the budget's inferences; the trace it writes into a
        temporary folder is aggregated (``runtimes.profile.ort_profile``) and deleted. This session then runs on
        the profiling session."""
        import gc
        import shutil
        import tempfile
        import time

        budget = budget or ProfileBudget()
        ort = _ort()
        self._sess = None
        gc.collect()
        folder = tempfile.mkdtemp(prefix="edgeprof-profile-")
        try:
            opts = self._options(ort, self._threads, self._evictable)
            opts.enable_profiling = True
            opts.profile_file_prefix = str(Path(folder) / "ort")
            self._sess = ort.InferenceSession(self._path, sess_options=opts, providers=self._chain)
            for _ in range(budget.warmup_runs):
                self.run(feeds)
            n, t0 = 0, time.monotonic()
            while n < budget.max_runs and not stop():
                self.run(feeds)
                n += 1
                if n >= budget.min_runs and time.monotonic() - t0 >= budget.max_s:
                    break
            trace = self._sess.end_profiling()
            doc = ort_profile(read_trace_events(trace), budget.warmup_runs,
                              source=f"onnxruntime {ort.__version__} profiler (enable_profiling), a second session "
                                     "of the same file and options, after the steady phase")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if stop() and "unavailable" not in doc:
            doc["note"] = f"stopped early: {doc['inferences']} profiled inferences"
        return doc

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        if self._ort_values:
            values = {n: self._ortvalue.ortvalue_from_numpy(x) for n, x in zip(self._in_names, feeds, strict=False)}
            return self._sess.run_with_ort_values(self._out_names, values)
        return self._sess.run(self._out_names, dict(zip(self._in_names, feeds, strict=False)))

    def close(self) -> None:
        self._sess = None


_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : (\w+) : ")
_LOAD = re.compile(r"^Load model from .*? failed:\s*")
_SOURCE = re.compile(r"\S+\.(?:cc|h|cpp|hpp|cu):\d+\s+")
_NODE = re.compile(r"Non-zero status code returned while running (?P<op>\w+) node\. Name:'(?P<name>[^']*)' "
                   r"Status Message: (?P<msg>.*)$")


def clean_message(text: str) -> str:
    """ONNX Runtime's message without what hides its cause: the ``[ONNXRuntimeError] : 1 : FAIL :`` prefix, the
    "Load model from PATH failed:" lead, C++ source locations and the C++ function signatures that follow them.

    ``/onnxruntime_src/onnxruntime/core/graph/model.cc:256 onnxruntime::Model::Model(onnx::ModelProto&&, ...)
    Unsupported model IR version: 99, max supported IR version: 11`` becomes the last sentence alone.
    """
    text = " ".join(str(text).split())
    text = _PREFIX.sub("", text)
    text = _LOAD.sub("", text)
    out, i = [], 0
    for m in _SOURCE.finditer(text):
        out.append(text[i:m.start()])
        i = _skip_signature(text, m.end())
    out.append(text[i:])
    text = " ".join("".join(out).split()).strip(" :")
    m = _NODE.search(text)
    if m:  # a kernel's failure: which node, and its message without the enforced condition that preceded it
        said = re.sub(r"^.*? was false\.\s*", "", m["msg"]).strip()
        name = f" {m['name']!r}" if m["name"] else ""
        text = f"the {m['op']} node{name} says: {said or m['msg']}"
    return text


def _skip_signature(text: str, i: int) -> int:
    """Index after a C++ ``ns::Name(args...)`` (balanced parentheses, qualifiers) starting at ``i``, else ``i``."""
    m = re.match(r"[\w:~<>,\s*&{}]*?[\w>}]\(", text[i:])
    if not m or "::" not in m.group(0):
        one = re.match(r"[A-Za-z_]\w*\s+", text[i:])  # ORT prints the function name after the location
        return i + one.end() if one else i
    depth, j = 0, i + m.end() - 1
    while j < len(text):
        depth += {"(": 1, ")": -1}.get(text[j], 0)
        j += 1
        if depth == 0:
            break
    while text[j:j + 1] == " " or text[j:j + 6] == "const ":
        j += 1 if text[j] == " " else 6
    if text[j:j + 6] == "[with ":  # a template's arguments: "[with T = float]"
        end = text.find("]", j)
        j = end + 1 if end > 0 else j
    return j


def _explain(path: Path, exc: Exception) -> tuple[str, str]:
    """One sentence for a model ONNX Runtime cannot load, with what to do; the cleaned cause is always in it."""
    raw = str(exc).strip()
    text = clean_message(raw) or type(exc).__name__
    kind = type(exc).__name__
    version = _ort().__version__
    if kind == "InvalidProtobuf" or "Protobuf parsing failed" in text:
        return (f"{path.name} is not a valid ONNX model (truncated or not a protobuf).", "Export or copy the model again.")
    m = re.search(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)", text)
    if m:
        return (f"{path.name} has ONNX IR version {m[1]}; this ONNX Runtime ({version}) reads up to {m[2]}:",
                "export it with an older onnx package, or upgrade onnxruntime.")
    m = re.search(r"Opset (\d+) is under development.*?(?:till|up to) opset (\d+)", text) or re.search(
        r"ai\.onnx opset (\d+).*?(?:max|maximum)[^\d]*(\d+)", text)
    if m:
        return (f"{path.name} uses ONNX opset {m[1]}; this ONNX Runtime ({version}) supports up to {m[2]}:",
                "export it with an older opset (13-17 run everywhere), or upgrade onnxruntime.")
    if "external data" in text.lower() or ("No such file" in text and "data" in text.lower()):
        return (f"{path.name} keeps its weights in an external data file that is missing ({text}).",
                "Put the .data file next to the model, or export the model with its weights inside.")
    m = re.search(r"Could not find an implementation for (\w+)\((\d+)\)", text)
    if "ConvInteger" in text and (kind == "NotImplemented" or m):
        return int8_conv_message()
    if kind == "NotImplemented" or m:
        op = f"{m[1]} (opset {m[2]})" if m else "an operator"
        hint = ("Quantize with int8-static (QDQ), or install an onnxruntime that has it."
                if m and m[1] in ("ConvInteger", "MatMulInteger") else "Export with another opset or other operators.")
        return (f"ONNX Runtime {version} has no kernel for {op} with the types {path.name} uses ({text}).", hint)
    m = re.search(r"([\w.]+):(\w+)\(-?\d+\) is not a registered function/op", text)
    if m:
        return (f"{path.name} uses {m[2]} from the {m[1]} domain, which this ONNX Runtime ({version}) does not have.",
                "Export the model for inference only, with standard operators.")
    locale = locale_in(text)
    if locale:
        return locale
    if kind in ("InvalidGraph", "Fail", "InvalidArgument"):
        return (f"ONNX Runtime {version} rejected {path.name}: {text}.", "Check the export, or re-export with opset 13-17.")
    return (f"ONNX Runtime {version} could not load {path.name}: {text}.", "Check the file, or re-export the model.")


def locale_in(text: str) -> tuple[str, str] | None:
    """A StringNormalizer (or any op) that needs a locale the device lacks: which locale, and how to add it."""
    m = re.search(r"locale with name:\s*([\w.@-]+)", text)
    if not m:
        return None
    return (f"the model needs the locale {m[1]}, which this device does not have.",
            f"Generate it (Debian and Raspberry Pi OS: add {m[1]} to /etc/locale.gen and run `sudo locale-gen`; "
            "Ubuntu and JetPack: `sudo locale-gen " + m[1] + "`), then run again.")


@dataclass(frozen=True)
class OnnxOptions:
    execution_provider: str | None = option(
        help="where ONNX Runtime runs the model (default: the best available; TensorRT only on request, its engine "
             "build takes minutes)", choices=tuple(PROVIDER_NAMES))


GPU_PROVIDERS = ("cuda", "tensorrt")

BACKEND = Backend(
    name="onnxruntime", formats=("onnx",), summary="ONNX Runtime with an execution provider",
    open=lambda path, threads, options, evictable: OnnxSession(path, threads=threads, provider=options.execution_provider,
                                                               evictable=evictable),
    status=status, options=OnnxOptions,
    runs_on=lambda ran: "gpu" if ran.get("execution_provider") in GPU_PROVIDERS else "cpu",
)
