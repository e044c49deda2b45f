"""The dashboard in a real browser: `streamlit run app.py` driven by headless Chromium through Playwright.

Starts a live digits-cnn run from the Run page, waits for the latency chart to fill, takes screenshots (the one of
with EDGEPROF_UPDATE_SCREENSHOTS=1 they replace docs/screenshots/ for the README), then opens Runs and Correlations.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = ROOT / "docs" / "screenshots"
UPDATE_DOCS = os.environ.get("EDGEPROF_UPDATE_SCREENSHOTS") == "1"  # refresh the README's screenshots on purpose

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)"),
]

# Total points in the first plotly chart on the page (the latency chart on the Run page).
LATENCY_POINTS_JS = """() => {
  const d = [...document.querySelectorAll('.js-plotly-plot')].find(
    p => p.layout && /latency/i.test(String((p.layout.title || {}).text || '')));  // the latency chart, not another
  if (!d || !d._fullData) return 0;  // plotly keeps binary-encoded arrays in data; _fullData has each trace's length
  return d._fullData.reduce((a, t) => a + (t._length || 0), 0);
}"""
# the telemetry panel's CPU chart, as plotly drew it (Streamlit's theme wraps a title in <b>)
CPU_CHART_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].some(d => d.layout
  && String((d.layout.title || {}).text || '').replace(/<[^>]+>/g, '') === 'CPU'
  && ((d.layout.yaxis || {}).title || {}).text === 'CPU (%)')"""
LIVE_STATE_JS = """() => {
  const e = document.querySelector('.ep-live');
  return e ? {seq: Number(e.dataset.seq), newest: Number(e.dataset.newestWall), status: e.dataset.status} : null;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(home: Path, db: Path, root: Path = ROOT, address: str = "127.0.0.1"):
    """`streamlit run app.py` of the checkout at ``root`` on a free local port; always terminated (then killed) on
    exit. ``root``: another tree of the code (bench/bench_observer.py runs an older one beside this one). ``address``:
    what ``--server.address`` is given (empty binds every interface); the URL is always the loopback one."""
    port = free_port()
    env = {"MALLOC_ARENA_MAX": "2", **os.environ,  # as scripts/app.sh starts it
           "EDGEPROF_HOME": str(home), "EDGEPROF_DB": str(db), "PYTHONPATH": str(root)}
    log = open(home / "streamlit.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), f"--server.address={address}",
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 40
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("streamlit did not start:\n" + (home / "streamlit.log").read_text()[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@contextlib.contextmanager
def chromium_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2300})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def select_option(page, label: str, option: str) -> None:
    box = page.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text(label, exact=True)).first
    box.click()
    page.get_by_role("option", name=option, exact=True).click()


def wait_for_app(page) -> None:
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
                           " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
                           timeout=30_000)


def prepare_run(page, url: str, duration_s: float) -> None:
    """Open the Run page, pick digits-cnn on one thread and set the duration override, ready for Start run. One
    thread: the worker has CPU priority (worker/priority.py), and on every core of a small machine it would leave the
    server and this browser too little to refresh the live view (bench/bench_observer.py measures that case)."""
    page.goto(url)
    page.get_by_role("button", name="Start run").wait_for()
    select_option(page, "Model", "digits-cnn")
    threads = page.get_by_label("Threads")
    threads.fill("1")
    threads.press("Enter")
    page.get_by_text("Advanced", exact=True).click()
    field = page.get_by_label("Duration override (s of steady state; 0 = use the preset)")
    field.fill(str(duration_s))
    field.press("Enter")
    time.sleep(0.5)
    wait_for_app(page)


def start_run(page, url: str, duration_s: float) -> float:
    """prepare_run, then press Start run; returns the click's wall time."""
    prepare_run(page, url, duration_s)
    clicked = time.time()
    page.get_by_role("button", name="Start run").click()
    return clicked


def make_runs(db: Path) -> None:
    """A few short stored runs (one model at several precisions and runtimes) so Correlations has points to show."""
    from edgeprof.config import RunConfig
    from edgeprof.run import start_run

    for runtime, precision, threads in (("onnx", "fp32", 1), ("tflite", "int8-static", 2), ("tflite", "fp16", 1)):
        cfg = RunConfig(model="digits-cnn", runtime=runtime, precision=precision, threads=threads, duration_s=0.3,
                        iterations=50)
        res = start_run(cfg, db).wait(60)
        assert res and res["status"] == "ok", res


def test_live_run_in_the_browser(tmp_path, monkeypatch):
    """The live view draws and keeps refreshing, with CPU priority as a user gets it (the app's process joins the run's
    group, so its threads are not starved behind the worker; tests/test_priority.py). One worker thread: the test
    process and the browser keep a core. What watching costs the run is measured by bench/bench_observer.py."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("EDGEPROF_HOME", str(home))  # one data directory (and device lock) for this test and the server
    db = tmp_path / "runs.duckdb"
    make_runs(db)
    if UPDATE_DOCS:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with streamlit_server(home, db) as url, chromium_page() as page:
        start_run(page, url, 6)
        page.wait_for_function(f"({LATENCY_POINTS_JS})() >= 200", timeout=30_000)
        page.wait_for_function(f"(({LIVE_STATE_JS})() || {{}}).seq >= 1000", timeout=20_000)
        first = page.evaluate(LIVE_STATE_JS)
        time.sleep(1.2)
        later = page.evaluate(LIVE_STATE_JS)
        assert later["seq"] > first["seq"], "the live view stopped refreshing during the run"
        page.get_by_role("button", name="Stop").wait_for()
        page.screenshot(path=str(tmp_path / "run-page.png"))
        if UPDATE_DOCS:
            shutil.copy(tmp_path / "run-page.png", SCREENSHOTS / "run-page.png")

        page.get_by_text("finished normally").wait_for(timeout=40_000)
        # the finished view re-mounts the chart under the summary: give plotly its redraw before counting
        page.wait_for_function(f"({LATENCY_POINTS_JS})() >= 200", timeout=15_000)
        assert page.evaluate(LATENCY_POINTS_JS) >= 200
        page.get_by_text("memory is what the limit acts on").wait_for()  # the telemetry panel, under the memory chart
        page.wait_for_function(CPU_CHART_JS, timeout=15_000)

        rid = page.evaluate(LIVE_STATE_JS.replace("return e ?", "return e ? e.dataset.run : null; return e ?"))
        page.goto(f"{url}/Runs?run_id={rid}")
        page.get_by_text("4 of 4 runs").wait_for()
        page.get_by_text("finished normally").wait_for()
        page.wait_for_function(f"({LATENCY_POINTS_JS})() >= 100")
        page.get_by_text("memory is what the limit acts on").wait_for()  # the same panel for the stored run
        page.wait_for_function(CPU_CHART_JS, timeout=15_000)
        wait_for_app(page)
        time.sleep(1.0)  # let the table canvas and the charts paint
        page.screenshot(path=str(tmp_path / "runs-page.png"))
        if UPDATE_DOCS:
            shutil.copy(tmp_path / "runs-page.png", SCREENSHOTS / "runs-page.png")

        page.goto(f"{url}/Correlations")
        page.get_by_text("across runs", exact=True).click()
        page.get_by_text("4 runs").first.wait_for()
        wait_for_app(page)
        time.sleep(1.0)
        page.screenshot(path=str(tmp_path / "correlations-page.png"))
        if UPDATE_DOCS:
            shutil.copy(tmp_path / "correlations-page.png", SCREENSHOTS / "correlations-page.png")
        assert page.locator('[data-testid="stException"]').count() == 0
