"""Booth mode in the real app (AppTest): the password gate, what a visitor may do (bounded single runs, stopping only
their own, no studies, no server paths) and what staff may, and the safe defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from edgeprof import auth

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60


@pytest.fixture
def booth(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    monkeypatch.setenv("EDGEPROF_PASSWORD", "visitors")
    monkeypatch.setenv("EDGEPROF_ADMIN_PASSWORD", "staff")


def _texts(at) -> str:
    return "\n".join(str(e.value) for kind in ("error", "info", "warning", "markdown") for e in getattr(at, kind))


def test_password_before_any_page(booth):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.text_input(key="login_password") is not None
    assert not [b for b in at.button if b.label == "Start run"], "a page ran before the password"
    at.text_input(key="login_password").input("nope")
    at.button[0].click().run()
    assert "Wrong password" in _texts(at)
    assert not [b for b in at.button if b.label == "Start run"]
    at.text_input(key="login_password").input("visitors")
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state["edgeprof_role"] == "visitor"


def test_visitor_history_is_read_only_and_admin_unlocks(booth):
    at = AppTest.from_file(str(ROOT / "views" / "2_Runs.py"), default_timeout=TIMEOUT)
    at.session_state["edgeprof_role"] = "visitor"
    at.run()
    assert not at.exception
    assert "read-only" in _texts(at)
    assert at.button(key="import").disabled
    at.text_input(key="admin_password").input("wrong")
    at.button(key="admin_unlock").click().run()
    assert at.session_state["edgeprof_role"] == "visitor"
    at.text_input(key="admin_password").input("staff")
    at.button(key="admin_unlock").click().run()
    assert at.session_state["edgeprof_role"] == "admin"
    assert "read-only" not in _texts(at)


def test_lan_address_without_password_is_refused(tmp_path, monkeypatch):
    from streamlit import config

    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    monkeypatch.delenv("EDGEPROF_PASSWORD", raising=False)
    old = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
        assert "has no password" in _texts(at)
        assert not [b for b in at.button if b.label == "Start run"]
    finally:
        config.set_option("server.address", old)


def test_safe_defaults_in_config():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["server"]["maxUploadSize"] <= 500


# -- what a visitor may do ------------------------------------------------------------------------------------------

KINDS = ("markdown", "caption", "error", "info", "warning", "success", "text", "code", "json")


def _everything(at) -> str:
    """Every text the page shows, sidebar included: messages, tables, JSON documents and the choices in pickers."""
    parts = [str(e.value) for kind in KINDS for e in at.get(kind)]
    parts += [e.value.to_string() for e in at.dataframe]
    parts += [o for e in at.selectbox for o in e.options]
    return "\n".join(parts)


def _page(name: str, role: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "views" / name), default_timeout=TIMEOUT)
    at.session_state["edgeprof_role"] = role
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def no_live_runs():
    yield
    from edgeprof import run, study

    s = study.active_study()
    if s is not None:
        s.stop()
        s.wait(30)
    for h in run.active_runs():  # never leave a worker behind
        h.stop()
        h.wait(15)


def test_visitor_run_form_is_bounded_says_so_and_shows_no_server_path(booth, tmp_path):
    at = _page("1_Run.py", "visitor")
    assert at.selectbox(key="preset").options == ["quick (10 s, 50 inferences)", "standard (60 s, 200 inferences)"]
    assert at.number_input(key="duration_s").max == 60.0
    shown = _everything(at)
    assert ("At this booth, visitors run one bundled model at a time for at most a minute of measuring (the quick or "
            "standard duration, or an override up to 60 s). Studies, longer runs, uploads and stopping other people's "
            "runs are for staff") in shown
    assert not at.get("file_uploader") and "Upload your own model" not in [e.label for e in at.expander]
    assert "Database:" not in shown and str(tmp_path) not in shown
    staff = _page("1_Run.py", "admin")
    assert "long (10 min, 1,000 inferences)" in staff.selectbox(key="preset").options
    assert any(c.value.startswith("Database: `") for c in staff.sidebar.caption)
    assert staff.get("file_uploader") and staff.number_input(key="duration_s").max == 3600.0


def test_visitor_refusals_say_what_to_pick():
    bundled = ["digits-cnn", "efficientnet-lite0"]
    assert auth.visitor_refusal("digits-cnn", bundled, "quick", None) is None
    assert auth.visitor_refusal("digits-cnn", bundled, "long", 60.0) is None  # the override wins over the preset
    assert auth.visitor_refusal("digits-cnn", bundled, "long", None).startswith(
        "The long duration is for staff at this booth: pick quick or standard")
    assert auth.visitor_refusal("digits-cnn", bundled, "quick", 61.0).startswith(
        "Visitors measure for at most 60 s: set a duration up to 60 s")
    assert auth.visitor_refusal("/srv/up/x.onnx", bundled, "quick", None).startswith(
        "Running an uploaded model is for staff at this booth: pick a bundled model")
    assert "for a set time, not a number of iterations" in auth.visitor_refusal("digits-cnn", bundled, "quick", None, 10)


def test_visitor_stops_only_the_run_started_in_their_own_session(booth, no_live_runs):
    """One thread for the run: a prioritized worker leaves this test process (which plays the server) the other
    core, so the pages below load while the run still goes on."""
    mine = _page("1_Run.py", "visitor")
    mine.selectbox(key="model").select("digits-cnn")
    mine.number_input(key="threads").set_value(1)
    mine.number_input(key="duration_s").set_value(60.0)
    mine.button(key="start").click().run()
    assert not mine.exception, mine.exception
    rid = mine.session_state["watch_run"]
    assert mine.button(key="stop").label == "Stop"
    other = _page("1_Run.py", "visitor")  # another visitor's browser attaches to the run
    assert f"Run `{rid}`" in _everything(other)
    assert not [b for b in other.button if b.key == "stop"]
    assert (f"Run {rid} was started by another browser session: only whoever started it, or staff, can stop it. It ends "
            "by itself within its set duration.") in _everything(other)
    other.selectbox(key="model").select("digits-cnn")
    other.button(key="start").click().run()
    assert any(f"this device is busy with run {rid}; watch it below: it ends by itself" in e.value for e in other.error)
    staff = _page("1_Run.py", "admin")
    assert staff.button(key="stop").label == "Stop", "staff may stop any run"
    mine.button(key="stop").click().run()
    from edgeprof import run

    assert run.get_handle(rid).wait(30)["status"] == "stopped"


TINY_STUDY = """name = "booth"
models = ["digits-cnn"]
precisions = ["fp32"]
runtimes = ["onnx"]
memory_limits = ["none"]
repetitions = 1
duration_s = 30.0
cooldown_s = 0.0
"""


def test_studies_are_for_staff(booth, no_live_runs):
    from edgeprof import study, ui

    at = _page("6_Study.py", "visitor")
    assert ("Studies are for staff at this booth: a study runs many models one after another, for minutes to hours, "
            "and keeps the device busy for everyone") in _everything(at)
    assert at.button(key="study_start").disabled
    store = ui._store_for(str(ui.db_path()))
    handle = study.start_study_background(study.resolve_config(store, toml_text=TINY_STUDY), store)
    at.run()
    assert not [b for b in at.button if b.key == "study_stop"]
    assert "Only staff can stop a study" in _everything(at)
    staff = _page("6_Study.py", "admin")
    assert not staff.button(key="study_start").disabled
    staff.button(key="study_stop").click().run()
    assert "Stopping: the current run is stopped" in _everything(staff)
    handle.wait(60)


def test_visitor_reads_no_server_path_in_history(booth, tmp_path, no_live_runs):
    """An uploaded model's name is its path on the server: the visitor's Runs page shows the file name only, in the
    table, the run's summary and its JSON document; export (a bundle carries the paths) is for staff."""
    from edgeprof import run, ui

    secret = tmp_path / "server-only-dir"
    secret.mkdir()
    broken = secret / "broken.onnx"
    broken.write_bytes(b"\x08\x01not a model")
    store = ui._store_for(str(ui.db_path()))
    from edgeprof.config import RunConfig

    res = run.start_run(RunConfig(model=str(broken), duration_s=1), store).wait(60)
    assert res["status"] == "failed"
    at = AppTest.from_file(str(ROOT / "views" / "2_Runs.py"), default_timeout=TIMEOUT)
    at.session_state["edgeprof_role"] = "visitor"
    at.query_params["run_id"] = res["run_id"]
    at.run()
    assert not at.exception, at.exception
    shown = _everything(at)
    assert "failed: broken.onnx is not a valid ONNX model" in shown
    assert at.dataframe[0].value["model"].tolist() == ["broken.onnx"]
    assert '"model": "\\u2026/broken.onnx"' in at.json[0].value
    assert str(secret) not in shown and str(tmp_path) not in shown
    assert ("delete, import and export (a bundle carries the server's file paths) need the admin password "
            "(sidebar, Staff)") in shown
    assert at.button(key="export").disabled
    staff = AppTest.from_file(str(ROOT / "views" / "2_Runs.py"), default_timeout=TIMEOUT)
    staff.session_state["edgeprof_role"] = "admin"
    staff.query_params["run_id"] = res["run_id"]
    staff.run()
    assert str(broken) in _everything(staff), "staff see where the file is"


def test_booth_mode_hides_tracebacks(booth):
    from streamlit import config

    old = config.get_option("client.showErrorDetails")
    try:
        _page("1_Run.py", "visitor")
        assert config.get_option("client.showErrorDetails") == "type"
    finally:
        config.set_option("client.showErrorDetails", old)


def test_uploads_and_the_noise_floor_are_for_staff(booth):
    """The Models page's upload and the Compare page's noise-floor measurement (it keeps the device busy and changes
    every comparison's verdicts): a visitor reads why in a sentence, staff get the controls."""
    models = _page("5_Models.py", "visitor")
    assert ("Uploading models is for staff at this booth: visitors run the bundled ones; ask staff, or unlock with the "
            "admin password in the sidebar (Staff).") in _everything(models)
    assert not models.get("file_uploader")
    assert _page("5_Models.py", "admin").get("file_uploader")
    compare = _page("4_Compare.py", "visitor")
    assert ("Measuring the noise floor is for staff at this booth; ask staff, or unlock with the admin password in "
            "the sidebar (Staff).") in _everything(compare)
    assert not [b for b in compare.button if b.key == "cmp_noise_floor"]
    staff = _page("4_Compare.py", "admin")
    assert staff.button(key="cmp_noise_floor").label == "Measure this device's noise floor now (about 20 s)"
    assert "Measuring the noise floor is for staff" not in _everything(staff)
