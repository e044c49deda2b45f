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
from .inspect import inspect_file, sha256_file

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

    def to_dict(self) -> dict:
        doc = asdict(self)
        doc["path"] = str(self.path)
        return doc


def _calibration_ident(calib) -> str | None:
    if calib is None:
        return f"synthetic:{SYNTHETIC_SAMPLES}"
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
                  keep_fp32: Sequence[str] = ()) -> QuantResult:
    """Build (or find in the cache) the ``precision`` variant of the FP32 ONNX model ``src``.

    ``calib``: a ``Calibration``, a sequence of feeds (lists of arrays in input order), or None for synthetic data
    (int8-static only; a warning comes back). ``progress`` gets short messages as stages start. ``keep_fp32``
    (int8-static only): node names of the pre-processed graph that stay in FP32 (``quantize_static``'s
    ``nodes_to_exclude``), a mix the quantization doctor chose; a name the graph lacks is a UsageError.
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
    ident = _calibration_ident(calib)
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
        return QuantResult(target, float(side.get("seconds") or 0.0), precision, method, side.get("warning", warning), True)

    sweep_stale_temp()
    cache = paths.cache_dir()
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=cache))
    try:
        out = tmp / "model.onnx"
        stages: dict[str, float] = {}
        info: dict[str, str] = {}
        calib_desc = None
        t0 = time.perf_counter()
        with _quiet(), _temp_inside(tmp):
            if precision == "fp16":
                say("fp16: converting float32 weights to float16")
                _to_fp16(src, out)
            elif precision == "int8-dynamic":
                say("int8-dynamic: quantizing weights to int8")
                _dynamic(src, out)
            else:
                feeds, calib_desc = _calibration_feeds(calib, spec, say)
                _static(src, out, tmp, feeds, spec, stages, info, say, keep_fp32)
        seconds = time.perf_counter() - t0
        say(f"{precision}: built in {seconds:.1f} s; checking it loads")
        _verify(out)
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
        shutil.rmtree(tmp, ignore_errors=True)
    return QuantResult(target, seconds, precision, method, warning, False)


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


def _calibration_feeds(calib, spec, say: Progress) -> tuple[list[list[np.ndarray]], dict]:
    if calib is None:
        say(f"int8-static: no calibration images; using {SYNTHETIC_SAMPLES} random inputs")
        feeds = [synthetic_inputs(spec.inputs, seed=i)[0] for i in range(SYNTHETIC_SAMPLES)]
        return feeds, {"kind": "synthetic", "samples": SYNTHETIC_SAMPLES, "ident": _calibration_ident(None)}
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
    quantize_static(
        str(model_in),
        str(out),
        _Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=s["per_channel"],
        activation_type=getattr(QuantType, s["activation_type"]),
        weight_type=getattr(QuantType, s["weight_type"]),
        calibrate_method=getattr(CalibrationMethod, s["calibrate_method"]),
        nodes_to_exclude=list(keep_fp32) or None,
    )
    stages["calibrate_and_quantize"] = time.perf_counter() - t


def _verify(path: Path) -> None:
    """A quantized model that ORT cannot load must not enter the cache."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    try:
        ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        if "ConvInteger" in str(exc):
            from ..runtimes.onnx import int8_conv_message

            raise ModelError(*int8_conv_message()) from None
        raise ModelError(
            f"the quantized model does not load in ONNX Runtime ({str(exc).splitlines()[0][:200]}).",
            "Report this with the source model; try another precision meanwhile.",
        ) from None
