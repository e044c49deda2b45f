"""Write models/manifest.json from the shipped files and the build notes in models/build/work/*.json.

A model or image set whose build notes are missing (not rebuilt this time) keeps its entry from the existing
manifest; sizes and hashes are always recomputed from the files on disk.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import MODELS_DIR, WORK_DIR, sha256, write_json  # noqa: E402

MANIFEST = MODELS_DIR / "manifest.json"
PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-static")


def _old() -> dict:
    if MANIFEST.exists():
        return json.loads(MANIFEST.read_text())
    return {"schema": 1, "models": [], "images": []}


def _variants(name: str, info: dict, nchw: list[int], nhwc: list[int]) -> list[dict]:
    out = [{
        "precision": "fp32", "format": "onnx", "file": f"{name}/{name}-fp32.onnx",
        "input": {"layout": "NCHW", "shape": nchw, "dtype": "float32"},
        "output_dtype": "float32",
        "built_with": info["onnx_built_with"],
    }]
    for p in PRECISIONS:
        io = "int8" if p == "int8-static" else "float32"
        out.append({
            "precision": p, "format": "tflite", "file": f"{name}/{name}-{p}.tflite",
            "input": {"layout": "NHWC", "shape": nhwc, "dtype": io},
            "output_dtype": io,
            "built_with": info["tflite_built_with"][p],
        })
    for v in out:
        path = MODELS_DIR / v["file"]
        v["size_bytes"] = path.stat().st_size
        v["sha256"] = sha256(path)
    return out


def digits_entry(info: dict) -> dict:
    return {
        "name": "digits-cnn",
        "task": "image-classification",
        "description": f"Small CNN ({info['params']} parameters: 3 conv + 2 dense) trained by models/build/build_digits.py "
                       f"on scikit-learn's bundled 8x8 handwritten digits (seed {info['seed']}); "
                       f"FP32 test accuracy {info['torch_test_accuracy']:.4f} on the shipped 30% stratified split.",
        "source": "trained here (models/build/build_digits.py) on sklearn.datasets.load_digits "
                  "(UCI Optical Recognition of Handwritten Digits, a copy of which ships with scikit-learn)",
        "licence": "BSD-3-Clause (model trained here; the digits data ships with scikit-learn, BSD-3-Clause; "
                   "the UCI dataset is CC BY 4.0)",
        "input": {"layout": "NCHW", "shape": [1, 1, 8, 8], "dtype": "float32"},
        "preprocessing": {"kind": "digits", "scale": 16.0},
        "labels": "digits-cnn/labels.txt",
        "eval": "digits-cnn/test.npz",
        "num_classes": 10,
        "variants": _variants("digits-cnn", info, [1, 1, 8, 8], [1, 8, 8, 1]),
    }


def effnet_entry(info: dict) -> dict:
    return {
        "name": "efficientnet-lite0",
        "task": "image-classification",
        "description": "EfficientNet-Lite0 (ReLU6, no squeeze-excite), 1000 ImageNet classes, 4.65M parameters, "
                       "real ImageNet weights. Logits out (no softmax).",
        "source": info["source"],
        "licence": "Apache-2.0",
        "input": {"layout": "NCHW", "shape": [1, 3, 224, 224], "dtype": "float32"},
        "preprocessing": {"kind": "imagenet", "color": "RGB", "resize_short": 256, "crop": 224,
                          "mean": 127.0, "std": 128.0},
        "labels": "efficientnet-lite0/labels.txt",
        "labels_source": info["labels_source"],
        "eval": None,
        "num_classes": 1000,
        "variants": _variants("efficientnet-lite0", info, [1, 3, 224, 224], [1, 224, 224, 3]),
    }


def main() -> None:
    old = _old()
    old_models = {m["name"]: m for m in old.get("models", [])}
    models = []
    for name, fn, note in (("efficientnet-lite0", effnet_entry, "efficientnet_info.json"),
                           ("digits-cnn", digits_entry, "digits_info.json")):
        p = WORK_DIR / note
        if p.exists():
            models.append(fn(json.loads(p.read_text())))
        elif name in old_models:
            m = old_models[name]
            for v in m["variants"]:
                v["size_bytes"] = (MODELS_DIR / v["file"]).stat().st_size
                v["sha256"] = sha256(MODELS_DIR / v["file"])
            models.append(m)
    images = old.get("images", [])
    ip = WORK_DIR / "images_info.json"
    if ip.exists():
        images = json.loads(ip.read_text())
    ep = WORK_DIR / "expected.json"
    if ep.exists():
        expected = json.loads(ep.read_text())
        for im in images:
            im.pop("expected", None)
            im.pop("expected_labels", None)
            im.pop("expected_model", None)
            if im["file"] in expected:
                im.update(expected[im["file"]])
    for im in images:
        path = MODELS_DIR / im["file"]
        im["size_bytes"] = path.stat().st_size
        im["sha256"] = sha256(path)
    write_json(MANIFEST, {"schema": 1, "models": models, "images": images})
    total = sum(v["size_bytes"] for m in models for v in m["variants"]) + sum(i["size_bytes"] for i in images)
    print(f"wrote {MANIFEST} ({len(models)} models, {len(images)} images, {total / 1e6:.1f} MB of listed files)")


if __name__ == "__main__":
    main()
