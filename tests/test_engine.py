"""End to end: real worker processes, real models, real memory caps, a real DuckDB file."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, cli_env, requires_cgroup, requires_tflite_runtime

from edgeprof.config import RunConfig
from edgeprof.run import DeviceBusy, start_run
from edgeprof.store import Store
from edgeprof.worker import limits
from edgeprof.worker.messages import PHASE_CODES

pytestmark = pytest.mark.slow


def _run(db, **kw):
    kw.setdefault("duration_s", 0.5)
    kw.setdefault("iterations", 20)
    cfg = RunConfig(**kw)
    h = start_run(cfg, db)
    res = h.wait(120)
    assert res is not None, "run did not finish"
    return h, res


@pytest.mark.parametrize("runtime,interp", [("onnx", None), ("tflite", "litert"),
                                            pytest.param("tflite", "tflite-runtime", marks=requires_tflite_runtime)])
def test_real_run_is_stored_and_read_back(db_path, runtime, interp):
    h, res = _run(db_path, model="digits-cnn", runtime=runtime, tflite_interpreter=interp)
    assert res["status"] == "ok", res["error"]
    assert res["backend"]["name"] == {"onnx": "onnxruntime"}.get(runtime, interp) and res["runtime"] == runtime
    assert res["latency_ms"]["n"] >= 20 and res["latency_ms"]["p50"] > 0
    assert res["load_ms"] > 0 and res["first_inference_ms"] > 0
    assert res["worker_heavy_imports"] == []
    store = Store(db_path)
    run = store.get_run(h.run_id)
    assert run["status"] == "ok" and run["summary"]["latency_ms"]["n"] == res["latency_ms"]["n"]
    lat = store.latency(h.run_id)
    assert set(lat["phase"]) == {"first", "warmup", "steady"} or set(lat["phase"]) == {"first", "steady"}
    assert len(lat) == res["iterations_total"]
    assert (lat["phase"] == "steady").sum() == res["latency_ms"]["n"]
    tel = store.telemetry(h.run_id)
    assert {"cpu.total_pct", "mem.used_mb"} <= set(tel["metric"])


@requires_cgroup
def test_oom_kill_at_tight_cap_and_success_at_loose_cap(db_path):
    h, res = _run(db_path, model="efficientnet-lite0", precision="fp32", runtime="onnx", memory_limit_mb=48)
    assert res["status"] == "oom_killed", res
    assert res["memory"]["mechanism"] == limits.detect().kind
    assert res["memory"]["oom_killed"] is True
    run = Store(db_path).get_run(h.run_id)
    assert run["status"] == "oom_killed" and run["reason"]
    h2, res2 = _run(db_path, model="efficientnet-lite0", precision="fp32", runtime="onnx", memory_limit_mb=256)
    assert res2["status"] == "ok", res2["error"]
    assert 20 < res2["memory"]["peak_charged_mb"] <= 256
    assert not list((limits.detect().parent and __import__("pathlib").Path(limits.detect().parent)
                     or ROOT).glob(f"edgeprof-{os.getpid()}-*")), "cgroups left behind"


HOG = """
import os, sys, time
with open(sys.argv[1], "w") as f:  # join the worker's cgroup
    f.write(str(os.getpid()))
worker, chunks = int(sys.argv[2]), []
while True:
    try:
        os.kill(worker, 0)
    except ProcessLookupError:
        break
    chunks.append(b"x" * (4 << 20))  # touched pages, charged to the cgroup
    time.sleep(0.005)
"""


@requires_cgroup
def test_oom_mid_run_is_recorded_and_keeps_the_samples_before_it(db_path, monkeypatch):
    """A worker OOM-killed in its steady state: the run ends oom_killed with every sample received before the kill
    stored. The kill is made certain, not hoped for: once samples are stored, the worker becomes the OOM killer's first
    choice (oom_score_adj 1000: raising it needs no privilege) and a second process joins its cgroup and takes memory
    until the cap is reached."""
    from edgeprof.run import recorder

    monkeypatch.setattr(recorder, "FLUSH_INTERVAL_S", 0.2)
    h = start_run(RunConfig(model="digits-cnn", runtime="onnx", memory_limit_mb=256, duration_s=60, swap=False),
                  db_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (h.phase == "steady" and h._recorder._live.stored > 100):
        time.sleep(0.05)
    assert h.phase == "steady" and h._recorder._live.stored > 100, "the run never stored steady samples"
    Path(f"/proc/{h._proc.pid}/oom_score_adj").write_text("1000")
    hog = subprocess.Popen([sys.executable, "-c", HOG, str(h._cap.path / "cgroup.procs"), str(h._proc.pid)])
    res = h.wait(120)
    hog.wait(30)
    assert res["status"] == "oom_killed", (res["status"], res["error"])
    assert res["memory"]["oom_killed"] is True and res["memory"]["oom_kill_count"] >= 1
    assert res["error"].startswith("the worker was OOM-killed: it needed more than the 256 MB memory limit")
    lat = Store(db_path).latency(h.run_id)
    assert len(lat) == res["iterations_total"] > 100  # every sample received before the kill is stored
    assert (lat["phase"] == "steady").sum() > 100 and res["latency_ms"]["n"] == (lat["phase"] == "steady").sum()


def test_rlimit_as_fallback(db_path, monkeypatch):
    monkeypatch.setenv("EDGEPROF_MEMORY_MECHANISM", "rlimit_as")
    h, res = _run(db_path, model="digits-cnn", runtime="onnx", memory_limit_mb=60)
    assert res["status"] == "failed" and res["memory"]["mechanism"] == "rlimit_as"
    assert res["error"].startswith("out of memory during ") and "under the 60 MB RLIMIT_AS limit" in res["error"]
    assert "numpy" not in res["error"].lower() and "import" not in res["error"].lower()  # that text is in the details
    assert res["error_detail"]
    h, res = _run(db_path, model="digits-cnn", runtime="onnx", memory_limit_mb=4096)
    assert res["status"] == "ok", res["error"]
    assert res["memory"]["mechanism"] == "rlimit_as"
    assert "address-space" in res["memory"]["mechanism_note"]


@pytest.mark.parametrize("phase", ["load", "first", "warmup", "steady"])
def test_stop_in_each_phase(db_path, phase):
    cfg = RunConfig(model="efficientnet-lite0" if phase in ("load", "first") else "digits-cnn", runtime="onnx",
                    warmup=100000 if phase == "warmup" else "auto", duration_s=60)
    h = start_run(cfg, db_path)
    deadline = time.monotonic() + 60
    target = {"load": "preparing", "first": "first"}.get(phase, phase)
    while time.monotonic() < deadline and h.phase != target and not h.finished:
        if phase == "load" and h.status == "running":
            break
        time.sleep(0.005)
    h.stop()
    res = h.wait(30)
    assert res["status"] == "stopped", (phase, res)
    assert Store(db_path).get_run(h.run_id)["status"] == "stopped"


def test_worker_sigkill_is_recorded_as_crashed(db_path):
    h = start_run(RunConfig(model="digits-cnn", runtime="onnx", duration_s=30), db_path)
    deadline = time.monotonic() + 30
    while h.phase != "steady" and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    os.kill(h._proc.pid, signal.SIGKILL)
    res = h.wait(30)
    assert res["status"] == "crashed" and "SIGKILL" in res["error"]
    stored = Store(db_path).latency(h.run_id)
    assert len(stored) > 0, "samples before the crash must be kept"


def test_cpu_contention_is_flagged(db_path, monkeypatch):
    """Busy loops on every core during a run: the summary says other processes competed with the model. CPU priority
    off: with it the worker's weight keeps the busy loops below the flag's threshold on some runs, and what is tested
    here is the flag (the priority has tests/test_priority.py and bench/bench_observer.py)."""
    monkeypatch.setenv("EDGEPROF_CPU_PRIORITY", "off")
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.5)
        _, res = _run(db_path, model="digits-cnn", threads=2, duration_s=2.0, iterations=200)
    finally:
        for p in hogs:
            p.kill()
            p.wait()
    assert res["status"] == "ok", res["error"]
    assert "cpu_contention" in res["flag_codes"], res["cpu"]
    assert res["cpu"]["others_mean_pct"] >= 30 and res["cpu"]["cores"] == os.cpu_count()
    assert Store(db_path).get_run(res["run_id"])["flags"] == res["flags"]


def test_long_run_keeps_only_a_window_in_memory_and_summarizes_every_sample(db_path, monkeypatch):
    """Stored samples beyond the live window leave the server's memory; the summary reads them back, so it still
    covers every sample, and a late snapshot still gets a contiguous tail."""
    from edgeprof.run import recorder

    monkeypatch.setattr(recorder, "SNAPSHOT_MAX", 500)
    monkeypatch.setattr(recorder, "FLUSH_INTERVAL_S", 0.1)
    h, res = _run(db_path, model="digits-cnn", threads=1, duration_s=1.5, iterations=2000)
    assert res["status"] == "ok", res["error"]
    live = h._recorder._live
    assert live.base > 0 and len(live.t_ns) <= 2 * 500, (live.base, len(live.t_ns))
    t_ns, lat_ns, code = Store(db_path).latency_arrays(h.run_id)
    assert res["iterations_total"] == len(t_ns) == live.n
    steady = lat_ns[code == PHASE_CODES["steady"]] / 1e6
    assert res["latency_ms"]["n"] == len(steady)
    assert res["latency_ms"]["p50"] == pytest.approx(float(np.median(steady)))
    snap = h.snapshot(0)
    assert snap["seq"].start >= live.base and snap["seq"].stop == live.n and len(snap["seq"]) <= 500
    assert (snap["t_ns"] == t_ns[snap["seq"].start:]).all() and (snap["latency_ns"] == lat_ns[snap["seq"].start:]).all()


def test_timeout(db_path):
    h, res = _run(db_path, model="digits-cnn", runtime="onnx", duration_s=60, iterations=None, timeout_s=3)
    assert res["status"] == "timed_out"


def test_second_start_is_refused_while_busy(db_path):
    h = start_run(RunConfig(model="digits-cnn", runtime="onnx", duration_s=5), db_path)
    try:
        with pytest.raises(DeviceBusy, match="busy"):
            start_run(RunConfig(model="digits-cnn", runtime="onnx", duration_s=1), db_path)
    finally:
        h.stop()
        h.wait(30)


READER = """
import json, pathlib, sys, time
from edgeprof.store import Store
db, ready, stop = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
errors, reads = [], 0
store = Store(db)
ready.touch()
while not stop.exists():
    try:
        store.list_runs()
        reads += 1
    except Exception as exc:
        errors.append(repr(exc))
    time.sleep(0.05)
print(json.dumps({"reads": reads, "errors": errors}))
"""


def test_concurrent_reader_during_a_run(db_path, tmp_path):
    """Another process (a plain subprocess: multiprocessing spawn would re-run whatever AppTest left as __main__)
    reads the database all through a run: it starts reading before the run starts and stops after it ended, so a
    slow start of the reader on a loaded machine cannot leave the run unobserved. One worker thread: the worker has CPU
    priority, and on every core it would leave the reader almost nothing (8 reads in a 5-s run here)."""
    Store(db_path)
    ready, stop = tmp_path / "ready", tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(db_path), str(ready), str(stop)],
                              stdout=subprocess.PIPE, text=True, env=cli_env(), cwd=ROOT)
    deadline = time.monotonic() + 60
    while not ready.exists() and reader.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), "the reader did not start"
    h, res = _run(db_path, model="digits-cnn", runtime="onnx", duration_s=3, iterations=None, threads=1)  # a core left
    stop.touch()
    out, _ = reader.communicate(timeout=60)
    doc = json.loads(out)
    assert res["status"] == "ok"
    assert doc["reads"] > 10 and doc["errors"] == []
    assert len(Store(db_path).latency(h.run_id)) == res["iterations_total"]


# --- the CLI ------------------------------------------------------------------------------------------------------

def cli(*args, **env):
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, timeout=300,
                          env=cli_env(**env), cwd=ROOT)


def test_cli_run_json(db_path):
    r = cli("run", "--model", "digits-cnn", "--duration", "1", "--db", str(db_path), "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    for key in ("run_id", "status", "error", "load_ms", "first_inference_ms", "warmup_ms", "warmup_iterations",
                "latency_ms", "memory", "cpu", "runtime", "flags"):
        assert key in doc
    for key in ("p50", "p90", "p95", "p99", "mean", "std", "cov", "n", "median_ci_low", "median_ci_high"):
        assert key in doc["latency_ms"]
    for key in ("requested_mb", "mechanism", "peak_charged_mb", "peak_rss_mb", "oom_killed"):
        assert key in doc["memory"]
    r = cli("show", doc["run_id"], "--db", str(db_path), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["run_id"] == doc["run_id"]
    r = cli("runs", "--db", str(db_path), "--json")
    assert [x["run_id"] for x in json.loads(r.stdout)] == [doc["run_id"]]
    header, rule, row = cli("runs", "--db", str(db_path)).stdout.splitlines()
    assert header.split()[:3] == ["run_id", "started", "(UTC)"] and set(rule) == {"-", " "}
    assert row.startswith(doc["run_id"]) and "NaN" not in row and "None" not in row
    assert re.search(r" \d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", row)  # to the second, no microseconds


@requires_cgroup
def test_cli_oom_exit_code_3(db_path):
    r = cli("run", "--model", "efficientnet-lite0", "--memory-limit", "48", "--iterations", "20", "--db", str(db_path),
            "--json", "--quiet")
    assert r.returncode == 3, r.stderr
    assert json.loads(r.stdout)["status"] == "oom_killed"
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args,code,needle", [
    (["--model", "nope-model"], 2, "not a bundled model"),
    (["--model", "/no/such/file.onnx"], 2, "does not exist"),
    (["--model", "digits-cnn", "--threads", "-1"], 2, "threads"),
    (["--model", "digits-cnn", "--threads", "two"], 2, "threads"),
    (["--model", "digits-cnn", "--memory-limit", "-5"], 2, "memory limit"),
    (["--model", "digits-cnn", "--duration", "abc"], 2, "duration"),
    (["--model", "digits-cnn", "--precision", "int4"], 2, "precision"),
    (["--model", "digits-cnn", "--warmup", "x"], 2, "warm-up"),
    (["--model", "digits-cnn", "--duration", "30", "--timeout", "20"], 2, "would always time out"),
    (["--model", "digits-cnn", "--timeout", "5"], 2, "than the 10 s of steady state"),
])
def test_cli_bad_flags(db_path, args, code, needle):
    r = cli("run", *args, "--db", str(db_path))
    assert r.returncode == code, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_cli_bad_model_files_are_recorded_as_failed(tmp_path, db_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    text = tmp_path / "text.onnx"
    text.write_text("this is not a model\n")
    good = (ROOT / "models/digits-cnn/digits-cnn-fp32.onnx").read_bytes()
    trunc = tmp_path / "trunc.onnx"
    trunc.write_bytes(good[: len(good) // 3])
    for path, needle in ((empty, "empty"), (text, "text"), (trunc, "truncated")):
        r = cli("run", "--model", str(path), "--iterations", "5", "--db", str(db_path), "--json", "--quiet")
        assert r.returncode == 3, r.stderr
        assert needle in json.loads(r.stdout)["error"] and "Traceback" not in r.stderr
    runs = Store(db_path).list_runs()
    assert len(runs) == 3 and set(runs["status"]) == {"failed"}


def test_cli_unwritable_db(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    r = cli("run", "--model", "digits-cnn", "--iterations", "5", "--db", "/proc/edgeprof.duckdb")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "--db" in r.stderr


def test_cli_help_everywhere():
    """Every subcommand the parser has (walked, not listed by hand) has a help line and a description, every option
    says what it does, and `--help` prints them under the program's name."""
    import argparse

    from edgeprof.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    assert set(sub.choices) >= {"run", "runs", "show", "devices", "export", "import", "models", "quantize", "fidelity",
                                "study", "studies", "report"}
    for name, p in sub.choices.items():
        assert helps.get(name), f"`{name}` has no help line in the command list"
        assert p.description, f"`{name} --help` has no description"
        for action in p._actions:
            if action.dest != "help" and action.option_strings:
                assert action.help, f"`{name} {action.option_strings[0]}` has no help"
        r = cli(name, "--help")
        assert r.returncode == 0 and r.stdout.startswith(f"usage: python -m edgeprof {name}"), name
        assert p.description.split()[0] in r.stdout
        assert "%%" not in r.stdout and "%(" not in r.stdout, f"`{name} --help` shows a format escape as written"


def test_cli_devices_json():
    r = cli("devices", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    names = {x["name"] for x in doc["runtimes"]}
    assert {"onnxruntime", "litert", "tflite-runtime"} <= names
    assert doc["memory_cap"]["kind"] in ("cgroup1", "cgroup2", "rlimit_as")
    nvml = [t for t in doc["telemetry"] if t["name"] == "nvml"]
    assert not nvml or nvml[0]["available"] or nvml[0]["reason"]


def test_cli_run_of_one_second_says_nothing_about_telemetry_coverage(db_path):
    """Every source samples through a short run, so no 'figures cover' line (a fresh user saw three, in varying
    order, for a 1-s run)."""
    r = cli("run", "--model", "digits-cnn", "--duration", "1", "--db", str(db_path))
    assert r.returncode == 0, r.stderr
    assert "figures cover" not in r.stdout, r.stdout
