"""Booth mode in the real app (AppTest): the password gate, read-only history, and the safe defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

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
    at = AppTest.from_file(str(ROOT / "pages" / "2_Runs.py"), default_timeout=TIMEOUT)
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
