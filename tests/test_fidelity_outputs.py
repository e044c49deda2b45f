"""Fidelity for every output with the metric that fits it, on tiny models other people's tools write (skl2onnx), run
in the isolated child; figures perfect by construction are left out with the reason."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from helpers import cli_env
from model_fixtures import mlp, skl

from edgeprof.models.fidelity import compare_output, fidelity, output_kind


def test_each_kind_of_output_gets_its_metric():
    ref = np.array([[1.0], [2.0], [4.0]])
    reg = compare_output("y", ref, ref + 0.5)
    assert reg["kind"] == "regression" and "top1_agreement" not in reg
    assert reg["omitted"] == {"top1_agreement": "one column: top-1 agrees by construction"}
    assert reg["max_abs_error"] == 0.5 and 10 < reg["sqnr_db"] < 20
    labels = compare_output("label", np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]))
    assert labels["kind"] == "labels" and labels["label_agreement"] == 0.75
    scores = compare_output("p", np.eye(3)[[0, 1, 2]], np.eye(3)[[0, 2, 2]])
    assert scores["top1_agreement"] == 2 / 3 and "top5_overlap" in scores["omitted"]
    assert output_kind(np.zeros((4, 2, 8, 8), np.float32)) == "dense"


def test_a_classifier_is_judged_by_its_probabilities_not_its_label(tmp_path):
    """skl2onnx classifiers output the int64 label first and ZipMap probabilities second."""
    src = mlp(tmp_path / "clf.onnx", outputs=10)
    rows = {r["precision"]: r for r in fidelity(str(src), runtimes=["onnx"])}
    assert rows["int8-dynamic"]["primary"] == "logits" and rows["int8-dynamic"]["data"] == "random"
    assert "random inputs" in rows["int8-dynamic"]["note"] and rows["int8-dynamic"]["top5_overlap"] is not None
    logreg = {r["precision"]: r for r in fidelity(str(skl(tmp_path / "skl_logreg.onnx", "logreg")), runtimes=["onnx"])}
    ref = logreg["fp32"]
    assert ref["primary"] == "output_probability"
    kinds = {o["output"]: o["kind"] for o in ref["outputs"]}
    assert kinds == {"output_label": "labels", "output_probability": "scores"}
    assert "nothing in skl_logreg.onnx is an operator" in logreg["int8-dynamic"]["error"]


def test_a_regressor_reports_errors_not_a_perfect_top1(tmp_path):
    src = skl(tmp_path / "skl_mlp.onnx", "mlp_regressor")
    proc = subprocess.run([sys.executable, "-m", "edgeprof", "fidelity", str(src), "--json", "--shape", "X=1x6"],
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {r["precision"]: r for r in json.loads(proc.stdout)}
    dyn = rows["int8-dynamic"]
    assert dyn["top1_agreement"] is None and dyn["cosine"] is None
    assert dyn["rel_error"] > 0 and dyn["max_abs_error"] > 0 and dyn["sqnr_db"] is not None
    text = subprocess.run([sys.executable, "-m", "edgeprof", "fidelity", str(src)], env=cli_env(), capture_output=True,
                          text=True, timeout=300).stdout
    assert "left out: variable top1_agreement: one column: top-1 agrees by construction" in text
    assert "SQNR dB" in text
