"""``python -m edgeprof models | quantize | fidelity`` end to end, in subprocesses with their own EDGEPROF_HOME.

Bad inputs must give exit 2 (a refusal, as for any usage error), exactly one line on stderr, no traceback, and
nothing left in the cache.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgeprof import paths
from edgeprof.runtimes.onnx import int8_conv_supported

ROOT = Path(__file__).resolve().parent.parent
HAVE_MANIFEST = paths.MANIFEST.is_file()
needs_models = pytest.mark.skipif(not HAVE_MANIFEST, reason=f"bundled models not built yet ({paths.MANIFEST} missing)")


def edgeprof(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "EDGEPROF_HOME": str(home), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "edgeprof", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    # the TFLite runtimes print an INFO line from C++ when they create XNNPACK; that is not edgeprof's output
    return [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("INFO: ")]


def cache_entries(home: Path) -> list[str]:
    cache = home / "cache"
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


def test_models_json_parses(tmp_path):
    proc = edgeprof(tmp_path, "models", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert isinstance(doc, list)
    for model in doc:
        assert set(model) >= {"name", "variants"}
        for v in model["variants"]:
            assert set(v) >= {"precision", "format", "path", "size_bytes"}
            if v["format"] == "onnx" and v["precision"] != "fp32":
                assert v["size_bytes"] is None, "a fresh data directory has built nothing yet"
    if HAVE_MANIFEST:
        names = {m["name"] for m in doc}
        assert {"digits-cnn", "efficientnet-lite0"} <= names
        assert all(len(m["variants"]) == 8 for m in doc)
    human = edgeprof(tmp_path, "models")
    assert human.returncode == 0 and ("precision" in human.stdout or "no bundled models" in human.stdout)


@needs_models
def test_fidelity_digits_json(tmp_path):
    proc = edgeprof(tmp_path, "fidelity", "digits-cnn", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    keys = {"precision", "format", "backend", "top1_agreement", "top5_overlap", "mean_kl", "cosine", "accuracy"}
    assert rows and all(keys <= set(r) for r in rows)
    runs = [r for r in rows if r["error"] is None]
    expected = {(f, p) for f in ("onnx", "tflite") for p in ("fp32", "fp16", "int8-dynamic", "int8-static")}
    if not int8_conv_supported():  # ONNX Runtime 1.23.2 (Python 3.10): that row says why instead
        expected.discard(("onnx", "int8-dynamic"))
        (refused,) = [r for r in rows if (r["format"], r["precision"]) == ("onnx", "int8-dynamic")]
        assert "needs 1.24 or newer" in refused["error"]
    assert {(r["format"], r["precision"]) for r in runs if r["backend"] in ("onnxruntime", "litert")} == expected
    for r in runs:
        assert r["n"] > 300 and r["accuracy"] > 0.95, r
        assert r["top1_agreement"] > 0.97 and 0.0 <= r["mean_kl"] < 0.05 and r["cosine"] > 0.99, r
        if r["precision"] == "fp32":
            assert r["top1_agreement"] == 1.0 and r["mean_kl"] == pytest.approx(0.0, abs=1e-9)
    built = 3 if int8_conv_supported() else 2  # fp16, int8-dynamic, int8-static
    assert len([n for n in cache_entries(tmp_path) if n.endswith(".onnx")]) == built


@needs_models
def test_quantize_digits_then_cached(tmp_path):
    first = edgeprof(tmp_path, "quantize", "digits-cnn", "--precision", "int8-static", "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert Path(doc["path"]).is_file() and doc["seconds"] > 0 and doc["cached"] is False and doc["warning"] is None
    again = json.loads(edgeprof(tmp_path, "quantize", "digits-cnn", "--precision", "int8-static", "--json").stdout)
    assert again["cached"] is True and again["path"] == doc["path"]
    listed = json.loads(edgeprof(tmp_path, "models", "--json").stdout)
    digits = next(m for m in listed if m["name"] == "digits-cnn")
    static = next(v for v in digits["variants"] if v["format"] == "onnx" and v["precision"] == "int8-static")
    assert static["path"] == doc["path"] and static["size_bytes"] == doc["size_bytes"]


def _tiny_bytes() -> bytes:
    from tests.test_models_lib import tiny_model_bytes

    return tiny_model_bytes()


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "text"])
def test_bad_model_files_fail_cleanly(tmp_path, kind):
    home = tmp_path / "home"
    path = tmp_path / "model.onnx"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = _tiny_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "text":
        path.write_text("this is a README, not a model\n")
    for args in (("quantize", str(path), "--precision", "int8-static"), ("fidelity", str(path), "--json")):
        proc = edgeprof(home, *args, timeout=120)
        assert proc.returncode == 2, (kind, args, proc.stdout, proc.stderr)
        lines = error_lines(proc)
        assert len(lines) == 1 and lines[0].startswith("error: "), (kind, args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stdout == ""
        assert cache_entries(home) == [], (kind, args)


def test_every_command_that_takes_a_model_refuses_one_it_cannot_read_with_exit_2(tmp_path):
    """A fresh user found `run` exiting 2 on a usage error but `quantize` and `fidelity` exiting 1 on a refusal; the
    README's "2 on a usage error" holds for every command now."""
    from tests.model_fixtures import skl

    text = tmp_path / "notes.onnx"
    text.write_text("this is a README, not a model\n")
    for args in (("memory", str(text), "--json"), ("doctor", str(text)), ("tradeoff", str(text)),
                 ("quantize", str(tmp_path / "missing.onnx"), "--precision", "fp16")):
        proc = edgeprof(tmp_path / "home", *args, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(error_lines(proc)) == 1 and "Traceback" not in proc.stderr, (args, proc.stderr)
    logreg = skl(tmp_path / "skl_logreg.onnx", "logreg")
    proc = edgeprof(tmp_path / "home", "quantize", str(logreg), "--precision", "int8-dynamic")
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc)
    assert line.startswith("error: nothing in skl_logreg.onnx is an operator ONNX Runtime's quantizer handles"), line


def test_usage_errors(tmp_path):
    proc = edgeprof(tmp_path, "fidelity", "no-such-model")
    assert proc.returncode == 2 and len(error_lines(proc)) == 1 and "Traceback" not in proc.stderr
    assert ".onnx" in proc.stderr
    proc = edgeprof(tmp_path, "quantize", "digits-cnn", "--precision", "int3")
    assert proc.returncode == 2 and len(error_lines(proc)) == 1


def test_flags_a_command_would_ignore_are_refused(tmp_path):
    """A fresh user's `quantize digits-cnn --precision int8-dynamic --data /nonexist` succeeded and ignored --data, and
    `fidelity digits-cnn --shape x=1` ignored the shape: a flag that changes nothing is a usage error naming it."""
    tiny = tmp_path / "tiny.onnx"
    tiny.write_bytes(_tiny_bytes())
    cases = {
        ("quantize", "digits-cnn", "--precision", "int8-static", "--data", str(tmp_path)):
            "error: --data is for a file of your own; digits-cnn calibrates on its bundled data.",
        ("quantize", str(tiny), "--precision", "int8-dynamic", "--data", str(tmp_path)):
            "error: --data calibrates int8-static; int8-dynamic uses no data.",
        ("quantize", str(tiny), "--precision", "int8-static", "--data", str(tmp_path / "nonexist")):
            "error: --data " + str(tmp_path / "nonexist") + ": no such file or folder.",
        ("fidelity", "digits-cnn", "--shape", "x=1"):
            "error: --shape is for a file of your own; digits-cnn is compared on its bundled data.",
        ("fidelity", "digits-cnn", "--fill", "x=1"):
            "error: --fill is for a file of your own; digits-cnn is compared on its bundled data.",
    }
    for args, headline in cases.items():
        proc = edgeprof(tmp_path / "home", *args, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        (line,) = error_lines(proc)
        assert line.startswith(headline), (args, line)
        assert "Traceback" not in proc.stderr and cache_entries(tmp_path / "home") == [], args


def test_user_fp32_onnx_fidelity_warns_about_random_data(tmp_path):
    model = tmp_path / "tiny.onnx"
    model.write_bytes(_tiny_bytes())
    proc = edgeprof(tmp_path / "home", "fidelity", str(model), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["precision"] for r in rows] == ["fp32", "fp16", "int8-dynamic", "int8-static"]
    assert "random data" in rows[-1]["note"] and all(r["accuracy"] is None for r in rows)


def test_a_reader_that_closes_the_pipe_gets_no_error(tmp_path):
    """`edgeprof models | head -1`: the reader closing the pipe early is not an error to print."""
    env = {**os.environ, "EDGEPROF_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "edgeprof", "models"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # closed before edgeprof writes a line
    stderr = proc.stderr.read()
    assert proc.wait(120) == 141
    assert "error" not in stderr and "Traceback" not in stderr, stderr


def test_a_file_that_is_not_a_model_prints_its_reason_not_a_block_of_dashes(tmp_path):
    bad = tmp_path / "text.onnx"
    bad.write_text("hello\n")
    proc = edgeprof(tmp_path, "run", "--model", str(bad), "--db", str(tmp_path / "runs.duckdb"))
    assert proc.returncode == 3  # a recorded run that failed
    assert proc.stdout.splitlines()[0].endswith("failed (text.onnx is text, not an ONNX protobuf. Export the model "
                                                "again with an ONNX exporter.)")
    assert "None" not in proc.stdout and "  latency " not in proc.stdout, proc.stdout
    # one error line; a progress line ("[ 1.2s] preparing: ...") may come first when the machine is slow to fail it
    errors = [ln for ln in error_lines(proc) if not re.match(r"\[\s*\d+\.\ds\] ", ln)]
    assert len(errors) == 1 and errors[0].startswith("error: run "), proc.stderr
