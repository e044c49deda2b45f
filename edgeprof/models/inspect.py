"""What a model file really is: format, tensors, and the precision its weights and activations use.

A user's own quantized file is labelled from its contents, never from its name. ``precision`` is one of
``DETECTED_PRECISIONS``: ``fp32``, ``fp16``, ``bf16``, ``fp64``, ``int8-dynamic``, ``int8-static``, ``int16x8``,
``int4-weights`` or ``mixed``. Only those in ``config.PRECISIONS`` can be passed to ``--precision``; a file of another
label runs as it is (leave ``--precision`` out), and no message suggests the flag for it.

ONNX is read with the ``onnx`` package only (``load_external_data=False``: weights in a separate file are not read,
only checked for presence). The rules:
- DynamicQuantizeLinear / ConvInteger / MatMulInteger / DynamicQuantizeMatMul: activations are quantized at run time
  -> ``int8-dynamic``.
- QuantizeLinear on a non-constant tensor, or QLinear* / QGemm ops: activations are quantized ahead of time
  -> ``int8-static`` (8-bit activation zero points) or ``int16x8`` (16-bit activation zero points). A QOperator
  op's activation type is its input zero point's (``input[2]``), never its last input: QLinearConv's last input is
  the int32 bias.
- MatMulNBits (ONNX Runtime's 4-bit block-quantized weights, float activations) -> ``int4-weights``.
- float64 / bfloat16 weights carrying >= 90% of the float parameters -> ``fp64`` / ``bf16``.
- no quantization ops: float16 initializers carry >= 90% of the float parameters -> ``fp16``; float32 -> ``fp32``.
- anything else (both kinds of quantization, int8 weights dequantized at load, a half-converted model) -> ``mixed``.

TFLite is opened in an interpreter (it parses; nothing is run), in the isolated child (``models.isolated``): a
file that crashes the interpreter is a ModelError sentence, not the end of the server.
Constant tensors (not produced by any op and not a
model input) are weights, the rest activations:
- int8/uint8 weights, float activations -> ``int8-dynamic`` (the converter's "dynamic range" mode);
- int8/uint8 activations -> ``int8-static`` (full integer, whether or not the input/output stay float);
- int16 activations with int8 weights -> ``int16x8``;
- float16 weights dequantized to float32 -> ``fp16``; all float32 -> ``fp32``; otherwise ``mixed``.
Integer biases (int32/int64) and small shape/index constants (int32/int64) do not decide the precision.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ModelError
from ..runtimes import TensorSpec, check_model_file, onnx_spec, runtime_for


def size_text(nbytes: int | float, like: int | float | None = None) -> str:
    """A file's size, the one rule of the sizes the CLI and the Models page print: ``18.55 MB`` from 1 MB, ``103.9 kB``
    below; in the unit ``like`` takes where two sizes stand side by side (``103.9 kB -> 35.6 kB``, never ``0.10 MB ->
    0.04 MB`` or ``1.20 MB -> 350.0 kB``)."""
    return f"{nbytes / 1e6:.2f} MB" if max(nbytes, like or 0) >= 1e6 else f"{nbytes / 1e3:.1f} kB"


DETECTED_PRECISIONS = ("fp32", "fp16", "bf16", "fp64", "int8-dynamic", "int8-static", "int16x8", "int4-weights",
                       "mixed")

_DYNAMIC_OPS = {
    "DynamicQuantizeLinear",
    "ConvInteger",
    "MatMulInteger",
    "DynamicQuantizeMatMul",
    "DynamicQuantizeLSTM",
    "MatMulIntegerToFloat",
}
_STATIC_OPS = {"QGemm", "QAttention", "QOrderedMatMul"}
_KNOWN_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc", "ai.onnx.training"}
_INDEX_DTYPES = {"int32", "int64", "bool"}
_FLOAT_MAJORITY = 0.9


@dataclass(frozen=True)
class FileSpec:
    format: str  # onnx | tflite
    inputs: list  # list[TensorSpec]
    outputs: list  # list[TensorSpec]
    precision: str  # one of DETECTED_PRECISIONS
    weight_dtypes: dict  # dtype name -> number of weight elements
    activation_dtype: str | None  # what activations are computed in ("float32", "int8", "uint8", "int16", ...)
    size_bytes: int
    sha256: str
    opset: int | None  # default-domain opset (ONNX); None for TFLite
    ops: dict = field(default_factory=dict)  # op name -> count
    notes: list = field(default_factory=list)  # plain-word observations, e.g. "12% of weights remain float32"

    def to_dict(self) -> dict:
        doc = asdict(self)
        doc["inputs"] = [t.to_dict() for t in self.inputs]
        doc["outputs"] = [t.to_dict() for t in self.outputs]
        return doc


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def inspect_file(path: str | Path) -> FileSpec:
    """Read a .onnx or .tflite file and say what it is. Raises ModelError with what to do when it cannot."""
    p = check_model_file(path)
    fmt = runtime_for(p)
    size = p.stat().st_size
    digest = sha256_file(p)
    if fmt == "onnx":
        return _inspect_onnx(p, size, digest)
    key = (digest, str(p.resolve()))
    if key not in _tflite_memo:
        from .isolated import run_isolated

        # Reading a TFLite file's tensors means building an interpreter: that runs the file's own code paths in C++,
        # so it happens in the isolated child (an upload is inspected before it is stored: never in the server).
        _tflite_memo[key] = run_isolated(
            "edgeprof.models.inspect:_inspect_tflite", p, size, digest, what=f"reading the tensors of {p.name}",
            tool="the TFLite interpreter", hint="the file is damaged, or made for another interpreter.")
        if len(_tflite_memo) > 64:
            _tflite_memo.pop(next(iter(_tflite_memo)))
    return _tflite_memo[key]


_tflite_memo: dict[tuple, FileSpec] = {}


# ----------------------------------------------------------------------------------------------------------- ONNX


def _np_name(elem_type: int) -> str:
    from onnx import helper

    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).name
    except Exception:
        from onnx import TensorProto

        return TensorProto.DataType.Name(elem_type).lower()


def _onnx_type(tp) -> tuple[str, tuple]:
    """(type string as ONNX Runtime spells it, shape of ints/names/None) of an ONNX TypeProto."""
    from onnx import TensorProto

    which = tp.WhichOneof("value")
    if which == "tensor_type":
        tt = tp.tensor_type
        elem = TensorProto.DataType.Name(tt.elem_type).lower() if tt.elem_type else "unknown"
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
        return f"tensor({elem})", dims if tt.HasField("shape") else ()
    if which == "sequence_type":
        inner, dims = _onnx_type(tp.sequence_type.elem_type)
        return f"seq({inner})", dims
    if which == "optional_type":
        inner, dims = _onnx_type(tp.optional_type.elem_type)
        return f"optional({inner})", dims
    if which == "map_type":
        key = TensorProto.DataType.Name(tp.map_type.key_type).lower()
        inner, _ = _onnx_type(tp.map_type.value_type)
        return f"map({key},{inner})", ()
    return "unknown", ()


def _onnx_spec(vi) -> TensorSpec:
    """The same TensorSpec ONNX Runtime's session gives (``runtimes.onnx_spec``), read from the file alone."""
    type_name, dims = _onnx_type(vi.type)
    if type_name.startswith("seq("):
        dims = ()  # ORT declares no shape for a sequence input
    return onnx_spec(vi.name, dims, type_name)


def _load_onnx(p: Path):
    import onnx
    from google.protobuf.message import DecodeError

    try:
        return onnx.load(str(p), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelError(
            f"{p.name} is not a valid ONNX model: it is truncated or not a protobuf ({type(exc).__name__}).",
            "Export or copy the model again.",
        ) from None


def _check_graph_complete(p: Path, graph) -> None:
    """A file cut at a field boundary still parses; an undefined tensor or a missing graph gives it away.

    Order is not checked: ORT sorts the graph itself, and float16 conversion appends its input Casts at the end.
    """
    if not graph.node or not graph.output:
        raise ModelError(f"{p.name} has no graph nodes or outputs: it is truncated or empty.", "Export or copy the model again.")
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    known |= {i.values.name for i in graph.sparse_initializer}
    for node in graph.node:
        known.update(o for o in node.output if o)
    for node in graph.node:
        for name in node.input:
            if name and name not in known:
                raise ModelError(
                    f"{p.name} is damaged: node {node.name or node.op_type!r} reads tensor {name!r}, which nothing "
                    "defines (the file is truncated or was edited badly).",
                    "Export or copy the model again.",
                )
    for out in graph.output:
        if out.name not in known:
            raise ModelError(
                f"{p.name} is damaged: graph output {out.name!r} is never computed.", "Export or copy the model again."
            )


def _external_data(p: Path, model) -> tuple[list[str], list[str]]:
    """Return (locations, missing) of initializers kept in external files, relative to the model's folder. A location
    that is absolute, climbs with '..', or resolves (through a symbolic link) outside the model's folder counts as
    missing: the runtime would read that file, and a model must not make edgeprof read outside its folder."""
    from onnx import TensorProto

    locations = set()
    for init in model.graph.initializer:
        if init.data_location == TensorProto.EXTERNAL:
            for entry in init.external_data:
                if entry.key == "location":
                    locations.add(entry.value)
    folder = p.parent.resolve()
    missing = []
    for loc in sorted(locations):
        target = (p.parent / loc).resolve()  # a link is followed: one leading out of the folder is refused
        if Path(loc).is_absolute() or ".." in Path(loc).parts or not target.is_relative_to(folder) \
                or not target.is_file():
            missing.append(loc)
    return sorted(locations), missing


def _inspect_onnx(p: Path, size: int, digest: str) -> FileSpec:
    import onnx
    from onnx import numpy_helper  # noqa: F401  (import check: onnx installed completely)

    model = _load_onnx(p)
    graph = model.graph
    _check_graph_complete(p, graph)
    notes: list[str] = []

    locations, missing = _external_data(p, model)
    if missing:
        raise ModelError(
            f"{p.name} keeps its weights in an external data file that is missing or outside its folder: {', '.join(missing)}.",
            "Put the data file next to the model, or export the model with its weights inside (one file).",
        )
    if locations:
        notes.append(f"weights in external data file(s): {', '.join(locations)}")

    opsets = {o.domain or "": o.version for o in model.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx"))
    newest = onnx.defs.onnx_opset_version()
    if opset is not None and opset > newest:
        raise ModelError(
            f"{p.name} uses ONNX opset {opset}, newer than this onnx package knows (up to {newest}).",
            "Re-export with an older opset (13-17 run everywhere), or upgrade onnx and onnxruntime.",
        )
    unknown = sorted({f"{n.domain}::{n.op_type}" for n in graph.node if n.domain not in _KNOWN_DOMAINS})
    if unknown:
        raise ModelError(
            f"{p.name} uses operators from a custom domain that ONNX Runtime does not implement: {', '.join(unknown[:5])}.",
            "Re-export with standard ONNX operators only (no custom ops).",
        )
    for n in graph.node:
        if n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type):
            raise ModelError(
                f"{p.name} uses operator {n.op_type!r}, which is not a standard ONNX operator.",
                "Re-export with standard ONNX operators only.",
            )

    ops = Counter(n.op_type for n in graph.node)
    qparams = {name for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") for name in n.input[1:3]}
    # QOperator ops (QLinearConv, QLinearMatMul, QLinearAdd, ...): scales and zero points sit at 1, 2, 4, 5, 6, 7
    qparams |= {name for n in graph.node if n.op_type.startswith("QLinear") or n.op_type == "QGemm"
                for i, name in enumerate(n.input) if i in (1, 2, 4, 5, 6, 7)}
    init_dtype: dict[str, str] = {}
    weights: Counter = Counter()
    for init in graph.initializer:
        name = _np_name(init.data_type)
        init_dtype[init.name] = name
        if init.name in qparams:  # scales and zero points are not weights
            continue
        count = 1
        for d in init.dims:
            count *= d
        weights[name] += count
    for n in graph.node:  # Constant nodes are weights too
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and a.HasField("t"):
                    name = _np_name(a.t.data_type)
                    for o in n.output:
                        init_dtype[o] = name
                    count = 1
                    for d in a.t.dims:
                        count *= d
                    weights[name] += count

    dynamic = sorted(op for op in ops if op in _DYNAMIC_OPS)
    static_ops = sorted(op for op in ops if op.startswith("QLinear") or op in _STATIC_OPS)
    act_dtypes: set[str] = set()
    for n in graph.node:
        if n.op_type == "QuantizeLinear" and n.input[0] not in init_dtype:
            act_dtypes.add(_quant_dtype(n, init_dtype))
        elif n.op_type.startswith("QLinear") or n.op_type in _STATIC_OPS:
            zp = n.input[2] if len(n.input) > 2 else ""  # x_zero_point; the last input may be an int32 bias
            act_dtypes.add(init_dtype.get(zp, "uint8"))
    static = bool(act_dtypes or static_ops)

    floats = {k: v for k, v in weights.items() if k in ("float32", "float16", "bfloat16", "float64")}
    ints = {k: v for k, v in weights.items() if k in ("int8", "uint8", "int4", "uint4", "int16", "uint16")}
    n_float = sum(floats.values())
    n_int = sum(ints.values())
    total = n_float + n_int

    if static and dynamic:
        precision = "mixed"
        notes.append("both run-time (dynamic) and ahead-of-time (static) activation quantization are present")
        activation = "mixed"
    elif static:
        act = act_dtypes - {"float32"} or {"uint8"}
        if act <= {"int16", "uint16"}:
            precision, activation = "int16x8", sorted(act)[0]
        elif act <= {"int8", "uint8"}:
            precision, activation = "int8-static", sorted(act)[0]
        else:
            precision, activation = "mixed", "/".join(sorted(act))
            notes.append(f"activations quantized to several types: {', '.join(sorted(act))}")
    elif dynamic:
        precision, activation = "int8-dynamic", "uint8"
        notes.append(f"activations quantized at run time by {', '.join(dynamic)}")
    elif ops.get("MatMulNBits"):
        precision, activation = "int4-weights", "float32"
        notes.append(f"{ops['MatMulNBits']} MatMulNBits: block-quantized (4-bit) weights, float activations")
    elif n_int and n_int >= 0.1 * max(total, 1):
        precision, activation = "mixed", "float32"
        notes.append("integer weights are dequantized to float at load time (weight-only quantization)")
    else:
        activation = "float16" if floats.get("float16", 0) >= _FLOAT_MAJORITY * max(n_float, 1) and n_float else "float32"
        if not n_float:
            io = {t.dtype for t in map(_onnx_spec, graph.input) if t.name not in init_dtype}
            precision = "fp16" if io == {"float16"} else "fp32"
            activation = "float16" if precision == "fp16" else "float32"
        elif floats.get("float16", 0) >= _FLOAT_MAJORITY * n_float:
            precision = "fp16"
        elif floats.get("float32", 0) >= _FLOAT_MAJORITY * n_float:
            precision = "fp32"
        elif floats.get("float64", 0) >= _FLOAT_MAJORITY * n_float:
            precision, activation = "fp64", "float64"
        elif floats.get("bfloat16", 0) >= _FLOAT_MAJORITY * n_float:
            precision, activation = "bf16", "bfloat16"
        else:
            precision = "mixed"
            share = 100.0 * floats.get("float16", 0) / n_float
            notes.append(f"{share:.0f}% of float weights are float16, the rest float32")
    if precision in ("int8-static", "int8-dynamic", "int16x8") and total and n_float > 0.1 * total:
        notes.append(f"{100.0 * n_float / total:.0f}% of weights remain float (layers left unquantized)")

    inputs = [_onnx_spec(vi) for vi in graph.input if vi.name not in init_dtype]
    outputs = [_onnx_spec(vi) for vi in graph.output]
    return FileSpec("onnx", inputs, outputs, precision, dict(weights), activation, size, digest, opset, dict(ops), notes)


def _quant_dtype(node, init_dtype: dict[str, str]) -> str:
    for a in node.attribute:  # opset 21+: output_dtype attribute
        if a.name == "output_dtype" and a.i:
            return _np_name(a.i)
    if len(node.input) >= 3 and node.input[2]:
        return init_dtype.get(node.input[2], "uint8")
    return "uint8"  # the ONNX default when no zero point is given


# --------------------------------------------------------------------------------------------------------- TFLite


def _inspect_tflite(p: Path, size: int, digest: str) -> FileSpec:
    import numpy as np

    from ..runtimes import tflite

    name = tflite.best_interpreter()
    mod, version = tflite._load(name)
    try:
        interp = mod.Interpreter(model_path=str(p))
    except Exception as exc:
        raise ModelError(*tflite._explain(p, name, version, exc)) from None
    tensors = interp.get_tensor_details()
    try:
        op_details = interp._get_ops_details()
    except Exception:  # private API; without it we treat every non-io tensor as unknown
        op_details = []
    produced: set[int] = set()
    consumed: set[int] = set()
    ops: Counter = Counter()
    for op in op_details:
        ops[op["op_name"]] += 1
        produced.update(int(i) for i in op["outputs"] if i >= 0)
        consumed.update(int(i) for i in op["inputs"] if i >= 0)
    in_details = interp.get_input_details()
    out_details = interp.get_output_details()
    model_inputs = {d["index"] for d in in_details}

    weights: Counter = Counter()
    acts: Counter = Counter()
    for t in tensors:
        idx = t["index"]
        dtype = np.dtype(t["dtype"]).name
        count = int(np.prod(t["shape"])) if len(t["shape"]) else 1
        if idx in produced or idx in model_inputs:
            acts[dtype] += count
        elif idx in consumed:
            weights[dtype] += count
    notes: list[str] = [f"inspected with {name} {version}"]
    precision, activation = _tflite_precision(weights, acts, ops, notes)
    inputs = [tflite._spec(d) for d in in_details]
    outputs = [tflite._spec(d) for d in out_details]
    if precision in ("int8-static", "int16x8"):
        io = {t.dtype for t in inputs + outputs}
        notes.append(f"inputs/outputs are {', '.join(sorted(io))}")
    del interp
    return FileSpec("tflite", inputs, outputs, precision, dict(weights), activation, size, digest, None, dict(ops), notes)


def _tflite_precision(weights: Counter, acts: Counter, ops: Counter, notes: list[str]) -> tuple[str, str]:
    w = {k: v for k, v in weights.items() if k not in _INDEX_DTYPES}
    a = {k: v for k, v in acts.items() if k not in _INDEX_DTYPES}
    n_w = sum(w.values()) or 1
    n_a = sum(a.values()) or 1
    w_int = w.get("int8", 0) + w.get("uint8", 0) + w.get("int4", 0)
    a_int8 = a.get("int8", 0) + a.get("uint8", 0)
    a_int16 = a.get("int16", 0)
    a_float = a.get("float32", 0) + a.get("float16", 0)
    activation = max(a, key=a.get) if a else "float32"
    if a_int16 >= 0.5 * n_a:
        return ("int16x8" if w_int >= 0.5 * n_w else "mixed"), "int16"
    if a_int8 >= 0.5 * n_a:
        if w.get("float32", 0) > 0.1 * n_w:
            notes.append(f"{100.0 * w.get('float32', 0) / n_w:.0f}% of weights remain float32")
        return "int8-static", ("int8" if a.get("int8", 0) >= a.get("uint8", 0) else "uint8")
    if a_float >= 0.5 * n_a:
        if w_int >= 0.5 * n_w:
            return "int8-dynamic", "float32"
        if w.get("float16", 0) >= _FLOAT_MAJORITY * n_w:
            return "fp16", "float32"
        if w.get("float32", 0) >= _FLOAT_MAJORITY * n_w:
            return "fp32", "float32"
    notes.append(
        "weights: "
        + ", ".join(f"{k} {v}" for k, v in sorted(w.items()))
        + "; activations: "
        + ", ".join(f"{k} {v}" for k, v in sorted(a.items()))
    )
    return "mixed", activation
