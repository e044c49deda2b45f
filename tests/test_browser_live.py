"""The live view watched in a browser on the device itself (issue 24): during a run started from the Run page as a
student starts it (the default threads, CPU priority on), the latency chart in Chromium keeps changing.

What is counted is what a person sees: the latency chart's plotted data (its newest point and its length, read from
plotly's own ``_fullData`` after each plot) changing while the page says the run is running. A count, not a rate:
this 2-core machine is shared, so the test asks for far fewer redraws than the target of one a second, which
``bench/bench_scale.py`` measures (``watched_live_view``) beside the same run headless.
"""

from __future__ import annotations

import time

import pytest
from test_browser import (
    CHROMIUM,
    chromium_page,
    select_option,
    streamlit_server,
    wait_for_app,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(),
                       reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)"),
]

# Counts each change of the latency chart's drawn data while the run is running, by polling what plotly plotted
# (a redraw the browser never got to, because the tab was starved, changes nothing here). Kept on window.__epChart.
CHART_REDRAWS_JS = """() => {
  const c = window.__epChart = {redraws: [], last: null, running: []};
  const sig = () => {
    const d = [...document.querySelectorAll('.js-plotly-plot')].find(
      p => p.layout && /latency/i.test(String((p.layout.title || {}).text || '')));
    if (!d || !d._fullData || !d._fullData.length) return null;
    return d._fullData.map(t => {
      const n = t._length || 0, x = t.x || [];
      return n + ':' + (n ? x[n - 1] : '');
    }).join('|');
  };
  const tick = () => {
    const e = document.querySelector('.ep-live');
    const running = !!e && e.dataset.status === 'running';
    const now = Date.now() / 1000;
    if (running) c.running.push(now);
    const s = sig();
    if (running && s !== null && s !== c.last) c.redraws.push(now);
    if (s !== null) c.last = s;
  };
  window.__epChartTimer = setInterval(tick, 50);
}"""
READ_REDRAWS_JS = """() => {
  const c = window.__epChart;
  const r = c.redraws, run = c.running;
  let gap = 0;
  for (let i = 1; i < r.length; i++) gap = Math.max(gap, r[i] - r[i - 1]);
  return {redraws: r.length, running_s: run.length ? run[run.length - 1] - run[0] : 0, longest_gap_s: gap,
          first: r.length ? r[0] : null, last: r.length ? r[r.length - 1] : null};
}"""
LIVE_RUN_JS = "() => { const e = document.querySelector('.ep-live'); return e ? e.dataset.run : null; }"


def watch_run(page, url: str, model: str, seconds: float, timeout_s: float) -> dict:
    """Start a run of ``model`` for ``seconds`` of steady state from the Run page (every other setting as the page
    offers it) and watch it to its end; returns the chart's redraw count, how long the page said it was running,
    the longest gap between redraws (s) and the run's id."""
    page.goto(url)
    page.get_by_role("button", name="Start run").wait_for()
    if model != "digits-cnn":
        select_option(page, "Model", model)
        wait_for_app(page)
    page.get_by_text("Advanced", exact=True).click()
    field = page.get_by_label("Duration override (s of steady state; 0 = use the preset)")
    field.fill(f"{seconds:g}")
    field.press("Enter")
    time.sleep(0.5)
    wait_for_app(page)
    before = page.evaluate(LIVE_RUN_JS)  # a page may still show the server's previous run
    page.evaluate(CHART_REDRAWS_JS)
    page.get_by_role("button", name="Start run").click()
    page.wait_for_function(f"prev => ({LIVE_RUN_JS})() && ({LIVE_RUN_JS})() !== prev", arg=before,
                           timeout=timeout_s * 1000)
    rid = page.evaluate(LIVE_RUN_JS)
    page.wait_for_function("rid => document.body.innerText.includes(rid + ' finished normally')", arg=rid,
                           timeout=timeout_s * 1000)
    return {**page.evaluate(READ_REDRAWS_JS), "run_id": rid}


MIN_REDRAWS = 5  # during a 12-s run: 0.4 a second, far below the target of 1 a second (a loaded, shared 2-core CI)


def test_the_live_chart_redraws_during_a_run_watched_on_the_device(tmp_path, monkeypatch):
    """Before issue 24, on this machine under load, the chart did not change at all during whole runs."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("EDGEPROF_HOME", str(home))
    monkeypatch.delenv("EDGEPROF_CPU_PRIORITY", raising=False)
    db = tmp_path / "runs.duckdb"
    with streamlit_server(home, db) as url, chromium_page() as page:
        page.set_default_timeout(90_000)  # a fresh server's first page on a shared, loaded 2-core machine
        seen = watch_run(page, url, "digits-cnn", 12, 180)
        page.get_by_text("watched in a browser on this").first.wait_for(timeout=30_000)
    assert seen["redraws"] >= MIN_REDRAWS, (
        f"the latency chart changed {seen['redraws']} times during {seen['running_s']:.1f} s of a running run "
        f"(longest gap {seen['longest_gap_s']:.1f} s)")
