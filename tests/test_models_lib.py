"""edgeprof.models as a library: precision detection, quantization cache, fidelity metrics, preprocessing, uploads.

Most tests use a tiny conv model built here with onnx.helper (fast, no bundled files needed); the TFLite detection and
bundled-catalog tests use models/ and skip, saying why, while models/manifest.json is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeprof import paths
from edgeprof.errors import ModelError, UsageError
from edgeprof.models import catalog, quantize
from edgeprof.models.fidelity import compare_outputs, to_probs
from edgeprof.models.inspect import inspect_file
from edgeprof.models.preprocess import digits_input, from_output, layout_for, load_image, to_feed
from edgeprof.runtimes import TensorSpec
from edgeprof.runtimes.onnx import int8_conv_supported

# ONNX Runtime 1.23.2 (the last for Python 3.10) has no int8-weight ConvInteger: int8-dynamic of a conv model is refused
# there with one sentence (tests/test_portability.py), so these tests take int8-dynamic where it exists, else fp16.
INT8_CONV = int8_conv_supported()
NON_FP32 = "int8-dynamic" if INT8_CONV else "fp16"
HAVE_MANIFEST = paths.MANIFEST.is_file()
needs_models = pytest.mark.skipif(not HAVE_MANIFEST, reason=f"bundled models not built yet ({paths.MANIFEST} missing)")


def tiny_model_bytes(seed: int = 0) -> bytes:
    """Conv(3->8, 3x3) -> Relu -> GlobalAveragePool -> Flatten -> Gemm(8->10): every op the quantizers touch."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = {
        "W": (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32),
        "B": np.zeros(8, np.float32),
        "G": rng.standard_normal((8, 10)).astype(np.float32),
        "gb": np.zeros(10, np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "G", "gb"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(a, n) for n, a in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture
def tiny(tmp_path) -> Path:
    p = tmp_path / "tiny-fp32.onnx"
    p.write_bytes(tiny_model_bytes())
    return p


def cache_files() -> list[str]:
    return sorted(p.name for p in paths.cache_dir().iterdir())


# ------------------------------------------------------------------------------------------- precision detection


def test_detects_onnx_precisions_of_own_quantizations(tiny):
    assert inspect_file(tiny).precision == "fp32"
    detected = {}
    for precision in quantize.QUANTIZED_PRECISIONS:
        if precision == "int8-dynamic" and not INT8_CONV:
            with pytest.raises(ModelError, match="needs 1.24 or newer"):
                quantize.quantize_onnx(tiny, precision)
            continue
        res = quantize.quantize_onnx(tiny, precision)
        spec = inspect_file(res.path)
        detected[precision] = spec.precision
        assert spec.inputs[0].dtype == "float32", "float io is kept for every variant"
    buildable = [p for p in quantize.QUANTIZED_PRECISIONS if INT8_CONV or p != "int8-dynamic"]
    assert detected == {p: p for p in buildable}


def test_onnx_spec_details(tiny):
    spec = inspect_file(tiny)
    assert spec.format == "onnx" and spec.opset == 13
    assert spec.weight_dtypes == {"float32": 8 * 3 * 3 * 3 + 8 + 80 + 10}
    assert spec.ops["Conv"] == 1 and spec.size_bytes == tiny.stat().st_size and len(spec.sha256) == 64
    assert [t.shape for t in spec.inputs] == [(1, 3, 16, 16)]
    static = inspect_file(quantize.quantize_onnx(tiny, "int8-static").path)
    assert static.activation_dtype == "uint8" and static.weight_dtypes.get("int8", 0) > 200
    assert not any("remain float" in n for n in static.notes), "scales and zero points are not counted as weights"


def test_int16_activations_detected_as_int16x8(tiny, tmp_path):
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(quantize.quantize_onnx(tiny, "int8-static").path))
    for init in model.graph.initializer:  # turn every activation zero point into int16, as a 16x8 QDQ export has
        if init.data_type == TensorProto.UINT8:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.int16), init.name))
    out = tmp_path / "a16.onnx"
    onnx.save(model, str(out))
    assert inspect_file(out).precision == "int16x8"


@needs_models
def test_detects_bundled_tflite_precisions():
    for model in catalog.list_models():
        for v in model.variants:
            if v.format == "tflite":
                spec = inspect_file(v.path)
                assert spec.precision == v.precision, f"{v.path.name}: detected {spec.precision}"
                if v.precision == "int8-static":
                    assert spec.activation_dtype == "int8" and spec.inputs[0].quantization is not None


@pytest.mark.parametrize(
    "content, needle",
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"hello, this is not a model\n" * 4, "is text"),
    ],
)
def test_inspect_errors_are_one_sentence(tmp_path, content, needle):
    p = tmp_path / "bad.onnx"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(ModelError) as err:
        inspect_file(p)
    assert needle in str(err.value)


def test_inspect_truncated_and_external_and_custom(tmp_path):
    import onnx
    from onnx import helper

    data = tiny_model_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated|damaged"):
        inspect_file(cut)

    model = onnx.load_from_string(data)
    ext = tmp_path / "ext.onnx"
    onnx.save(model, str(ext), save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    assert inspect_file(ext).precision == "fp32"
    os.unlink(tmp_path / "ext.onnx.data")
    with pytest.raises(ModelError, match="external data file that is missing"):
        inspect_file(ext)

    model = onnx.load_from_string(data)  # onnx.save moved the weights out of the first copy
    model.graph.node.append(helper.make_node("Frobnicate", ["y"], ["z"], domain="com.example"))
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    custom = tmp_path / "custom.onnx"
    custom.write_bytes(model.SerializeToString())
    with pytest.raises(ModelError, match="custom domain"):
        inspect_file(custom)


def test_tflite_without_identifier_is_rejected(tmp_path):
    p = tmp_path / "x.tflite"
    p.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="TFL3"):
        inspect_file(p)


# ------------------------------------------------------------------------------------------------ quantization


def test_quantization_is_cached_and_timed(tiny):
    first = quantize.quantize_onnx(tiny, "int8-static")
    assert not first.cached and first.seconds > 0 and first.warning == quantize.SYNTHETIC_WARNING
    side = json.loads(Path(str(first.path) + ".json").read_text())
    assert side["seconds"] > 0 and side["tools"]["onnxruntime"] and side["settings"]["per_channel"] is True
    assert side["calibration"]["kind"] == "synthetic"
    again = quantize.quantize_onnx(tiny, "int8-static")
    assert again.cached and again.path == first.path and again.seconds == pytest.approx(side["seconds"])
    with open(first.path, "ab") as f:  # a cached file that no longer matches its sidecar is rebuilt
        f.write(b"junk")
    rebuilt = quantize.quantize_onnx(tiny, "int8-static")
    assert not rebuilt.cached and inspect_file(rebuilt.path).precision == "int8-static"
    other = quantize.quantize_onnx(tiny, "int8-static", calib=[[np.zeros((1, 3, 16, 16), np.float32)]])
    assert other.path != first.path and other.warning is None, "other calibration data: another cache entry"


def test_failed_quantization_leaves_nothing(tiny, monkeypatch):
    def boom(src, out):
        Path(out).write_bytes(b"half a model")
        raise RuntimeError("killed halfway")

    monkeypatch.setattr(quantize, "_dynamic" if NON_FP32 == "int8-dynamic" else "_to_fp16", boom)
    monkeypatch.setenv("EDGEPROF_PREPARING", "1")  # build in this process, so the patched step runs
    with pytest.raises(RuntimeError):
        quantize.quantize_onnx(tiny, NON_FP32)
    assert cache_files() == []
    assert not quantize.cached_path(tiny, NON_FP32).exists()


def test_stale_temp_of_dead_process_is_swept(tiny):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    stale = paths.cache_dir() / f".tmp-{proc.pid}-abc"
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"partial")
    quantize.quantize_onnx(tiny, "fp16")
    assert not stale.exists()
    assert all(not n.startswith(".tmp-") for n in cache_files())


def test_quantize_refuses_non_fp32_and_tflite(tiny, tmp_path):
    q = quantize.quantize_onnx(tiny, NON_FP32).path
    with pytest.raises(UsageError, match=f"already {NON_FP32}"):
        quantize.quantize_onnx(q, "int8-static")
    with pytest.raises(UsageError, match="cannot build precision"):
        quantize.quantize_onnx(tiny, "int4")


# --------------------------------------------------------------------------------------------------- fidelity


def test_fidelity_metrics_on_known_arrays():
    ref = np.array([[5.0, 1.0, 0.0, -1.0, -2.0, -3.0], [0.0, 4.0, 1.0, 0.0, 0.0, -5.0]])
    same = compare_outputs(ref, ref, labels=np.array([0, 2]))
    assert same["top1_agreement"] == 1.0 and same["top5_overlap"] == 1.0
    assert same["mean_kl"] == pytest.approx(0.0, abs=1e-12) and same["cosine"] == pytest.approx(1.0)
    assert same["accuracy"] == 0.5

    swapped = ref[:, ::-1].copy()  # arg-max and top-5 move
    m = compare_outputs(ref, swapped)
    assert m["top1_agreement"] == 0.0 and m["top5_overlap"] == pytest.approx(4 / 5)
    assert m["mean_kl"] > 1.0 and m["cosine"] < 0
    assert m["accuracy"] is None


def test_probabilities_are_not_softmaxed_twice():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    assert np.allclose(to_probs(p), p)
    logits = np.log(p)
    assert np.allclose(to_probs(logits), p)
    q = np.array([[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    expected = np.mean([np.sum(p[0] * np.log(p[0] / q[0])), 0.0])
    assert compare_outputs(p, q)["mean_kl"] == pytest.approx(expected)
    assert compare_outputs(logits, np.log(q))["mean_kl"] == pytest.approx(expected)


# ------------------------------------------------------------------------------------------------ preprocessing


def test_image_preprocessing_layouts(tmp_path):
    from PIL import Image

    img = tmp_path / "wide.png"
    Image.new("RGB", (400, 300), (255, 127, 0)).save(img)
    prep = {"kind": "imagenet", "resize_short": 256, "crop": 224, "mean": 127.0, "std": 128.0}
    nchw = load_image(img, prep, "NCHW")
    nhwc = load_image(img, prep, "NHWC")
    assert nchw.shape == (1, 3, 224, 224) and nhwc.shape == (1, 224, 224, 3) and nchw.dtype == np.float32
    assert np.allclose(nchw[0, :, 5, 5], [(255 - 127) / 128, 0.0, -127 / 128])
    assert np.allclose(nchw.transpose(0, 2, 3, 1), nhwc)
    assert layout_for((1, 3, 224, 224), 3) == "NCHW" and layout_for((1, 224, 224, 3), 3) == "NHWC"
    assert layout_for((1, 1, 8, 8), 1) == "NCHW" and layout_for((1, 8, 8, 1), 1) == "NHWC"
    d = digits_input(np.full((8, 8), 16.0), "NHWC")
    assert d.shape == (1, 8, 8, 1) and np.all(d == 1.0)


def test_quantized_io_round_trip():
    spec = TensorSpec("x", (1, 4), "int8", (0.5, -1))
    x = np.array([[0.0, 1.0, -64.0, 1000.0]], np.float32)
    q = to_feed(x, spec)
    assert q.dtype == np.int8 and q.tolist() == [[-1, 1, -128, 127]]
    assert from_output(q, spec).tolist() == [[0.0, 1.0, -63.5, 64.0]]
    assert to_feed(x, TensorSpec("x", (1, 4), "float16")).dtype == np.float16


# ------------------------------------------------------------------------------------------------------ catalog


def test_resolve_user_file(tiny):
    v = catalog.resolve_variant(str(tiny), None, None)
    assert (v.precision, v.format, v.shipped, v.layout) == ("fp32", "onnx", False, "NCHW")
    q = catalog.resolve_variant(str(tiny), NON_FP32, "onnx")
    assert q.path.parent == paths.cache_dir() and q.precision == NON_FP32 and q.size_bytes > 0
    assert inspect_file(q.path).precision == NON_FP32
    other = "int8-static" if NON_FP32 == "fp16" else "fp16"
    with pytest.raises(UsageError, match=f"is an {NON_FP32} onnx file"):
        catalog.resolve_variant(str(q.path), other, None)
    assert catalog.resolve_variant(str(q.path), "fp32", None).precision == NON_FP32  # the file, truly labelled
    with pytest.raises(UsageError, match="cannot run with runtime"):
        catalog.resolve_variant(str(tiny), None, "tflite")


def test_unknown_name_lists_bundled_models():
    with pytest.raises(UsageError) as err:
        catalog.get_model("no-such-model")
    assert ".onnx" in str(err.value) and "no-such-model" in str(err.value)
    with pytest.raises(UsageError):
        catalog.resolve_variant("no-such-model", "fp32", None)


def test_catalog_from_a_manifest(tmp_path, monkeypatch, tiny):
    root = tmp_path / "models"
    (root / "m").mkdir(parents=True)
    (root / "m" / "m-fp32.onnx").write_bytes(tiny.read_bytes())
    (root / "m" / "labels.txt").write_text("\n".join(str(i) for i in range(10)))
    manifest = {
        "schema": 1,
        "models": [
            {
                "name": "m",
                "task": "image-classification",
                "licence": "MIT",
                "input": {"layout": "NCHW", "shape": [1, 3, 16, 16], "dtype": "float32"},
                "preprocessing": {"kind": "imagenet", "resize_short": 16, "crop": 16, "mean": 127.0, "std": 128.0},
                "labels": "m/labels.txt",
                "eval": None,
                "variants": [{"precision": "fp32", "format": "onnx", "file": "m/m-fp32.onnx"}]
                + [{"precision": p, "format": "tflite", "file": f"m/m-{p}.tflite"} for p in ("fp32", "fp16")],
            }
        ],
        "images": [],
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(paths, "MANIFEST", root / "manifest.json")
    [info] = catalog.list_models()
    assert info.labels[:2] == ["0", "1"]
    onnx_vs = [v for v in info.variants if v.format == "onnx"]
    assert [v.precision for v in onnx_vs] == ["fp32", "fp16", "int8-dynamic", "int8-static"]
    assert [v.size_bytes is None for v in onnx_vs] == [False, True, True, True]
    assert [v.layout for v in info.variants if v.format == "tflite"] == ["NHWC", "NHWC"]
    built = catalog.resolve_variant("m", "fp16", None)
    assert built.path == onnx_vs[1].path and built.size_bytes > 0
    assert catalog.get_model("m").variant("fp16", "onnx").size_bytes == built.size_bytes
    with pytest.raises(ModelError, match="missing"):
        catalog.resolve_variant("m", "fp32", "tflite")


@needs_models
def test_bundled_catalog_lists_four_plus_four():
    for model in catalog.list_models():
        fmts = [(v.format, v.precision) for v in model.variants]
        for fmt in ("onnx", "tflite"):
            assert sorted(p for f, p in fmts if f == fmt) == sorted(["fp32", "fp16", "int8-dynamic", "int8-static"])


# ------------------------------------------------------------------------------------------------------ uploads


def test_upload_accepts_a_model_and_names_it_by_hash():
    data = tiny_model_bytes()
    p = catalog.add_upload(data, "My Model (v2).onnx")
    assert p.parent == paths.uploads_dir() and p.suffix == ".onnx" and p.read_bytes() == data
    assert len(p.stem) == 16 and all(c in "0123456789abcdef" for c in p.stem)
    assert catalog.add_upload(data, "again.ONNX") == p


@pytest.mark.parametrize("name", ["../../evil.onnx", "C:\\Users\\x\\m.onnx", ".hidden.onnx", "a\x00b.onnx",
                                  "modèle (1) ☃.onnx", "/etc/passwd.onnx"])
def test_upload_odd_names_are_harmless(name):
    """Folders and odd characters in a name never reach the file system: the stored name is the content hash."""
    p = catalog.add_upload(tiny_model_bytes(), name)
    assert p.parent == paths.uploads_dir() and p.suffix == ".onnx" and len(p.stem) == 16
    assert sorted(q.name for q in paths.uploads_dir().iterdir()) == sorted([p.name, catalog.UPLOAD_NAMES])
    shown = catalog.upload_names()[str(p)]  # the name it is shown by: its last part, printable, never a path
    assert "/" not in shown and "\\" not in shown and shown.endswith(".onnx") and shown.isprintable()


@pytest.mark.parametrize(
    "name, data, exc, needle",
    [
        ("model.pkl", b"x" * 10, UsageError, ".onnx and .tflite"),
        ("big.onnx", b"\x08" * 2048, UsageError, "upload limit"),
        ("empty.onnx", b"", ModelError, "empty"),
        ("garbage.onnx", bytes(range(256)) * 3, ModelError, "upload rejected"),
        ("text.onnx", b"def f():\n    return 1\n" * 10, ModelError, "text"),
        ("fake.tflite", b"\x00" * 100, ModelError, "TFL3"),
    ],
)
def test_upload_refusals(name, data, exc, needle):
    data = tiny_model_bytes() if data is None else data
    with pytest.raises(exc, match=needle):
        catalog.add_upload(data, name, max_bytes=1024)
    assert [p.name for p in paths.uploads_dir().iterdir()] == []
