"""The worker's CPU priority: which mechanism a device gets (fake cgroup trees for cgroup v2, which this machine
lacks), the real cgroup v1 cpu hierarchy and niceness here, what a run records and prints, and that it works: a
worker with priority keeps its cores against busy processes, measured side by side with one without."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import ROOT, cli_env

from edgeprof.config import RunConfig
from edgeprof.run import start_run
from edgeprof.worker import limits, priority


def _v1_cpu_writable() -> bool:
    return priority.detect(limits.Mechanism("none", None, "")).kind == "cgroup1"


requires_cpu_cgroup = pytest.mark.skipif(not _v1_cpu_writable(), reason="needs a writable cgroup v1 cpu hierarchy "
                                                                         "(root on a cgroup v1 machine)")


def _own(tmp: Path, text: str) -> Path:
    p = tmp / "self_cgroup"
    p.write_text(text)
    return p


# -- which mechanism ------------------------------------------------------------------------------------------------

def test_cgroup_v2_weight_goes_into_the_memory_cgroup(tmp_path):
    """Made-up files in the layout of a delegated cgroup v2 subtree (``cgroup.controllers`` and
    ``cgroup.subtree_control`` as the kernel writes them): the weight is written in the run's memory cgroup and the
    parent gets +cpu."""
    parent = tmp_path / "cg" / "user.slice"
    parent.mkdir(parents=True)
    (parent / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (parent / "cgroup.subtree_control").write_text("memory pids\n")
    mem = limits.Mechanism("cgroup2", str(parent), "test")
    mech = priority.detect(mem, tmp_path / "cg", _own(tmp_path, "0::/user.slice\n"))
    assert mech.kind == "cgroup2" and mech.parent == str(parent)
    run = parent / "edgeprof-1-r"
    run.mkdir()
    prio = priority.create("r", limits.MemoryCap(64, mem, run), mechanism=mech)
    weight = priority.v2_weight(priority.WEIGHT_FACTOR)
    assert (run / "cpu.weight").read_text() == str(weight)
    assert (parent / "cgroup.subtree_control").read_text() == "+cpu"
    assert prio.procs_file() is None, "cgroup v2: the worker joins one cgroup, the memory one"
    assert prio.report()["mechanism"] == f"cgroup2 cpu.weight={weight} (default 100)"


def test_cgroup_v2_without_cpu_controller_falls_back_to_nice_and_says_why(tmp_path):
    parent = tmp_path / "cg" / "user.slice"
    parent.mkdir(parents=True)
    (parent / "cgroup.controllers").write_text("memory pids\n")
    mech = priority.detect(limits.Mechanism("cgroup2", str(parent), "test"), tmp_path / "cg",
                           _own(tmp_path, "0::/user.slice\n"))
    assert mech.kind == "nice" and "has no cpu controller" in mech.reason


def test_cgroup_v1_cpu_hierarchy_co_mounted_with_cpuacct(tmp_path):
    """Jetson (L4T) and older Raspberry Pi OS mount ``cpu,cpuacct`` together."""
    base = tmp_path / "cg" / "cpu,cpuacct" / "user"
    base.mkdir(parents=True)
    (tmp_path / "cg" / "cpu,cpuacct" / "cpu.shares").write_text("1024\n")
    mech = priority.detect(limits.Mechanism("cgroup1", "/x", "test"), tmp_path / "cg",
                           _own(tmp_path, "3:cpu,cpuacct:/user\n4:memory:/user\n"))
    assert mech.kind == "cgroup1" and mech.parent == str(base)


def test_forced_by_the_environment(monkeypatch):
    monkeypatch.setenv("EDGEPROF_CPU_PRIORITY", "nice")
    assert priority.detect().kind == "nice"
    monkeypatch.setenv("EDGEPROF_CPU_PRIORITY", "off")
    off = priority.create("x", None)
    assert off.report() == {"unavailable": "turned off by EDGEPROF_CPU_PRIORITY=off"}


def test_weight_factor_maps_to_each_mechanism(monkeypatch):
    assert (priority.v1_shares(20), priority.v2_weight(20), priority.worker_nice(20)) == (20480, 2000, -13)
    assert (priority.v1_shares(1000), priority.v2_weight(1000), priority.worker_nice(1000)) == (262144, 10000, -20)
    assert priority.worker_nice(1) == 0
    monkeypatch.setenv("EDGEPROF_CPU_PRIORITY", "50")
    assert priority.weight_factor() == 50 and priority.detect().kind != "off"
    monkeypatch.setenv("EDGEPROF_CPU_PRIORITY", "")
    assert priority.weight_factor() == priority.WEIGHT_FACTOR


def test_described_in_words():
    assert priority.describe({"mechanism": "cgroup1 cpu.shares=102400 (default 1024)"}) == \
        "above other processes (cgroup1 cpu.shares=102400 (default 1024))"
    assert priority.describe({"unavailable": "no"}).startswith("normal, none given: no")
    assert "not recorded" in priority.describe(None)


# -- this machine's cgroup v1 cpu hierarchy --------------------------------------------------------------------------

@requires_cpu_cgroup
def test_cpu_cgroup_joined_before_exec_and_removed():
    prio = priority.create("lifecycle", None)
    try:
        assert prio.mechanism.kind == "cgroup1" and prio.path.name == f"{limits.PREFIX}{os.getpid()}-lifecycle"
        assert int((prio.path / "cpu.shares").read_text()) == 1024 * priority.WEIGHT_FACTOR
        proc = subprocess.Popen([*limits.launcher(prio.procs_file()), "sleep", "30"])
        try:
            deadline = time.monotonic() + 5
            while Path(f"/proc/{proc.pid}/comm").read_text().strip() != "sleep":
                assert time.monotonic() < deadline, "the launcher never exec'd the command"
                time.sleep(0.02)
            assert str(proc.pid) in (prio.path / "cgroup.procs").read_text().split(), "the command is not inside"
        finally:
            proc.kill()
            proc.wait()
    finally:
        prio.remove()
    assert not prio.path.exists()


@requires_cpu_cgroup
def test_this_process_joins_whole_and_is_moved_out_not_killed():
    """The runner's whole process joins the run's cpu cgroup, threads started inside included; removing it must move
    them all back (cgroup v1 lists this process in cgroup.procs then, and removal kills what it lists)."""
    prio = priority.create("threads", None)
    started, release = threading.Event(), threading.Event()
    prio.join_process()
    tasks = set((prio.path / "tasks").read_text().split())
    assert set(os.listdir("/proc/self/task")) <= tasks  # every thread, not only the caller

    def member():  # started inside: inherits the group
        started.set()
        release.wait(10)

    t = threading.Thread(target=member)
    t.start()
    try:
        assert started.wait(5)
        assert str(t.native_id) in (prio.path / "tasks").read_text().split()
        prio.remove()
        assert not prio.path.exists()
    finally:
        release.set()
        t.join()


@requires_cpu_cgroup
def test_the_sampler_keeps_its_rate_beside_a_busy_python_thread(db_path):
    """Every thread of a process shares one GIL: with only the runner's threads in the group, a busy Python thread
    left outside (the app server's, rendering pages) was descheduled while holding the GIL and the sampler stalled
    behind it. Counted side by side in one process: telemetry ticks with priority on are at least half of those
    with priority off (13 of 71 before the whole process joined, 63 of 71 after)."""
    from edgeprof.config import RunConfig
    from edgeprof.run import start_run
    from edgeprof.store import Store

    stop = threading.Event()

    def busy():
        while not stop.is_set():
            sum(range(1000))

    ticks = {}
    hog = threading.Thread(target=busy, daemon=True)
    hog.start()
    try:
        for setting in ("off", "20"):
            os.environ[priority.ENV] = setting
            t0 = time.monotonic()
            h = start_run(RunConfig(model="efficientnet-lite0", threads=os.cpu_count() or 2, duration_s=3.0), db_path)
            res = h.wait(120)
            assert res["status"] == "ok", res["error"]
            ticks[setting] = Store(db_path).telemetry(h.run_id)["t_ns"].nunique() / (time.monotonic() - t0)
    finally:
        os.environ.pop(priority.ENV, None)
        stop.set()
    assert ticks["20"] >= 0.5 * ticks["off"], ticks


@requires_cpu_cgroup
def test_sweep_removes_cpu_cgroups_of_dead_owners():
    mech = priority.detect()
    dead = Path(mech.parent) / f"{limits.PREFIX}999999999-orphan"
    dead.mkdir()
    mine = priority.create("alive", None)
    try:
        removed = priority.sweep_orphans(mech)
        assert dead.name in removed and not dead.exists()
        assert mine.path.exists(), "a live owner's cgroup must stay"
    finally:
        mine.remove()
        if dead.exists():
            dead.rmdir()


# -- real runs ------------------------------------------------------------------------------------------------------

def _worker_share(db, model="efficientnet-lite0", seconds=2.0) -> dict:
    res = start_run(RunConfig(model=model, precision="fp32", runtime="onnx", threads=2, duration_s=seconds,
                              memory_limit_mb=256), db).wait(120)
    assert res is not None and res["status"] == "ok", res
    return res


HOG = "import sys\nwhile True:\n    pass\n"


@pytest.mark.slow
@pytest.mark.parametrize("mode", [pytest.param("", marks=requires_cpu_cgroup, id="cgroup"), "nice"])
def test_priority_keeps_the_worker_on_its_cores_against_busy_processes(db_path, monkeypatch, mode):
    """Two busy processes (one per core) compete with a 2-thread run; the same run with priority turned off is the
    reference, measured side by side. Ratios of CPU shares, not times: robust on a shared machine."""
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(2)]
    try:
        monkeypatch.setenv("EDGEPROF_CPU_PRIORITY", "off")
        off = _worker_share(db_path)
        monkeypatch.setenv("EDGEPROF_CPU_PRIORITY", mode)
        on = _worker_share(db_path)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert off["cpu_priority"] == {"unavailable": "turned off by EDGEPROF_CPU_PRIORITY=off"}
    expected = {"": "cgroup1 cpu.shares=", "nice": f"nice {priority.worker_nice(priority.WEIGHT_FACTOR)}"}[mode]
    assert expected in on["cpu_priority"]["mechanism"], on["cpu_priority"]
    w_off, w_on = off["cpu"]["worker_mean_pct"], on["cpu"]["worker_mean_pct"]
    assert w_on > 1.3 * w_off, f"worker CPU with priority {w_on:.0f}% vs without {w_off:.0f}%"
    assert on["cpu"]["others_mean_pct"] < off["cpu"]["others_mean_pct"]


@pytest.mark.slow
@requires_cpu_cgroup
def test_cli_run_records_and_prints_its_priority(tmp_path):
    db = tmp_path / "cli.duckdb"
    cmd = [sys.executable, "-m", "edgeprof", "run", "--model", "digits-cnn", "--iterations", "50", "--memory-limit",
           "128", "--db", str(db), "--quiet"]
    out = subprocess.run(cmd, cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (f"  CPU priority above other processes (cgroup1 cpu.shares={1024 * priority.WEIGHT_FACTOR}, default 1024)"
            in out.stdout.splitlines())
    res = json.loads(subprocess.run([*cmd[:3], "show", "--db", str(db), "--json",
                                     out.stdout.split()[1].rstrip(":")], cwd=ROOT, env=cli_env(),
                                    capture_output=True, text=True, timeout=60).stdout)
    assert res["summary"]["cpu_priority"]["kind"] == "cgroup1"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0,
                    reason="needs root and setpriv (util-linux) to take CAP_SYS_NICE away")
def test_without_cap_sys_nice_the_run_says_it_has_no_priority(tmp_path):
    """Niceness needs CAP_SYS_NICE to raise the worker: without it (setpriv drops it) the run still runs, records
    why it has no priority, and the CLI prints it."""
    cmd = ["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice", sys.executable, "-m", "edgeprof", "run",
           "--model", "digits-cnn", "--iterations", "50", "--db", str(tmp_path / "c.duckdb"), "--quiet"]
    out = subprocess.run(cmd, cwd=ROOT, env=cli_env(EDGEPROF_CPU_PRIORITY="nice"), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("  CPU priority"))
    assert line.startswith("  CPU priority normal, none given: raising the worker's priority needs CAP_SYS_NICE"), line
    assert "watch from another machine" in line


def test_devices_says_which_priority_a_run_gets():
    out = subprocess.run([sys.executable, "-m", "edgeprof", "devices"], cwd=ROOT, env=cli_env(), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    mech = priority.detect()
    assert f"cpu priority {mech.kind}: {mech.reason}" in out.stdout.splitlines()
