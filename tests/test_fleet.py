"""The fleet against a real S3 API (moto's server mode on 127.0.0.1, started here) and a folder: two data directories
acting as two named devices, each with real runs of the bundled digits-cnn, push through the CLI, a repeated push that
sends nothing, a push stopped half-way and completed by the next, a push while the store is down, faults that each
get one sentence, and a third directory reading every device's runs with `runs --fleet`.

The S3 tests speak HTTP to 127.0.0.1 only: the endpoint comes from AWS_ENDPOINT_URL, credentials from the standard
variables, and botocore's EC2 metadata lookup is off."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, cli_env, s3_emulator, s3_env

pytestmark = pytest.mark.slow


def edgeprof(home: Path, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, timeout=300,
                       env=cli_env(EDGEPROF_HOME=home, **(env or {})), cwd=ROOT)
    if check:
        assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stderr[-3000:]}"
        assert "Traceback" not in r.stderr
    return r


def one_sentence(r: subprocess.CompletedProcess, code: int) -> str:
    assert r.returncode == code, f"exit {r.returncode}, expected {code}:\n{r.stdout[-1000:]}\n{r.stderr[-2000:]}"
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def devices(tmp_path_factory):
    """Two data directories named pi-07 (two runs) and jetson-02 (one run), made with real runs."""
    homes = {}
    for name, runs in (("pi-07", 2), ("jetson-02", 1)):
        home = tmp_path_factory.mktemp(name)
        edgeprof(home, "devices", "--name", name)
        for _ in range(runs):
            edgeprof(home, "run", "--model", "digits-cnn", "--duration", "1", "--quiet")
        homes[name] = home
    return homes


@pytest.fixture(scope="module")
def s3(devices):
    env: dict = {}
    server, endpoint = s3_emulator(env)
    import s3fs

    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
        fs.mkdir("lab-runs")
        try:
            yield {"env": env, "fs": fs, "endpoint": endpoint}
        finally:
            server.stop()


def run_ids(home: Path) -> set[str]:
    from edgeprof.store import Store

    return set(Store(home / "runs.duckdb").list_runs()["run_id"])


def fleet_rows(reader: Path, url: str, env: dict) -> list[dict]:
    return json.loads(edgeprof(reader, "runs", "--fleet", url, "--json", env=env).stdout)


def push_json(home: Path, url: str, env: dict) -> dict:
    return json.loads(edgeprof(home, "push", url, "--json", env=env).stdout)


def _two_devices_one_view(devices, url: str, env: dict, reader: Path) -> None:
    first = push_json(devices["pi-07"], url, env)
    assert (first["pushed"], first["skipped"], first["device_name"]) == (2, 0, "pi-07")
    second = push_json(devices["jetson-02"], url, env)
    assert (second["pushed"], second["skipped"]) == (1, 0)
    again = push_json(devices["pi-07"], url, env)
    assert (again["pushed"], again["skipped"], again["objects"]) == (0, 2, 0), "a repeated push sends nothing"

    rows = fleet_rows(reader, url, env)
    assert {r["run_id"] for r in rows} == run_ids(devices["pi-07"]) | run_ids(devices["jetson-02"])
    assert sorted(r["device_name"] for r in rows) == ["jetson-02", "pi-07", "pi-07"]
    assert all(r["status"] == "ok" and r["p50_ms"] > 0 for r in rows)

    text = edgeprof(reader, "runs", "--fleet", url, env=env).stdout
    assert text.splitlines()[0].split()[3] == "device" and "pi-07" in text and "jetson-02" in text
    rid = next(iter(run_ids(devices["jetson-02"])))
    shown = json.loads(edgeprof(reader, "show", rid, "--fleet", url, "--json", env=env).stdout)
    assert shown["device"]["device_name"] == "jetson-02" and shown["summary"]["latency_ms"]["n"] > 0
    assert "  latency      p50 " in edgeprof(reader, "show", rid, "--fleet", url, env=env).stdout


def test_two_devices_in_one_view_through_s3(devices, s3, tmp_path):
    url = "s3://lab-runs/class-a"
    _two_devices_one_view(devices, url, s3["env"], tmp_path / "reader")
    names = s3["fs"].find("lab-runs/class-a")
    assert all("device=" in n for n in names)
    dev = json.loads(edgeprof(tmp_path / "reader", "devices", "--fleet", url, "--json", env=s3["env"]).stdout)
    assert dev["fleet"]["engine"] in ("cache", "httpfs") and dev["fleet"]["runs"] == 3
    assert dev["fleet"]["devices"] == 2
    text = edgeprof(tmp_path / "reader", "devices", "--fleet", url, env=s3["env"]).stdout
    assert f"read by DuckDB through {dev['fleet']['engine']}" in text
    # the engine that registers s3fs with DuckDB reads the same rows
    registered = fleet_rows(tmp_path / "reader", url, {**s3["env"], "EDGEPROF_FLEET_ENGINE": "fsspec"})
    assert sorted(r["run_id"] for r in registered) == sorted(r["run_id"] for r in fleet_rows(tmp_path / "reader", url,
                                                                                                s3["env"]))


def test_two_devices_in_one_view_through_a_folder(devices, tmp_path):
    folder = tmp_path / "shared" / "fleet"
    folder.parent.mkdir()
    _two_devices_one_view(devices, str(folder), {}, tmp_path / "reader")
    assert not [p for p in folder.rglob(".*")], "no temporary file is left behind"


def _stopped_half_way_then_completed(devices, url: str, reader: Path, env: dict, monkeypatch) -> None:
    """The library's push with a fault after its first data object (what a kill or a lost network leaves): readers see
    no part of the run, and the next push through the CLI completes it."""
    from edgeprof.store import Store
    from edgeprof.store.fleet import Fleet, push

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    home = devices["pi-07"]
    written: list[str] = []

    def fail_after_first_data_object(name: str) -> None:
        written.append(name)
        if "/latency/" in name:
            raise KeyboardInterrupt  # what Ctrl-C or a kill in the middle of a push leaves

    with pytest.raises(KeyboardInterrupt):
        push(Store(home / "runs.duckdb"), url, on_object=fail_after_first_data_object)
    assert any("/latency/" in n for n in written) and not any("/runs/" in n for n in written)
    with Fleet(url) as fleet:
        assert fleet.runs().empty, "a run whose push stopped half-way is not shown"
        assert fleet.listing.pending == 1
    done = push_json(home, url, env)
    assert (done["pushed"], done["skipped"]) == (2, 0)
    assert {r["run_id"] for r in fleet_rows(reader, url, env)} == run_ids(home)


def test_push_stopped_half_way_is_completed_by_the_next_s3(devices, s3, tmp_path, monkeypatch):
    _stopped_half_way_then_completed(devices, "s3://lab-runs/half-way", tmp_path / "reader", s3["env"], monkeypatch)


def test_push_stopped_half_way_is_completed_by_the_next_folder(devices, tmp_path, monkeypatch):
    folder = tmp_path / "fleet"
    folder.mkdir()
    _stopped_half_way_then_completed(devices, str(folder), tmp_path / "reader", {}, monkeypatch)


def test_push_killed_half_way_loses_nothing(devices, tmp_path):
    """A real kill: the push process is SIGKILLed as soon as its first run's objects start to appear in the folder
    (a polling watcher), then the next push sends everything and readers see complete runs only."""
    folder = tmp_path / "fleet"
    folder.mkdir()
    home = devices["pi-07"]
    proc = subprocess.Popen([sys.executable, "-m", "edgeprof", "push", str(folder)], env=cli_env(EDGEPROF_HOME=home),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and not any(folder.rglob("*.parquet")):
            time.sleep(0.002)
        proc.kill()
    finally:
        proc.wait(30)
    from edgeprof.store.fleet import Fleet

    with Fleet(str(folder)) as fleet:
        shown = set(fleet.runs()["run_id"])
    assert shown <= run_ids(home)
    done = push_json(home, str(folder), {})
    assert done["pushed"] + len(shown) == 2
    assert {r["run_id"] for r in fleet_rows(tmp_path / "reader", str(folder), {})} == run_ids(home)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_push_while_the_store_is_down_says_so_and_marks_nothing(devices, s3, tmp_path):
    down = {**s3["env"], **s3_env(f"http://127.0.0.1:{_closed_port()}")}
    r = edgeprof(devices["jetson-02"], "push", "s3://lab-runs/down", env=down, check=False)
    line = one_sentence(r, 1)
    assert "does not answer" in line and "AWS_ENDPOINT_URL" in line
    r = edgeprof(tmp_path / "reader", "runs", "--fleet", "s3://lab-runs/down", env=down, check=False)
    assert "does not answer" in one_sentence(r, 1)
    # back up: the next push sends every run, since nothing was marked pushed
    assert push_json(devices["jetson-02"], "s3://lab-runs/down", s3["env"])["pushed"] == 1


@pytest.mark.parametrize("url,code,words", [
    ("s3://", 2, "does not name a bucket"),
    ("s3://Bad_Bucket/x", 2, "does not name a bucket"),
    ("s3://lab-runs/a b", 2, "is not letters, digits"),
    ("gs://lab-runs/x", 2, "neither an s3:// URL nor a folder path"),
    ("/tmp/fleet*", 2, "glob character"),
    ("s3://no-such-bucket/x", 1, "the bucket no-such-bucket does not exist"),
    ("/nonexistent-parent/fleet", 1, "Create the folder"),
])
def test_bad_urls_get_one_sentence(devices, s3, url, code, words):
    r = edgeprof(devices["jetson-02"], "push", url, env=s3["env"], check=False)
    assert words in one_sentence(r, code)


def test_missing_credentials_get_one_sentence(devices, s3):
    env = {**s3["env"], "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    r = edgeprof(devices["jetson-02"], "push", "s3://lab-runs/creds", env=env, check=False)
    line = one_sentence(r, 1)
    assert "no AWS credentials were found" in line and "AWS_ACCESS_KEY_ID" in line


def test_wrong_credentials_get_one_sentence(devices, tmp_path):
    """moto checks access keys only with INITIAL_NO_AUTH_ACTION_COUNT=0, read when it starts: a server of its own."""
    port = _closed_port()
    proc = subprocess.Popen([sys.executable, "-c", "from moto.server import main; main()", "-H", "127.0.0.1", "-p",
                             str(port)], env=dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="0"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        env = s3_env(f"http://127.0.0.1:{port}")
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        r = edgeprof(devices["jetson-02"], "push", "s3://lab-runs/x", env=env, check=False)
        line = one_sentence(r, 1)
        assert "refused the credentials" in line and "AWS_SECRET_ACCESS_KEY" in line
    finally:
        proc.terminate()
        proc.wait(10)


def _fresh_fleet(devices, url: str, env: dict) -> None:
    push_json(devices["jetson-02"], url, env)


def test_foreign_and_half_written_objects_are_refused_by_name(devices, s3, tmp_path):
    fs = s3["fs"]
    url = "s3://lab-runs/foreign"
    _fresh_fleet(devices, url, s3["env"])
    marker = next(n for n in fs.find("lab-runs/foreign") if "/runs/" in n)
    device_dir = marker.split("/runs/")[0]

    fs.pipe_file(f"{device_dir}/runs/notes.txt", b"hello")
    r = edgeprof(tmp_path, "runs", "--fleet", url, env=s3["env"], check=False)
    line = one_sentence(r, 2)
    assert "'" + device_dir.split("/", 2)[2] + "/runs/notes.txt'" in line and "does not write there" in line
    fs.rm(f"{device_dir}/runs/notes.txt")

    good = fs.cat_file(marker)
    fs.pipe_file(marker, good[: len(good) // 2])  # a copy tool that stopped half-way
    r = edgeprof(tmp_path, "runs", "--fleet", url, env=s3["env"], check=False)
    line = one_sentence(r, 2)
    assert "is not a readable Parquet file (half-written or damaged)" in line and marker.split("/", 2)[2] in line
    assert "Delete it and push again" in line
    fs.pipe_file(marker, good)
    assert len(fleet_rows(tmp_path, url, s3["env"])) == 1


def test_rows_that_do_not_belong_to_their_object_are_refused(devices, tmp_path):
    """A marker copied under another run's name (or another device's partition) is refused, naming the object."""
    folder = tmp_path / "fleet"
    folder.mkdir()
    push_json(devices["pi-07"], str(folder), {})
    markers = sorted(folder.glob("device=*/runs/*.parquet"))
    shutil.copyfile(markers[0], markers[1])
    r = edgeprof(tmp_path / "reader", "runs", "--fleet", str(folder), check=False)
    assert "not of the run or device its name gives" in one_sentence(r, 2)


def test_device_identity_is_made_once_and_renamed(tmp_path):
    from edgeprof.device import identity, set_name

    first = identity(tmp_path)
    assert len(first.device_id) == 16 and first.device_name == socket.gethostname()[:64]
    assert identity(tmp_path) == first
    renamed = set_name("pi-07", tmp_path)
    assert renamed == first._replace(device_name="pi-07") and identity(tmp_path) == renamed
    r = edgeprof(tmp_path, "devices", "--name", "a/b", check=False)
    assert "is not 1-64 printable characters" in one_sentence(r, 2)
    out = json.loads(edgeprof(tmp_path, "devices", "--json").stdout)
    assert out["identity"] == {"device_id": first.device_id, "device_name": "pi-07"}


def test_runs_carry_their_device_name(devices):
    from edgeprof.store import Store

    df = Store(devices["pi-07"] / "runs.duckdb").list_runs()
    assert set(df["device_name"]) == {"pi-07"}
    ident = json.loads((devices["pi-07"] / "device.json").read_text())
    assert set(df["device_id"]) == {ident["device_id"]}
    rows = json.loads(edgeprof(devices["pi-07"], "runs", "--json").stdout)
    assert {r["device_name"] for r in rows} == {"pi-07"}


def test_runs_page_offers_this_device_or_the_fleet(devices, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    folder = tmp_path / "fleet"
    folder.mkdir()
    for home in devices.values():
        push_json(home, str(folder), {})
    monkeypatch.setenv("EDGEPROF_FLEET", str(folder))
    monkeypatch.setenv("EDGEPROF_DB", str(devices["pi-07"] / "runs.duckdb"))
    at = AppTest.from_file(str(ROOT / "views" / "2_Runs.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert at.radio(key="runs_scope").value == "this device"
    assert len(at.dataframe[0].value) == 2
    at.radio(key="runs_scope").set_value("the fleet").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert sorted(table["device"]) == ["jetson-02", "pi-07", "pi-07"]
    rid = next(iter(run_ids(devices["jetson-02"])))
    at.selectbox(key="show_run").select(rid).run()
    assert not at.exception, at.exception
    shown = [str(e.value) for kind in ("markdown", "success", "caption", "info") for e in getattr(at, kind)]
    assert "finished normally" in "\n".join(shown)
    assert not at.get("plotly_chart") and [b.key for b in at.button] == ["import"], \
        "delete and export act on this device's runs only"


def test_finished_studies_and_groups_go_once_with_their_device(devices, tmp_path):
    """A study and a group of runs are pushed once they finished, into the device's partition, and read back."""
    import duckdb

    from edgeprof.store import Store, new_run_id
    from edgeprof.store.fleet import Fleet, push

    home = tmp_path / "home"
    shutil.copytree(devices["pi-07"], home)
    store = Store(home / "runs.duckdb")
    ids = sorted(run_ids(home))
    store.create_study("lab-study-1", "quick", {"models": ["digits-cnn"]})
    store.set_cell("lab-study-1", "digits-cnn/fp32", ids[0], "ok")
    group = new_run_id()
    device_id = json.loads((home / "device.json").read_text())["device_id"]
    store.create_group(group, "repeat", device_id=device_id, config={"repeat": 2})
    with duckdb.connect(str(store.path)) as con:
        con.execute("UPDATE runs SET study_id = 'lab-study-1' WHERE run_id = ?", [ids[0]])
        con.execute("UPDATE runs SET group_id = ? WHERE run_id IN (SELECT unnest(?::TEXT[]))", [group, ids])
    folder = tmp_path / "fleet"
    folder.mkdir()
    first = push(store, str(folder))
    assert first["pushed"] == 2
    assert not list(folder.glob("device=*/studies/*")) and not list(folder.glob("device=*/run_groups/*")), \
        "a study or group still running is not pushed"
    store.set_study_status("lab-study-1", "done")
    store.finish_group(group, "ok", {"median_ms": 0.03}, device_id=device_id)
    second = push(store, str(folder))
    assert (second["pushed"], second["skipped"], second["objects"]) == (0, 2, 2)
    assert push(store, str(folder))["objects"] == 0
    with Fleet(str(folder)) as fleet:
        studies = fleet.sql("SELECT study_id, status FROM fleet_studies")
        cells = fleet.sql("SELECT study_id, run_id FROM fleet_study_cells")
        groups = fleet.sql("SELECT g.group_id, g.status, count(*) AS runs FROM fleet_run_groups g "
                           "JOIN fleet_runs r USING (group_id) GROUP BY ALL")
    assert studies.to_dict("records") == [{"study_id": "lab-study-1", "status": "done"}]
    assert cells.to_dict("records") == [{"study_id": "lab-study-1", "run_id": ids[0]}]
    assert groups.to_dict("records") == [{"group_id": group, "status": "ok", "runs": 2}]


def test_dashboard_push_is_queued_while_the_store_is_down(devices, s3, monkeypatch):
    """AutoPush (the dashboard's, with EDGEPROF_FLEET set): a push that cannot reach the store is kept and sent once
    the store answers again; with nothing new finished, no push starts."""
    from edgeprof.store import Store
    from edgeprof.store.fleet import AutoPush, Fleet

    class Quick(AutoPush):
        RETRY_S = 0.0

    store = Store(devices["jetson-02"] / "runs.duckdb")
    url = "s3://lab-runs/dashboard"
    pusher = Quick()
    for k, v in s3_env(f"http://127.0.0.1:{_closed_port()}").items():
        monkeypatch.setenv(k, v)
    pusher.poke(store, url)
    state = pusher.wait(60)
    assert state["ok"] is False and "does not answer" in state["error"]
    for k, v in s3["env"].items():
        monkeypatch.setenv(k, v)
    pusher.poke(store, url)
    state = pusher.wait(60)
    assert state["ok"] is True and state["pushed"] == 1
    with Fleet(url) as fleet:
        assert set(fleet.runs()["run_id"]) == run_ids(devices["jetson-02"])
    first = pusher._thread
    pusher.poke(store, url)
    assert pusher._thread is first, "nothing new finished: no push"


STUDY_TOML = """name = "fleet-pair"
description = "digits-cnn fp32 and int8-static, no cap, two repetitions"
models = ["digits-cnn"]
precisions = ["fp32", "int8-static"]
runtimes = ["onnx"]
memory_limits = ["none"]
threads = [2]
repetitions = 2
duration_s = 0.3
cooldown_s = 0
"""


def test_one_study_on_two_devices_gets_one_report(devices, tmp_path):
    """The same study file run on two devices, pushed, and read as one report: verdicts per device and each
    variant's latency ratio between the devices with its interval between runs."""
    folder = tmp_path / "fleet"
    folder.mkdir()
    study = tmp_path / "pair.toml"
    study.write_text(STUDY_TOML)
    homes = {}
    for name in ("pi-07", "jetson-02"):
        home = tmp_path / name
        shutil.copytree(devices[name], home)
        edgeprof(home, "study", "--file", str(study), "--study-id", "lab-pair", "--quiet")
        push_json(home, str(folder), {})
        homes[name] = home
    out = tmp_path / "report"
    doc = json.loads(edgeprof(tmp_path / "reader", "report", "fleet-pair", "--fleet", str(folder), "--out", str(out),
                              "--baseline", "jetson-02", "--json").stdout)
    assert [d["device_name"] for d in doc["devices"]] == ["jetson-02", "pi-07"]
    assert all(set(c) >= {"claim", "jetson-02", "pi-07"} for c in doc["claims"])
    variants = {r["variant"] for r in doc["ratios"]}
    assert len(variants) == 2 and all(r["device_name"] == "pi-07" and r["baseline"] == "jetson-02" for r in doc["ratios"])
    assert all(r["n_runs"] == 2 and r["n_baseline"] == 2 and r["ratio"] > 0 for r in doc["ratios"])
    assert all(r["low"] <= r["ratio"] <= r["high"] for r in doc["ratios"]), "2 runs a side give an interval"
    page = (out / "index.html").read_text()
    assert "Study fleet-pair on 2 devices" in page and "Latency against jetson-02, per variant" in page


def test_compare_and_correlations_pages_read_the_fleet(devices, tmp_path, monkeypatch):
    """Compare's "groups of runs by device" sets the two devices of the fleet side by side (their samples read from
    the fleet's objects), and Correlations reads one fleet run's samples."""
    from streamlit.testing.v1 import AppTest

    folder = tmp_path / "fleet"
    folder.mkdir()
    for home in devices.values():
        push_json(home, str(folder), {})
    monkeypatch.setenv("EDGEPROF_FLEET", str(folder))
    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "empty.duckdb"))
    at = AppTest.from_file(str(ROOT / "views" / "4_Compare.py"), default_timeout=90)
    at.run()
    at.radio(key="cmp_scope").set_value("the fleet").run()
    at.radio(key="cmp_mode").set_value("groups of runs by device").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert len(table) == 2 and "jetson-02" in table.to_string() and "pi-07" in table.to_string()
    at = AppTest.from_file(str(ROOT / "views" / "3_Correlations.py"), default_timeout=90)
    at.run()
    at.radio(key="corr_scope").set_value("the fleet").run()
    assert not at.exception, at.exception
    modes = at.radio(key="corr_mode").options
    at.radio(key="corr_mode").set_value(modes[-1]).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="corr_run").value in run_ids(devices["pi-07"]) | run_ids(devices["jetson-02"])
