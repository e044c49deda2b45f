"""Nonsense typed into every number field of the pages, in a real browser (the CLI and study-file paths are in
test_engine and test_study).

Each field gets values below its minimum, above its maximum, absurdly large, fractional where it counts whole things,
and text. What must hold: no exception or traceback on the page, and what the app goes on to use is a valid value: a
run started after the nonsense stores an in-range config; the Study estimate and the Correlations window stay at the
last valid value after an out-of-range one, and go back to the field's default after letters (Streamlit's number
field refuses out-of-range values in the browser, and empties on letters).
"""

from __future__ import annotations

import os
import re
import time

import pytest
from test_browser import CHROMIUM, chromium_page, select_option, streamlit_server, wait_for_app

from edgeprof.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Chromium at {CHROMIUM}")]

# below the minimum, above the maximum, absurd, a hair below zero: out of range for every field below; refused, and
# the field keeps its last valid value
OUT_OF_RANGE = ["-3", "99999", "1e12", "-1e-9"]
# letters leave a number field empty, and Streamlit then uses the field's default
TEXT = "abc"
MAX_THREADS = max(4, 2 * (os.cpu_count() or 2))


def type_into(page, label: str, value: str) -> None:
    """As a visitor types: select what is there, type the characters, press Enter."""
    field = page.get_by_label(label)
    field.focus()  # not a click: the field's own "Press Enter to apply" hint covers it while it is dirty
    field.press("Control+a")
    field.press_sequentially(value)
    field.press("Enter")
    time.sleep(0.4)
    wait_for_app(page)


def assert_no_error(page, what: str) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, what
    assert "Traceback" not in page.locator("body").inner_text(), what


def test_nonsense_in_every_number_field_is_refused_and_what_is_used_stays_valid(tmp_path):
    from edgeprof.config import RunConfig
    from edgeprof.run import start_run

    db = tmp_path / "runs.duckdb"
    res = start_run(RunConfig(model="digits-cnn", duration_s=2.0), db).wait(60)  # for the Correlations window
    assert res and res["status"] == "ok", res
    with streamlit_server(tmp_path, db) as url, chromium_page() as page:
        # Run page: threads and the duration override, then a run started right after the nonsense
        page.goto(url)
        page.get_by_role("button", name="Start run").wait_for()
        select_option(page, "Model", "digits-cnn")
        page.get_by_text("Advanced", exact=True).click()
        duration = "Duration override (s of steady state; 0 = use the preset)"
        type_into(page, duration, "1")
        for value in [*OUT_OF_RANGE, TEXT, "0", "2.5"]:  # 0 threads; a fractional thread count
            type_into(page, "Threads", value)
            assert_no_error(page, f"Threads <- {value}")
        for value in [*OUT_OF_RANGE, TEXT]:
            type_into(page, duration, value)
            assert_no_error(page, f"duration <- {value}")
        type_into(page, duration, "1")
        type_into(page, "Threads", "99999")
        before = set(Store(db).list_runs()["run_id"])
        page.get_by_role("button", name="Start run").click()
        deadline = time.monotonic() + 90
        while True:
            new = set(Store(db).list_runs()["run_id"]) - before
            if new and Store(db).get_run(next(iter(new)))["status"] != "running":
                break
            assert time.monotonic() < deadline, "the run started after the nonsense did not finish"
            time.sleep(1)
        run = Store(db).get_run(next(iter(new)))
        assert run["status"] == "ok", run["reason"]
        assert 1 <= run["config"]["threads"] <= MAX_THREADS
        assert run["config"]["duration_s"] == 1.0
        assert_no_error(page, "after the run")

        # Study page: the duration override per cell; the estimate shows the value the study would use
        page.goto(f"{url}/Study")
        page.get_by_role("button", name="Start study").wait_for()
        per_cell = "Duration override per cell (s of steady state; 0 = as the study says)"
        estimate = page.get_by_text(re.compile(r"\d+ cells: .* about "))
        as_the_study_says = estimate.inner_text()
        type_into(page, per_cell, "5")
        five_s = estimate.inner_text()
        assert five_s != as_the_study_says
        for value in OUT_OF_RANGE:
            type_into(page, per_cell, value)
            assert_no_error(page, f"study duration <- {value}")
            assert estimate.inner_text() == five_s, value
        type_into(page, per_cell, TEXT)
        assert_no_error(page, "study duration <- text")
        assert estimate.inner_text() == as_the_study_says

        # Correlations, over time inside one run: the window the windows are cut with
        page.goto(f"{url}/Correlations")
        page.get_by_text("over time inside one run", exact=True).click()
        wait_for_app(page)
        windows = page.get_by_text(re.compile(r"windows\*{0,2} of [\d.]+ s over the steady state"))
        default = windows.inner_text()  # the window matched to the run's length
        type_into(page, "Window (s)", "0.7")
        page.get_by_text(re.compile(r"windows\*{0,2} of 0\.7 s over the steady state")).wait_for()
        for value in [*OUT_OF_RANGE, "0"]:
            type_into(page, "Window (s)", value)
            assert_no_error(page, f"window <- {value}")
            assert page.get_by_text(re.compile(r"of 0\.7 s over the steady state")).count() == 1, value
        type_into(page, "Window (s)", TEXT)
        assert_no_error(page, "window <- text")
        page.get_by_text(default, exact=True).wait_for()  # the default again
        assert "0.7 s" not in default
