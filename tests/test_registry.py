"""The backend registry (runtimes.registry): every backend declared once, and a backend registered only in the tests
runs end to end: CLI, worker, store, bundle, Runs page."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import duckdb
import pytest
from helpers import ROOT, cli_env

from edgeprof.config import RunConfig
from edgeprof.errors import ConfigError, UsageError
from edgeprof.run.summary import energy_summary
from edgeprof.runtimes import registry
from edgeprof.store import Store

TESTS = ROOT / "tests"
V1_FIXTURE = TESTS / "data" / "store" / "v1.duckdb"


@pytest.fixture
def test_backend():
    backend = registry.register("backend_for_tests")
    yield backend
    registry.unregister(backend.name)


def test_lists_come_from_the_registry(test_backend):
    assert registry.names() == ("onnxruntime", "litert", "tflite-runtime", "test-onnx")  # registered after the package's
    assert registry.formats() == ("onnx", "tflite")
    assert [b.name for b in registry.for_format("tflite")] == ["litert", "tflite-runtime"]
    assert registry.option_choices("execution_provider") == ("cpu", "cuda", "tensorrt")
    assert registry.runs_on({"name": "onnxruntime", "execution_provider": "cuda"}) == "gpu"
    assert registry.runs_on({"name": "onnxruntime", "execution_provider": "cpu"}) == "cpu"
    assert registry.runs_on({"name": "an-old-backend"}) == "cpu"


def test_a_request_is_checked_against_the_backends_declarations():
    assert registry.requested("onnx", None, {"execution_provider": "cpu"}) == (None, {"execution_provider": "cpu"})
    with pytest.raises(ConfigError, match="has no option 'threads'.*execution_provider"):
        registry.requested("onnx", "onnxruntime", {"threads": 3})
    with pytest.raises(ConfigError, match="'npu' is not one of: cpu, cuda, tensorrt"):
        registry.requested("onnx", None, {"execution_provider": "npu"})
    with pytest.raises(UsageError, match="reads tflite files, not onnx"):
        registry.requested("onnx", "litert")
    with pytest.raises(ConfigError, match="backend 'tvm' is not one of"):
        registry.requested("onnx", "tvm")


def test_the_fields_of_before_the_registry_still_mean_what_they_meant():
    cfg = RunConfig(model="digits-cnn", tflite_interpreter="litert", execution_provider="cpu")
    assert registry.for_config("tflite", cfg) == ("litert", {})  # a provider never applied to a .tflite file
    assert registry.for_config("onnx", cfg) == (None, {"execution_provider": "cpu"})  # nor an interpreter to .onnx
    with pytest.raises(ConfigError, match="tflite interpreter 'tvm' is not one of: litert, tflite-runtime"):
        registry.for_config("tflite", RunConfig(model="digits-cnn", tflite_interpreter="tvm"))


def test_gpu_energy_follows_what_the_backend_ran_on(test_backend):
    """The summary's energy rule asks the backend's runs_on, not an ONNX provider list: a run of the test backend
    (an "npu" here) does not get the GPU's power added, one on the CUDA provider does."""
    rows = {"power.rapl_w": [10.0], "gpu0.power_w": [50.0]}
    assert energy_summary(rows, 1.0, 100, {"name": "test-onnx"}, [])["avg_power_w"] == 10.0
    assert energy_summary(rows, 1.0, 100, {"name": "onnxruntime", "execution_provider": "cuda"}, [])["avg_power_w"] == 60.0


def test_a_backend_registered_in_the_tests_runs_end_to_end(tmp_path, monkeypatch, test_backend):
    db, bundle, other = tmp_path / "runs.duckdb", tmp_path / "runs.zip", tmp_path / "other.duckdb"
    env = {"EDGEPROF_BACKENDS": "backend_for_tests", "PYTHONPATH": f"{ROOT}:{TESTS}"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, timeout=300,
                              env={**cli_env(), **env}, cwd=ROOT)

    assert "test-onnx" in cli("run", "--help").stdout
    bad = cli("run", "--model", "digits-cnn", "--backend", "test-onnx", "--backend-option", "pause_ms=-1",
              "--db", str(db))
    assert bad.returncode == 2 and "pause_ms must be a number of at least 0" in bad.stderr
    r = cli("run", "--model", "digits-cnn", "--backend", "test-onnx", "--backend-option", "pause_ms=1",
            "--iterations", "30", "--warmup", "5", "--db", str(db), "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    run = Store(db).get_run(doc["run_id"])
    assert run["backend"] == "test-onnx" and run["backend_options"] == {"pause_ms": 1}
    assert run["summary"]["backend"]["name"] == "test-onnx" and run["n"] == 30

    assert cli("export", "--out", str(bundle), "--db", str(db)).returncode == 0
    r = cli("import", str(bundle), "--db", str(other))
    assert r.returncode == 0, r.stderr
    assert Store(other).get_run(doc["run_id"])["backend"] == "test-onnx"

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("EDGEPROF_DB", str(other))
    at = AppTest.from_file(str(ROOT / "views" / "2_Runs.py"), default_timeout=60)
    at.query_params["run_id"] = doc["run_id"]
    at.run()
    assert not at.exception, at.exception
    assert any("Runtime: test-onnx" in str(m.value) for m in at.markdown)


def test_migration_maps_the_old_backend_columns(tmp_path):
    """Stored runs get runs.backend and runs.backend_options from the columns of before (a provider was an option
    of ONNX Runtime only: the v1 fixture's TFLite run stored its delegate there)."""
    db = tmp_path / "old.duckdb"
    shutil.copy(V1_FIXTURE, db)
    with duckdb.connect(str(db)) as con:
        con.execute("""INSERT INTO runs (run_id, created_at, status, runtime, provider)
                       SELECT 'run-onnx', created_at, status, 'onnx', 'cuda' FROM runs WHERE run_id = 'run-v1'""")
        con.execute("""UPDATE runs SET interpreter = 'litert', provider = 'xnnpack', runtime = 'tflite'
                       WHERE run_id = 'run-v1'""")
    store = Store(db)
    tfl, onnx = store.get_run("run-v1"), store.get_run("run-onnx")
    assert (tfl["backend"], tfl["backend_options"]) == ("litert", None)
    assert (onnx["backend"], onnx["backend_options"]) == ("onnxruntime", {"execution_provider": "cuda"})
