"""The bundled models (``models/manifest.json``) and the user's own files, as one list of variants to run.

Every bundled model has 4 ONNX variants (fp32 ships; fp16, int8-dynamic and int8-static are made on the device by
``quantize`` and cached) and 4 shipped TFLite variants. A user's file is described by what it contains
(``inspect.inspect_file``), not by its name.

Uploads are stored, never executed or unpickled: the name is generated (content hash + extension), the extension
and size are checked, and the bytes must parse as an ONNX protobuf or a TFLite flatbuffer.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import paths
from ..config import PRECISIONS, RUNTIMES
from ..errors import EdgeprofError, ModelError, UsageError
from ..runtimes import check_model_file, runtime_for
from .inspect import inspect_file

FORMATS = RUNTIMES  # onnx | tflite
UPLOAD_EXTENSIONS = (".onnx", ".tflite")
MAX_UPLOAD_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Variant:
    model: str  # bundled model name, or the path of a user's file
    precision: str  # fp32 | fp16 | int8-dynamic | int8-static (detected files also: int16x8 | mixed)
    format: str  # onnx | tflite
    path: Path
    size_bytes: int | None  # None while a derived variant is not built yet
    sha256: str | None
    shipped: bool  # True: the file comes with edgeprof; False: derived on the device, or the user's own
    built_with: str
    layout: str | None = None  # NCHW | NHWC as the file wants its image input
    quantization: dict | None = None  # what building it changed (quantize.quantization_report); None until built

    @property
    def built(self) -> bool:
        return self.path.is_file()

    def to_dict(self) -> dict:
        doc = asdict(self)
        doc["path"] = str(self.path)
        return doc


@dataclass(frozen=True)
class ModelInfo:
    name: str
    task: str
    description: str
    source: str
    licence: str
    input: dict  # {"layout", "shape", "dtype"} of the ONNX fp32 file
    preprocessing: dict
    labels: list | None
    eval_path: Path | None
    images: list = field(default_factory=list)  # list[Path]
    variants: list = field(default_factory=list)  # list[Variant]

    def variant(self, precision: str, fmt: str) -> Variant:
        for v in self.variants:
            if v.precision == precision and v.format == fmt:
                return v
        have = ", ".join(f"{v.format}/{v.precision}" for v in self.variants)
        raise UsageError(f"{self.name} has no {fmt} variant at precision {precision!r} (it has: {have}).")

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "task": self.task,
            "description": self.description,
            "source": self.source,
            "licence": self.licence,
            "input": self.input,
            "preprocessing": self.preprocessing,
            "labels": len(self.labels) if self.labels else None,
            "eval": str(self.eval_path) if self.eval_path else None,
            "images": [str(p) for p in self.images],
            "variants": [v.to_dict() for v in self.variants],
        }


# ------------------------------------------------------------------------------------------------------ manifest

_manifest_memo: dict[tuple, dict] = {}


def _manifest_path() -> Path:
    return paths.MANIFEST


def _read_manifest() -> dict | None:
    path = _manifest_path()
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _manifest_memo:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"{path} is not valid JSON ({exc}).", "Restore it with `git checkout models/manifest.json`."
            ) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("models"), list):
            raise ModelError(f"{path} has no 'models' list.", "Restore it with `git checkout models/manifest.json`.")
        _manifest_memo.clear()
        _manifest_memo[key] = doc
    return _manifest_memo[key]


def _layout_of(entry: dict, fmt: str, model_input: dict) -> str:
    if entry.get("layout"):
        return entry["layout"]
    if isinstance(entry.get("input"), dict) and entry["input"].get("layout"):
        return entry["input"]["layout"]
    if fmt == "onnx":
        return model_input.get("layout", "NCHW")
    return "NHWC"


def _model_from(entry: dict, doc: dict, root: Path) -> ModelInfo:
    try:
        name = entry["name"]
        prep = dict(entry.get("preprocessing") or {})
        labels = None
        if entry.get("labels"):
            lp = root / entry["labels"]
            labels = lp.read_text().splitlines() if lp.is_file() else None
        eval_path = root / entry["eval"] if entry.get("eval") else None
        if "images" in entry:  # a model's own image list, else the shared bundled images for image models
            image_entries = entry["images"] or []
        else:
            image_entries = doc.get("images", []) if prep.get("kind") == "imagenet" else []
        images = [root / (i["file"] if isinstance(i, dict) else i) for i in image_entries]
        model_input = dict(entry.get("input") or {})
        variants: list[Variant] = []
        shipped = entry.get("variants", [])
        for v in shipped:
            fmt = v.get("format") or runtime_for(v["file"])
            path = root / v["file"]
            size = path.stat().st_size if path.is_file() else None
            variants.append(
                Variant(
                    name,
                    v["precision"],
                    fmt,
                    path,
                    size,
                    v.get("sha256"),
                    True,
                    v.get("built_with", ""),
                    _layout_of(v, fmt, model_input),
                )
            )
    except (KeyError, TypeError) as exc:
        raise ModelError(
            f"{_manifest_path()}: model entry is missing {exc}.", "Restore it with `git checkout models/manifest.json`."
        ) from None
    info = ModelInfo(
        name,
        entry.get("task", ""),
        entry.get("description", ""),
        entry.get("source", ""),
        entry.get("licence", entry.get("license", "")),
        model_input,
        prep,
        labels,
        eval_path,
        images,
        [],
    )
    fp32 = next((v for v in variants if v.format == "onnx" and v.precision == "fp32"), None)
    derived: list[Variant] = []
    if fp32 is not None:
        derived = [_derived_variant(info, fp32, p) for p in PRECISIONS if p != "fp32"]
    order = {p: i for i, p in enumerate(PRECISIONS)}
    onnx = sorted([v for v in variants if v.format == "onnx"] + derived, key=lambda v: order.get(v.precision, 9))
    tfl = sorted([v for v in variants if v.format == "tflite"], key=lambda v: order.get(v.precision, 9))
    object.__setattr__(info, "variants", onnx + tfl)
    return info


def _derived_variant(info: ModelInfo, fp32: Variant, precision: str) -> Variant:
    from . import quantize
    from .preprocess import calibration_for

    calib = calibration_for(info, fp32.layout or "NCHW") if precision == "int8-static" else None
    if fp32.path.is_file():
        path = quantize.cached_path(fp32.path, precision, calib)
    else:
        path = paths.cache_dir() / f"{info.name}.{precision}.missing-parent.onnx"
    side = quantize.read_sidecar(path) if path.is_file() else None
    size = path.stat().st_size if path.is_file() else None
    built_with = quantize._method(precision)
    return Variant(info.name, precision, "onnx", path, size, (side or {}).get("sha256"), False, built_with, fp32.layout,
                   (side or {}).get("quantization"))


def list_models() -> list[ModelInfo]:
    """The bundled models; empty when models/manifest.json is absent."""
    doc = _read_manifest()
    if doc is None:
        return []
    root = _manifest_path().parent
    return [_model_from(e, doc, root) for e in doc["models"]]


def model_names() -> list[str]:
    doc = _read_manifest()
    return [e.get("name", "?") for e in doc["models"]] if doc else []


def get_model(name: str) -> ModelInfo:
    doc = _read_manifest()
    names = model_names()
    for entry in (doc or {}).get("models", []):
        if entry.get("name") == name:
            return _model_from(entry, doc, _manifest_path().parent)
    have = ", ".join(names) if names else f"none (no {_manifest_path()})"
    raise UsageError(f"unknown model {name!r}; bundled models: {have}.", "A path to a .onnx or .tflite file also works.")


def is_path_like(model: str) -> bool:
    return model.lower().endswith((".onnx", ".tflite")) or os.sep in model or "/" in model


# ------------------------------------------------------------------------------------------------------ resolve


def resolve_variant(
    model: str, precision: str | None, runtime: str | None, *, build: bool = True, progress: Callable[[str], None] | None = None,
    shapes: dict | None = None, fills: dict | None = None, data: str | None = None, keep_fp32: tuple = (),
) -> Variant:
    """The file to run for ``model`` (a bundled name or a path) at ``precision`` in ``runtime``.

    Bundled: ``runtime`` None means onnx; a missing derived ONNX variant is quantized now (cached) when ``build``.
    Path: the file's own precision is detected; ``precision`` None (or "fp32", RunConfig's default) accepts it, and the
    Variant says what it really is. Asking an fp32 ONNX file for another precision quantizes it (random calibration
    data for int8-static, made with ``shapes``/``fills`` as the run's --shape/--fill: the result says so); any other
    mismatch is a UsageError that says what the file is. Quantizing runs in an isolated child (``models.isolated``):
    its crash is a ``PreparationFailed``. ``data``: the user's ``--data`` (``models.data``), which int8-static of
    a user's fp32 file calibrates on instead of random inputs.
    ``keep_fp32``: int8-static operators left in fp32 (``quantize.quantize_onnx``), a mix of the quantization doctor.
    """
    if keep_fp32:
        return _resolve_mix(model, precision, runtime, build, progress, tuple(keep_fp32), data)
    if precision is not None and precision not in PRECISIONS:
        raise UsageError(f"precision {precision!r} is not one of: {', '.join(PRECISIONS)}.")
    if runtime is not None and runtime not in FORMATS:
        raise UsageError(f"runtime {runtime!r} is not one of: {', '.join(FORMATS)}.")
    if model in model_names():
        return _resolve_bundled(get_model(model), precision or "fp32", runtime or "onnx", build, progress)
    if not is_path_like(model) and not Path(model).exists():
        get_model(model)  # raises the UsageError that lists bundled names
    return _resolve_path(Path(model), precision, runtime, build, progress, shapes, fills, data)


def _resolve_mix(model: str, precision: str | None, runtime: str | None, build: bool, progress,
                 keep: tuple, data: str | None = None) -> Variant:
    """The int8-static variant of an fp32 ONNX model with ``keep`` in fp32, calibrated as the plain one is."""
    from . import quantize
    from .preprocess import calibration_for

    if precision != "int8-static" or (runtime or "onnx") != "onnx":
        raise UsageError(f"--keep-fp32 applies to ONNX int8-static only, not {runtime or 'onnx'} {precision}.",
                         "Add --precision int8-static.")
    base = resolve_variant(model, "fp32", "onnx", build=False)
    if base.format != "onnx" or base.precision != "fp32":
        raise UsageError(f"{base.path.name} is not an fp32 ONNX model; --keep-fp32 quantizes one.")
    calib = None
    if model in model_names():
        calib = calibration_for(get_model(model), base.layout or "NCHW")
    elif data:
        calib = quantize.data_calibration(data, base.path)
    method = quantize._method(precision, keep)
    if not build:
        target = quantize.cached_path(base.path, precision, calib, keep_fp32=keep)
        size = target.stat().st_size if target.is_file() else None
        return Variant(base.model, precision, "onnx", target, size, None, False, method, base.layout)
    res = quantize.quantize_onnx(base.path, precision, calib=calib, progress=progress, keep_fp32=keep)
    side = quantize.read_sidecar(res.path) or {}
    return Variant(base.model, precision, "onnx", res.path, res.path.stat().st_size, side.get("sha256"), False,
                   method + (f"; {res.warning}" if res.warning else ""), base.layout)


def _resolve_bundled(info: ModelInfo, precision: str, runtime: str, build: bool, progress) -> Variant:
    v = info.variant(precision, runtime)
    if v.shipped:
        if not v.path.is_file():
            raise ModelError(f"bundled file {v.path} is missing.", "Restore it with `git checkout models` (or git lfs pull).")
        return v
    if v.path.is_file() or not build:
        return v
    from . import quantize
    from .preprocess import calibration_for

    fp32 = info.variant("fp32", "onnx")
    if not fp32.path.is_file():
        raise ModelError(f"bundled file {fp32.path} is missing.", "Restore it with `git checkout models`.")
    calib = calibration_for(info, fp32.layout or "NCHW") if precision == "int8-static" else None
    res = quantize.quantize_onnx(fp32.path, precision, calib=calib, progress=progress)
    side = quantize.read_sidecar(res.path) or {}
    return Variant(
        info.name, precision, "onnx", res.path, res.path.stat().st_size, side.get("sha256"), False, v.built_with, v.layout,
        res.quantization,
    )


def _resolve_path(path: Path, precision: str | None, runtime: str | None, build: bool, progress, shapes=None,
                  fills=None, data=None) -> Variant:
    check_model_file(path)
    fmt = runtime_for(path)
    if runtime is not None and runtime != fmt:
        raise UsageError(
            f"{path.name} is {article(fmt)} {fmt} model; it cannot run with runtime {runtime!r}.",
            f"Use --runtime {fmt}, or leave it out.",
        )
    spec = inspect_file(path)
    layout = _guess_layout(spec.inputs)
    mine = Variant(str(path), spec.precision, fmt, path, spec.size_bytes, spec.sha256, False, "user file", layout)
    if precision is None or precision == spec.precision:
        return mine
    if precision == "fp32":
        # fp32 is RunConfig's default, so it cannot tell "run it as it is" from a real request; the Variant carries the
        # detected precision, which is what a run records, so the label stays true.
        if progress:
            progress(f"{path.name} is {article(spec.precision)} {spec.precision} {fmt} file; running it as it is")
        return mine
    if fmt == "onnx" and spec.precision == "fp32":
        if not build:
            from . import quantize

            ident = quantize._Ident(quantize._calibration_ident(None, shapes, fills))
            target = quantize.cached_path(path, precision, ident, source_sha256=spec.sha256)
            size = target.stat().st_size if target.is_file() else None
            side = quantize.read_sidecar(target) if target.is_file() else None
            return Variant(str(path), precision, "onnx", target, size, None, False, quantize._method(precision), layout,
                           (side or {}).get("quantization"))
        from . import quantize

        calib = quantize.data_calibration(data, path) if data and precision == "int8-static" else None
        res = quantize.quantize_onnx(path, precision, calib=calib, progress=progress, shapes=shapes, fills=fills)
        built_with = quantize._method(precision) + (f"; {res.warning}" if res.warning else "")
        return Variant(str(path), precision, "onnx", res.path, res.path.stat().st_size, None, False, built_with, layout,
                       res.quantization)
    what = f"{spec.precision} {fmt} file"
    if spec.precision in PRECISIONS:
        hint = (f"Only fp32 ONNX files are quantized on the device; pass --precision {spec.precision}, or leave "
                "--precision out.")
    else:  # a label --precision does not take (mixed, int16x8, int4-weights, fp64, bf16): never suggest it
        hint = "Only fp32 ONNX files are quantized on the device; leave --precision out to run the file as it is."
    raise UsageError(f"{path.name} is {article(what)} {what}; it cannot be run as {precision}.", hint)


def model_inputs(variant: Variant) -> list:
    """The declared inputs (TensorSpec list) of a resolved variant; a derived ONNX variant not built yet has the
    inputs of its FP32 parent (quantization keeps the float inputs). Raises ModelError when no file can be read."""
    path = Path(variant.path)
    if not path.is_file() and variant.format == "onnx" and variant.model in model_names():
        path = get_model(variant.model).variant("fp32", "onnx").path
    return list(inspect_file(path).inputs)


def article(word: str) -> str:
    """'an' before fp16, int8-static, onnx; 'a' before mixed, tflite."""
    return "an" if word[:1].lower() in "aefhilmnorsx" and not word.lower().startswith(("mi", "mu")) else "a"


def _guess_layout(inputs) -> str | None:
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        return None
    shape = inputs[0].shape
    if shape[1] in (1, 3) and shape[-1] not in (1, 3):
        return "NCHW"
    if shape[-1] in (1, 3):
        return "NHWC"
    return None


# ------------------------------------------------------------------------------------------------------- uploads


def add_upload(data: bytes, filename: str, max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Store an uploaded model under ``paths.uploads_dir()`` as ``<sha256[:16]><ext>`` and return its path.

    Checks, in order: the name (plain, printable, no folders), the extension (.onnx / .tflite), the size (not empty,
    at most ``max_bytes``), then the content (must parse as the format says). The bytes are only parsed, never run.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise UsageError("upload data must be bytes.")
    data = bytes(data)
    if not isinstance(filename, str) or not filename or len(filename) > 200:
        raise UsageError("the uploaded file needs a name of 1 to 200 characters ending in .onnx or .tflite.")
    # The name is only used for its extension and for messages: the stored file gets a generated name, so folders
    # ("../../x.onnx", "C:\\x.onnx"), spaces and accents are harmless. Control characters are dropped from messages.
    filename = "".join(ch for ch in filename.replace("\\", "/").rsplit("/", 1)[-1] if ch.isprintable()) or "upload"
    ext = Path(filename).suffix.lower()
    if ext not in UPLOAD_EXTENSIONS:
        raise UsageError(
            f"{filename}: edgeprof takes .onnx and .tflite files, not {ext or 'files without an extension'}.",
            "Export the model to ONNX or TFLite first.",
        )
    if not data:
        raise ModelError(f"{filename} is empty.", "Upload the file again.")
    if len(data) > max_bytes:
        raise UsageError(
            f"{filename} is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB upload limit.",
            "Run the model from a path on the device instead: `python -m edgeprof run PATH`.",
        )
    digest = hashlib.sha256(data).hexdigest()
    folder = paths.uploads_dir()
    target = folder / f"{digest[:16]}{ext}"
    if target.is_file() and target.stat().st_size == len(data):
        return target
    fd, tmp = tempfile.mkstemp(prefix=".upload-", suffix=ext, dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            spec = inspect_file(tmp)
        except EdgeprofError as exc:
            msg = str(exc).replace(Path(tmp).name, filename).replace(str(tmp), filename)
            raise ModelError(f"upload rejected: {msg}") from None
        if spec.format == "onnx" and any("external data" in n for n in spec.notes):
            raise ModelError(
                f"upload rejected: {filename} keeps its weights in a separate file.",
                "Export it with the weights inside (a single .onnx file).",
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _remember_name(folder, target.name, filename)
    return target


UPLOAD_NAMES = "names.json"  # in the uploads folder: stored file name -> the name it was uploaded with


def upload_names() -> dict[str, str]:
    """{stored path: the file name it was uploaded with}, so history shows ``vad.onnx``, not ``570975ced86d0ee9.onnx``."""
    folder = paths.uploads_dir()
    index = folder / UPLOAD_NAMES
    try:
        stamp = (str(index), index.stat().st_mtime_ns)
    except OSError:
        return {}
    if _NAMES_CACHE.get("stamp") != stamp:  # read once per change: a table labels every row with it
        try:
            doc = json.loads(index.read_text())
        except (OSError, ValueError):
            doc = {}
        names = {str(folder / k): str(v) for k, v in doc.items() if isinstance(v, str)} if isinstance(doc, dict) else {}
        _NAMES_CACHE.update(stamp=stamp, names=names)
    return dict(_NAMES_CACHE["names"])


_NAMES_CACHE: dict = {}


def _remember_name(folder: Path, stored: str, original: str) -> None:
    """Record the original name next to the stored file (atomic replace: a crash never leaves half a file)."""
    try:
        doc = json.loads((folder / UPLOAD_NAMES).read_text())
        doc = doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        doc = {}
    doc[stored] = original
    fd, tmp = tempfile.mkstemp(prefix=".names-", dir=folder)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, folder / UPLOAD_NAMES)
