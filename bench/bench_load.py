"""Load benchmark for the demo booth: a study running in the server while several browsers watch it live.

    .venv/bin/python bench/bench_load.py [--minutes 10] [--sessions 4] [--cell-seconds auto] [--slope-max 1.0]

1. Starts `streamlit run app.py` on a free 127.0.0.1 port with a scratch EDGEPROF_HOME / EDGEPROF_DB (the helper of
   tests/test_browser.py), and one headless Chromium (Debian's /usr/bin/chromium, via Playwright).
2. In a first browser context, drives the Study page: the quick preset, a per-cell duration override long enough for
   the study to outlast the measurement, Start study. The study runs in a thread of the server process, so its runs
   are live in the server's run registry.
3. Opens ``--sessions`` more browser contexts (separate Streamlit sessions, like separate visitors) on the Run page,
   which attach to the active run (the study's current cell) and follow the study from cell to cell.
4. For ``--minutes``: in each session a MutationObserver (the hook bench_dashboard.py uses: the live view's hidden
   ``.ep-live`` element gets a new ``data-render-wall`` at every redraw) timestamps every redraw and the run it shows,
   and records every error element that appears (st.exception, an st.error that is not a run's own result line, the
   text "Traceback"); the server process's RSS is sampled every second with psutil.
5. Stops the study, closes the browsers, terminates the server (always, also on errors and Ctrl-C; a watchdog kills
   everything if the whole thing overruns its time bound) and prints one table.

PASS/FAIL: no errors in any session; every session >= 1 refresh/s in every 30-s window; every session showed the
study's cells live (only study runs, and each cell that ran during the measurement); the memory the server keeps
grows by less than ``--slope-max`` MB/min (1 MB/min = 60 MB an hour, i.e. a booth day of 8 h adds < 0.5 GB).

What "keeps" means: the least-squares slope, over the second half of the measurement, of each minute's minimum RSS.
RSS at a random instant also holds what is about to be freed (a flush's columns, a figure build, a summary's sort:
tens of MB for a fraction of a second), and those transients made the slope of the raw samples swing from -0.7 to
+7.4 MB/min between two runs of the same code on a flat level. A leak raises every minute's minimum as it raises
the mean; the minimum drops the transients. The raw-sample slope is still printed, as information.

The browsers talk only to 127.0.0.1: every request to another host is aborted,
counted and listed (not a PASS/FAIL item: it is the page asking, not the benchmark).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

WINDOW_S = 30.0
RSS_EVERY_S = 1.0
SCAN_EVERY_S = 5.0  # Traceback text scan of every page (a DOM read per page: Chromium CPU)
QUICK_CELLS = 24  # studies/quick.toml: 2 models x 4 precisions x 3 memory limits
CELL_OVERHEAD_S = 4.0  # spawn, load, warm-up and the 1-s cooldown around each cell's measured seconds
# the visitor's browsers are separate, visible windows: no background-tab timer throttling in this one Chromium
EXTRA_ARGS = ["--disable-background-timer-throttling", "--disable-renderer-backgrounding",
              "--disable-backgrounding-occluded-windows"]

# Installed in every Run-page session: one entry per redraw of the live view, distinct error texts, any Traceback.
OBSERVER_JS = """() => {
  if (window.__ep) return;
  window.__ep = []; window.__epErrors = {}; window.__epOutcomes = {}; let last = null; let lastScan = 0;
  const scan = () => {
    for (const e of document.querySelectorAll('[data-testid="stException"]'))
      window.__epErrors['exception: ' + e.innerText.slice(0, 300)] = Date.now() / 1000;
    for (const e of document.querySelectorAll('[data-testid="stAlertContentError"]')) {
      const t = e.innerText.trim();
      // a run's own result line ("Run `id` was killed for running out of memory ...") is a result, not a page error
      if (/^Run \\S+ /.test(t)) window.__epOutcomes[t.slice(0, 300)] = Date.now() / 1000;
      else window.__epErrors['st.error: ' + t.slice(0, 300)] = Date.now() / 1000;
    }
    if (document.body.textContent.includes('Traceback')) window.__epErrors['Traceback text on the page'] = Date.now() / 1000;
  };
  const check = () => {
    const e = document.querySelector('.ep-live');
    if (e && e.dataset.renderWall !== last) {
      last = e.dataset.renderWall;
      window.__ep.push([Date.now() / 1000, Number(e.dataset.seq), e.dataset.run, e.dataset.status]);
    }
    const now = Date.now();
    if (now - lastScan > 250) { lastScan = now; scan(); }
  };
  new MutationObserver(check).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                       characterData: true});
  setInterval(scan, 1000);
}"""


def server_process(port: int):
    """The `streamlit run` child of this process serving ``port``."""
    import psutil

    for child in psutil.Process().children(recursive=False):
        with contextlib.suppress(psutil.Error):
            cmd = child.cmdline()
            if "streamlit" in " ".join(cmd) and str(port) in cmd:
                return child
    raise RuntimeError(f"no streamlit child process serves port {port}")


def cpu_seconds(server) -> dict[str, float]:
    """Cumulative CPU seconds so far: the server's own threads, its inference workers (live ones plus those it has
    reaped), every Chromium process, and the whole machine (busy time of all cores)."""
    import psutil

    out = {"server": 0.0, "workers": 0.0, "browsers": 0.0}
    with contextlib.suppress(psutil.Error):
        t = server.cpu_times()
        out["server"] = t.user + t.system
        out["workers"] = t.children_user + t.children_system
        for c in server.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                ct = c.cpu_times()
                out["workers"] += ct.user + ct.system
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "chrom" in proc.name().lower():
                ct = proc.cpu_times()
                out["browsers"] += ct.user + ct.system
    m = psutil.cpu_times()
    out["machine"] = m.user + m.system + getattr(m, "nice", 0) + getattr(m, "irq", 0) + getattr(m, "softirq", 0)
    return out


def watchdog(seconds: float, server_pid_box: list) -> threading.Timer:
    """Kill the server (and its workers) and this process if the benchmark overruns its bound: it must stop."""
    def fire():
        import psutil

        print(f"\nbench_load: overran its {seconds:.0f}-s bound; killing the server and exiting", file=sys.stderr, flush=True)
        for pid in server_pid_box:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                for c in proc.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        c.kill()
                proc.kill()
        os.kill(os.getpid(), signal.SIGKILL)  # Playwright's driver and Chromium die with their parent's pipes

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()
    return t


def local_only(context, blocked: list) -> None:
    """Abort every request to a host other than 127.0.0.1 (and count it): the booth has no internet."""
    def route(r):
        url = r.request.url
        if url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:")):
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    context.route("**/*", route)


def set_number(page, label: str, value: float) -> None:
    from test_browser import wait_for_app

    field = page.get_by_label(label)
    field.fill(f"{value:g}")
    field.press("Enter")
    time.sleep(0.5)
    wait_for_app(page)


def start_study(page, url: str, cell_s: float) -> None:
    from test_browser import wait_for_app

    page.goto(f"{url}/Study")
    page.get_by_role("button", name="Start study").wait_for()
    page.get_by_text("Preset: quick", exact=True).click()
    set_number(page, "Duration override per cell (s of steady state; 0 = as the study says)", cell_s)
    page.get_by_text(f"{QUICK_CELLS} cells:").wait_for()
    wait_for_app(page)
    page.get_by_role("button", name="Start study").click()
    page.get_by_text("cells ·").first.wait_for(timeout=30_000)  # the progress bar of the running study


def wait_for_study(store, timeout_s: float = 60.0) -> str:
    """The id of the study the page started, once its thread has stored it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        df = store.list_studies()
        if len(df):
            return str(df.iloc[0]["study_id"])
        time.sleep(0.5)
    raise RuntimeError(f"the study did not appear in the database within {timeout_s:g} s")


def stop_study(page) -> str:
    with contextlib.suppress(Exception):
        page.get_by_role("button", name="Stop study").click(timeout=5_000)
        page.get_by_text("stopped after").first.wait_for(timeout=30_000)
        return "stopped"
    return "not stopped from the page (the server's exit ends it)"


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t s, RSS MB) in MB per minute."""
    if len(samples) < 3:
        return None
    ts = [t for t, _ in samples]
    ys = [y for _, y in samples]
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return None if den == 0 else 60 * sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / den


def minute_floors(samples: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(middle of the minute s, minimum RSS MB) for each whole minute of samples."""
    by: dict[int, list[float]] = {}
    for t, y in samples:
        by.setdefault(int(t // 60), []).append(y)
    return [((k + 0.5) * 60, min(v)) for k, v in sorted(by.items()) if len(v) >= 30 / RSS_EVERY_S]


def window_rates(stamps: list[float], t0: float, t1: float) -> list[float]:
    """Redraws per second in each whole 30-s window of [t0, t1]."""
    n = int((t1 - t0) // WINDOW_S)
    out = []
    for i in range(n):
        a = t0 + i * WINDOW_S
        out.append(sum(1 for s in stamps if a <= s < a + WINDOW_S) / WINDOW_S)
    return out


def run(args) -> int:
    import psutil
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server, wait_for_app

    from edgeprof.store import Store

    measure_s = args.minutes * 60
    cell_s = args.cell_seconds or max(5.0, math.ceil(2 * measure_s / QUICK_CELLS - CELL_OVERHEAD_S))
    bound_s = measure_s + 300  # start-up, attaching, stopping: everything must be over by then
    pid_box: list[int] = []
    dog = watchdog(bound_s + 60, pid_box)
    blocked: list[str] = []
    events: dict[int, list] = {}
    errors: dict[int, dict] = {}
    outcomes: dict[int, dict] = {}
    rss: list[tuple[float, float]] = []
    study_state = "?"
    cpu: dict[str, float] = {}
    t_start = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="edgeprof-load-") as tmp:
        home = Path(tmp)
        db = home / "runs.duckdb"
        os.environ["EDGEPROF_HOME"] = str(home)  # this process's Store agrees with the server
        with streamlit_server(home, db) as url, sync_playwright() as p:
            server = server_process(int(url.rsplit(":", 1)[1]))
            pid_box.append(server.pid)
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + EXTRA_ARGS, headless=True)
            try:
                contexts = []
                for _ in range(args.sessions + 1):
                    ctx = browser.new_context(viewport={"width": 1400, "height": 1100})
                    local_only(ctx, blocked)
                    contexts.append(ctx)
                driver = contexts[0].new_page()
                driver.set_default_timeout(30_000)
                print(f"server pid {server.pid} at {url}; study: quick preset, {cell_s:g} s per cell; "
                      f"{args.sessions} Run-page sessions for {args.minutes:g} min", flush=True)
                start_study(driver, url, cell_s)
                study_id = wait_for_study(Store(db))

                pages = []
                for ctx in contexts[1:]:
                    pg = ctx.new_page()
                    pg.set_default_timeout(30_000)
                    pg.goto(url)
                    wait_for_app(pg)
                    pg.evaluate(OBSERVER_JS)
                    pages.append(pg)
                for pg in pages:  # each one attaches to the study's current run (or the next, between cells)
                    pg.wait_for_selector(".ep-live", state="attached", timeout=90_000)
                hidden = [pg.evaluate("() => document.visibilityState") for pg in pages]

                t0 = time.time()
                t_end = t0 + measure_s
                cpu0 = cpu_seconds(server)
                next_rss = next_scan = 0.0
                print(f"measuring from {time.strftime('%H:%M:%S')}", flush=True)
                while time.time() < t_end:
                    now = time.time()
                    if now >= next_rss:
                        with contextlib.suppress(psutil.Error):
                            rss.append((now - t0, server.memory_info().rss / 2**20))
                        next_rss = now + RSS_EVERY_S
                    if now >= next_scan:
                        next_scan = now + SCAN_EVERY_S
                        for pg in pages:  # also catches Traceback text that an observer scan might miss
                            if "Traceback" in pg.locator("body").inner_text():
                                pg.evaluate("() => { window.__epErrors['Traceback text on the page'] = Date.now() / 1000; }")
                    if not server.is_running():
                        raise RuntimeError("the server process ended during the measurement")
                    if time.monotonic() - t_start > bound_s - 60:
                        raise RuntimeError("out of time before the measurement ended")
                    time.sleep(min(1.0, max(0.05, t_end - time.time())))
                with contextlib.suppress(psutil.Error):
                    rss.append((time.time() - t0, server.memory_info().rss / 2**20))
                cpu1 = cpu_seconds(server)
                cpu = {k: (cpu1[k] - cpu0[k]) / (time.time() - t0) * 100 for k in cpu0}
                for i, pg in enumerate(pages):
                    events[i] = pg.evaluate("() => window.__ep")
                    errors[i] = pg.evaluate("() => window.__epErrors")
                    outcomes[i] = pg.evaluate("() => window.__epOutcomes")
                study_state = stop_study(driver)
            finally:
                with contextlib.suppress(Exception):
                    browser.close()
        # the server has been terminated here (streamlit_server's exit); read what the study did
        store = Store(db)
        study_runs = store.list_runs(study_id=study_id)
        cells = store.cells(study_id)
    dog.cancel()
    if args.dump:
        import json

        args.dump.write_text(json.dumps({"t0": t0, "t_end": t_end, "events": events, "errors": errors, "rss": rss,
                                         "cpu_pct": cpu}, indent=None))
    return report(args, cell_s, t0, t_end, events, errors, outcomes, rss, hidden, blocked, study_id, study_runs,
                  cells, study_state, cpu)


def report(args, cell_s, t0, t_end, events, errors, outcomes, rss, hidden, blocked, study_id, study_runs, cells,
           study_state, cpu) -> int:
    import pandas as pd

    study_ids = set(study_runs["run_id"].astype(str))
    created = pd.to_datetime(study_runs["created_at"], utc=True) if len(study_runs) else pd.Series(dtype=object)
    finished = pd.to_datetime(study_runs["finished_at"], utc=True) if len(study_runs) else pd.Series(dtype=object)
    # study runs live at some moment of the window for long enough to be attached to (a page polls for the next run
    # every FOLLOW_S = 0.5 s): started 2 s before the window closed, ended 2 s after it opened, lasted 3 s or more
    lo, hi = pd.Timestamp(t0 + 2, unit="s", tz="UTC"), pd.Timestamp(t_end - 2, unit="s", tz="UTC")
    long_enough = finished.isna() | ((finished - created) >= pd.Timedelta(seconds=3))
    live_in_window = set(study_runs["run_id"][(created < hi) & (finished.isna() | (finished > lo)) & long_enough]
                         .astype(str)) if len(study_runs) else set()

    rows, ok_errors, ok_rate, ok_follow = [], True, True, True
    for i in sorted(events):
        ev = [e for e in events[i] if t0 <= e[0] < t_end]
        stamps = [e[0] for e in ev]
        rates = window_rates(stamps, t0, t_end)
        mean = len(stamps) / (t_end - t0)
        seen = {e[2] for e in events[i] if e[2]}
        foreign = seen - study_ids
        followed = len(seen & live_in_window)
        n_err = len(errors[i])
        ok_errors &= n_err == 0
        ok_rate &= bool(rates) and min(rates) >= 1.0
        ok_follow &= not foreign and followed >= len(live_in_window) and bool(seen)
        rows.append((f"run page {i + 1}", f"{min(rates):.2f}" if rates else "-", f"{mean:.2f}", str(n_err),
                     f"{followed}/{len(live_in_window)}" + (f" +{len(foreign)} not of the study" if foreign else ""),
                     str(len(outcomes[i]))))

    print()
    print(f"bench_load: {args.sessions} Run-page sessions watching study {study_id} "
          f"(quick preset, {cell_s:g} s per cell) for {args.minutes:g} min")
    head = ("session", "refreshes/s min(30 s)", "refreshes/s mean", "errors", "study cells shown live", "run-result alerts")
    widths = [max(len(h), *(len(r[k]) for r in rows)) for k, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))

    half = [s for s in rss if s[0] >= (t_end - t0) / 2]
    slope = slope_mb_per_min(half)
    mbs = [m for _, m in rss]
    print()
    if mbs:
        print(f"server RSS (MB): start {mbs[0]:.1f}  end {mbs[-1]:.1f}  max {max(mbs):.1f}  "
              f"raw-sample slope over the second half {slope:+.2f} MB/min (information; {len(half)} samples, every "
              f"{RSS_EVERY_S:g} s)"
              if slope is not None else f"server RSS (MB): start {mbs[0]:.1f}  end {mbs[-1]:.1f}  max {max(mbs):.1f}")
    floors = minute_floors(half)
    kept = slope_mb_per_min(floors)
    if kept is not None:
        print(f"server RSS kept (minimum of each minute), second half: {', '.join(f'{m:.0f}' for _, m in floors)} MB; "
              f"slope {kept:+.2f} MB/min")
    n_done = int(cells["status"].isin(["ok", "oom_killed", "crashed", "timed_out", "failed", "error"]).sum()) \
        if len(cells) else 0
    statuses = study_runs["status"].value_counts().to_dict() if len(study_runs) else {}
    print(f"study: {len(study_runs)} runs ({', '.join(f'{k} {v}' for k, v in statuses.items())}), {n_done} cells done; "
          f"at the end: {study_state}")
    if cpu:
        other = cpu["machine"] - cpu["server"] - cpu["workers"] - cpu["browsers"]
        print(f"CPU over the measurement (% of one core; this machine has {os.cpu_count()}): server {cpu['server']:.0f}, "
              f"inference workers {cpu['workers']:.0f}, Chromium {cpu['browsers']:.0f}, everything else {other:.0f}")
    print(f"page visibility: {', '.join(sorted(set(hidden)))}; requests to hosts other than 127.0.0.1 (aborted "
          f"by the bench): {len(blocked)}")
    for url in sorted(set(blocked))[:5]:
        print(f"  aborted request: {url[:160]}")
    for i in sorted(errors):
        for text in errors[i]:
            print(f"  error in run page {i + 1}: {text}")
    alerts = sorted({t for i in outcomes for t in outcomes[i]})
    for text in alerts[:6]:
        print(f"  run-result alert (a cell's own outcome, not counted as an error): {text[:160]}")
    if len(alerts) > 6:
        print(f"  ... {len(alerts) - 6} more run-result alerts")

    ok_rss = kept is not None and kept < args.slope_max
    checks = [
        ("no errors in any session", ok_errors),
        (">= 1 refresh/s on every session in every 30-s window", ok_rate),
        ("every session showed the study's cells live", ok_follow),
        (f"server RSS kept (each minute's minimum) grows < {args.slope_max:g} MB/min over the second half", ok_rss),
    ]
    print()
    for name, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(ok for _, ok in checks) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the measurement (default 10)")
    ap.add_argument("--sessions", type=int, default=4, help="Run-page browser sessions (default 4)")
    ap.add_argument("--cell-seconds", type=float, default=None,
                    help="study duration override per cell (default: long enough for the study to outlast the run)")
    ap.add_argument("--slope-max", type=float, default=1.0, help="RSS growth threshold in MB/min (default 1.0)")
    ap.add_argument("--dump", type=Path, default=None, help="also write every redraw, RSS and CPU sample to this JSON file")
    args = ap.parse_args()
    if args.minutes * 60 < WINDOW_S or args.sessions < 1:
        ap.error(f"--minutes must cover at least one {WINDOW_S:g}-s window and --sessions must be >= 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
