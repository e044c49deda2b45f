"""Preparation of a user's model runs in an isolated, memory-capped child (models.isolated): a segfault, an allocation
past the cap or a tool's exception there is one sentence, and the process that asked goes on. Quantization proves
what it did: nothing quantized is refused, the report is kept with the variant. Fixtures are tiny models built here
(onnx helper API, skl2onnx)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, cgroup_writable, cli_env
from model_fixtures import huge_input, mlp, skl

from edgeprof.errors import ModelError, UsageError
from edgeprof.models import isolated, quantize
from edgeprof.models.isolated import PreparationFailed, run_isolated

CHILD_PATH = ROOT / "tests" / "child_path"


@pytest.fixture
def targets(monkeypatch):
    """The test targets importable in the child (the child's PYTHONPATH is the repository plus this)."""
    monkeypatch.setenv("PYTHONPATH", str(CHILD_PATH))


def test_result_and_progress_come_back(targets):
    seen = []
    out = run_isolated("prep_targets:add", 2, b=3, what="adding", progress=seen.append)
    assert out == {"sum": 5, "inside": True} and seen == ["adding"]


def test_a_step_that_segfaults_is_one_sentence(targets):
    with pytest.raises(PreparationFailed) as info:
        run_isolated("prep_targets:segfault", what="checking that the fp16 variant of an_lstm.onnx loads",
                     hint="the fp16 converter's output does not load; run the fp32 file or int8-dynamic.")
    err = info.value
    assert err.kind == "crashed" and err.signal == 11
    assert str(err) == ("ONNX Runtime crashed (signal 11, SIGSEGV) while checking that the fp16 variant of an_lstm.onnx "
                        "loads: the fp16 converter's output does not load; run the fp32 file or int8-dynamic.")
    assert run_isolated("prep_targets:add", 1, 1, what="adding")["sum"] == 2  # and the caller goes on


@pytest.mark.skipif(not cgroup_writable(), reason="needs a writable memory cgroup (root on cgroup v1 or v2)")
def test_a_step_that_allocates_past_its_cap_is_stopped_there(targets):
    with pytest.raises(PreparationFailed) as info:
        run_isolated("prep_targets:allocate", 1024, what="calibrating huge.onnx", memory_limit_mb=200)
    err = info.value
    assert err.kind == "oom_killed", err
    assert "needed more than the 200 MB memory cap for preparation while calibrating huge.onnx" in str(err)
    assert "EDGEPROF_PREPARE_MEMORY_MB" in str(err)


def test_a_tools_exception_is_one_sentence_with_the_raw_text_as_detail(targets):
    with pytest.raises(PreparationFailed) as info:
        run_isolated("prep_targets:tool_error", what="building the int8-static variant of m.onnx",
                     tool="ONNX Runtime's quantizer")
    err = info.value
    assert str(err).startswith("ONNX Runtime's quantizer failed (ValueError) while building the int8-static variant "
                               "of m.onnx.")
    assert "truth value" not in str(err) and "truth value" in err.detail


def test_nothing_quantized_is_refused_and_not_cached(tmp_path):
    logreg = skl(tmp_path / "skl_logreg.onnx", "logreg")
    for precision in ("int8-dynamic", "int8-static"):
        with pytest.raises(ModelError, match=r"nothing in skl_logreg\.onnx is an operator ONNX Runtime's quantizer "
                                             r"handles: its operators \(LinearClassifier, Normalizer, ZipMap\)"):
            quantize.quantize_onnx(logreg, precision)
    linreg = skl(tmp_path / "skl_linreg.onnx", "linreg")  # skl2onnx wrote its default-domain opset import twice
    with pytest.raises(ModelError, match=r"nothing in skl_linreg\.onnx became float16"):
        quantize.quantize_onnx(linreg, "fp16")
    assert not list(quantize.paths.cache_dir().glob("skl_*.onnx"))


def test_report_says_what_changed_and_stays_with_the_variant(tmp_path):
    src = mlp(tmp_path / "mlp.onnx")
    res = quantize.quantize_onnx(src, "int8-dynamic")
    rep = res.quantization
    assert rep["quantized_ops"] == 2 and rep["of_ops"] == 5
    assert rep["weights"]["before"]["float32"]["elements"] == 8 * 16 + 16 + 16 * 4 + 4
    assert "int8" in rep["weights"]["after"] and rep["bytes"]["after"] > 0
    assert json.loads(Path(str(res.path) + ".json").read_text())["quantization"] == rep
    assert quantize.quantize_onnx(src, "int8-dynamic").quantization == rep  # a cache hit keeps it
    assert quantize.describe_report(rep).startswith("2 of 5 operators quantized")
    fp16 = quantize.quantize_onnx(src, "fp16").quantization
    assert fp16["quantized_ops"] >= 4 and "float16" in fp16["weights"]["after"]


def test_duplicate_default_opset_imports_are_merged_before_quantizing(tmp_path):
    src = mlp(tmp_path / "dup.onnx", duplicate_opset=True)
    res = quantize.quantize_onnx(src, "int8-dynamic")
    side = quantize.read_sidecar(res.path)
    assert side["normalised"].startswith("merged repeated default-domain opset imports") and res.quantization["quantized_ops"]


def test_skl2onnx_regressor_quantizes_static(tmp_path):
    """ORT's per-channel bias-scale adjustment raised "The truth value of an array ..." on skl2onnx MLPs."""
    res = quantize.quantize_onnx(skl(tmp_path / "skl_mlp.onnx", "mlp_regressor"), "int8-static")
    assert res.quantization["quantized_ops"] >= 2
    assert "QDQDisableWeightAdjustForInt32Bias" in quantize.read_sidecar(res.path)["workaround"]


def test_calibration_inputs_have_a_byte_budget_and_use_the_shape(tmp_path):
    huge = huge_input(tmp_path / "huge.onnx")
    with pytest.raises(UsageError) as info:
        quantize.quantize_onnx(huge, "int8-static")
    msg = str(info.value)
    assert "input 'image' of huge.onnx is 1x3x25000x20000 float32" in msg and "no --shape can shrink it" in msg
    src = mlp(tmp_path / "dyn.onnx")  # input x is [batch, 8]
    res = quantize.quantize_onnx(src, "int8-static", shapes={"x": (3, 8)})
    assert quantize.read_sidecar(res.path)["calibration"]["shape"] == {"x": [3, 8]}
    assert res.path != quantize.quantize_onnx(src, "int8-static").path  # another calibration, another file


def _crash_env(**extra) -> dict:
    env = cli_env(EDGEPROF_TEST_CRASH_ORT="1", **extra)
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{CHILD_PATH}"
    return env


def test_a_model_that_crashes_onnx_runtime_from_the_cli(tmp_path):
    """The CLI process survives: one sentence, exit 1, and the run asked for is stored as failed, saying why."""
    model = mlp(tmp_path / "an_lstm.onnx", name="crashes-ort")
    env = _crash_env(EDGEPROF_HOME=tmp_path / "home", EDGEPROF_DB=tmp_path / "runs.duckdb")
    cmd = [sys.executable, "-m", "edgeprof"]
    q = subprocess.run([*cmd, "quantize", str(model), "--precision", "fp16"], env=env, capture_output=True, text=True,
                       timeout=300)
    sentence = ("ONNX Runtime crashed (signal 11, SIGSEGV) while checking that the fp16 variant of an_lstm.onnx loads: "
                "the float16 converter's output does not load; run the fp32 file or int8-dynamic.")
    assert q.returncode == 1 and q.stderr.strip() == f"error: {sentence}", q.stderr
    r = subprocess.run([*cmd, "run", "--model", str(model), "--precision", "fp16", "--duration", "1", "--json"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode not in (-11, 139) and sentence in r.stdout + r.stderr, (r.returncode, r.stdout, r.stderr)
    runs = subprocess.run([*cmd, "runs", "--json"], env=env, capture_output=True, text=True, timeout=120)
    (row,) = json.loads(runs.stdout)
    show = subprocess.run([*cmd, "show", row["run_id"], "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert row["status"] == "failed" and sentence in show.stdout, show.stdout[:2000]


@pytest.mark.slow
def test_a_model_that_crashes_onnx_runtime_from_the_models_page(tmp_path, monkeypatch):
    """The server survives: the page shows the sentence and keeps working. The hook is installed in this process
    too, so opening the file here instead of in the child would end the test process."""
    from streamlit.testing.v1 import AppTest

    sys.path.insert(0, str(CHILD_PATH))
    import crash_ort_hook

    crash_ort_hook.install()
    for k, v in _crash_env().items():
        if k in ("PYTHONPATH", "EDGEPROF_TEST_CRASH_ORT"):
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    from edgeprof import paths

    mlp(paths.uploads_dir() / "0123456789abcdef.onnx", name="crashes-ort")
    at = AppTest.from_file(str(ROOT / "views" / "5_Models.py"), default_timeout=120)
    at.run()
    at.selectbox(key="q_model").select(str(paths.uploads_dir() / "0123456789abcdef.onnx"))
    at.selectbox(key="q_precision").select("fp16")
    at.button(key="quantize").click().run()
    assert not at.exception, at.exception
    errors = " ".join(str(e.value) for e in at.error)
    assert "ONNX Runtime crashed (signal 11, SIGSEGV) while checking that the fp16 variant" in errors, errors
    mlp(paths.uploads_dir() / "fedcba9876543210.onnx")  # the server goes on: the next model quantizes
    at.run()
    at.selectbox(key="q_model").select(str(paths.uploads_dir() / "fedcba9876543210.onnx"))
    at.selectbox(key="q_precision").select("int8-dynamic")
    at.button(key="quantize").click().run()
    assert not at.exception, at.exception
    captions = " ".join(str(c.value) for c in at.caption)
    assert "What quantization changed: 2 of 5 operators quantized (MatMulInteger 2)" in captions, captions
    at.selectbox(key="fid_model").select(str(paths.uploads_dir() / "fedcba9876543210.onnx"))
    at.button(key="fidelity").click().run()
    assert not at.exception, at.exception
    captions = " ".join(str(c.value) for c in at.caption)
    assert "Data: 16 random inputs: agreement on noise says whether the variant computes the same function" in captions


def test_isolated_child_imports_nothing_of_the_server():
    """The child is started as a module; its import of edgeprof.models.isolated must not pull streamlit or duckdb."""
    code = ("import sys, edgeprof.models.isolated, edgeprof.models.quantize; "
            "print(sorted(m for m in ('streamlit', 'duckdb', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr
    assert isolated.default_memory_mb() >= isolated.MIN_MEMORY_MB


def test_a_source_onnx_runtime_cannot_read_is_named_not_its_variant(tmp_path):
    import onnx

    src = mlp(tmp_path / "tinyconv_ir99.onnx")
    model = onnx.load(str(src))
    model.ir_version = 99
    onnx.save(model, str(src))
    with pytest.raises(ModelError) as info:
        quantize.quantize_onnx(src, "int8-dynamic")
    assert str(info.value).startswith("tinyconv_ir99.onnx has ONNX IR version 99; this ONNX Runtime")
    assert "[ONNXRuntimeError]" not in str(info.value) and "ONNXRuntimeError" in info.value.detail
