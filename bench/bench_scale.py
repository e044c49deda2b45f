"""What reading a run back costs as the run grows, and what a page or a command costs as the history grows: the
slopes that decide whether edgeprof fits a 1 GB board.

    .venv/bin/python bench/bench_scale.py [--sizes 1,4] [--history 20,2000,20000] [--skip-pages]

Builds scratch databases with synthetic runs of ``--sizes`` million samples (2-6 ms, written straight into DuckDB:
what a fast model leaves after minutes), then measures each operation in a fresh process, side by side in this one
run: its peak RSS above the process's RSS just before it (MB) and its CPU seconds. The slope is the difference
between the largest and the smallest size per million samples; the target is under 5 MB per million.

- summary: what the end of a long run computes (``Store.latency_digest``, in DuckDB), beside the read-back it
  replaced (``Store.latency_arrays`` + ``stats.summarize_latency``);
- export: ``export_runs`` of the run to a Parquet zip;
- Runs page / Compare page: the page rendered by Streamlit's AppTest with the run selected (the server's side);
- page switch at ``--history`` runs: the Runs page's CPU seconds with that many runs stored (target: 20,000 within
  2x of 20);
- commands: CPU seconds of ``runs``, ``show``, ``devices``, ``models``, ``--help`` and whether they import pandas or
  scipy (target: runs/show under 0.4 CPU-s).

- the live view watched on the device (``watched_live_view``): a ``--watched-seconds`` run started from the Run page
  in headless Chromium on this machine (the Run page's defaults: the run leaves the browser a core), the latency
  chart's redraws per second while it runs, and its p50 beside the same run headless (the CLI, with the threads the
  watched run got) before and after it (target: >= 1 redraw/s, p50 within 10%);
- the server's RSS over a scripted browser session (``server_rss_session``): idle, the first page, every page, the
  peak while a run is watched, and after it (target: < 200 MB while watched, back within 20 MB of idle after it).

``--browser-only`` measures only the last two; ``--skip-browser`` leaves them out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

PROBE = r"""
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
import psutil
from edgeprof.store import Store
db, rids, what = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
store = Store(db)
prep = None
if what in ("runs_page", "compare_page"):
    from streamlit.testing.v1 import AppTest
    os.environ["EDGEPROF_DB"] = db
    page = {{"runs_page": "2_Runs.py", "compare_page": "4_Compare.py"}}[what]
    warm = AppTest.from_file(os.path.join({root!r}, "views", page), default_timeout=600)
    warm.run()  # imports, caches and the run list: the same at every size
    at = AppTest.from_file(os.path.join({root!r}, "views", page), default_timeout=600)
    if what == "runs_page" and rids[0]:
        at.query_params["run_id"] = rids[0]
    if what == "compare_page":
        at.session_state["cmp_runs"] = rids[:2]
elif what == "before":
    from edgeprof import stats
else:
    store.get_run(rids[0])
before = psutil.Process().memory_info().rss
c0 = time.process_time()
if what == "summary":
    store.latency_digest(rids[0])
elif what == "before":
    t, l, p = store.latency_arrays(rids[0])
    stats.summarize_latency(l[p == 2] / 1e6)
elif what == "export":
    from edgeprof.store.bundle import export_runs
    export_runs(store, rids[:1], sys.argv[4], fmt="parquet")
else:
    at.run()
    assert not at.exception, at.exception
cpu = time.process_time() - c0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"mb": (peak - before) / 1e6, "cpu_s": cpu}}))
"""


def probe(db: Path, rids: list[str], what: str, tmp: Path) -> dict:
    out = tmp / f"export-{what}-{len(os.listdir(tmp))}.zip"
    res = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT)), str(db), ",".join(rids), what,
                          str(out)], capture_output=True, text=True, cwd=ROOT)
    if res.returncode:
        raise SystemExit(f"{what} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def long_runs(db: Path, n: int, count: int = 2) -> list[str]:
    """``count`` finished runs of ``n`` synthetic samples each, with a summary computed as a run's end does."""
    import duckdb

    from edgeprof.run.summary import latency_block
    from edgeprof.store import Store

    store = Store(db)
    dev = store.upsert_device({"hostname": "bench", "cores": 4, "ram_mb": 1024.0})
    ids = []
    for i in range(count):
        rid = store.insert_run(None, dev, {"model": "digits-cnn", "precision": "fp32", "runtime": "onnx",
                                           "threads": 2, "memory_limit_mb": None, "tags": None},
                               {"python": "3.11"}, {"path": "digits-cnn.onnx", "runtime": "onnx"})
        with duckdb.connect(str(db)) as con:
            con.execute(f"""INSERT INTO latency SELECT ?, i, 1000000000 + i * 4000000,
                                2000000 + hash(i + {i}) % 4000000,
                                CASE WHEN i = 0 THEN 'first' WHEN i < 50 THEN 'warmup' ELSE 'steady' END
                            FROM range({n}) r(i)""", [rid])
        d = store.latency_digest(rid)
        store.finish_run(rid, "ok", None, {"latency_ms": latency_block(d.steady), "iterations_total": d.n_total})
        ids.append(rid)
    return ids


def many_runs(db: Path, count: int) -> None:
    """``count`` small finished runs (100 samples each), copies of one real row: a long history."""
    import duckdb

    ids = long_runs(db, 100, 1)
    with duckdb.connect(str(db)) as con:
        con.execute(f"""INSERT INTO runs SELECT runs.* REPLACE (printf('%032x', i) AS run_id,
                            created_at + INTERVAL (i) SECOND AS created_at)
                        FROM runs, range(1, {count}) r(i) WHERE run_id = ?""", [ids[0]])


def commands(db: Path, rid: str) -> dict:
    env = {**os.environ, "EDGEPROF_DB": str(db)}
    out = {}
    for cmd in (["runs"], ["show", rid], ["devices"], ["models"], ["--help"]):
        code = ("import resource, runpy, sys, time; sys.argv = ['edgeprof', *sys.argv[1:]]\n"
                "try:\n    runpy.run_module('edgeprof', run_name='__main__')\nexcept SystemExit:\n    pass\n"
                "u = resource.getrusage(resource.RUSAGE_SELF)\n"
                "print('\\n@@', u.ru_utime + u.ru_stime, sorted({m.split('.')[0] for m in sys.modules} & "
                "{'pandas', 'scipy', 'pyarrow', 'streamlit'}))")
        res = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, cwd=ROOT, env=env)
        line = [x for x in res.stdout.splitlines() if x.startswith("@@")][-1].split(" ", 2)
        out[" ".join(cmd[:1])] = (float(line[1]), line[2])
    return out


WATCHED_MODEL = "efficientnet-lite0"  # fp32 ONNX, bundled, ~10 ms per inference here: no quantization to wait for


def _cli_run(env: dict, model: str, threads: int, seconds: float) -> dict:
    out = subprocess.run([sys.executable, "-m", "edgeprof", "run", "--model", model, "--threads", str(threads),
                          "--duration", f"{seconds:g}", "--json", "--quiet"], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=seconds * 6 + 180)
    if out.returncode:
        raise SystemExit(f"the headless run failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def watched_live_view(seconds: float = 20.0, model: str = WATCHED_MODEL) -> dict:
    """A run of ``model`` started from the Run page in headless Chromium on this machine and watched to its end, between
    two headless CLI runs of the same model, threads and duration. Returns the chart's redraws per second while the
    page said "running", the longest gap between redraws (s), the watched run's p50 (ms), the headless runs' p50s,
    their ratio (watched / median headless), the threads and CPU weight the watched run recorded, and the load."""
    from test_browser import chromium_page, streamlit_server
    from test_browser_live import watch_run

    from edgeprof.store import Store

    with tempfile.TemporaryDirectory(prefix="bench-watched-") as tmp_s:
        home = Path(tmp_s)
        db = home / "runs.duckdb"
        env = {**os.environ, "EDGEPROF_HOME": str(home), "EDGEPROF_DB": str(db), "PYTHONPATH": str(ROOT)}
        load_before = os.getloadavg()[0]
        with streamlit_server(home, db) as url, chromium_page() as page:
            seen = watch_run(page, url, model, seconds, seconds * 6 + 180)
        watched = Store(db).get_run(seen["run_id"])["summary"]
        threads = watched["config"]["threads"]
        headless = [_cli_run(env, model, threads, seconds) for _ in range(2)]
    p50s = [h["latency_ms"]["p50"] for h in headless]
    ref = statistics.median(p50s)
    prio = watched.get("cpu_priority") or {}
    return {"redraws": seen["redraws"], "running_s": seen["running_s"],
            "redraws_per_s": seen["redraws"] / seen["running_s"] if seen["running_s"] > 0 else 0.0,
            "longest_gap_s": seen["longest_gap_s"], "p50_watched_ms": watched["latency_ms"]["p50"],
            "p50_headless_ms": p50s, "p50_ratio": watched["latency_ms"]["p50"] / ref, "threads": threads,
            "watched": prio.get("watched"), "priority": prio.get("mechanism") or prio.get("unavailable"),
            "load": (load_before, os.getloadavg()[0])}


def _rss_mb(proc) -> float:
    return proc.memory_info().rss / 1e6


def _anon_mb(proc) -> float | None:
    """RssAnon (MB, /proc/PID/status): the part of RSS that only swap could take away; the rest is file-backed code
    and data of shared libraries (DuckDB's is ~30 MB once its queries ran), which the kernel drops under pressure."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        text = Path(f"/proc/{proc.pid}/status").read_text()
        return int(next(line for line in text.splitlines() if line.startswith("RssAnon:")).split()[1]) / 1024
    return None


def server_rss_session(seconds: float = 10.0) -> dict:
    """The Streamlit server's RSS (MB, psutil) over one scripted session in headless Chromium: ``idle`` (started, no
    page open), ``first_page`` (the app's first page drawn), ``all_pages`` (after visiting every page once), ``watched``
    (the peak, sampled every 0.2 s, while a digits-cnn run of ``seconds`` is watched on the Run page; ``worker`` the
    worker's peak beside it), ``after`` (5 s after that run ended, the page back on the app's first page), then
    ``second`` and ``after_second`` for a second such run; each also as ``<step>_anon`` (``_anon_mb``)."""
    import threading

    import psutil
    from test_browser import chromium_page, streamlit_server, wait_for_app
    from test_browser_live import watch_run

    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp_s:
        home = Path(tmp_s)
        db = home / "runs.duckdb"
        with streamlit_server(home, db) as url:
            server = next(c for c in psutil.Process().children()
                          if "streamlit" in " ".join(c.cmdline()) and str(home) in str(c.environ().get("EDGEPROF_HOME")))
            time.sleep(3)
            out["idle"], out["idle_anon"] = _rss_mb(server), _anon_mb(server)
            with chromium_page() as page:
                page.goto(url)
                wait_for_app(page)
                time.sleep(2)
                out["first_page"], out["first_page_anon"] = _rss_mb(server), _anon_mb(server)
                for name in sorted(p.stem.split("_", 1)[1] for p in (ROOT / "views").glob("[0-9]*_*.py")):
                    page.goto(f"{url}/{name}")
                    wait_for_app(page)
                    time.sleep(1)
                out["all_pages"], out["all_pages_anon"] = _rss_mb(server), _anon_mb(server)
                for label in ("watched", "second"):  # a second run: what a run leaves must not add up
                    peaks = {"server": 0.0, "worker": 0.0, "server_anon": 0.0}
                    stop = threading.Event()

                    def sample(peaks=peaks, stop=stop) -> None:
                        while not stop.wait(0.2):
                            with contextlib.suppress(psutil.Error):
                                peaks["server"] = max(peaks["server"], _rss_mb(server))
                                peaks["server_anon"] = max(peaks["server_anon"], _anon_mb(server) or 0.0)
                                for child in server.children(recursive=True):
                                    if "edgeprof.worker.child" in " ".join(child.cmdline()):
                                        peaks["worker"] = max(peaks["worker"], _rss_mb(child))
                    sampler = threading.Thread(target=sample, daemon=True)
                    sampler.start()
                    try:
                        watch_run(page, url, "digits-cnn", seconds, seconds * 6 + 180)
                    finally:
                        stop.set()
                        sampler.join()
                    out[label], out[f"{label}_anon"] = peaks["server"], peaks["server_anon"]
                    out["worker"] = max(out.get("worker", 0.0), peaks["worker"])
                    page.goto(url)
                    wait_for_app(page)
                    time.sleep(5)
                    after = "after" if label == "watched" else "after_second"
                    out[after], out[f"{after}_anon"] = _rss_mb(server), _anon_mb(server)
    return out


def print_watched(r: dict) -> None:
    ok = r["redraws_per_s"] >= 1 and r["p50_ratio"] <= 1.10
    print(f"\nLive view watched in Chromium on this device ({os.cpu_count()} cores, load {r['load'][0]:.1f} -> "
          f"{r['load'][1]:.1f}); target >= 1 redraw/s and p50 within 10% of headless: {'met' if ok else 'MISSED'}")
    print(f"  redraws of the latency chart: {r['redraws']} in {r['running_s']:.1f} s running = "
          f"{r['redraws_per_s']:.2f}/s (longest gap {r['longest_gap_s']:.1f} s)")
    print(f"  p50 watched {r['p50_watched_ms']:.3f} ms, headless {', '.join(f'{p:.3f}' for p in r['p50_headless_ms'])}"
          f" ms (before and after it): ratio {r['p50_ratio']:.3f}; the watched run got {r['threads']} thread(s), "
          f"priority {r['priority']}, recorded {r['watched']}")


def print_rss(r: dict) -> None:
    print("\nStreamlit server RSS over a scripted session (MB); target < 200 while watched, after within 20 of idle")
    steps = ("idle", "first_page", "all_pages", "watched", "after", "second", "after_second")
    print("  RSS   " + "  ".join(f"{k} {r[k]:.0f}" for k in steps))
    print("  anon  " + "  ".join(f"{k} {r[k + '_anon']:.0f}" for k in steps if r.get(k + "_anon") is not None)
          + "  (RssAnon: without the file-backed pages of libraries, which the kernel can drop)")
    watched = "met" if r["watched"] < 200 else f"missed by {r['watched'] - 200:.0f} MB"
    print(f"  while watched: {watched}; after - "
          f"idle {r['after'] - r['idle']:+.0f} MB ({'met' if r['after'] - r['idle'] <= 20 else 'missed'}), after - "
          f"all pages {r['after'] - r['all_pages']:+.0f} MB, the second run left {r['after_second'] - r['after']:+.0f} MB "
          f"more; worker peak {r['worker']:.0f} MB, server + worker "
          f"{r['watched'] + r['worker']:.0f} MB of a 1 GB board's 256 MB quarter")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,4", help="run lengths in millions of samples (default 1,4)")
    ap.add_argument("--history", default="20,2000,20000", help="runs stored for the page switch (default "
                                                               "20,2000,20000)")
    ap.add_argument("--skip-pages", action="store_true", help="no Streamlit pages (the library and commands only)")
    ap.add_argument("--watched-seconds", type=float, default=20.0, help="steady seconds of the watched run (default 20)")
    ap.add_argument("--skip-browser", action="store_true", help="no Chromium: leave out the watched view and the "
                                                                "server's RSS")
    ap.add_argument("--browser-only", action="store_true", help="only the watched view and the server's RSS")
    args = ap.parse_args()
    if not args.skip_browser:
        print_watched(watched_live_view(args.watched_seconds))
        print_rss(server_rss_session())
    if args.browser_only:
        return 0
    sizes = [float(s) for s in args.sizes.split(",")]
    ops = ["before", "summary", "export"] + ([] if args.skip_pages else ["runs_page", "compare_page"])
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp_s:
        tmp = Path(tmp_s)
        results: dict[str, dict[float, dict]] = {op: {} for op in ops}
        first_db = None
        for m in sizes:
            db = tmp / f"runs-{m:g}M.duckdb"
            ids = long_runs(db, int(m * 1e6))
            first_db = first_db or (db, ids[0])
            for op in ops:
                results[op][m] = probe(db, ids, op, tmp)
        lo, hi = min(sizes), max(sizes)
        names = {"before": "summary, before (arrays)", "summary": "summary (DuckDB)", "export": "export (parquet)",
                 "runs_page": "Runs page, run shown", "compare_page": "Compare page, 2 runs"}
        print(f"\nPeak memory above the process before the operation (MB) and CPU-s, runs of {lo:g} M and {hi:g} M "
              "samples")
        print(f"{'operation':28} {'MB @' + format(lo, 'g') + 'M':>9} {'MB @' + format(hi, 'g') + 'M':>9} "
              f"{'MB/M':>7} {'CPU-s/M':>8}  target <5 MB/M")
        for op in ops:
            a, b = results[op][lo], results[op][hi]
            slope = (b["mb"] - a["mb"]) / (hi - lo)
            cpu = (b["cpu_s"] - a["cpu_s"]) / (hi - lo)
            verdict = "met" if slope < 5 else f"missed by {slope - 5:.1f} MB/M"
            print(f"{names[op]:28} {a['mb']:9.1f} {b['mb']:9.1f} {slope:7.1f} {cpu:8.2f}  "
                  f"{verdict if op != 'before' else '(the old way, for comparison)'}")

        if not args.skip_pages:
            print("\nRuns page with N runs stored (no run shown): CPU-s of one render; target: the largest within 2x "
                  "of the smallest")
            base = None
            for count in [int(c) for c in args.history.split(",")]:
                db = tmp / f"history-{count}.duckdb"
                many_runs(db, count)
                r = probe(db, [""], "runs_page", tmp)
                base = base or r["cpu_s"]
                print(f"  {count:>6} runs: {r['cpu_s']:.2f} CPU-s ({r['cpu_s'] / base:.1f}x), +{r['mb']:.0f} MB")

        db, rid = first_db
        print("\nCommands (a fresh process each): CPU-s and heavy modules imported; target runs/show < 0.4 CPU-s")
        for name, (cpu, heavy) in commands(db, rid).items():
            print(f"  {name:8} {cpu:5.2f} CPU-s  imports {heavy}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
