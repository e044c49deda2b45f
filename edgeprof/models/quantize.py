"""On-device quantization of an FP32 ONNX model into the fp16, int8-dynamic and int8-static variants.

Each result is cached under ``paths.cache_dir()`` by a key over the source file's content hash, the precision, the
settings below (with ``SETTINGS_VERSION``) and the identity of the calibration data, so changing any of them builds a
new file and never reuses a stale one. Work happens in a private temporary folder inside the cache folder; the
finished file is moved into place with ``os.replace`` (atomic on one filesystem), so a failure, Ctrl-C or kill leaves
no half-written model where the cache looks. Temporary folders of processes that died are swept on the next call.

How long quantization took is part of the result and of a JSON sidecar next to the cached file
(``<file>.json``: seconds, per-stage seconds, tool versions, settings, calibration), because compression time on the
device is a figure users study.

Settings and why:
- fp16: ``onnxruntime.transformers.float16.convert_float_to_float16(keep_io_types=True)``: float32 in and out, so the
  same preprocessing feeds every variant.
- int8-dynamic: ``quantize_dynamic`` with QInt8 weights, every supported op; activations are quantized to QUInt8 at
  run time by DynamicQuantizeLinear (ORT's recommended pairing on x86: its U8S8 kernels). ConvInteger with int8 weights
  runs on ORT's CPU provider. ORT advises dynamic quantization for transformers/RNNs and static for CNNs, and the
  numbers agree: on efficientnet-lite0 it keeps only 0.63 top-1 agreement with FP32 (per-tensor activation ranges
  through depthwise convs; per_channel changes nothing for ConvInteger, reduce_range makes it worse, excluding the
  depthwise and first convs reaches 0.74, quantizing only the Gemm keeps 1.00 at 3x the size). We keep ORT's default
  so the figure shows what the tool does to a CNN, and the settings are in the sidecar.
- int8-static: ``quantize_static`` in QDQ format, per-channel QInt8 weights, QUInt8 activations, MinMax calibration
  over the model's own images (see ``STATIC_ACTIVATION`` for the measurement behind the choice), after
  ``quant_pre_process`` (shape inference + graph optimisation, which folds BatchNorm and lets ORT fuse QDQ groups).
  A model with no bundled images is calibrated on random data and the result carries ``SYNTHETIC_WARNING``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import logging
import os
import platform
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import paths
from ..errors import ModelError, UsageError
from ..locks import pid_alive
from ..runtimes import check_model_file, runtime_for, synthetic_inputs
from .inspect import inspect_file, sha256_file, size_text
from .isolated import check_synthetic_budget

QUANTIZED_PRECISIONS = ("fp16", "int8-dynamic", "int8-static")
SYNTHETIC_WARNING = "calibrated on random data: fidelity means little"
SYNTHETIC_SAMPLES = 16
SETTINGS_VERSION = 1

# Measured on efficientnet-lite0 over the 27 bundled images (x86-64, ORT 1.32, per-channel QInt8 weights, QDQ), agreement
# with FP32 (top-1 / top-5 overlap / mean KL / seconds to build on 2 cores):
#   QUInt8 activations, MinMax      0.963 / 0.941 / 0.0226 /  3.3-4.0 s   <- chosen
#   QInt8 activations,  MinMax      0.852 / 0.941 / 0.0228 /  3.5-4.6 s
#   QUInt8 activations, Percentile  0.926 / 0.941 / 0.0203 / 12.7 s
#   QInt8 activations,  Percentile  0.926 / 0.941 / 0.0210 / 18.4 s
#   Entropy gave MinMax's numbers at 3x the time; quant_pre_process changed nothing measurable (kept: ORT advises it).
# EfficientNet-Lite's activations are ReLU6 outputs (non-negative), which an asymmetric uint8 range covers with every
# code; U8S8 is also the fast path of ORT's x86 kernels. Percentile's small KL gain is not worth 3-4x the build time on
# a Raspberry Pi. Differences of 1-3 images in 27 are within noise; the KL and cosine figures agree.
STATIC_ACTIVATION = "QUInt8"
STATIC_CALIBRATION = "MinMax"

SETTINGS: dict[str, dict] = {
    "fp16": {
        "tool": "onnxruntime.transformers.float16.convert_float_to_float16",
        "keep_io_types": True,
    },
    "int8-dynamic": {
        "tool": "onnxruntime.quantization.quantize_dynamic",
        "weight_type": "QInt8",
        "activation_type": "QUInt8 (DynamicQuantizeLinear at run time)",
        "per_channel": False,
        "reduce_range": False,
    },
    "int8-static": {
        "tool": "onnxruntime.quantization.quantize_static",
        "quant_format": "QDQ",
        "per_channel": True,
        "weight_type": "QInt8",
        "activation_type": STATIC_ACTIVATION,
        "calibrate_method": STATIC_CALIBRATION,
        "pre_process": True,
    },
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Calibration:
    """Calibration data for int8-static: ``ident`` names it for the cache key without loading it."""

    ident: str
    load: Callable[[], Sequence[list[np.ndarray]]]  # each item: one feed, arrays in the model's input order
    description: str


@dataclass(frozen=True)
class QuantResult:
    path: Path
    seconds: float  # wall time the quantization took when it was built (also on a cache hit)
    precision: str
    method: str  # the tool and settings in a few words
    warning: str | None = None
    cached: bool = False
    quantization: dict | None = None  # what changed: see ``quantization_report``

    def to_dict(self) -> dict:
        doc = asdict(self)
        doc["path"] = str(self.path)
        return doc


def data_calibration(data_path: str | Path, src: str | Path, normalise: tuple[float, float] | None = None) -> Calibration:
    """Calibration over the user's ``--data`` (``models.data``): identified by its files' names, sizes and times,
    loaded only where the quantization runs (the isolated child)."""
    from . import data

    path = data.check_path(data_path)
    norm = tuple(normalise or data.DEFAULT_NORMALISE)
    return Calibration(ident=data.ident(path, norm), load=functools.partial(_data_feeds, str(path), str(src), norm),
                       description=f"--data {path.name}")


def _data_feeds(data_path: str, src: str, normalise: tuple) -> list[list[np.ndarray]]:
    from . import data

    return data.load(data_path, inspect_file(src).inputs, normalise).feeds


def _calibration_ident(calib, shapes: dict | None = None, fills: dict | None = None) -> str | None:
    if calib is None:
        extra = ""
        if shapes or fills:
            extra = ":" + json.dumps({"shape": {k: list(v) for k, v in (shapes or {}).items()},
                                      "fill": {k: str(v) for k, v in (fills or {}).items()}}, sort_keys=True)
        return f"synthetic:{SYNTHETIC_SAMPLES}{extra}"
    if isinstance(calib, (Calibration, _Ident)):
        return calib.ident
    h = hashlib.sha256()
    for feed in calib:
        for arr in feed if isinstance(feed, (list, tuple)) else [feed]:
            a = np.ascontiguousarray(arr)
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
    return "arrays:" + h.hexdigest()[:32]


def cache_key(source_sha256: str, precision: str, calib_ident: str | None, keep_fp32: Sequence[str] = ()) -> str:
    doc = {
        "source": source_sha256,
        "precision": precision,
        "settings": SETTINGS[precision],
        "version": SETTINGS_VERSION,
        "calibration": calib_ident if precision == "int8-static" else None,
    }
    if keep_fp32:  # only then: the keys of plain variants, cached before mixes existed, stay the same
        doc["keep_fp32"] = sorted(keep_fp32)
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def cached_path(src: str | Path, precision: str, calib=None, *, source_sha256: str | None = None,
                keep_fp32: Sequence[str] = ()) -> Path:
    """Where the variant of ``src`` at ``precision`` lives (or will live) in the cache; builds nothing."""
    _check_precision(precision)
    _check_keep(precision, keep_fp32)
    src = Path(src)
    digest = source_sha256 or _file_sha(src)
    key = cache_key(digest, precision, _calibration_ident(calib), keep_fp32)
    mix = f"-keep{len(keep_fp32)}" if keep_fp32 else ""
    return paths.cache_dir() / f"{_safe_stem(src)}.{precision}{mix}.{key[:16]}.onnx"


def read_sidecar(model_path: str | Path) -> dict | None:
    side = Path(str(model_path) + ".json")
    try:
        return json.loads(side.read_text())
    except (OSError, ValueError):
        return None


def quantize_onnx(src: str | Path, precision: str, *, calib=None, progress: Progress | None = None,
                  shapes: dict | None = None, fills: dict | None = None, keep_fp32: Sequence[str] = ()) -> QuantResult:
    """Build (or find in the cache) the ``precision`` variant of the FP32 ONNX model ``src``.

    ``calib``: a ``Calibration``, a sequence of feeds (lists of arrays in input order), or None for synthetic data
    (int8-static only; a warning comes back), made with the run's ``shapes`` ({input: tuple}) and ``fills``
    ({input: scalar}). ``progress`` gets short messages as stages start. ``keep_fp32`` (int8-static only): node
    names of the pre-processed graph that stay in FP32 (``quantize_static``'s ``nodes_to_exclude``), a mix the
    quantization doctor chose; a name the graph lacks is a UsageError.

    The build, the calibration and the check that the result loads run in an isolated, memory-capped child process
    (``models.isolated``); only reading the graph and the cache happen here. Raises UsageError for a file that is not
    fp32 ONNX; ModelError when nothing in the model is an operator the tool converts (the variant would be the fp32
    model under another name); ``isolated.PreparationFailed`` when the tool crashes, fails or runs out of memory (one
    sentence naming the step, the model and the precision; the tool's own text in ``detail``).
    """
    _check_precision(precision)
    _check_keep(precision, keep_fp32)
    keep_fp32 = tuple(sorted(set(keep_fp32)))
    say = progress or (lambda _msg: None)
    src = check_model_file(src)
    if runtime_for(src) != "onnx":
        raise UsageError(
            f"{src.name} is a TFLite file; only ONNX models are quantized on the device.",
            "TFLite variants ship ready-made; pick one with --precision.",
        )
    spec = inspect_file(src)
    if spec.precision != "fp32":
        raise UsageError(
            f"{src.name} is already {spec.precision}; quantization starts from an fp32 ONNX model.",
            "Pass the fp32 parent model instead.",
        )
    if precision == "int8-dynamic" and spec.ops.get("Conv"):
        from ..runtimes.onnx import int8_conv_message, int8_conv_supported

        if not int8_conv_supported():
            raise ModelError(*int8_conv_message())
    shapes, fills = dict(shapes or {}), dict(fills or {})
    ident = _calibration_ident(calib, shapes, fills)
    target = cached_path(src, precision, _Ident(ident), source_sha256=spec.sha256, keep_fp32=keep_fp32)
    warning = SYNTHETIC_WARNING if precision == "int8-static" and calib is None else None
    method = _method(precision, keep_fp32)
    side = read_sidecar(target) if target.is_file() else None
    if side is not None and side.get("size_bytes") not in (None, target.stat().st_size):
        say(f"{precision}: cached file {target.name} does not match its record; building it again")
        side = None
        target.unlink(missing_ok=True)
    if target.is_file():
        side = side or {}
        say(f"{precision}: cached at {target}")
        return QuantResult(target, float(side.get("seconds") or 0.0), precision, method, side.get("warning", warning),
                           True, side.get("quantization"))
    from .isolated import run_isolated

    return run_isolated(
        "edgeprof.models.quantize:build_variant", src, precision, calib, target, warning, shapes, fills,
        keep_fp32=keep_fp32,
        what=f"building the {precision} variant of {src.name}", tool=_TOOL[precision], progress=say,
        hint="Run the fp32 file as it is, or try another precision.",
    )


_TOOL = {
    "fp16": "ONNX Runtime's float16 converter",
    "int8-dynamic": "ONNX Runtime's quantizer",
    "int8-static": "ONNX Runtime's quantizer",
}


def build_variant(src: Path, precision: str, calib, target: Path, warning: str | None, shapes: dict, fills: dict,
                  progress: Progress | None = None, keep_fp32: Sequence[str] = ()) -> QuantResult:
    """Build, check, prove and cache one variant; runs inside the isolated child (``quantize_onnx`` starts it)."""
    from .isolated import in_child, stage

    say = progress or (lambda _msg: None)
    src, target = Path(src).resolve(), Path(target).resolve()
    spec = inspect_file(src)
    sweep_stale_temp()
    cache = paths.cache_dir()
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=cache))
    previous_cwd = os.getcwd() if in_child() else None
    if previous_cwd is not None:  # ORT's symbolic shape inference writes sym_shape_infer_temp.onnx into the cwd
        os.chdir(tmp)
    try:
        out = tmp / "model.onnx"
        stages: dict[str, float] = {}
        info: dict[str, str] = {}
        calib_desc = None
        t0 = time.perf_counter()
        source = _normalised(src, tmp, info)
        if precision != "fp16":
            _refuse_if_nothing_to_quantize(src.name, source, precision)
        with _quiet(), _temp_inside(tmp):
            if precision == "fp16":
                say("fp16: converting float32 weights to float16")
                _to_fp16(source, out)
            elif precision == "int8-dynamic":
                say("int8-dynamic: quantizing weights to int8")
                _dynamic(source, out)
            else:
                stage(f"opening {src.name} for calibration", None, "ONNX Runtime")
                _check_source_loads(source, src)
                stage(f"making calibration inputs for the int8-static variant of {src.name}",
                      "Give the run's --shape for inputs whose size is not fixed.", "edgeprof")
                feeds, calib_desc = _calibration_feeds(calib, spec, say, shapes, fills, src.name)
                stage(f"calibrating and building the int8-static variant of {src.name}",
                      "Calibration runs the model on its inputs: give --shape and --fill as for a run (e.g. --fill "
                      "sr=16000), or real inputs with --data; int8-dynamic needs no calibration." if calib is None
                      else "Check that --data fits the model's inputs; int8-dynamic needs no calibration.",
                      _TOOL[precision])
                _static(source, out, tmp, feeds, spec, stages, info, say, keep_fp32)
        seconds = time.perf_counter() - t0
        report = quantization_report(source, out, precision)
        _refuse_if_unchanged(src.name, precision, report)
        say(f"{precision}: built in {seconds:.1f} s; checking it loads")
        stage(f"checking that the {precision} variant of {src.name} loads", _LOAD_HINT[precision], "ONNX Runtime")
        _verify(out, src, precision)
        side = {
            "source": str(src),
            "source_sha256": spec.sha256,
            "precision": precision,
            "seconds": round(seconds, 4),
            "stages": {k: round(v, 4) for k, v in stages.items()},
            "settings": SETTINGS[precision],
            "settings_version": SETTINGS_VERSION,
            "keep_fp32": list(keep_fp32),
            "calibration": calib_desc,
            **info,
            "warning": warning,
            "quantization": report,
            "size_bytes": out.stat().st_size,
            "sha256": sha256_file(out),
            "tools": _tool_versions(),
            "machine": platform.machine(),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / "model.json").write_text(json.dumps(side, indent=2))
        os.replace(out, target)  # the model first: its presence is what makes a cache hit
        os.replace(tmp / "model.json", Path(str(target) + ".json"))
    finally:
        if previous_cwd is not None:
            os.chdir(previous_cwd)
        shutil.rmtree(tmp, ignore_errors=True)
    return QuantResult(target, seconds, precision, _method(precision, keep_fp32), warning, False, report)


_LOAD_HINT = {
    "fp16": "the float16 converter's output does not load; run the fp32 file or int8-dynamic.",
    "int8-dynamic": "the quantizer's output does not load; run the fp32 file or int8-static.",
    "int8-static": "the quantizer's output does not load; run the fp32 file or int8-dynamic.",
}


class _Ident:
    """Stands in for calibration data when only its identity is needed (the cache path)."""

    def __init__(self, ident: str):
        self.ident = ident


def _check_precision(precision: str) -> None:
    if precision not in QUANTIZED_PRECISIONS:
        raise UsageError(
            f"cannot build precision {precision!r} on the device; choose one of: {', '.join(QUANTIZED_PRECISIONS)}.",
            "fp32 is the shipped ONNX file itself.",
        )


_sha_memo: dict[tuple, str] = {}


def _file_sha(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _sha_memo:
        _sha_memo[key] = sha256_file(path)
    return _sha_memo[key]


def _check_keep(precision: str, keep_fp32: Sequence[str]) -> None:
    if keep_fp32 and precision != "int8-static":
        raise UsageError(f"--keep-fp32 applies to int8-static only, not {precision}.",
                         "Use --precision int8-static with --keep-fp32.")


def _safe_stem(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem)[:60] or "model"
    for suffix in ("-fp32", "_fp32"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem


def _method(precision: str, keep_fp32: Sequence[str] = ()) -> str:
    s = SETTINGS[precision]
    if precision == "fp16":
        return "convert_float_to_float16, float32 io"
    if precision == "int8-dynamic":
        return f"quantize_dynamic, {s['weight_type']} weights, QUInt8 activations at run time"
    return (
        f"quantize_static QDQ, per-channel {s['weight_type']} weights, {s['activation_type']} activations, "
        f"{s['calibrate_method']} calibration"
    ) + (f"; kept in fp32: {', '.join(keep_fp32)}" if keep_fp32 else "")


def _tool_versions() -> dict:
    import onnx
    import onnxruntime

    return {
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


@contextlib.contextmanager
def _quiet():
    """ORT's quantizer logs advice on the root logger and warns through warnings; keep the CLI's output clean."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


@contextlib.contextmanager
def _temp_inside(folder: Path):
    """ORT's quantizers write augmented models to tempfile folders; keep them inside our swept temp folder, so a
    killed quantization leaves nothing behind in /tmp either."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = previous


def sweep_stale_temp() -> None:
    """Remove temporary folders left by quantizations whose process no longer exists (killed, power cut)."""
    for entry in paths.cache_dir().glob(".tmp-*"):
        try:
            pid = int(entry.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)


def _to_fp16(src: Path, out: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(src))
    model = convert_float_to_float16(model, keep_io_types=True)
    onnx.save(model, str(out))


def _dynamic(src: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    s = SETTINGS["int8-dynamic"]
    quantize_dynamic(
        str(src), str(out), weight_type=QuantType.QInt8, per_channel=s["per_channel"], reduce_range=s["reduce_range"]
    )


def _calibration_feeds(calib, spec, say: Progress, shapes: dict | None = None, fills: dict | None = None,
                       name: str = "the model") -> tuple[list[list[np.ndarray]], dict]:
    if calib is None:
        say(f"int8-static: no calibration images; using {SYNTHETIC_SAMPLES} random inputs")
        check_synthetic_budget(spec.inputs, shapes, fills, name,
                               fixed_hint="Build int8-dynamic or fp16 instead: they need no calibration inputs.")
        feeds = [synthetic_inputs(spec.inputs, seed=i, shapes=shapes, fills=fills)[0] for i in range(SYNTHETIC_SAMPLES)]
        return feeds, {"kind": "synthetic", "samples": SYNTHETIC_SAMPLES, "ident": _calibration_ident(None, shapes, fills),
                       "shape": {k: list(v) for k, v in (shapes or {}).items()} or None,
                       "fill": {k: str(v) for k, v in (fills or {}).items()} or None}
    if isinstance(calib, Calibration):
        say(f"int8-static: loading calibration data ({calib.description})")
        feeds = [list(f) if isinstance(f, (list, tuple)) else [f] for f in calib.load()]
        return feeds, {"kind": "data", "samples": len(feeds), "ident": calib.ident, "description": calib.description}
    feeds = [list(f) if isinstance(f, (list, tuple)) else [f] for f in calib]
    return feeds, {"kind": "arrays", "samples": len(feeds), "ident": _calibration_ident(calib)}


def _static(
    src: Path, out: Path, tmp: Path, feeds: list[list[np.ndarray]], spec, stages: dict, info: dict, say: Progress,
    keep_fp32: Sequence[str] = (),
) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    if not feeds:
        raise ModelError("no calibration data for int8-static quantization.", "Pass at least one calibration input.")
    s = SETTINGS["int8-static"]
    model_in = src
    if s["pre_process"]:
        say("int8-static: pre-processing (shape inference, graph optimisation)")
        t = time.perf_counter()
        pre = tmp / "pre.onnx"
        # Symbolic shape inference needs sympy and only matters for dynamic shapes (transformers); ONNX shape
        # inference covers the static-shape CNNs edgeprof ships, so it is used only when sympy is there.
        symbolic = importlib.util.find_spec("sympy") is not None
        info["pre_process"] = "shape inference + ORT graph optimisation" + (
            "" if symbolic else " (no sympy: ONNX shape inference only)"
        )
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=not symbolic)
            model_in = pre
        except Exception as exc:  # fails on some exotic graphs: quantize the original
            info["pre_process"] = f"failed ({type(exc).__name__}: {str(exc)[:160]}); quantized the original graph"
            say(f"int8-static: pre-processing failed ({type(exc).__name__}); quantizing the original graph")
        stages["pre_process"] = time.perf_counter() - t

    if keep_fp32:
        import onnx

        have = {n.name for n in onnx.load(str(model_in), load_external_data=False).graph.node}
        missing = [n for n in keep_fp32 if n not in have]
        if missing:
            raise UsageError(f"the model has no operator named {', '.join(missing)} to keep in fp32.",
                             "Take the names from `edgeprof doctor MODEL` (its node column).")
    names = [t.name for t in spec.inputs]

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(feeds)

        def get_next(self):
            feed = next(self._it, None)
            return None if feed is None else {n: np.asarray(a) for n, a in zip(names, feed, strict=False)}

        def rewind(self):
            self._it = iter(feeds)

    say(f"int8-static: calibrating on {len(feeds)} inputs and quantizing")
    t = time.perf_counter()
    kwargs = dict(
        quant_format=QuantFormat.QDQ,
        per_channel=s["per_channel"],
        activation_type=getattr(QuantType, s["activation_type"]),
        weight_type=getattr(QuantType, s["weight_type"]),
        calibrate_method=getattr(CalibrationMethod, s["calibrate_method"]),
        nodes_to_exclude=list(keep_fp32) or None,
    )
    try:
        quantize_static(str(model_in), str(out), _Reader(), **kwargs)
    except ValueError as exc:
        # ORT 1.32's per-channel weight-scale adjustment for int32 biases compares whole arrays when a MatMul's bias
        # is per column (skl2onnx MLPs, tf2onnx and dynamo exports): build again without that adjustment.
        if "truth value of an array" not in str(exc):
            raise
        say("int8-static: ONNX Runtime's bias-scale adjustment failed; quantizing again without it")
        info["workaround"] = "QDQDisableWeightAdjustForInt32Bias (ORT's adjustment failed on a per-column bias)"
        quantize_static(str(model_in), str(out), _Reader(), extra_options={"QDQDisableWeightAdjustForInt32Bias": True},
                        **kwargs)
    stages["calibrate_and_quantize"] = time.perf_counter() - t


def _load(path: Path) -> None:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _check_source_loads(source: Path, src: Path) -> None:
    """Calibration runs the source: one that ONNX Runtime cannot open is named for its own reason, not the quantizer's."""
    from ..runtimes.onnx import _explain

    try:
        _load(source)
    except Exception as exc:
        raise ModelError(*_explain(src, exc), detail=str(exc)) from None


def _verify(path: Path, src: Path, precision: str) -> None:
    """A quantized model that ORT cannot load must not enter the cache. When the source does not load either, its
    own reason is the sentence (an IR version or opset this ONNX Runtime does not read): no precision can help."""
    import onnxruntime as ort

    from ..runtimes.onnx import _explain, int8_conv_message

    try:
        _load(path)
    except Exception as exc:
        raw = str(exc)
        if "ConvInteger" in raw:
            raise ModelError(*int8_conv_message(), detail=raw) from None
        try:
            _load(src)
        except Exception as src_exc:
            raise ModelError(*_explain(src, src_exc), detail=str(src_exc)) from None
        raise ModelError(
            f"the {precision} variant of {src.name} does not load in ONNX Runtime {ort.__version__}, though "
            f"{src.name} itself does.",
            "Run the fp32 file, or try another precision; `show RUN_ID` keeps ONNX Runtime's text for a run.",
            detail=raw,
        ) from None


# ------------------------------------------------------------------------------------------------ what changed

# Operators that compute on quantized data by themselves (QOperator, dynamic, 4-bit); a float operator fed by a
# DequantizeLinear counts too (QDQ: ONNX Runtime fuses the group into a quantized kernel).
_QUANT_COMPUTE = {"ConvInteger", "MatMulInteger", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM", "MatMulIntegerToFloat",
                  "QGemm", "QAttention", "QOrderedMatMul", "MatMulNBits", "QEmbedLayerNormalization"}
_PLUMBING = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "Cast", "Constant", "Identity", "Shape", "Size"}


def _op_counts(model) -> int:
    return sum(1 for n in model.graph.node if n.op_type not in _PLUMBING)


def _weights_by_dtype(model) -> dict:
    from onnx import numpy_helper  # noqa: F401

    from .inspect import _np_name

    out: dict[str, dict] = {}
    for init in model.graph.initializer:
        name = _np_name(init.data_type)
        count = 1
        for d in init.dims:
            count *= d
        doc = out.setdefault(name, {"tensors": 0, "elements": 0})
        doc["tensors"] += 1
        doc["elements"] += count
    return dict(sorted(out.items()))


def _float16_values(model) -> set[str]:
    """Names of float16 tensors: initializers, and values whose inferred type is float16."""
    import onnx

    names = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16}
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16:
            names.add(vi.name)
    for n in model.graph.node:
        if n.op_type == "Cast" and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in n.attribute):
            names.update(n.output)
    return names


def quantization_report(source: str | Path, built: str | Path, precision: str) -> dict:
    """What building ``precision`` changed between the ONNX files ``source`` and ``built``.

    ``quantized_ops``: compute operators (not Q/DQ, Cast, Constant, Identity) of the built graph that run on quantized
    data (a quantized kernel, or fed by a DequantizeLinear) or, for fp16, on float16 tensors; ``of_ops``: compute
    operators of the source; ``op_types``: {type: count} of those quantized; ``weights``: {"before"|"after": {dtype:
    {"tensors", "elements"}}}; ``bytes``: {"before", "after"} file sizes. Reads graphs only (no external data).
    """
    import onnx

    src = onnx.load(str(source), load_external_data=False)
    out = onnx.load(str(built), load_external_data=False)
    dq_outputs = {o for n in out.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    f16 = _float16_values(out) if precision == "fp16" else set()
    kinds: dict[str, int] = {}
    for n in out.graph.node:
        if n.op_type in _PLUMBING:
            continue
        if precision == "fp16":
            hit = any(t in f16 for t in [*n.input, *n.output] if t)
        else:
            hit = n.op_type in _QUANT_COMPUTE or n.op_type.startswith("QLinear") or any(t in dq_outputs for t in n.input)
        if hit:
            kinds[n.op_type] = kinds.get(n.op_type, 0) + 1
    return {
        "precision": precision,
        "quantized_ops": sum(kinds.values()),
        "of_ops": _op_counts(src),
        "op_types": dict(sorted(kinds.items())),
        "source_op_types": dict(sorted(_type_counts(src).items())),
        "weights": {"before": _weights_by_dtype(src), "after": _weights_by_dtype(out)},
        "bytes": {"before": Path(source).stat().st_size, "after": Path(built).stat().st_size},
    }


def _type_counts(model) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in model.graph.node:
        if n.op_type not in _PLUMBING:
            out[n.op_type] = out.get(n.op_type, 0) + 1
    return out


def describe_report(report: dict | None) -> str:
    """One line for people: "14 of 66 operators quantized (Conv 12, Gemm 2); 4.70 MB -> 1.30 MB" (sizes as
    ``inspect.size_text`` writes them, as the line above it in ``quantize`` does)."""
    if not report:
        return "no quantization report (built before edgeprof recorded one)"
    kinds = ", ".join(f"{k} {v}" for k, v in report.get("op_types", {}).items())
    what = "float16" if report.get("precision") == "fp16" else "quantized"
    b = report.get("bytes") or {}
    size = ""
    if b.get("before") and b.get("after"):
        size = f"; {size_text(b['before'], b['after'])} -> {size_text(b['after'], b['before'])}"
    return f"{report['quantized_ops']} of {report['of_ops']} operators {what}" + (f" ({kinds})" if kinds else "") + size


def _refuse_if_unchanged(name: str, precision: str, report: dict) -> None:
    if report["quantized_ops"]:
        return
    types = ", ".join(report.get("source_op_types", {}))
    ops = f"its operators ({types})" if types else "its only nodes, which move data (Identity, Cast, Shape),"
    if precision == "fp16":
        raise ModelError(
            f"nothing in {name} became float16: the float16 converter leaves {ops} as they are, so an fp16 run would "
            "measure the unchanged model under another name.",
            "Run the file as it is (leave --precision out).",
        )
    raise ModelError(
        f"nothing in {name} is an operator ONNX Runtime's quantizer handles: {ops} stay as they are, so an "
        f"{precision} run would measure the unchanged model under another name.",
        "Run the file as it is (leave --precision out); models with Conv, MatMul, Gemm or LSTM layers quantize.",
    )


def _refuse_if_nothing_to_quantize(name: str, source: Path, precision: str) -> None:
    """Before building: a graph with no operator in ONNX Runtime's registry for this mode (IntegerOps for dynamic,
    QDQ for static) cannot change; calibrating it would only fail or produce the fp32 model again."""
    import onnx
    from onnxruntime.quantization.registry import IntegerOpsRegistry, QDQRegistry

    model = onnx.load(str(source), load_external_data=False)
    registry = IntegerOpsRegistry if precision == "int8-dynamic" else QDQRegistry
    if not any(n.op_type in registry for n in model.graph.node if n.domain in ("", "ai.onnx", "com.microsoft")):
        _refuse_if_unchanged(name, precision, {"quantized_ops": 0, "source_op_types": _type_counts(model)})


def _normalised(src: Path, tmp: Path, info: dict) -> Path:
    """``src``, or a copy that ONNX Runtime's quantizer can work with: repeated default-domain opset imports merged
    (skl2onnx writes ``""`` and ``ai.onnx`` both; the quantizer then fails with "Failed to find proper ai.onnx
    domain"), and nodes without a name named after their first output (``nodes_to_exclude`` and the doctor address
    nodes by name; the quantizer would otherwise leave them nameless and the doctor could only name a QDQ tensor)."""
    import onnx

    model = onnx.load(str(src), load_external_data=False)
    seen: dict[str, int] = {}
    for o in model.opset_import:
        dom = "" if o.domain in ("", "ai.onnx") else o.domain
        seen[dom] = max(seen.get(dom, 0), o.version)
    missing_default = "" not in seen and any(n.domain in ("", "ai.onnx") for n in model.graph.node) is False
    if missing_default:  # only ai.onnx.ml (old skl2onnx): the quantizer still looks the default domain up
        seen[""] = 7 if model.ir_version <= 3 else 13
    opsets_ok = len(seen) == len(model.opset_import) and not missing_default
    unnamed = sum(1 for n in model.graph.node if not n.name and n.output)
    if opsets_ok and not unnamed:
        return src
    model = onnx.load(str(src))  # with external data: the copy must be complete
    done = []
    if not opsets_ok:
        del model.opset_import[:]
        for dom, version in seen.items():
            model.opset_import.append(onnx.helper.make_opsetid(dom, version))
        done.append("added the default-domain opset import ONNX Runtime's quantizer looks up" if missing_default
                    else "merged repeated default-domain opset imports")
    if unnamed:
        taken = {n.name for n in model.graph.node if n.name}
        for node in model.graph.node:
            if node.name or not node.output:
                continue
            name, i = node.output[0] or node.op_type, 1
            while name in taken:
                name, i = f"{node.output[0] or node.op_type}_{i}", i + 1
            node.name = name
            taken.add(name)
        done.append(f"named {unnamed} unnamed node{'s' if unnamed > 1 else ''} after {'their' if unnamed > 1 else 'its'} "
                    "first output")
    out = tmp / "source.onnx"
    onnx.save(model, str(out))
    info["normalised"] = "; ".join(done)
    return out
