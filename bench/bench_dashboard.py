"""Dashboard benchmark: how fast the live view starts, how often it refreshes and how far behind it is, and how long
the Correlations page takes over a big database.

    .venv/bin/python bench/bench_dashboard.py [--seconds 8] [--runs 1000] [--rows 10000000]

1. start -> first point: the wall time from the Start click to the first point drawn on the latency chart, minus
   the model's load time (the summary's load_ms), in a real browser (headless Chromium via Playwright).
2. refresh rate and lag during a digits-cnn run (>= 1,000 inferences/s): a MutationObserver in the page timestamps
   every redraw of the live view; lag = browser wall time at the redraw - wall time of the newest point it shows
   (RunHandle.started_wall + (t_ns + latency_ns - started_ns)).
3. Correlations page over ``--runs`` runs and ``--rows`` latency rows generated with DuckDB SQL straight into a
   scratch database, timed with AppTest (cold: first run in this process; warm: the next one, as a server sees it).

Targets: 1 < 1 s, 2 >= 2 refreshes/s (and lag < 1 s), 3 < 2 s. Prints one table with PASS/FAIL per target.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

OBSERVER_JS = """() => {
  window.__ep = []; window.__epFirstChart = null; let last = null;
  const chartPoints = () => {  // the latency chart of the run started by the click, not another chart or run
    const e = document.querySelector('.ep-live');
    if (!e || e.dataset.run === window.__epBefore) return 0;
    const d = [...document.querySelectorAll('.js-plotly-plot')].find(
      p => p.layout && /latency/i.test(String((p.layout.title || {}).text || '')));
    return d && d._fullData ? d._fullData.reduce((a, t) => a + (t._length || 0), 0) : 0;
  };
  const check = () => {
    const e = document.querySelector('.ep-live');
    if (e && e.dataset.run !== window.__epBefore && e.dataset.renderWall !== last) {
      last = e.dataset.renderWall; window.__epRun = e.dataset.run;
      window.__ep.push([Date.now() / 1000, Number(e.dataset.seq), Number(e.dataset.newestWall), Number(last)]);
    }
    if (window.__epFirstChart === null && chartPoints() > 0) window.__epFirstChart = Date.now() / 1000;
  };
  new MutationObserver(check).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                       characterData: true});
  const tick = () => { check(); if (window.__epFirstChart === null) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}"""


def bench_browser(seconds: float) -> dict:
    from test_browser import chromium_page, streamlit_server

    from edgeprof.store import Store

    with tempfile.TemporaryDirectory(prefix="edgeprof-bench-") as tmp:
        home = Path(tmp)
        db = home / "runs.duckdb"
        with streamlit_server(home, db) as url, chromium_page() as page:
            # a first run warms the server process (imports, caches), as a booth machine would be warm
            _start(page, url, 1.0)
            _wait_finished(page, 60)
            _start(page, url, seconds, observe=True)
            clicked = page.evaluate("() => window.__epClicked")
            rid = _wait_finished(page, 120)
            events = page.evaluate("() => window.__ep")
            first_chart = page.evaluate("() => window.__epFirstChart")
        run = Store(db).get_run(rid)
    load_s = (run.get("load_ms") or 0) / 1000
    live = [e for e in events if e[1] > 0 and e[2] > 0]
    # steady part of the run: from 1 s after the first point to the last refresh before the end
    steady = [e for e in live if e[0] >= live[0][0] + 1.0] if live else []
    steady = steady[:-1] if len(steady) > 2 else steady
    span = steady[-1][0] - steady[0][0] if len(steady) > 1 else 0
    rate = (len(steady) - 1) / span if span > 0 else 0.0
    lags = [e[0] - e[2] for e in steady]
    return {
        "start_to_first_point_s": (first_chart - clicked) if first_chart and clicked else None,
        "load_s": load_s,
        "refreshes_per_s": rate,
        "lag_median_s": statistics.median(lags) if lags else None,
        "lag_p90_s": sorted(lags)[int(0.9 * (len(lags) - 1))] if lags else None,
        "inferences_per_s": run.get("throughput_ips"),
        "n_refreshes": len(steady),
    }


LIVE_RUN_JS = "() => { const e = document.querySelector('.ep-live'); return e ? e.dataset.run : null; }"


def _wait_finished(page, timeout_s: float) -> str:
    """The run started by the last click, once its own summary shows (the Run page opens on the newest stored run,
    which also says "finished normally", so that text alone proves nothing); returns its id."""
    prev = page.evaluate("() => window.__epBefore")
    page.wait_for_function(f"prev => ({LIVE_RUN_JS})() && ({LIVE_RUN_JS})() !== prev", arg=prev,
                           timeout=timeout_s * 1000)
    rid = page.evaluate(LIVE_RUN_JS)
    page.wait_for_function("rid => document.body.innerText.includes(rid + ' finished normally')", arg=rid,
                           timeout=timeout_s * 1000)
    return rid


def _start(page, url: str, duration_s: float, observe: bool = False) -> None:
    from test_browser import prepare_run

    prepare_run(page, url, duration_s)
    page.evaluate(f"() => {{ window.__epBefore = ({LIVE_RUN_JS})(); }}")  # a page may show the previous run
    if observe:
        page.evaluate(OBSERVER_JS)
    button = page.get_by_role("button", name="Start run")
    button.evaluate("b => b.addEventListener('click', () => { window.__epClicked = Date.now() / 1000; }, {once: true})")
    button.click()


def make_big_db(path: Path, runs: int, rows: int) -> float:
    """``runs`` ok runs and ``rows`` latency rows (spread evenly), with SQL range(); returns seconds taken."""
    import duckdb

    from edgeprof.store import Store

    t0 = time.perf_counter()
    Store(path)  # schema
    per_run = max(1, rows // runs)
    con = duckdb.connect(str(path))
    con.execute("""INSERT INTO devices (device_id, hostname, machine, model, cores, first_seen, last_seen)
                   VALUES ('dev0', 'bench-host', 'x86_64', 'bench', 2, now(), now()),
                          ('dev1', 'bench-pi', 'aarch64', 'Raspberry Pi 4', 4, now(), now())""")
    con.execute(f"""
        INSERT INTO runs (run_id, device_id, created_at, finished_at, status, model, precision, runtime, threads,
                          memory_limit_mb, model_size_bytes, load_ms, first_inference_ms, warmup_ms, p50_ms, p90_ms,
                          p99_ms, mean_ms, n, throughput_ips, cpu_system_mean_pct, cpu_worker_mean_pct, peak_rss_mb,
                          peak_charged_mb, gpu_util_mean_pct, temp_max_c, owner_pid, owner_host)
        SELECT printf('run%06d', i), CASE WHEN i % 3 = 0 THEN 'dev1' ELSE 'dev0' END,
               TIMESTAMP '2026-11-01' + INTERVAL (i) MINUTE, TIMESTAMP '2026-11-01' + INTERVAL (i) MINUTE, 'ok',
               CASE WHEN i % 2 = 0 THEN 'digits-cnn' ELSE 'efficientnet-lite0' END,
               ['fp32', 'fp16', 'int8-dynamic', 'int8-static'][1 + i % 4], CASE WHEN i % 5 = 0 THEN 'tflite' ELSE 'onnx' END,
               1 + i % 4, [NULL, 64, 128, 256][1 + i % 4], 100000 + (i % 4) * 50000,
               100 + random() * 50, 1 + random(), 50 + random() * 100,
               1 + (i % 4) + random(), 1.2 + (i % 4) + random(), 2 + (i % 4) + random(), 1.1 + (i % 4), {per_run},
               500 + random() * 100, 40 + random() * 60, 90 + random() * 100, 60 + random() * 40, 50 + random() * 30,
               NULL, 45 + random() * 20, 0, 'bench-host'
        FROM range({runs}) t(i)""")
    con.execute(f"""
        INSERT INTO latency
        SELECT printf('run%06d', i // {per_run}), (i % {per_run})::INTEGER, (i % {per_run}) * 1000000,
               (1000000 + random() * 200000)::BIGINT, CASE WHEN i % {per_run} < 10 THEN 'warmup' ELSE 'steady' END
        FROM range({per_run * runs}) t(i)""")
    con.execute(f"""
        INSERT INTO telemetry
        SELECT printf('run%06d', i // 50), (i % 50) * 100000000, 'host',
               ['cpu.total_pct', 'cpu.worker_pct', 'mem.used_mb', 'mem.worker_rss_mb'][1 + i % 4], random() * 100, '%'
        FROM range({runs * 50}) t(i)""")
    con.close()
    return time.perf_counter() - t0


def bench_correlations(runs: int, rows: int) -> dict:
    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory(prefix="edgeprof-bench-db-") as tmp:
        db = Path(tmp) / "big.duckdb"
        gen_s = make_big_db(db, runs, rows)
        os.environ["EDGEPROF_DB"] = str(db)
        os.environ["EDGEPROF_HOME"] = tmp
        times = []
        for _ in range(3):
            at = AppTest.from_file(str(ROOT / "views" / "3_Correlations.py"), default_timeout=120)
            at.session_state["corr_mode"] = "across runs"  # the page opens on the memory question now
            t0 = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - t0)
            assert not at.exception, at.exception
            n_rows = len(at.dataframe[0].value)
        at.radio(key="corr_mode").set_value("over time inside one run")
        t0 = time.perf_counter()
        at.run()
        within = time.perf_counter() - t0
        assert not at.exception, at.exception
    return {"generate_s": gen_s, "cold_s": times[0], "warm_s": min(times[1:]), "within_run_s": within,
            "pairs": n_rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="steady-state seconds of the live run")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--skip-browser", action="store_true")
    args = ap.parse_args()

    rows = []
    if not args.skip_browser:
        b = bench_browser(args.seconds)
        first = b["start_to_first_point_s"]
        net = None if first is None else first - b["load_s"]
        rows.append(("start click -> first point, minus load", f"{net:.3f} s" if net is not None else "none",
                     f"(raw {first:.3f} s, load {b['load_s']:.3f} s)" if first else "", "< 1 s",
                     net is not None and net < 1.0))
        rows.append(("live refreshes per second", f"{b['refreshes_per_s']:.2f}/s",
                     f"({b['n_refreshes']} redraws, run at {b['inferences_per_s'] or 0:,.0f} inf/s)", ">= 2/s",
                     b["refreshes_per_s"] >= 2.0))
        lag_ok = b["lag_median_s"] is not None and b["lag_p90_s"] < 1.0
        rows.append(("lag behind the worker (median / p90)",
                     f"{b['lag_median_s']:.3f} / {b['lag_p90_s']:.3f} s" if b["lag_median_s"] is not None else "none",
                     "", "< 1 s", lag_ok))
    c = bench_correlations(args.runs, args.rows)
    rows.append((f"Correlations page, {args.runs:,} runs / {args.rows:,} rows", f"{c['warm_s']:.3f} s",
                 f"(cold {c['cold_s']:.2f} s, within-run mode {c['within_run_s']:.2f} s, generated in "
                 f"{c['generate_s']:.1f} s)", "< 2 s", c["warm_s"] < 2.0))

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>18}  {'target':>7}  result  detail")
    for name, value, detail, target, ok in rows:
        print(f"{name:<{width}}  {value:>18}  {target:>7}  {'PASS' if ok else 'FAIL':<6}  {detail}")
    return 0 if all(r[4] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
