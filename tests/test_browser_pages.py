"""The booth's showcase and every page, opened in headless Chromium the way people open them: a visitor with the
password goes from the first screen to the card row with one upload and two clicks (Enter, Classify) in a 1280x800
window, without scrolling; staff open every page by its URL. With EDGEPROF_UPDATE_SCREENSHOTS=1 the screenshots
go to docs/screenshots/pages/ (kept small: 1280x800, 256 colours)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, UPDATE_DOCS, make_runs, streamlit_server, wait_for_app

from edgeprof import ui

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM}")]
WINDOW = {"width": 1280, "height": 800}


def _page(p):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    page = browser.new_page(viewport=WINDOW)
    page.set_default_timeout(60_000)
    return browser, page


def _keep(page, tmp_path: Path, name: str) -> None:
    """A screenshot in the test's folder; with EDGEPROF_UPDATE_SCREENSHOTS=1 also in docs/screenshots/pages/, as a
    256-colour PNG (a fifth of the size, text still sharp)."""
    page.screenshot(path=str(tmp_path / name))
    if UPDATE_DOCS:
        from PIL import Image

        folder = SCREENSHOTS / "pages"
        folder.mkdir(parents=True, exist_ok=True)
        with Image.open(tmp_path / name) as im:
            im.convert("RGB").quantize(256).save(folder / name, optimize=True)


def test_a_visitor_goes_from_photo_to_card_row_in_two_clicks_without_scrolling(tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("EDGEPROF_PASSWORD", "visitors")
    monkeypatch.setenv("EDGEPROF_ADMIN_PASSWORD", "staff")
    with streamlit_server(home, tmp_path / "runs.duckdb") as url, sync_playwright() as p:
        browser, page = _page(p)
        try:
            page.goto(url)
            page.get_by_text("measures how fast").wait_for()  # the password page says what this is
            page.get_by_label("Password", exact=True).fill("visitors")
            page.get_by_role("button", name="Enter").click()  # click 1
            page.get_by_role("button", name="Classify this photo").wait_for()
            page.get_by_text("The device is free.").wait_for()
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
                str(ROOT / "models" / "images" / "coffee.jpg"))  # the one upload
            page.get_by_text("your photo", exact=True).wait_for()
            wait_for_app(page)
            page.get_by_role("button", name="Classify this photo").click()  # click 2
            sentence = page.get_by_text("agreed with FP32").or_(page.get_by_text("where FP32 said")).first
            sentence.wait_for(timeout=120_000)
            wait_for_app(page)
            card = page.get_by_text("INT8 static", exact=True).first
            card.wait_for()
            body = page.locator("body").inner_text()
            for words in ("FP32", "FP16", "per photo", "MB model", "MB peak memory", "same answer as FP32",
                          "the photo is not kept"):
                assert words in body, words
            scroll = page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]') ||
                                                  document.scrollingElement;
                                               return [m.scrollHeight, m.clientHeight]; }""")
            assert scroll[0] <= scroll[1] + 2, f"the page scrolls at 1280x800: {scroll}"
            caption = page.get_by_text("the photo is not kept", exact=False).first.bounding_box()
            assert caption["y"] + caption["height"] <= WINDOW["height"]
            assert page.locator('[data-testid="stException"]').count() == 0
            _keep(page, tmp_path, "booth-page.png")
        finally:
            browser.close()


def test_every_page_opens_by_its_url(tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    home = tmp_path / "home"
    home.mkdir()
    names = [Path(f).stem.split("_", 1)[-1] for f in sorted(ui.PAGES) if (ROOT / "views" / f).exists()]
    monkeypatch.setenv("EDGEPROF_HOME", str(home))
    make_runs(tmp_path / "runs.duckdb")  # a few stored runs, so Runs, Correlations and Compare show something
    with streamlit_server(home, tmp_path / "runs.duckdb") as url, sync_playwright() as p:
        browser, page = _page(p)
        try:
            for name in names:
                page.goto(f"{url}/{name}")
                wait_for_app(page)
                page.locator('[data-testid="stMainBlockContainer"] h1, [data-testid="stMainBlockContainer"] h3') \
                    .first.wait_for()
                wait_for_app(page)
                time.sleep(1.5)  # charts and tables paint
                body = page.locator("body").inner_text()
                assert "Page not found" not in body, name
                assert page.locator('[data-testid="stException"]').count() == 0, name
                _keep(page, tmp_path, f"{name.lower()}-page{'-staff' if name == 'Booth' else ''}.png")
        finally:
            browser.close()


def test_a_new_run_replaces_the_previous_results_at_once(tmp_path, monkeypatch):
    """Start, wait for the summary, Start again: the previous run's summary goes while the new run is still going
    (the page run that pressed Start no longer waits for the first point: 3.6 s to the new run's first drawing and
    6.1 s to the old summary's end before, 1.1 s and 2.2 s after, on the shared 2-core machine)."""

    from playwright.sync_api import sync_playwright
    from test_browser import LIVE_STATE_JS, start_run

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("EDGEPROF_HOME", str(home))
    with streamlit_server(home, tmp_path / "runs.duckdb") as url, sync_playwright() as p:
        browser, page = _page(p)
        page.set_viewport_size({"width": 1400, "height": 2300})
        try:
            start_run(page, url, 1)
            page.get_by_text("finished normally").wait_for(timeout=60_000)
            wait_for_app(page)
            first = page.evaluate(LIVE_STATE_JS.replace("return e ?", "return e ? e.dataset.run : null; return e ?"))
            field = page.get_by_label("Duration override (s of steady state; 0 = use the preset)")
            field.fill("6")
            field.press("Enter")
            time.sleep(0.5)
            wait_for_app(page)
            page.get_by_role("button", name="Start run").click()
            clicked = time.monotonic()
            run_js = LIVE_STATE_JS.replace("return e ?", "return e ? e.dataset.run : null; return e ?")
            page.wait_for_function(f"() => ({run_js})() !== {first!r}", timeout=15_000)
            new_after = time.monotonic() - clicked
            page.wait_for_function("() => !document.body.innerText.includes('finished normally')", timeout=15_000)
            gone_after = time.monotonic() - clicked
            status = page.evaluate(f"() => (({LIVE_STATE_JS})() || {{}}).status")
            print(f"new run drawn after {new_after:.2f} s, old summary gone after {gone_after:.2f} s ({status})")
            assert status in ("starting", "running"), "the previous run's results stayed until the new one ended"
        finally:
            browser.close()


def test_compare_sets_two_named_devices_of_one_hostname_side_by_side(tmp_path, monkeypatch):
    """Two boards both called "vm" by their hostname, named pi-03 and pi-07: Compare's "groups of runs by device"
    shows both by name (it said "These filters leave fewer than two devices with runs")."""
    from playwright.sync_api import sync_playwright
    from test_devices_named import two_named_devices

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("EDGEPROF_HOME", str(home))
    db = two_named_devices.__wrapped__(tmp_path, monkeypatch)
    with streamlit_server(home, db) as url, sync_playwright() as p:
        browser, page = _page(p)
        page.set_viewport_size({"width": 1280, "height": 1600})
        try:
            page.goto(f"{url}/Compare")
            wait_for_app(page)
            page.get_by_text("groups of runs by device", exact=True).click()
            page.get_by_text("Summary", exact=True).wait_for()
            wait_for_app(page)
            body = page.locator("body").inner_text()
            assert "fewer than two devices" not in body
            assert "pi-03" in body and "pi-07" in body
            assert page.locator('[data-testid="stException"]').count() == 0
            _keep(page, tmp_path, "compare-page-two-devices.png")
        finally:
            browser.close()


def _menu(page) -> list[str]:
    """The sidebar menu's entries as a person reads them (a Material icon's ligature name dropped)."""
    return [text.strip().splitlines()[-1].strip()
            for text in page.locator('[data-testid="stSidebarNav"] a').all_inner_texts() if text.strip()]


def test_the_first_page_a_fresh_server_opens_shows_the_apps_menu_not_streamlits_folder_menu(tmp_path, monkeypatch):
    """A fresh user opened http://127.0.0.1:85xx/Booth on a just-started server and read Streamlit's own menu of the
    page files ('app', 'Booth', ...), also on the password screen: Streamlit takes a folder named pages/ beside the
    entry for its legacy menu until st.navigation first runs, so the page files live in views/. Each server is fresh
    because the legacy menu came only with a server's first page."""
    from playwright.sync_api import sync_playwright

    titles = [title for f, (title, _) in ui.PAGES.items() if (ROOT / "views" / f).exists()]
    home = tmp_path / "home"
    home.mkdir()
    with streamlit_server(home, tmp_path / "runs.duckdb") as url, sync_playwright() as p:
        browser, page = _page(p)
        try:
            page.goto(f"{url}/Booth")
            page.get_by_role("button", name="Classify this photo").wait_for()
            wait_for_app(page)
            assert _menu(page) == titles
        finally:
            browser.close()
    monkeypatch.setenv("EDGEPROF_PASSWORD", "visitors")
    monkeypatch.setenv("EDGEPROF_ADMIN_PASSWORD", "staff")
    booth = tmp_path / "booth"
    booth.mkdir()
    with streamlit_server(booth, tmp_path / "booth.duckdb") as url, sync_playwright() as p:
        browser, page = _page(p)
        try:
            page.goto(f"{url}/Runs")
            page.get_by_label("Password", exact=True).wait_for()
            wait_for_app(page)
            time.sleep(1)  # the legacy menu came with the page's first message
            assert page.locator('[data-testid="stSidebarNav"]').count() == 0, _menu(page)
            page.get_by_label("Password", exact=True).fill("staff")
            page.get_by_role("button", name="Enter").click()
            page.locator('[data-testid="stSidebarNav"] a').first.wait_for()
            wait_for_app(page)
            menu = _menu(page)
            assert menu == titles and "app" not in menu and "Booth" not in menu, menu
        finally:
            browser.close()
