"""Shared helpers for the offline model build (build venv only, never imported at run time).

ONNX -> TFLite goes in two steps so that every precision is under our control:
  1. onnx2tf turns the FP32 ONNX graph into a TensorFlow SavedModel (NCHW -> NHWC).
  2. tf.lite.TFLiteConverter makes fp32 / fp16 / int8-dynamic / int8-static from that SavedModel.

Quirks handled here:
  * onnx2tf fetches a calibration sample file from the internet whenever the model input looks like an
    image (4-D, 3 channels), even for a plain float conversion. We write that file ourselves into the
    working directory from our own calibration images (`write_onnx2tf_sample`), so nothing is fetched.
  * TF 2.21 writes FULLY_CONNECTED version 12 (per-channel dense weights) into dynamic-range models, which
    tflite-runtime 2.14 cannot load. `_experimental_disable_per_channel_quantization_for_dense_layers`
    keeps dense layers per-tensor so the files load in both tflite-runtime 2.14 and ai-edge-litert 2.3.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as md
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

BUILD_DIR = Path(__file__).resolve().parent
MODELS_DIR = BUILD_DIR.parent
WORK_DIR = BUILD_DIR / "work"

ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def version(pkg: str) -> str:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return "absent"


def versions(*pkgs: str) -> str:
    return ", ".join(f"{p} {version(p)}" for p in pkgs)


@contextlib.contextmanager
def chdir(path: Path):
    old = os.getcwd()
    path.mkdir(parents=True, exist_ok=True)
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def write_onnx2tf_sample(workdir: Path, images_nhwc01: np.ndarray | None = None) -> None:
    """Put onnx2tf's 'test image' file in `workdir` so it never downloads one.

    images_nhwc01: (N, H, W, 3) float32 in 0..1; resized/tiled to the 20x128x128x3 that onnx2tf expects.
    """
    target = workdir / ONNX2TF_SAMPLE
    if images_nhwc01 is None:
        rng = np.random.default_rng(0)
        data = rng.random((20, 128, 128, 3), dtype=np.float32)
    else:
        from PIL import Image

        out = []
        for i in range(20):
            img = images_nhwc01[i % len(images_nhwc01)]
            pil = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).resize((128, 128), Image.BILINEAR)
            out.append(np.asarray(pil, dtype=np.float32) / 255.0)
        data = np.stack(out).astype(np.float32)
    np.save(target, data)


def onnx_to_saved_model(onnx_path: Path, out_dir: Path, workdir: Path) -> Path:
    """onnx2tf conversion to a SavedModel (float32). Runs with cwd=workdir (where the sample file lies)."""
    import onnx2tf

    with chdir(workdir):
        onnx2tf.convert(
            input_onnx_file_path=str(onnx_path),
            output_folder_path=str(out_dir),
            copy_onnx_input_output_names_to_tflite=True,
            not_use_onnxsim=True,
            non_verbose=True,
        )
    return out_dir


CONVERTER_SETTINGS = {
    "fp32": "TFLiteConverter.from_saved_model, no optimizations",
    "fp16": "optimizations=[DEFAULT], target_spec.supported_types=[float16] (float16 weights, float32 io)",
    "int8-dynamic": "optimizations=[DEFAULT] (dynamic-range int8 weights, float io), "
    "_experimental_disable_per_channel_quantization_for_dense_layers=True",
    "int8-static": "optimizations=[DEFAULT], representative_dataset ({n} samples), "
    "supported_ops=[TFLITE_BUILTINS_INT8], inference_input_type=int8, inference_output_type=int8, "
    "_experimental_disable_per_channel_quantization_for_dense_layers=True",
}


def saved_model_to_tflite(
    saved_model_dir: Path,
    precision: str,
    out_path: Path,
    representative: Callable[[], Iterable[list[np.ndarray]]] | None = None,
) -> Path:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if precision == "fp32":
        pass
    elif precision == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif precision == "int8-dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    elif precision == "int8-static":
        assert representative is not None
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    else:
        raise ValueError(precision)
    data = conv.convert()
    out_path.write_bytes(data)
    return out_path


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")
