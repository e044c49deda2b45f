"""The bundled models in models/: manifest integrity, every variant runs in every runtime, real predictions.

Runtime venv only (numpy, onnxruntime, ai_edge_litert, tflite_runtime, pillow). The tiny preprocessing needed is
written out here on purpose: it pins what models/manifest.json promises, independently of edgeprof.models.
tflite-runtime's INT8 kernels are slow on x86 (~84 ms per EfficientNet-Lite0 inference), so the EfficientNet
TFLite checks use only a few images.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import requires_tflite_runtime

MODELS = Path(__file__).resolve().parent.parent / "models"
MANIFEST = json.loads((MODELS / "manifest.json").read_text())
BY_NAME = {m["name"]: m for m in MANIFEST["models"]}
PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-static")
INTERPRETERS = ("litert", pytest.param("tflite-runtime", marks=requires_tflite_runtime))
SIZE_CAP = 70 * 1024 * 1024

VARIANTS = [(m["name"], v) for m in MANIFEST["models"] for v in m["variants"]]
TFLITE = [(n, v) for n, v in VARIANTS if v["format"] == "tflite"]
EXPECTED_IMAGES = [im for im in MANIFEST["images"] if im.get("expected")]


def _id(nv) -> str:
    return Path(nv[1]["file"]).name


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- runtimes

def onnx_session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def interpreter(path: Path, which: str):
    if which == "litert":
        from ai_edge_litert.interpreter import Interpreter
    else:
        from tflite_runtime.interpreter import Interpreter
    it = Interpreter(model_path=str(path), num_threads=2)
    it.allocate_tensors()
    return it


def tflite_run(it, x: np.ndarray) -> np.ndarray:
    """x: float input in the model's own units; quantized here when the model's input is int8."""
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    if i["dtype"] == np.int8:
        scale, zp = i["quantization"]
        x = np.clip(np.round(x / scale + zp), -128, 127).astype(np.int8)
    it.set_tensor(i["index"], x.astype(i["dtype"]))
    it.invoke()
    y = it.get_tensor(o["index"])
    if o["dtype"] == np.int8:
        scale, zp = o["quantization"]
        y = (y.astype(np.float32) - zp) * scale
    return y


# ---------------------------------------------------------------- preprocessing (as the manifest says)

def imagenet_preprocess(path: Path, pp: dict) -> np.ndarray:
    """RGB, resize short side to resize_short (bilinear), centre crop, (x - mean) / std -> (crop, crop, 3) float32."""
    from PIL import Image

    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = pp["resize_short"] / min(w, h)
    im = im.resize((max(pp["resize_short"], round(w * s)), max(pp["resize_short"], round(h * s))), Image.BILINEAR)
    w, h = im.size
    c = pp["crop"]
    left, top = (w - c) // 2, (h - c) // 2
    im = im.crop((left, top, left + c, top + c))
    return (np.asarray(im, dtype=np.float32) - pp["mean"]) / pp["std"]


def digits_data():
    d = np.load(MODELS / BY_NAME["digits-cnn"]["eval"])
    return d["x"], d["y"]


# ---------------------------------------------------------------- manifest and files

def test_manifest_shape():
    assert MANIFEST["schema"] == 1
    assert set(BY_NAME) >= {"efficientnet-lite0", "digits-cnn"}
    for m in MANIFEST["models"]:
        for key in ("name", "task", "description", "source", "licence", "input", "preprocessing", "labels", "eval",
                    "variants"):
            assert key in m, (m["name"], key)
        assert m["input"]["layout"] == "NCHW"
        shipped = {(v["format"], v["precision"]) for v in m["variants"]}
        assert shipped == {("onnx", "fp32")} | {("tflite", p) for p in PRECISIONS}, m["name"]
        for v in m["variants"]:
            for key in ("precision", "format", "file", "size_bytes", "sha256", "built_with"):
                assert v.get(key) not in (None, ""), (v["file"], key)
            assert not Path(v["file"]).is_absolute()
    assert BY_NAME["efficientnet-lite0"]["preprocessing"]["kind"] == "imagenet"
    assert BY_NAME["digits-cnn"]["preprocessing"]["kind"] == "digits"
    assert BY_NAME["digits-cnn"]["eval"] == "digits-cnn/test.npz"
    assert BY_NAME["efficientnet-lite0"]["eval"] is None


@pytest.mark.parametrize("nv", VARIANTS, ids=_id)
def test_variant_file_matches_manifest(nv):
    _, v = nv
    path = MODELS / v["file"]
    assert path.is_file(), f"{path} is listed in models/manifest.json but missing"
    assert path.stat().st_size == v["size_bytes"]
    assert sha256(path) == v["sha256"]


def test_images_and_labels_match_manifest():
    assert 24 <= len(MANIFEST["images"]) <= 40
    for im in MANIFEST["images"]:
        path = MODELS / im["file"]
        assert path.is_file(), path
        assert im["source"] and im["licence"]
        if "sha256" in im:
            assert sha256(path) == im["sha256"], path
    assert len((MODELS / BY_NAME["efficientnet-lite0"]["labels"]).read_text().splitlines()) == 1000
    assert (MODELS / BY_NAME["digits-cnn"]["labels"]).read_text().split() == [str(i) for i in range(10)]
    x, y = digits_data()
    assert x.dtype == np.float32 and x.ndim == 3 and x.shape[1:] == (8, 8)
    assert x.min() >= 0 and x.max() <= 16
    assert y.dtype == np.int64 and y.shape == (len(x),) and set(y.tolist()) == set(range(10))


def test_bundle_is_small_enough():
    files = {v["file"] for _, v in VARIANTS} | {im["file"] for im in MANIFEST["images"]}
    files |= {m["labels"] for m in MANIFEST["models"]} | {m["eval"] for m in MANIFEST["models"] if m["eval"]}
    total = sum((MODELS / f).stat().st_size for f in files)
    assert total < SIZE_CAP, f"bundled files total {total / 2**20:.1f} MiB"


# ---------------------------------------------------------------- every variant loads and runs

@pytest.mark.parametrize("nv", [nv for nv in VARIANTS if nv[1]["format"] == "onnx"], ids=_id)
def test_onnx_variant_runs(nv):
    name, v = nv
    spec = BY_NAME[name]["input"]
    sess = onnx_session(MODELS / v["file"])
    (inp,) = sess.get_inputs()
    assert list(inp.shape) == spec["shape"] and inp.type == "tensor(float)"
    (out,) = sess.run(None, {inp.name: np.zeros(spec["shape"], np.float32)})
    assert out.shape == (1, BY_NAME[name].get("num_classes", out.shape[1])) and np.isfinite(out).all()


@pytest.mark.parametrize("which", INTERPRETERS)
@pytest.mark.parametrize("nv", TFLITE, ids=_id)
def test_tflite_variant_runs(nv, which):
    name, v = nv
    it = interpreter(MODELS / v["file"], which)
    i = it.get_input_details()[0]
    n, c, h, w = BY_NAME[name]["input"]["shape"]
    assert i["shape"].tolist() == [n, h, w, c], "TFLite variants take NHWC"
    want = np.int8 if v["precision"] == "int8-static" else np.float32
    assert i["dtype"] == want and it.get_output_details()[0]["dtype"] == want
    if "input" in v:
        assert v["input"]["shape"] == [n, h, w, c] and v["input"]["dtype"] == np.dtype(want).name
    y = tflite_run(it, np.zeros((n, h, w, c), np.float32))
    assert y.shape[0] == 1 and np.isfinite(y).all()


# ---------------------------------------------------------------- real predictions

def test_efficientnet_fp32_onnx_predicts_expected_classes():
    m = BY_NAME["efficientnet-lite0"]
    fp32 = next(v for v in m["variants"] if v["format"] == "onnx")
    sess = onnx_session(MODELS / fp32["file"])
    labels = (MODELS / m["labels"]).read_text().splitlines()
    assert len(EXPECTED_IMAGES) >= 3
    hits, report = 0, []
    for im in EXPECTED_IMAGES:
        x = imagenet_preprocess(MODELS / im["file"], m["preprocessing"]).transpose(2, 0, 1)[None]
        top1 = int(sess.run(None, {"input": x})[0].argmax())
        hits += top1 in im["expected"]
        report.append(f"{im['file']}: {top1} {labels[top1]!r}, expected {im['expected']}")
    assert hits >= 3, "\n".join(report)
    assert hits >= len(EXPECTED_IMAGES) - 1, "\n".join(report)


EFFNET_FEW = ["images/chelsea.jpg", "images/coffee.jpg", "images/china-pagoda.jpg"]


@pytest.mark.parametrize("which", INTERPRETERS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_efficientnet_tflite_predicts_expected_classes(precision, which):
    m = BY_NAME["efficientnet-lite0"]
    v = next(v for v in m["variants"] if v["format"] == "tflite" and v["precision"] == precision)
    it = interpreter(MODELS / v["file"], which)
    expected = {im["file"]: im["expected"] for im in EXPECTED_IMAGES}
    hits = 0
    for f in EFFNET_FEW:
        y = tflite_run(it, imagenet_preprocess(MODELS / f, m["preprocessing"])[None])
        hits += int(y.argmax()) in expected[f]
    assert hits >= 2, f"{precision} in {which}: {hits}/{len(EFFNET_FEW)} expected classes"


def _digits_accuracy_onnx() -> float:
    m = BY_NAME["digits-cnn"]
    v = next(v for v in m["variants"] if v["format"] == "onnx")
    sess = onnx_session(MODELS / v["file"])
    name = sess.get_inputs()[0].name
    x, y = digits_data()
    pred = [int(sess.run(None, {name: (xi / 16.0).astype(np.float32).reshape(1, 1, 8, 8)})[0].argmax()) for xi in x]
    return float(np.mean(np.array(pred) == y))


def test_digits_fp32_onnx_accuracy():
    assert _digits_accuracy_onnx() >= 0.97


@pytest.mark.parametrize("which", INTERPRETERS)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_digits_tflite_accuracy(precision, which):
    ref = _digits_accuracy_onnx()
    v = next(v for v in BY_NAME["digits-cnn"]["variants"] if v["format"] == "tflite" and v["precision"] == precision)
    it = interpreter(MODELS / v["file"], which)
    x, y = digits_data()
    pred = [int(tflite_run(it, (xi / 16.0).astype(np.float32).reshape(1, 8, 8, 1)).argmax()) for xi in x]
    acc = float(np.mean(np.array(pred) == y))
    if precision == "fp32":
        assert acc >= 0.97
    assert acc >= ref - 0.02, f"{precision} in {which}: {acc:.4f} vs FP32 ONNX {ref:.4f}"
