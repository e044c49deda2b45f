"""Why a run is slow, on real runs: ONNX Runtime profiles for real (after the steady phase, never inside it), TFLite
saying why it has none, memory pressure from this machine's kernel (the worker's own v2 group where one can be made,
else the system's file, labelled), the `ops` command on two real runs, and the pages that show them."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import ROOT, cli_env, requires_cgroup
from streamlit.testing.v1 import AppTest

from edgeprof.config import RunConfig
from edgeprof.run import active_runs, start_run
from edgeprof.store import Store
from edgeprof.worker import limits

pytestmark = pytest.mark.slow


def _run(db, **kw):
    kw.setdefault("duration_s", 0.5)
    kw.setdefault("iterations", 20)
    h = start_run(RunConfig(**kw), db)
    res = h.wait(180)
    assert res is not None, "run did not finish"
    return h, res


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, timeout=300,
                          env=cli_env(), cwd=ROOT)


def test_onnx_profile_runs_after_the_steady_phase_and_leaves_its_samples_alone(db_path):
    h, res = _run(db_path, model="digits-cnn", profile_ops=True)
    assert res["status"] == "ok", res["error"]
    prof = res["op_profile"]
    assert prof["source"].startswith("onnxruntime ") and "after the steady phase" in prof["source"]
    assert prof["inferences"] >= 10 and prof["warmup_inferences"] == 5
    by = {r["op_type"]: r for r in prof["by_type"]}
    assert by["Conv"]["calls_per_inference"] == 3 and by["Conv"]["provider"] == "CPUExecutionProvider"
    assert sum(r["share"] for r in prof["by_type"]) == pytest.approx(1.0)
    assert prof["coverage"] == pytest.approx(prof["op_total_ms"] / res["latency_ms"]["p50"])
    phases = [p for p, _, _ in h._recorder.phases]
    assert phases[-2:] == ["steady", "profile"]
    profile_at = h._recorder.phases[-1][1]
    lat = Store(db_path).latency(h.run_id)
    assert len(lat) == res["iterations_total"] and set(lat["phase"].astype(str)) <= {"first", "warmup", "steady"}
    last = lat.iloc[-1]
    assert int(last["t_ns"]) + int(last["latency_ns"]) <= profile_at  # every measured inference ended before it
    stored = Store(db_path).get_run(h.run_id)
    assert stored["op_profile"]["by_type"] == prof["by_type"]


def test_tflite_says_why_it_has_no_profile(db_path):
    h, res = _run(db_path, model="digits-cnn", runtime="tflite", profile_ops=True)
    assert res["status"] == "ok", res["error"]
    assert res["op_profile"]["unavailable"].startswith("ai-edge-litert ")
    assert "no per-operator profiler that Python can reach" in res["op_profile"]["unavailable"]


def test_memory_pressure_from_this_kernel(db_path):
    h, res = _run(db_path, model="digits-cnn")
    pressure = res["memory"]["pressure"]
    parent = limits.psi_parent()
    if parent is None:
        assert pressure["scope"] == "system" and pressure["source"] == "/proc/pressure/memory", pressure
    else:  # this machine: a hybrid v2 hierarchy; the worker's own group, removed after the run
        assert pressure["scope"] == "cgroup" and pressure["source"].startswith(str(parent)), pressure
        assert not list(parent.glob(f"{limits.PREFIX}*-{h.run_id}"))
    assert 0.0 <= pressure["some_pct"] <= 100.0 and 0.0 <= pressure["full_pct"] <= pressure["some_pct"] + 1e-9
    assert res["memory"]["major_faults_per_s"] is not None
    tel = Store(db_path).telemetry(h.run_id, metrics=["mem.pressure_some_pct", "mem.major_faults_per_s"])
    assert set(tel["metric"].astype(str)) == {"mem.pressure_some_pct", "mem.major_faults_per_s"}
    energy = res["energy"]
    assert "unavailable" in energy or energy["mj_per_inference"] > 0


@requires_cgroup
def test_a_capped_run_reports_its_cgroups_faults_and_split(db_path):
    h, res = _run(db_path, model="efficientnet-lite0", runtime="tflite", memory_limit_mb=400)
    assert res["status"] == "ok", res["error"]
    mem = res["memory"]
    assert mem["pressure"]["scope"] == "cgroup"
    assert mem["anon_mb"] > 10 and mem["file_mb"] is not None and mem["refaults_per_s"] is not None
    assert mem["anon_mb"] + mem["file_mb"] <= mem["peak_charged_mb"] + 1


@requires_cgroup
def test_a_worker_killed_while_profiling_leaves_the_measured_run_standing(db_path):
    """The profile phase opens a second session: under a cap that the measured session only just fits, the worker may
    be OOM-killed there. The run stays ok with its measured peak; the profile says why it is missing."""
    h, res = _run(db_path, model="digits-cnn", memory_limit_mb=400, profile_ops=True)
    assert res["status"] == "ok" and "inferences" in res["op_profile"]
    h._op_profile = None  # as if the worker had died in the profile phase
    mem = {"requested_mb": 400.0, "oom_kill_count": 0, "profile_phase": {"oom_kill_count": 1}}
    assert "OOM-killed while profiling" in h._profile_result(mem)["unavailable"]


def test_ops_command_on_two_real_runs(db_path):
    ids = []
    for precision in ("fp32", "int8-dynamic", None):
        args = ["run", "--model", "digits-cnn", "--duration", "0.5", "--db", str(db_path), "--json", "--quiet"]
        args += ["--precision", precision, "--profile-ops"] if precision else []
        r = cli(*args)
        assert r.returncode == 0, r.stderr
        ids.append(json.loads(r.stdout)["run_id"])
    r = cli("ops", ids[0], ids[1], "--db", str(db_path))
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("int8-dynamic is slower than fp32 because ") and "ConvInteger" in r.stdout, r.stdout
    doc = json.loads(cli("ops", ids[0], ids[1], "--db", str(db_path), "--json").stdout)
    assert doc["sentence"] == first and {"op_type", "ms_a", "ms_b", "ratio", "diff_ms"} <= set(doc["by_type"][0])
    r = cli("ops", ids[0], ids[2], "--db", str(db_path))
    assert r.returncode == 2 and f"run {ids[2]} has no operator profile" in r.stderr and "--profile-ops" in r.stderr
    show = cli("show", ids[1], "--db", str(db_path))
    assert "ConvInteger" in next(line for line in show.stdout.splitlines() if line.startswith("  op profile   "))
    assert "  pressure     " in show.stdout and "  energy       " in show.stdout


# ----------------------------------------------------------------------------------------------- the pages

@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "runs.duckdb"
    monkeypatch.setenv("EDGEPROF_DB", str(path))
    yield path
    for h in active_runs():
        h.stop()
        h.wait(15)


def _texts(at) -> str:
    parts = []
    for kind in ("markdown", "error", "info", "warning", "success", "caption"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def _figures(at) -> list[dict]:
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def test_run_page_profiles_operators_and_says_why(db):
    at = AppTest.from_file(str(ROOT / "views" / "1_Run.py"), default_timeout=60)
    at.run()
    at.selectbox(key="model").select("digits-cnn")
    at.number_input(key="duration_s").set_value(0.5)
    at.checkbox(key="profile_ops").check()
    at.button(key="start").click().run()
    deadline = time.monotonic() + 90
    while not at.success and time.monotonic() < deadline:
        time.sleep(0.3)
        at.run()
        assert not at.exception, at.exception
    text = _texts(at)
    assert "finished normally" in text, text
    assert "**Operator profile**: " in text and "% of the steady p50 (" in text
    assert "**Memory pressure**: some task stalled on memory " in text and "**Energy**: " in text
    titles = [f["layout"]["title"]["text"] for f in _figures(at)]
    assert "Time per operator type" in titles and "Memory pressure" in titles
    ops_fig = next(f for f in _figures(at) if f["layout"]["title"]["text"] == "Time per operator type")
    assert "Conv" in ops_fig["data"][0]["y"]


def test_compare_page_explains_the_difference_under_the_chart(db):
    for precision in ("fp32", "int8-dynamic"):
        h = start_run(RunConfig(model="digits-cnn", precision=precision, duration_s=0.3, iterations=20,
                                profile_ops=True), db)
        assert h.wait(120)["status"] == "ok"
    at = AppTest.from_file(str(ROOT / "views" / "4_Compare.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    runs = Store(db).list_runs()
    fp32 = runs[runs["precision"] == "fp32"]["run_id"].iloc[0]
    at.selectbox(key="cmp_ops_a").select(fp32).run()
    assert not at.exception, at.exception
    sentence = [str(m.value) for m in at.markdown if "is slower than" in str(m.value) or "is faster" in str(m.value)]
    assert sentence and sentence[0].startswith("**int8-dynamic is slower than fp32 because "), _texts(at)
    chart = next(f for f in _figures(at) if f["layout"]["title"]["text"] == "Time per operator type, side by side")
    assert [d["name"] for d in chart["data"]] == ["fp32", "int8-dynamic"]
    table = next(d.value for d in at.dataframe if "operator" in d.value.columns)
    assert {"ms fp32", "ms int8-dynamic", "share of the difference"} <= set(table.columns)
    assert np.isclose(table["share of the difference"].sum(), 1.0)
