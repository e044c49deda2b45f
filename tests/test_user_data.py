"""--data: a folder of images (labels from class folders) or a .npz keyed by input name calibrates int8-static and is
what fidelity compares on, with accuracy where labels come with it; bad data is one sentence."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import cli_env
from model_fixtures import image_folder, mlp, tiny_cnn

from edgeprof.errors import UsageError
from edgeprof.models import data, quantize
from edgeprof.models.inspect import inspect_file


def test_images_are_preprocessed_to_the_models_input_with_labels_from_folders(tmp_path):
    model = tiny_cnn(tmp_path / "cnn.onnx", size=8)
    got = data.load(image_folder(tmp_path / "imgs"), inspect_file(model).inputs, (127.0, 128.0))
    assert len(got.feeds) == 6 and got.feeds[0][0].shape == (1, 3, 8, 8) and got.feeds[0][0].dtype == np.float32
    assert abs(got.feeds[0][0]).max() <= 1.0 and list(got.labels) == [0, 0, 0, 1, 1, 1]
    assert got.description == "6 images in imgs/ (NCHW 8x8, (x - 127) / 128), labels from 2 class folders"


def test_arrays_keyed_by_input_name_and_bad_data_is_one_sentence(tmp_path):
    specs = inspect_file(mlp(tmp_path / "mlp.onnx")).inputs
    np.savez(tmp_path / "ok.npz", x=np.zeros((5, 8), np.float32), labels=np.arange(5))
    got = data.load(tmp_path / "ok.npz", specs)
    assert len(got.feeds) == 5 and got.feeds[0][0].shape == (1, 8) and got.labels is not None
    np.savez(tmp_path / "bad.npz", image=np.zeros((5, 8), np.float32))
    with pytest.raises(UsageError, match=r"--data bad.npz has no array for input 'x' \(it has: image\)"):
        data.load(tmp_path / "bad.npz", specs)
    with pytest.raises(UsageError, match="no such file or folder"):
        data.load(tmp_path / "missing", specs)


def test_int8_static_calibrates_on_the_data(tmp_path):
    model = tiny_cnn(tmp_path / "cnn.onnx")
    calib = quantize.data_calibration(image_folder(tmp_path / "imgs"), model)
    res = quantize.quantize_onnx(model, "int8-static", calib=calib)
    side = quantize.read_sidecar(res.path)
    assert side["calibration"]["kind"] == "data" and side["calibration"]["samples"] == 6 and res.warning is None
    assert res.quantization["op_types"].get("Conv") == 1


def test_fidelity_on_your_data_reports_accuracy_and_says_where_figures_came_from(tmp_path):
    model = tiny_cnn(tmp_path / "cnn.onnx")
    folder = image_folder(tmp_path / "imgs")
    proc = subprocess.run([sys.executable, "-m", "edgeprof", "fidelity", str(model), "--data", str(folder), "--json"],
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {r["precision"]: r for r in json.loads(proc.stdout)}
    # ONNX Runtime 1.23.2 (Python 3.10's last) cannot run int8-dynamic's ConvInteger: that row says so instead
    measured = {p: r for p, r in rows.items() if not (r["error"] and "needs 1.24 or newer" in r["error"])}
    assert {"fp32", "fp16", "int8-static"} <= set(measured)
    assert all(r["data"] == "data" and r["n"] == 6 and r["accuracy"] is not None for r in measured.values())
    assert rows["int8-static"]["note"].endswith("labels from 2 class folders; int8-static calibrated on the same data")
    text = subprocess.run([sys.executable, "-m", "edgeprof", "fidelity", str(model)], env=cli_env(),
                          capture_output=True, text=True, timeout=300).stdout
    assert "data: 16 random inputs: agreement on noise says whether the variant computes the same function" in text
    assert text.count("data: 16 random inputs") == 1  # one line per kind of data, the fullest (it came twice)


def test_a_run_calibrates_on_its_data_and_its_summary_keeps_the_quantization_report(tmp_path):
    model = tiny_cnn(tmp_path / "cnn.onnx")
    folder = image_folder(tmp_path / "imgs")
    env = cli_env(EDGEPROF_HOME=tmp_path / "home", EDGEPROF_DB=tmp_path / "runs.duckdb")
    proc = subprocess.run([sys.executable, "-m", "edgeprof", "run", "--model", str(model), "--precision", "int8-static",
                           "--data", str(folder), "--iterations", "20", "--threads", "1", "--json"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["precision"] == "int8-static" and doc["quantization"]["op_types"].get("Conv") == 1
    assert doc["quantization"]["of_ops"] == 5
    bad = subprocess.run([sys.executable, "-m", "edgeprof", "run", "--model", str(model), "--precision", "int8-static",
                          "--data", str(tmp_path / "nowhere"), "--iterations", "5"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "nowhere: no such file or folder" in bad.stderr


def test_a_study_file_names_data_only_where_it_may(tmp_path):
    from edgeprof import paths
    from edgeprof.errors import ConfigError
    from edgeprof.study.config import StudyConfig

    model = tiny_cnn(paths.data_dir() / "cnn.onnx")
    inside = image_folder(paths.data_dir() / "imgs")
    text = (f'name = "s"\nmodels = ["{model}"]\nprecisions = ["int8-static"]\n'
            f'[inputs."{model}"]\ndata = "{{}}"\n')
    cfg = StudyConfig.from_toml(text.format(inside))
    assert cfg.inputs[str(model)]["data"] == str(inside)
    outside = image_folder(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match=r"inputs\..*\.data .* is outside the data directory"):
        StudyConfig.from_toml(text.format(outside))
    assert StudyConfig.from_toml(text.format(outside), allowed_paths=[str(outside)]).inputs
