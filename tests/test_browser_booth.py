"""Booth mode in a real browser (headless Chromium on 127.0.0.1, as tests/test_browser.py): what a visitor reads on
the Run and Study pages after the password, and that the page says the browser runs on the device itself."""

from __future__ import annotations

import pytest
from test_browser import CHROMIUM, chromium_page, streamlit_server, wait_for_app

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM}")]


def test_visitor_sees_the_booth_rules_and_no_server_path(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("EDGEPROF_HOME", str(home))
    monkeypatch.setenv("EDGEPROF_PASSWORD", "visitors")
    monkeypatch.setenv("EDGEPROF_ADMIN_PASSWORD", "staff")
    db = tmp_path / "runs.duckdb"
    with streamlit_server(home, db) as url, chromium_page() as page:
        page.goto(url)
        page.get_by_label("Password", exact=True).fill("visitors")
        page.get_by_role("button", name="Enter").click()
        page.get_by_role("button", name="Classify this photo").wait_for()  # a visitor lands on the showcase
        page.get_by_test_id("stExpandSidebarButton").click()  # collapsed for visitors: the showcase gets the window
        page.get_by_role("link", name="Run").first.click()
        page.get_by_role("button", name="Start run").wait_for()
        wait_for_app(page)
        page.get_by_text("This browser runs on the device being measured").wait_for()
        page.get_by_text("start the app with", exact=False).first.wait_for()
        page.get_by_text("At this booth, visitors run one bundled model at a time for at most a minute of "
                         "measuring").wait_for()
        body = page.locator("body").inner_text()
        assert "Database:" not in body and str(tmp_path) not in body
        box = page.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text("Duration", exact=True)).first
        box.click()
        options = page.get_by_role("option").all_inner_texts()
        assert options == ["quick (10 s, 50 inferences)", "standard (60 s, 200 inferences)"], options
        page.keyboard.press("Escape")

        page.get_by_role("link", name="Study").first.click()  # in the same session: a new page load asks again
        page.get_by_text("Studies are for staff at this booth").wait_for()
        assert page.get_by_role("button", name="Start study").is_disabled()
        assert page.locator('[data-testid="stException"]').count() == 0
