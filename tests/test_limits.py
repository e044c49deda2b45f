"""Which memory-cap mechanism a device gets, on fake cgroup trees (v2 delegated, v1, Raspberry Pi OS with the
controller disabled), and the cgroup lifecycle on this machine's real hierarchy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import ROOT, requires_cgroup

from edgeprof.worker import limits

RPI = ROOT / "tests" / "data" / "telemetry" / "sysfs" / "rpi4" / "proc"


def _enabled_cgroups(tmp: Path) -> Path:
    p = tmp / "cgroups"
    p.write_text("#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t0\t1\t1\n")
    return p


def test_cgroup_v2_with_delegated_memory(tmp_path):
    root = tmp_path / "cg"
    (root / "user.slice").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    (root / "user.slice" / "cgroup.subtree_control").write_text("memory pids\n")
    own = tmp_path / "self_cgroup"
    own.write_text("0::/user.slice\n")
    mech = limits.detect(root, own, _enabled_cgroups(tmp_path), tmp_path / "none")
    assert mech.kind == "cgroup2" and mech.parent == str(root / "user.slice")


def test_cgroup_v2_without_delegation_falls_back_and_says_why(tmp_path):
    root = tmp_path / "cg"
    (root / "user.slice").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    (root / "user.slice" / "cgroup.subtree_control").write_text("pids\n")
    own = tmp_path / "self_cgroup"
    own.write_text("0::/user.slice\n")
    mech = limits.detect(root, own, _enabled_cgroups(tmp_path), tmp_path / "none")
    assert mech.kind == "rlimit_as" and "does not delegate memory" in mech.reason


def test_cgroup_v1(tmp_path):
    root = tmp_path / "cg"
    (root / "memory" / "docker" / "abc").mkdir(parents=True)
    own = tmp_path / "self_cgroup"
    own.write_text("4:memory:/docker/abc\n0::/\n")
    mech = limits.detect(root, own, _enabled_cgroups(tmp_path), tmp_path / "none")
    assert mech.kind == "cgroup1" and mech.parent.endswith("memory/docker/abc")


def test_raspberry_pi_os_controller_disabled_names_the_fix(tmp_path):
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io pids\n")  # Bookworm: unified, no memory
    own = tmp_path / "self_cgroup"
    own.write_text("0::/user.slice\n")
    mech = limits.detect(root, own, RPI / "cgroups", RPI / "cmdline")
    assert mech.kind == "rlimit_as"
    assert "cgroup_enable=memory" in mech.reason and "cmdline.txt" in mech.reason


def test_forced_rlimit(monkeypatch):
    monkeypatch.setenv("EDGEPROF_MEMORY_MECHANISM", "rlimit_as")
    assert limits.detect().kind == "rlimit_as"


def test_no_cap_requested_without_a_cgroup(monkeypatch):
    monkeypatch.setenv("EDGEPROF_MEMORY_MECHANISM", "rlimit_as")
    cap = limits.create(None, "x")
    assert cap.kind == "none" and cap.launcher() == [] and cap.rlimit_bytes() is None and cap.path is None


@requires_cgroup
def test_no_cap_requested_still_accounts_the_footprint():
    """No limit, but a cgroup of its own (with no limit): the run's charged memory is measured all the same."""
    cap = limits.create(None, "nolimit")
    try:
        assert cap.kind == "none" and cap.rlimit_bytes() is None and cap.path.is_dir()
        assert cap.launcher()[:2] == ["/bin/sh", "-c"] and "no memory limit" in cap.mechanism.reason
        limit = cap.path / ("memory.limit_in_bytes" if cap.mechanism.kind == "cgroup1" else "memory.max")
        assert limit.read_text().strip() in ("max", str(2**63 - 4096), str(2**63 - 1)) or int(limit.read_text()) > 2**40
        report = cap.report()
        assert report["mechanism"] == "none" and report["requested_mb"] is None and report["oom_kill_count"] == 0
    finally:
        cap.remove()
    assert not cap.path.exists()


@requires_cgroup
def test_cgroup_created_limited_and_removed():
    cap = limits.create(64, "testcap")
    try:
        assert cap.path.is_dir() and cap.path.name == f"{limits.PREFIX}{os.getpid()}-testcap"
        limit = cap.path / ("memory.limit_in_bytes" if cap.kind == "cgroup1" else "memory.max")
        assert int(limit.read_text()) == 64 * 2**20
        assert cap.launcher()[:2] == ["/bin/sh", "-c"]
    finally:
        cap.remove()
    assert not cap.path.exists()


@requires_cgroup
def test_sweep_removes_cgroups_of_dead_owners():
    mech = limits.detect()
    dead = Path(mech.parent) / f"{limits.PREFIX}999999999-orphan"
    dead.mkdir()
    mine = limits.create(64, "alive")
    try:
        removed = limits.sweep_orphans(mech)
        assert dead.name in removed and not dead.exists()
        assert mine.path.exists(), "a live owner's cgroup must stay"
    finally:
        mine.remove()
        if dead.exists():
            dead.rmdir()


def test_rlimit_cap_label(monkeypatch):
    monkeypatch.setenv("EDGEPROF_MEMORY_MECHANISM", "rlimit_as")
    cap = limits.create(300, "r")
    assert cap.kind == "rlimit_as" and cap.rlimit_bytes() == 300 * 2**20 and cap.launcher() == []
    assert "address-space" in cap.report()["reason"]


@pytest.mark.parametrize("text", ["", "oom_kill 0\n"])
def test_report_without_cgroup_files_is_none(tmp_path, text):
    cap = limits.MemoryCap(64, limits.Mechanism("cgroup1", str(tmp_path), "test"), tmp_path)
    (tmp_path / "memory.oom_control").write_text(text)
    rep = cap.report()
    assert rep["peak_charged_mb"] is None and rep["oom_kill_count"] == 0
