"""A run watched in a browser on the device itself (issue 24): what it gives up so that the browser can draw (one core,
a smaller CPU weight), and that the run records it where `show` and the pages read it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT, cli_env

from edgeprof.config import RunConfig
from edgeprof.run import start_run
from edgeprof.run.runner import watched_choice
from edgeprof.worker import priority


@pytest.mark.parametrize(("cores", "asked", "threads"), [(1, 1, 1), (2, 2, 1), (2, 1, 1), (4, 4, 3), (4, 2, 2)])
def test_watched_on_a_small_board_leaves_the_browser_a_core(cores, asked, threads):
    cfg, choice = watched_choice(RunConfig(model="digits-cnn", threads=asked, watched=True), cores=cores)
    assert cfg.threads == threads
    assert choice == {"local_viewer": True, "cores": cores, "threads": threads, "requested_threads": asked}


@pytest.mark.parametrize(("watched", "cores"), [(False, 2), (True, priority.WATCHED_MAX_CORES + 1)])
def test_nothing_changes_unwatched_or_on_a_bigger_board(watched, cores):
    cfg = RunConfig(model="digits-cnn", threads=2, watched=watched)
    assert watched_choice(cfg, cores=cores) == (cfg, None)


def test_watched_must_be_true_or_false():
    with pytest.raises(Exception, match="watched must be true or false"):
        RunConfig(model="digits-cnn", watched="yes")


def test_the_watched_factor_is_smaller_and_the_environment_still_wins(monkeypatch):
    monkeypatch.delenv(priority.ENV, raising=False)
    assert priority.weight_factor(watched=True) == priority.WATCHED_FACTOR < priority.weight_factor()
    monkeypatch.setenv(priority.ENV, "50")
    assert priority.weight_factor(watched=True) == 50


def test_describe_says_what_watching_cost():
    report = {"mechanism": "cgroup1 cpu.shares=4096 (default 1024)", "kind": "cgroup1",
              "watched": {"local_viewer": True, "cores": 2, "threads": 1, "requested_threads": 2, "factor": 4.0}}
    assert priority.describe(report) == (
        "above other processes (cgroup1 cpu.shares=4096 (default 1024)); watched in a browser on this 2-core device, "
        "so the worker ran 1 thread (asked 2) at 4x weight, leaving the browser a core to draw the live view; watch "
        "from another machine for the full board")
    assert priority.describe({k: v for k, v in report.items() if k != "watched"}) == \
        "above other processes (cgroup1 cpu.shares=4096 (default 1024))"


@pytest.mark.slow
def test_a_watched_run_records_its_choice_and_show_prints_it(tmp_path, monkeypatch):
    """A real run started as the Run page starts it for a browser on the device; `show` as a user types it."""
    monkeypatch.delenv(priority.ENV, raising=False)
    monkeypatch.setenv("EDGEPROF_HOME", str(tmp_path / "home"))
    db = tmp_path / "runs.duckdb"
    handle = start_run(RunConfig(model="digits-cnn", threads=64, iterations=50, duration_s=0.2, watched=True), db)
    res = handle.wait(120)
    assert res and res["status"] == "ok", res
    watched = res["cpu_priority"]["watched"]
    cores = watched["cores"]
    if cores > priority.WATCHED_MAX_CORES:
        pytest.skip(f"this machine has {cores} cores: a watched run changes nothing above "
                    f"{priority.WATCHED_MAX_CORES}")
    assert watched["threads"] == res["config"]["threads"] == max(1, cores - 1)
    assert watched["requested_threads"] == 64 and watched["factor"] == priority.WATCHED_FACTOR
    if res["cpu_priority"].get("kind") == "cgroup1":
        assert f"cpu.shares={1024 * priority.WATCHED_FACTOR} " in res["cpu_priority"]["mechanism"]
    out = subprocess.run([sys.executable, "-m", "edgeprof", "show", "--db", str(db), handle.run_id], cwd=ROOT,
                         env=cli_env(EDGEPROF_HOME=str(tmp_path / "home")), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert (f"watched in a browser on this {cores}-core device, so the worker ran {max(1, cores - 1)} thread"
            in out.stdout), out.stdout


@pytest.mark.parametrize("cores", [2, 8])
def test_the_run_page_says_what_a_run_started_here_gives_up(tmp_path, monkeypatch, cores):
    from streamlit.testing.v1 import AppTest

    from edgeprof.run import runner

    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    monkeypatch.setattr(runner, "device_cores", lambda: cores)
    at = AppTest.from_file(str(ROOT / "views" / "1_Run.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    (warning,) = [w.value for w in at.warning if "This browser runs on the device being measured" in w.value]
    said = ("On this 2-core device a run started here uses at most 1 thread and a 4x CPU weight, leaving this browser "
            "a core to draw the live chart.")
    assert (said in warning) == (cores == 2), warning
    # the Threads box keeps the user's 2, and says under it what the run will get
    captions = [c.value for c in at.caption]
    gets = ("Asks for 2 threads; watched on this 2-core device the run gets 1 thread (a core is left to draw this "
            "page).")
    assert (gets in captions) == (cores == 2), captions
    assert at.number_input(key="threads").value == 2
