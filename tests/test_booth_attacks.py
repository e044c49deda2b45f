"""Issue 22's attacks, each in the form the attacker used: a second browser context for the visitor, a server started
with an empty address, hostile bundles, a full disk on a small tmpfs, a read-only data directory. Each test failed on
the code before the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT, cli_env

from edgeprof.run.runner import oom_reason
from edgeprof.store import Store


def _cli(*args, home, **kw):
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, timeout=300,
                          env=cli_env(EDGEPROF_HOME=home), cwd=ROOT, **kw)


# -- 5: an OOM kill without a cap -------------------------------------------------------------------------------------

def test_oom_kill_without_a_cap_says_the_kernels_reason():
    """The worker's cgroup had no limit and the kernel killed it anyway: the reason used to raise TypeError (None:g)."""
    device = oom_reason({"requested_mb": None, "mechanism": "none", "oom_kill_count": 1})
    assert device.startswith("the kernel OOM-killed the worker: this run had no memory limit and the device ran out")
    outer = oom_reason({"requested_mb": None, "mechanism": "none", "oom_kill_count": 1, "enclosing_limit_mb": 512.0})
    assert "the 512 MB limit of the cgroup that edgeprof runs in was reached" in outer
    assert "64 MB memory limit" in oom_reason({"requested_mb": 64.0, "mechanism": "cgroup1", "oom_kill_count": 1})


# -- 8 and the minor ones: a full disk, a read-only data directory -----------------------------------------------------

@pytest.fixture
def tiny_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(fs, leave: int = 8192) -> None:
    st = os.statvfs(fs)
    (fs / "ballast").write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


@pytest.mark.slow
def test_a_run_whose_samples_were_not_stored_is_not_ok(tiny_fs, edgeprof_home):
    """On a full disk the run measures, its samples cannot be written: the stored row, `runs` and `show` say so."""
    db = tiny_fs / "runs.duckdb"
    first = _cli("run", "--model", "digits-cnn", "--iterations", "50", "--db", str(db), "--json", "--quiet",
                 home=edgeprof_home)
    assert first.returncode == 0, first.stderr
    _fill(tiny_fs)
    r = _cli("run", "--model", "digits-cnn", "--duration", "6", "--db", str(db), "--json", "--quiet",
             home=edgeprof_home)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "the disk holding" in r.stderr and "is full" in r.stderr, r.stderr
    run_id = json.loads(r.stdout)["run_id"]
    (tiny_fs / "ballast").unlink()
    row = Store(db).get_run(run_id)
    assert row["status"] != "ok", row["status"]
    runs = _cli("runs", "--db", str(db), home=edgeprof_home)
    line = next(x for x in runs.stdout.splitlines() if run_id[:8] in x or run_id in x)
    assert " ok " not in f" {line} "
    show = _cli("show", run_id, "--db", str(db), home=edgeprof_home)
    assert "could not be stored" in show.stdout or "interrupted" in show.stdout, show.stdout


def test_read_only_data_directory_says_so(tmp_path, edgeprof_home):
    """A data directory on a read-only file system: one sentence about it, not "unexpected OSError ... device.lock"."""
    ro = tmp_path / "ro"
    ro.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(ro)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here (needs root): {r.stderr.decode().strip()}")
    try:
        out = _cli("run", "--model", "digits-cnn", "--iterations", "5", "--db", str(tmp_path / "runs.duckdb"),
                   home=ro)
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
    assert out.returncode != 0
    assert "read-only file system" in out.stderr and "unexpected" not in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_export_on_a_full_disk_says_the_disk_is_full(tiny_fs, edgeprof_home, tmp_path):
    db = tmp_path / "runs.duckdb"
    made = _cli("run", "--model", "digits-cnn", "--iterations", "50", "--db", str(db), "--quiet", home=edgeprof_home)
    assert made.returncode == 0, made.stderr
    _fill(tiny_fs, leave=0)
    r = _cli("export", "--db", str(db), "--out", str(tiny_fs / "out"), home=edgeprof_home)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "cannot read the database" not in r.stderr and "is full" in r.stderr, r.stderr
