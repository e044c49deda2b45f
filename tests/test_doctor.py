"""The quantization doctor: its arithmetic on made-up numbers, then ``python -m edgeprof doctor`` end to end on a
tiny model whose worst operator is known by construction (``outlier_mlp``: fc2 must lose what int8 rounds away),
in the real capped child with the real ONNX Runtime quantizer."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import ROOT, cli_env
from onnx import TensorProto, helper, numpy_helper

from edgeprof.doctor import analysis


def outlier_mlp(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """x[1,16] -> fc1 -> Relu -> fc2 -> Relu -> fc3 -> y[1,10], and 64 inputs as a .npy.

    Every row of fc2's weights holds one weight of 50 on input 0, which fc1 always feeds 0 (its row 0 is zero, its
    bias -1, then Relu). The output of fc2 comes only from its other weights (~0.3), which int8 rounds to zero at the
    scale the 50 forces (50 / 127 = 0.39): fc2 must lose its output, and only fc2. Returns (model, data)."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.4, (16, 16)).astype(np.float32)
    w1[0] = 0
    b1 = np.full(16, 0.1, np.float32)
    b1[0] = -1
    w2 = rng.normal(0, 0.3, (16, 16)).astype(np.float32)
    w2[:, 0] = 50.0
    b2 = np.full(16, 0.1, np.float32)
    w3 = rng.normal(0, 0.4, (10, 16)).astype(np.float32)
    b3 = np.zeros(10, np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (w3, "w3"), (b3, "b3"))]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], name="fc1", transB=1),
             helper.make_node("Relu", ["h1"], ["r1"], name="relu1"),
             helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], name="fc2", transB=1),
             helper.make_node("Relu", ["h2"], ["r2"], name="relu2"),
             helper.make_node("Gemm", ["r2", "w3", "b3"], ["y"], name="fc3", transB=1)]
    graph = helper.make_graph(nodes, "outlier", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path, data = folder / "outlier-fp32.onnx", folder / "outlier-inputs.npy"
    onnx.save(model, str(path))
    np.save(data, rng.normal(0, 1, (64, 16)).astype(np.float32))  # models.data: samples along the first axis
    return path, data


def edgeprof(home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], cwd=ROOT, env=cli_env(EDGEPROF_HOME=home),
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------------------------------------------------- pure


def test_sqnr_is_the_one_of_onnx_runtimes_qdq_loss_debug():
    from onnxruntime.quantization.qdq_loss_debug import compute_signal_to_quantization_noice_ratio

    rng = np.random.default_rng(1)
    xs = [rng.normal(size=(3, 5)).astype(np.float32) for _ in range(4)]
    ys = [x + rng.normal(scale=0.05, size=x.shape).astype(np.float32) for x in xs]
    sums = analysis.ErrorSums()
    for x, y in zip(xs, ys, strict=True):
        sums.add(x, y)
    assert sums.sqnr_db == pytest.approx(compute_signal_to_quantization_noice_ratio(xs, ys), abs=1e-4)
    assert sums.relative_error == pytest.approx(10 ** (-sums.sqnr_db / 20), rel=1e-9)


def test_an_exact_match_reads_as_the_ceiling_not_infinity_and_zero_weights_are_exact():
    assert analysis.sqnr_db(4.0, 0.0) == analysis.MAX_DB
    assert analysis.sqnr_db(0.0, 0.0) == analysis.MAX_DB


def test_the_noise_an_operator_adds_is_its_output_noise_less_its_input_noise():
    # input at 30 dB (noise 1e-3), output at 20 dB (1e-2): it added 9e-3, i.e. 20.46 dB
    assert analysis.added_db(30.0, 20.0) == pytest.approx(-10 * math.log10(9e-3))
    assert analysis.added_db(None, 20.0) == pytest.approx(20.0)
    assert analysis.added_db(20.0, 30.0) == analysis.MAX_DB  # a max-pool that shrinks the relative noise adds none


def test_a_relu_the_quantizer_folded_into_the_range_is_not_counted_as_error():
    pre = np.array([-3.0, -1.0, 0.5, 2.0])  # a Conv's output before the Relu the quantizer removed
    post = np.array([0.0, 0.0, 0.5, 2.0])  # after uint8 QDQ: the Relu is the range's lower end
    assert analysis.below_range_clipped(pre, post).tolist() == [0.0, 0.0, 0.5, 2.0]
    top = np.array([0.0, 1.0, 9.0])  # clipped at the top: a range too narrow is a real loss
    assert analysis.below_range_clipped(top, np.array([0.0, 1.0, 4.0])).tolist() == [0.0, 1.0, 9.0]


def test_operators_rank_by_the_noise_they_add_and_time_joins_by_node_or_output_name():
    ops = [{"node": "a", "op_type": "Conv", "inputs": ["x"], "outputs": ["ta"], "weights": ["wa"]},
           {"node": "b", "op_type": "Conv", "inputs": ["ta"], "outputs": ["tb"], "weights": ["wb"]},
           {"node": "c", "op_type": "Gemm", "inputs": ["tb"], "outputs": ["y"], "weights": ["wc"]}]
    tensors = {"x": {"sqnr_db": 45.0, "relative_error": 0.005, "activation_sqnr_db": 45.0},
               "ta": {"sqnr_db": 40.0, "relative_error": 0.01, "activation_sqnr_db": 44.0},
               "tb": {"sqnr_db": 12.0, "relative_error": 0.25, "activation_sqnr_db": 40.0}}
    rows = analysis.operator_rows(ops, tensors, {"wa": 40.0, "wb": 38.0, "wc": 35.0},
                                  {"a": 1.0, "tb": 2.0}, {"a": 0.5, "b": 0.7, "c": 0.1}, {"a": "QLinearConv"})
    ranked = analysis.rank_by_error(rows)
    assert [r["node"] for r in ranked] == ["b", "c", "a"]  # b adds the most; c (no quantized output) by its weights
    assert ranked[0]["ms_fp32"] == 2.0  # found by its output tensor's name (ORT's NCHWc nodes are named so)
    assert [r["node"] for r in analysis.rank_by_time(rows)] == ["b", "a", "c"]
    assert analysis.worst_operators(rows, 2) == ["b", "c"]
    assert analysis.error_sentence("int8-static", rows) == "int8-static loses most accuracy in b (SQNR 12 dB)."


def test_the_time_sentence_names_the_kernels_that_hold_most_of_the_time():
    by_type = [{"op_type": "QLinearConv", "ms_per_inference": 8.0}, {"op_type": "QuantizeLinear",
                                                                      "ms_per_inference": 1.0},
               {"op_type": "Transpose", "ms_per_inference": 1.0}]
    text = analysis.time_sentence("int8-static", by_type, [{"op_type": "Conv", "ms_per_inference": 12.0}])
    assert text == ("80% of its operator time is in QLinearConv (the profiler's sum: 10 ms per inference against 12 ms "
                    "in fp32).")


def test_the_mix_is_the_smallest_that_meets_the_target_or_none():
    points = [{"keep_fp32": [], "top1_agreement": 0.9, "accuracy": 0.90},
              {"keep_fp32": ["a"], "top1_agreement": 0.97, "accuracy": 0.95},
              {"keep_fp32": ["a", "b"], "top1_agreement": 0.996, "accuracy": 0.97},
              {"keep_fp32": ["a", "b", "c", "d"], "top1_agreement": 1.0, "accuracy": 0.98}]
    assert analysis.choose_mix(points, target_agreement=0.995)["keep_fp32"] == ["a", "b"]
    assert analysis.choose_mix(points, max_accuracy_drop=0.01, reference_accuracy=0.98)["keep_fp32"] == ["a", "b"]
    assert analysis.choose_mix(points, target_agreement=1.01) is None
    assert analysis.choose_mix(points, max_accuracy_drop=0.01, reference_accuracy=None) is None  # no labels
    assert analysis.mix_sizes(3) == [1, 2] and analysis.mix_sizes(40) == [1, 2, 4, 8]


def test_the_pareto_front_keeps_what_nothing_beats_on_both_axes():
    pts = [{"label": "fp32", "p50_ms": 5.0, "fidelity": 1.0}, {"label": "int8", "p50_ms": 2.0, "fidelity": 0.9},
           {"label": "dyn", "p50_ms": 12.0, "fidelity": 0.6}, {"label": "mix", "p50_ms": 2.5, "fidelity": 0.99},
           {"label": "fp16", "p50_ms": 5.0, "fidelity": 0.99}, {"label": "broken", "p50_ms": None, "fidelity": None}]
    assert [p["label"] for p in analysis.pareto_front(pts)] == ["int8", "mix", "fp32"]


# ------------------------------------------------------------------------------------------------------ end to end


def test_doctor_names_the_operator_int8_must_lose_and_the_mix_that_fixes_it(tmp_path):
    model, data = outlier_mlp(tmp_path)
    proc = edgeprof(tmp_path / "home", "doctor", str(model), "--data", str(data), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    worst = doc["operators"][0]
    assert worst["node"] == "fc2" and worst["runs_as"] == "QGemm"
    assert worst["local_sqnr_db"] < 20 < min(r["local_sqnr_db"] for r in doc["operators"][1:])
    assert doc["sentences"][0].startswith("int8-static loses most accuracy in fc2 (SQNR ")
    labels = [p["label"] for p in doc["points"]]
    assert labels == ["fp32", "int8-static", "int8-static (1 kept in fp32)", "int8-static (2 kept in fp32)"]
    plain = doc["points"][1]
    assert plain["top1_agreement"] < 0.99  # int8 as it is loses the classes
    assert doc["points"][2]["keep_fp32"] == ["fc2"]
    chosen = doc["chosen"]
    assert chosen is not None and chosen["top1_agreement"] >= 0.99 and "fc2" in chosen["keep_fp32"]
    assert f"--keep-fp32 {','.join(chosen['keep_fp32'])}" in doc["sentences"][2]
    for p in doc["points"]:
        assert p["error"] is None and p["p50_ms"] > 0 and p["p50_ci"] and p["ci_scope"] == "within-run"
    ref = doc["points"][0]  # fp32 against itself proves nothing: no agreement or output SQNR shown, fidelity 1
    assert ref["reference"] and ref["top1_agreement"] is None and ref["output_sqnr_db"] is None
    assert ref["fidelity"] == 1.0
    assert plain["output_sqnr_db"] < doc["points"][3]["output_sqnr_db"]


def test_doctor_prints_tables_and_sentences_a_person_reads(tmp_path):
    model, data = outlier_mlp(tmp_path)
    proc = edgeprof(tmp_path / "home", "doctor", str(model), "--data", str(data), "--target-agreement", "1.01")
    assert proc.returncode == 2 and "--target-agreement 1.01 is outside (0, 1]" in proc.stderr
    proc = edgeprof(tmp_path / "home", "doctor", str(model), "--data", str(data))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "int8-static loses most accuracy in fc2 (SQNR" in out
    assert "Operators by the noise they add (worst first; 3 quantized):" in out
    assert "added SQNR dB" in out and "Operators by int8 time (slowest first):" in out
    assert "95% CI (within-run)" in out and "peak MB" in out and "output SQNR dB" in out
    # the p50 and its interval carry their unit (µs or ms, as `run` prints them): "fp32  6.48 µs  6.39 to 6.55 µs  reference"
    fp32 = [line for line in out.splitlines() if line.startswith("fp32 ")]
    assert len(fp32) == 1 and re.match(r"fp32\s+[\d.]+ (µs|ms)\s+[\d.]+ to [\d.]+ (µs|ms)\s+reference ", fp32[0]), fp32
    assert "Traceback" not in proc.stderr


def test_a_tflite_file_gets_one_sentence_saying_per_tensor_comparison_is_impossible(tmp_path):
    tfl = ROOT / "models" / "digits-cnn" / "digits-cnn-int8-static.tflite"
    proc = edgeprof(tmp_path / "home", "doctor", str(tfl))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "no per-tensor comparison is possible" in lines[0]
    assert "edgeprof tradeoff MODEL" in lines[0] and "Traceback" not in proc.stderr


def test_a_child_that_runs_out_of_its_memory_cap_is_a_sentence_not_a_crash(tmp_path, monkeypatch):
    from helpers import cgroup_writable

    from edgeprof.doctor import diagnose
    from edgeprof.errors import ModelError

    if not cgroup_writable():
        pytest.skip("needs a writable memory cgroup to cap the child")
    model, data = outlier_mlp(tmp_path)
    with pytest.raises(ModelError) as err:
        diagnose(str(model), data=str(data), memory_mb=24)
    assert err.value.message.endswith("needed more than the 24 MB memory cap for preparation while comparing "
                                      "outlier-fp32.onnx with its int8-static variant tensor by tensor, and was "
                                      "stopped there.")


# ------------------------------------------------------------------------------------------------------------- page


def _models_page(role: str | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "views" / "5_Models.py"), default_timeout=600)
    if role:
        at.session_state["edgeprof_role"] = role
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_models_page_doctor_names_the_operator_and_draws_the_tradeoff(tmp_path, monkeypatch):
    from edgeprof.models import catalog

    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    model, _ = outlier_mlp(tmp_path)
    stored = catalog.add_upload(model.read_bytes(), "outlier.onnx")
    at = _models_page()
    at.selectbox(key="doctor_model").select(str(stored))
    at.button(key="doctor_run").click().run()
    assert not at.exception, at.exception
    said = [str(m.value) for m in at.markdown]
    assert any(s.startswith("int8-static loses most accuracy in fc2 (SQNR ") for s in said), said
    assert "**Operators by the noise they add** (worst first)" in said
    table = next(d.value for d in at.dataframe if "added SQNR (dB)" in d.value.columns)
    assert table["operator"].iloc[0] == "fc2" and table["runs as (int8)"].iloc[0] == "QGemm"
    at.button(key="tradeoff_run").click().run()
    assert not at.exception, at.exception
    chart = at.get("plotly_chart")[0].proto.spec
    doc = json.loads(chart)
    assert doc["layout"]["xaxis"]["title"]["text"] == "p50 latency (ms)"
    assert any(t.get("name") == "Pareto front" for t in doc["data"]) or len(doc["data"]) >= 2
    assert any(str(m.value).startswith("Pareto front (latency against top-1 agreement with fp32): ")
               for m in at.markdown)


def test_the_doctor_is_for_staff_at_a_booth(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    monkeypatch.setenv("EDGEPROF_PASSWORD", "visitors")
    monkeypatch.setenv("EDGEPROF_ADMIN_PASSWORD", "staff")
    visitor = _models_page("visitor")
    assert any(str(i.value).startswith("The quantization doctor is for staff at this booth (it keeps the device busy "
                                       "for minutes); ask staff") for i in visitor.info)
    assert not [b for b in visitor.button if b.key == "doctor_run"]
    assert [b for b in _models_page("admin").button if b.key == "doctor_run"]


def test_an_operator_that_adds_little_noise_is_not_called_a_loss():
    rows = [{"node": "conv", "local_sqnr_db": 43.4}, {"node": "gemm", "local_sqnr_db": 44.0}]
    assert analysis.error_sentence("int8-static", rows) == (
        "int8-static loses little accuracy anywhere: every operator adds its noise at 35 dB SQNR or better; the most "
        "is in conv (43 dB).")


def test_keep_fp32_is_for_int8_static_and_reads_as_sorted_names():
    from edgeprof.config import RunConfig
    from edgeprof.errors import ConfigError

    assert RunConfig("m.onnx", precision="int8-static", keep_fp32="fc2, fc1").keep_fp32 == ("fc1", "fc2")
    with pytest.raises(ConfigError, match="--keep-fp32 applies to int8-static only, not fp16"):
        RunConfig("m.onnx", precision="fp16", keep_fp32=["fc2"])


def test_the_chosen_mix_runs_like_any_other_variant_and_says_what_it_kept(tmp_path):
    from edgeprof.models import quantize

    model, _ = outlier_mlp(tmp_path)
    home = tmp_path / "home"
    proc = edgeprof(home, "run", "--model", str(model), "--precision", "int8-static", "--keep-fp32", "fc2",
                    "--iterations", "50", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "ok" and doc["precision"] == "int8-static" and doc["config"]["keep_fp32"] == ["fc2"]
    assert ".int8-static-keep1." in doc["model_path"]
    assert any("kept in fp32: fc2 (a mix of `edgeprof doctor`)" in n for n in doc["notes"])
    side = quantize.read_sidecar(doc["model_path"])
    assert side["keep_fp32"] == ["fc2"]
    proc = edgeprof(home, "run", "--model", str(model), "--precision", "fp16", "--keep-fp32", "fc2")
    assert proc.returncode == 2 and "--keep-fp32 applies to int8-static only" in proc.stderr


def test_a_model_whose_nodes_have_no_names_gets_names_the_doctor_and_keep_fp32_share(tmp_path):
    """Hand-built and some exported graphs leave node names empty: the doctor named a QDQ tensor
    (``c_QuantizeLinear_Input``) that `--keep-fp32` then refused. Nodes are named after their first output."""
    from model_fixtures import tiny_cnn

    model = tiny_cnn(tmp_path / "cnn.onnx")
    assert not any(n.name for n in onnx.load(str(model)).graph.node)
    home = tmp_path / "home"
    proc = edgeprof(home, "doctor", str(model), "--seconds", "0.3", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    nodes = {r["node"] for r in doc["operators"]}
    assert {"c", "logits"} <= nodes and not any("QuantizeLinear" in n for n in nodes)
    assert all(p["error"] is None for p in doc["points"]), doc["points"]
    proc = edgeprof(home, "run", "--model", str(model), "--precision", "int8-static", "--keep-fp32", "c",
                    "--iterations", "20", "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["config"]["keep_fp32"] == ["c"]


def test_tradeoff_of_a_tflite_file_is_one_point_without_a_made_up_fidelity(tmp_path):
    tfl = ROOT / "models" / "digits-cnn" / "digits-cnn-int8-static.tflite"
    proc = edgeprof(tmp_path / "home", "tradeoff", str(tfl), "--seconds", "0.3", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (point,) = doc["points"]
    assert point["label"] == "tflite int8-static" and point["p50_ms"] > 0 and point["fidelity"] is None
    assert point["top1_agreement"] is None and doc["front"] == []
    assert doc["sentence"].startswith("No Pareto front: digits-cnn-int8-static.tflite is tflite int8-static with no "
                                      "fp32 parent here")


def test_an_accuracy_target_without_labels_says_what_it_needs():
    from edgeprof.doctor import sentences

    doc = {"precision": "int8-static", "operators": [], "profile_int8": {}, "profile_fp32": {},
           "target": {"top1_agreement": None, "max_accuracy_drop": 0.01}, "chosen": None,
           "points": [{"label": "fp32", "accuracy": None}, {"label": "int8-static", "keep_fp32": [], "accuracy": None}]}
    assert sentences(doc)[-1] == ("--max-accuracy-drop needs labelled data, and these inputs have no labels: give "
                                  "--data with labels, or use --target-agreement.")


def test_no_noise_reads_as_exact_or_adds_none_never_as_200_db(tmp_path, monkeypatch):
    """A fresh user read "200.0" dB for digits-cnn's MaxPool and Flatten: the number that stands for no noise. The
    CLI's tables and the Models page's say `adds none` (an operator's output no noisier than its input) and `exact`
    (identical to fp32's), with a line saying so; JSON keeps the number."""
    assert analysis.db_text(analysis.MAX_DB) == "exact" and analysis.db_text(None) == "-"
    assert analysis.db_text(analysis.MAX_DB, added=True) == "adds none" and analysis.db_text(43.44) == "43.4"
    assert analysis.error_sentence("int8-static", [{"node": "relu", "local_sqnr_db": analysis.MAX_DB}]) == \
        "int8-static adds no noise at any operator: its outputs are exact (identical to fp32's)."

    proc = edgeprof(tmp_path / "home", "doctor", "digits-cnn", "--seconds", "0.2")
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("Operators by the noise they add")[1].split("Operators by int8 time")[0]
    pools = [line.split() for line in table.splitlines() if "MaxPool" in line]
    assert pools and all(cells[3:5] == ["adds", "none"] for cells in pools), table
    assert "200.0" not in proc.stdout and "200 dB" not in proc.stdout
    assert "SQNR columns: exact: no noise, identical to fp32's (SQNR infinite); adds none: " in proc.stdout

    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    monkeypatch.setenv("EDGEPROF_HOME", str(tmp_path / "home"))
    at = _models_page()
    at.selectbox(key="doctor_model").select("digits-cnn")
    at.button(key="doctor_run").click().run()
    assert not at.exception, at.exception
    ops = next(d.value for d in at.dataframe if "added SQNR (dB)" in d.value.columns)
    pooled = ops[ops["type"] == "MaxPool"]
    assert len(pooled) and set(pooled["added SQNR (dB)"]) == {"adds none"}
    for frame in (d.value for d in at.dataframe):
        for col in [c for c in frame.columns if "SQNR" in c]:
            assert not {"200.0", 200.0, "None", None} & set(frame[col]), (col, list(frame[col]))
    assert any(str(c.value).startswith("SQNR columns: exact: no noise") for c in at.caption)
