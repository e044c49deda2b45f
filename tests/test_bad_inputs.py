"""Odd models through the CLI: each gives one clear line (or runs with a visible note), no traceback, and a stored
run with its status and reason. The fixtures are built by tests/data/models/make_fixtures.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT, cli_env, requires_tflite_runtime

from edgeprof.store import Store

FIX = ROOT / "tests" / "data" / "models"
pytestmark = pytest.mark.slow


def run_cli(*args, db):
    r = subprocess.run([sys.executable, "-m", "edgeprof", "run", *args, "--iterations", "10", "--db", str(db), "--json",
                        "--quiet"], capture_output=True, text=True, timeout=300, env=cli_env(), cwd=ROOT)
    assert "Traceback" not in r.stderr
    return r, json.loads(r.stdout) if r.stdout.strip() else None


@pytest.mark.parametrize("name,note", [
    ("token_ids.onnx", "token ids"),
    ("audio_frames.onnx", "random data"),
])
def test_non_image_models_run_on_synthetic_input_with_a_note(db_path, name, note):
    r, doc = run_cli("--model", str(FIX / name), db=db_path)
    assert r.returncode == 0, r.stderr
    assert doc["status"] == "ok"
    assert any(note in n for n in doc["notes"]), doc["notes"]
    assert Store(db_path).get_run(doc["run_id"])["summary"]["notes"] == doc["notes"]


@pytest.mark.parametrize("name,args,needle", [
    ("external_data.onnx", [], "external data file"),
    ("custom_op.tflite", [], "custom op"),
    pytest.param("fc_v12.tflite", ["--tflite-interpreter", "tflite-runtime"], "newer TFLite interpreter",
                 marks=requires_tflite_runtime),
])
def test_unloadable_models_fail_clearly_and_are_recorded(db_path, name, args, needle):
    r, doc = run_cli("--model", str(FIX / name), *args, db=db_path)
    assert r.returncode == 3
    assert needle in doc["error"]
    lines = [line for line in r.stderr.splitlines() if not line.startswith("INFO: ")]
    assert len(lines) == 1 and needle in lines[0]
    run = Store(db_path).get_run(doc["run_id"])
    assert run["status"] == "failed" and needle in run["reason"]


def test_newer_op_model_runs_in_litert(db_path):
    r, doc = run_cli("--model", str(FIX / "fc_v12.tflite"), "--tflite-interpreter", "litert", db=db_path)
    assert r.returncode == 0 and doc["backend"]["name"] == "litert"
