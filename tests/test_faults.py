"""Faults: a hung worker, the CLI killed mid-run, a disk that fills up. Nothing finished may be lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, cli_env, requires_cgroup

from edgeprof.config import RunConfig
from edgeprof.run import start_run
from edgeprof.store import Store
from edgeprof.worker import limits

pytestmark = pytest.mark.slow


def _cli(*args, home, **kw):
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, timeout=300,
                          env=cli_env(EDGEPROF_HOME=home), cwd=ROOT, **kw)


def test_hung_worker_is_timed_out(db_path):
    h = start_run(RunConfig(model="digits-cnn", runtime="onnx", duration_s=60, timeout_s=4), db_path)
    deadline = time.monotonic() + 30
    while h.phase != "steady" and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(h._proc.pid, signal.SIGSTOP)  # a worker that hangs: alive, silent
    res = h.wait(60)
    assert res["status"] == "timed_out", res
    assert Store(db_path).get_run(h.run_id)["status"] == "timed_out"
    assert len(Store(db_path).latency(h.run_id)) > 0


def _worker_pids(cli_pid: int) -> list[int]:
    mech = limits.detect()
    pids = []
    for cg in Path(mech.parent).glob(f"{limits.PREFIX}{cli_pid}-*"):
        pids += [int(p) for p in (cg / "cgroup.procs").read_text().split()]
    return pids


def _kill_parent_of(proc, workers: list[int]) -> None:
    """SIGKILL the process that started ``workers``; they must die with it (PR_SET_PDEATHSIG), not keep the CPU busy."""
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.1)
    assert not any(Path(f"/proc/{p}").exists() for p in workers), "orphan worker left running"


@requires_cgroup
def test_cli_killed_mid_run_next_start_recovers(tmp_path, edgeprof_home):
    db = tmp_path / "runs.duckdb"
    ok = _cli("run", "--model", "digits-cnn", "--duration", "0.5", "--db", str(db), "--json", "--quiet",
              home=edgeprof_home)
    assert ok.returncode == 0, ok.stderr
    finished = json.loads(ok.stdout)["run_id"]

    proc = subprocess.Popen([sys.executable, "-m", "edgeprof", "run", "--model", "digits-cnn", "--duration", "60",
                             "--memory-limit", "256", "--db", str(db), "--quiet"], env=cli_env(EDGEPROF_HOME=edgeprof_home),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline:
        workers = _worker_pids(proc.pid)
        runs = Store(db).list_runs()
        if workers and (runs["status"] == "running").any() and len(Store(db).latency(
                runs[runs["status"] == "running"]["run_id"].iloc[0])) > 0:
            break
        time.sleep(0.2)
    assert workers, "the worker never started"
    _kill_parent_of(proc, workers)

    # the next start: marks the run interrupted, removes the cgroup, keeps every finished run
    r = _cli("runs", "--db", str(db), "--json", home=edgeprof_home)
    assert r.returncode == 0, r.stderr
    runs = {x["run_id"]: x["status"] for x in json.loads(r.stdout)}
    assert runs[finished] == "ok"
    assert sorted(runs.values()) == ["interrupted", "ok"]
    assert not list(Path(limits.detect().parent).glob(f"{limits.PREFIX}{proc.pid}-*")), "cgroup left behind"
    assert len(Store(db).latency(finished)) > 0


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_during_a_run(small_fs, edgeprof_home):
    db = small_fs / "runs.duckdb"
    ok = _cli("run", "--model", "digits-cnn", "--iterations", "50", "--db", str(db), "--json", "--quiet",
              home=edgeprof_home)
    assert ok.returncode == 0, ok.stderr
    finished = json.loads(ok.stdout)["run_id"]
    n_finished = len(Store(db).latency(finished))
    # fill most of the filesystem, then run something that writes far more than what is left
    free = os.statvfs(small_fs).f_bavail * os.statvfs(small_fs).f_frsize
    (small_fs / "ballast").write_bytes(os.urandom(max(0, free - 8192)))
    r = _cli("run", "--model", "digits-cnn", "--duration", "8", "--db", str(db), "--json", "--quiet",
             home=edgeprof_home)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert "space" in r.stderr.lower() or "disk" in r.stderr.lower() or "full" in r.stderr.lower(), r.stderr
    (small_fs / "ballast").unlink()
    store = Store(db)
    run = store.get_run(finished)
    assert run["status"] == "ok" and len(store.latency(finished)) == n_finished


def _server_of(url: str):
    """The `streamlit run` child process serving ``url`` (started by test_browser.streamlit_server)."""
    import psutil

    port = url.rsplit(":", 1)[1]
    for child in psutil.Process().children():
        if port in child.cmdline():
            return child
    raise AssertionError(f"no server process for {url}")


@requires_cgroup
@pytest.mark.browser
def test_app_killed_mid_run_next_start_recovers(tmp_path, monkeypatch):
    """The dashboard's server process SIGKILLed while a capped run is live: the worker dies with it, and the next
    server marks the run interrupted, removes its cgroup and still has every finished run (shown in the browser)."""
    from test_browser import CHROMIUM, LIVE_STATE_JS, chromium_page, prepare_run, select_option, streamlit_server

    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Chromium at {CHROMIUM}")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("EDGEPROF_HOME", str(home))
    db = tmp_path / "runs.duckdb"
    finished = start_run(RunConfig(model="digits-cnn", duration_s=0.3, iterations=50), db).wait(60)
    assert finished["status"] == "ok", finished

    with chromium_page() as page:
        with streamlit_server(home, db) as url:
            server = _server_of(url)
            prepare_run(page, url, 60)
            select_option(page, "Memory limit (MB)", "256 MB")
            page.get_by_role("button", name="Start run").click()
            page.wait_for_function(f"(({LIVE_STATE_JS})() || {{}}).seq >= 1000", timeout=30_000)
            time.sleep(6)  # past the first 5-s flush: some of the live run's samples are on disk when it dies
            cgroups = list(Path(limits.detect().parent).glob(f"{limits.PREFIX}{server.pid}-*"))
            assert len(cgroups) == 1, cgroups
            workers = [int(p) for p in (cgroups[0] / "cgroup.procs").read_text().split()]
            assert workers, "the capped worker is not in its cgroup"
            live = page.evaluate(LIVE_STATE_JS.replace("return e ?", "return e ? e.dataset.run : null; return e ?"))
            _kill_parent_of(server, workers)

        with streamlit_server(home, db) as url:  # the next start
            page.goto(f"{url}/Runs?run_id={live}")
            page.get_by_text("2 of 2 runs").wait_for()
            page.get_by_text("was interrupted").first.wait_for()
            assert page.locator('[data-testid="stException"]').count() == 0
            assert "Traceback" not in page.locator("body").inner_text()

    store = Store(db)
    runs = dict(zip(store.list_runs()["run_id"], store.list_runs()["status"], strict=True))
    assert runs == {finished["run_id"]: "ok", live: "interrupted"}
    assert not cgroups[0].exists(), "cgroup left behind"
    assert len(store.latency(finished["run_id"])) > 0
    assert len(store.latency(live)) > 0, "the samples flushed before the kill were lost"
