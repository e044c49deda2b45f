"""The student's three questions, answered by the pages in a real browser, on a small study of real runs.

1. "Does less memory make inference slower here?"  Correlations, its default view.
2. "Is INT8 faster than FP32?"                      Compare, fp32 against int8-static of the same model.
3. "How does CPU relate to latency?"                Correlations, across runs, latency against worker CPU.

Each check reads what the user reads: the chart titles, axis titles and ranges as plotly drew them, legend names,
the sentence under the chart, the table's cells.
"""

from __future__ import annotations

import re
import time

import pytest
from helpers import cgroup_writable
from test_browser import chromium_page, streamlit_server, wait_for_app

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not cgroup_writable(), reason="footprints need a memory cgroup (root on cgroup v1)")]

FIGURES_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(d => ({
  title: ((d.layout.title || {}).text || '').replace(/<[^>]+>/g, ''),
  x: ((d.layout.xaxis || {}).title || {}).text || '', y: ((d.layout.yaxis || {}).title || {}).text || '',
  xtype: d._fullLayout.xaxis.type, ytype: d._fullLayout.yaxis.type,
  xrange: d._fullLayout.xaxis.range, yrange: d._fullLayout.yaxis.range,
  ticktext: (d.layout.xaxis || {}).ticktext || [], names: d.data.map(t => t.name).filter(n => n)}))"""


def figure(page, title: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in page.evaluate(FIGURES_JS):
            if f["title"] == title:
                return f
        time.sleep(0.3)
    raise AssertionError(f"no chart titled {title!r}: " + ", ".join(f["title"] for f in page.evaluate(FIGURES_JS)))


@pytest.fixture(scope="module")
def study_db(tmp_path_factory):
    """digits-cnn fp32 and int8-static, ONNX, no limit, 2x and 1.25x their footprint, two repetitions: 12 runs."""
    from edgeprof import study
    from edgeprof.store import Store

    home = tmp_path_factory.mktemp("questions-home")
    db = home / "runs.duckdb"
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEPROF_HOME", str(home))
    try:
        cfg = study.StudyConfig(name="questions", models=["digits-cnn"], precisions=["fp32", "int8-static"],
                                memory_limits=["none", "2x", "1.25x"], repetitions=2, duration_s=1.0, warmup=20,
                                cooldown_s=0)
        summary = study.run_study(cfg, Store(db))
        assert summary["done"] == summary["cells"] == 12, summary
    finally:
        mp.undo()
    return home, db


def test_the_three_questions_read_right_in_the_browser(study_db, monkeypatch):
    home, db = study_db
    monkeypatch.setenv("EDGEPROF_HOME", str(home))
    with streamlit_server(home, db) as url, chromium_page() as page:
        # 1. less memory, slower? -- the Correlations page opens on it
        page.goto(f"{url}/Correlations")
        page.get_by_text("does less memory slow inference?", exact=True).wait_for()
        wait_for_app(page)
        mem = figure(page, "Does less memory make inference slower?")
        assert mem["x"] == "memory limit / the variant's footprint (x)" and mem["xtype"] == "log"
        assert mem["y"] == "p50 / p50 without a limit (x)" and mem["ytype"] == "log"
        assert "no limit" in mem["ticktext"] and "2x" in mem["ticktext"] and "1.25x" in mem["ticktext"]
        assert set(mem["names"]) >= {"digits-cnn fp32 onnx t2", "digits-cnn int8-static onnx t2"}
        lo, hi = (10 ** v for v in mem["xrange"])
        assert lo < 1.25 and hi > 2  # every cap is on the axis, and the "no limit" column beyond them
        sentence = page.get_by_text(re.compile(r"n = 8 runs of 2 variant\(s\)")).first.inner_text()
        assert re.match(r"(No evidence that less memory makes inference slower here|Yes: here a tighter memory "
                        r"limit makes inference slower|Here latency falls as the limit tightens)", sentence), sentence
        assert "Spearman rho = " in sentence and re.search(r"\bp [=<] ", sentence), sentence  # p < 0.001 when strong
        footprints = page.locator('[data-testid="stTable"]').first.inner_text()
        assert re.search(r"digits-cnn fp32 onnx t2\s+\d+ MB", footprints), footprints

        # 3. CPU and latency -- across runs, latency on the y axis, the sentence says how sure
        page.get_by_text("across runs", exact=True).click()
        page.get_by_text("12 runs").first.wait_for()
        wait_for_app(page)
        scatter = figure(page, "latency p50 (ms) vs CPU worker mean (%)")
        assert scatter["y"] == "latency p50 (ms)" and scatter["x"] == "CPU worker mean (%)"
        assert set(scatter["names"]) >= {"fp32", "int8-static"}
        said = page.get_by_text(re.compile(r"(No evidence of a relation between|No consistent relation between|"
                                           r"latency p50 \(ms\)(\*\*)? \w+ (rises|falls))")).first.inner_text()
        assert "n = 12 runs" in said and re.search(r"\bp [=<] ", said), said

        # 2. INT8 against FP32 -- Compare, the ratio first, names that tell the runs apart
        page.goto(f"{url}/Compare")
        page.get_by_text("Runs (2 to 4)").wait_for()
        wait_for_app(page)
        cdf = figure(page, "Latency distribution (CDF)")
        assert cdf["y"] == "share of inferences at or below" and cdf["x"].startswith("latency (ms")
        assert all(re.fullmatch(r"digits-cnn (fp32|int8-static) · onnx · (no limit|limit \d+ MB) · 2 threads · …\w{4}",
                                n) for n in cdf["names"]), cdf["names"]
        said = page.get_by_text(re.compile(r"time per inference (than|as) the baseline")).first.inner_text()
        assert re.fullmatch(r"digits-cnn .+ takes (\d+% (less|more) time per inference than|the same time per inference "
                            r"as) the baseline \(95% interval within these runs only [\d.]+ to [\d.]+\); single run: no "
                            r"between-run uncertainty.*\.", said, re.S), said
        page.screenshot(path=str(home / "compare.png"))
        assert page.locator('[data-testid="stException"]').count() == 0


def test_int8_against_fp32_in_the_report(study_db, monkeypatch):
    """The report answers 'is INT8 faster?' with bars relative to FP32, and its verdict in words."""
    home, db = study_db
    monkeypatch.setenv("EDGEPROF_HOME", str(home))
    with streamlit_server(home, db) as url, chromium_page() as page:
        page.goto(f"{url}/Report")
        page.get_by_role("heading", name="Findings").wait_for(timeout=90_000)
        wait_for_app(page)
        page.get_by_text("Fewer bits give a lower latency; more bits on the same model a higher latency.").wait_for()
        page.get_by_role("heading", name="Latency by model size").wait_for(state="detached")
        page.get_by_text("Latency by model size: not drawn, this study has one model").wait_for()
        page.get_by_role("heading", name="Latency by precision").wait_for()
        assert page.locator('[data-testid="stException"]').count() == 0
