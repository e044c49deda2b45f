"""Turn a bundled model's images or eval arrays into input tensors, following its manifest ``preprocessing`` dict.

- ``imagenet``: RGB, resize the short side to ``resize_short`` (bilinear), centre-crop ``crop``, ``(x - mean) / std``.
- ``digits``: 8x8 pixels in 0..16, divided by ``scale`` (16), shaped [1, 1, 8, 8] (NCHW) or [1, 8, 8, 1] (NHWC).

The layout comes from the session's own input shape (ONNX files here are NCHW, TFLite NHWC), not from the format.
Quantized TFLite inputs (int8/uint8 with (scale, zero_point)) get the float tensor quantized; quantized outputs are
dequantized so every variant is compared in float.

Calibration and evaluation data:
- digits: ``test.npz`` is the only split that ships. The first ``DIGITS_CALIB_COUNT`` test samples calibrate int8-static
  and are left out of evaluation, so accuracy is measured on samples the quantizer never saw. A ``x_calib`` or
  ``x_train`` array in the npz is used instead when present.
- imagenet-style models: the bundled images are both calibration and fidelity inputs (there are no others); fidelity
  against FP32 is still meaningful, but it is an optimistic estimate for unseen images. The notes say so.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelError
from ..runtimes import TensorSpec

if TYPE_CHECKING:  # pragma: no cover
    from .catalog import ModelInfo
    from .quantize import Calibration

DIGITS_CALIB_COUNT = 100


@dataclass(frozen=True)
class EvalSet:
    inputs: list  # float32 arrays, each one feed with batch dimension 1, in the requested layout
    labels: np.ndarray | None  # int64 class ids, or None where there are no labels
    note: str


def layout_for(shape, channels: int) -> str:
    """NCHW when dimension 1 holds the channels and the last one does not, else NHWC."""
    shape = tuple(shape)
    if len(shape) != 4:
        return "NCHW"
    if shape[1] == channels and shape[-1] != channels:
        return "NCHW"
    return "NHWC"


def channels_of(prep: dict) -> int:
    return 1 if prep.get("kind") == "digits" else 3


def load_image(path: str | Path, prep: dict, layout: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    short = int(prep.get("resize_short", 256))
    crop = int(prep.get("crop", 224))
    mean = np.asarray(prep.get("mean", 127.0), np.float32)
    std = np.asarray(prep.get("std", 128.0), np.float32)
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = short / min(w, h)
            nw, nh = max(crop, round(w * scale)), max(crop, round(h * scale))
            im = im.resize((nw, nh), Image.BILINEAR)
            left, top = (nw - crop) // 2, (nh - crop) // 2
            im = im.crop((left, top, left + crop, top + crop))
            x = np.asarray(im, dtype=np.float32)
    except (OSError, UnidentifiedImageError) as exc:
        raise ModelError(
            f"cannot read image {path} ({exc}).", "Restore the bundled images (git checkout models/images)."
        ) from None
    x = (x - mean) / std  # HWC
    if layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None], dtype=np.float32)


def digits_input(pixels: np.ndarray, layout: str, scale: float = 16.0) -> np.ndarray:
    x = np.asarray(pixels, np.float32).reshape(8, 8) / np.float32(scale)
    shape = (1, 1, 8, 8) if layout == "NCHW" else (1, 8, 8, 1)
    return np.ascontiguousarray(x.reshape(shape))


def to_feed(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Cast a float input to what the session takes: quantize for int8/uint8 inputs, cast for float16."""
    dtype = np.dtype(spec.dtype)
    if dtype.kind in "iu" and spec.quantization:
        scale, zero = spec.quantization
        info = np.iinfo(dtype)
        q = np.round(x / np.float32(scale)) + zero
        return np.clip(q, info.min, info.max).astype(dtype)
    return x.astype(dtype, copy=False)


def from_output(y: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float32 view of an output: dequantized when the output is quantized."""
    if np.dtype(spec.dtype).kind in "iu" and spec.quantization:
        scale, zero = spec.quantization
        return (y.astype(np.float32) - np.float32(zero)) * np.float32(scale)
    return np.asarray(y, dtype=np.float32)


def _digits_arrays(model: ModelInfo) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    if model.eval_path is None:
        raise ModelError(f"{model.name} has no eval data in the manifest.", "Restore models/manifest.json.")
    try:
        with np.load(model.eval_path, allow_pickle=False) as data:
            x = np.asarray(data["x"], np.float32)
            y = np.asarray(data["y"], np.int64) if "y" in data else None
            calib = next((np.asarray(data[k], np.float32) for k in ("x_calib", "x_train") if k in data), None)
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"cannot read eval data {model.eval_path} ({exc}).", "Restore the bundled models folder.") from None
    return x, y, calib


def calibration_batches(model: ModelInfo, layout: str) -> list[np.ndarray]:
    """Float32 inputs (batch 1 each) that calibrate int8-static; disjoint from ``eval_batches`` for digits."""
    prep = model.preprocessing
    if prep.get("kind") == "digits":
        x, _, calib = _digits_arrays(model)
        src = calib if calib is not None else x[:DIGITS_CALIB_COUNT]
        return [digits_input(p, layout, prep.get("scale", 16.0)) for p in src]
    if not model.images:
        return []
    return [load_image(p, prep, layout) for p in model.images]


def eval_batches(model: ModelInfo, layout: str) -> EvalSet:
    prep = model.preprocessing
    if prep.get("kind") == "digits":
        x, y, calib = _digits_arrays(model)
        if calib is not None:
            return EvalSet(
                [digits_input(p, layout, prep.get("scale", 16.0)) for p in x],
                y,
                f"all {len(x)} test samples (calibration used a separate split)",
            )
        xs, ys = x[DIGITS_CALIB_COUNT:], None if y is None else y[DIGITS_CALIB_COUNT:]
        return EvalSet(
            [digits_input(p, layout, prep.get("scale", 16.0)) for p in xs],
            ys,
            f"test samples {DIGITS_CALIB_COUNT}..{len(x) - 1}; the first {DIGITS_CALIB_COUNT} calibrate "
            "int8-static (no train split ships)",
        )
    if prep.get("kind") == "imagenet":
        inputs = [load_image(p, prep, layout) for p in model.images]
        return EvalSet(
            inputs, None, f"the {len(inputs)} bundled images (also used to calibrate int8-static; no labels, so no accuracy)"
        )
    raise ModelError(
        f"{model.name} has preprocessing kind {prep.get('kind')!r}, which edgeprof does not know.",
        "Use kind 'imagenet' or 'digits' in models/manifest.json.",
    )


def _calibration_feeds(model: ModelInfo, layout: str) -> list[list]:
    return [[b] for b in calibration_batches(model, layout)]


def calibration_for(model: ModelInfo, layout: str = "NCHW") -> Calibration | None:
    """A quantize.Calibration over the model's own data, identified by the bytes of its files (cheap to compute)."""
    from .quantize import Calibration

    prep = model.preprocessing
    files = [model.eval_path] if prep.get("kind") == "digits" else list(model.images)
    files = [Path(f) for f in files if f is not None]
    if not files:
        return None
    h = hashlib.sha256(repr(sorted(prep.items())).encode() + layout.encode())
    for f in files:
        try:
            h.update(f.read_bytes())
        except OSError as exc:
            raise ModelError(f"cannot read calibration file {f} ({exc}).", "Restore the bundled models folder.") from None
    kind = f"first {DIGITS_CALIB_COUNT} test samples" if prep.get("kind") == "digits" else f"{len(files)} bundled images"
    return Calibration(
        ident=f"{model.name}:{h.hexdigest()[:32]}:{DIGITS_CALIB_COUNT}",
        load=functools.partial(_calibration_feeds, model, layout),
        description=f"{model.name}: {kind}",
    )
