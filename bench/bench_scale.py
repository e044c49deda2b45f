"""What reading a run back costs as the run grows, and what a page or a command costs as the history grows: the
slopes that decide whether edgeprof fits a 1 GB board.

    .venv/bin/python bench/bench_scale.py [--sizes 1,4] [--history 20,2000,20000] [--skip-pages]
                                          [--commands-only | --retention-only]

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
- commands (``--commands-only`` for this part alone): CPU seconds and peak RSS of ``runs``, ``show``, ``devices``,
  ``models`` and ``--help`` beside "before" (what they loaded before issue 24 imported first), against an empty store
  and one of 200 runs, and the heavy modules each still imports (target: runs/show under 0.4 CPU-s).

- retention (``--retention-only`` runs just this): a fast model's batches (26,000 inferences/s, synthetic
  latencies) fed through the real recorder for two lengths with ``--retention all`` and ``auto`` (the default
  reduction past 1,000,000 samples and the first minute): the database's bytes per sample and MB per hour, the
  recorder's peak memory, the summary's peak memory reading the run back, and the p50 each gives.
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
# VmHWM, not ru_maxrss: Linux carries the parent's maximum RSS into ru_maxrss across fork and exec, which hid
# every peak under the bench's own
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
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


# What the reading commands loaded before issue 24, imported ahead of the command for the "before" column: pandas (and
# pyarrow through it) from the store, the runner, recorder and telemetry from `edgeprof.run`, the fleet from `devices`.
BEFORE_PRELUDE = "import pandas, edgeprof.run.repeat, edgeprof.run.runner, edgeprof.store.fleet"
HEAVY = ("pandas", "scipy", "pyarrow", "plotly", "streamlit", "onnx", "onnxruntime", "numpy")
COMMAND = """
import json, resource, runpy, sys
out, prelude, sys.argv = sys.argv[1], sys.argv[2], ["edgeprof", *sys.argv[3:]]
exec(prelude)
try:
    runpy.run_module("edgeprof", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
# VmHWM, not ru_maxrss: a child forked from this bench starts with the bench's maximum RSS in ru_maxrss
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")]
with open(out, "w") as fh:
    json.dump({"cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
               "mb": int(hwm[0]) / 1024 if hwm else me.ru_maxrss / 1024,
               "modules": sorted({m.split(".")[0] for m in sys.modules})}, fh)
"""


def light_commands(tmp: Path, history: int = 200, repeat: int = 3) -> list[dict]:
    """CPU seconds (user + sys) and peak RSS of ``--help``, ``runs``, ``show``, ``devices`` and ``models`` as they
    are and "before" (the same command with what it loaded before issue 24 imported first: ``BEFORE_PRELUDE``), each
    in a fresh process, median of ``repeat`` alternating pairs, against an empty store and one of ``history`` runs.
    Bytecode is cached (a private ``PYTHONPYCACHEPREFIX``) as an installed package has it; without it every process
    compiles edgeprof's own sources, ~0.1-0.3 CPU-s more on both sides. The data directory is a scratch one, so
    ``devices`` writes no device.json of the user's."""
    from statistics import median

    from edgeprof.store import Store

    full, empty = tmp / "light-history.duckdb", tmp / "light-empty.duckdb"
    many_runs(full, history)
    Store(empty)
    rid = Store(full).run_rows(limit=1, columns=["run_id"])[0]["run_id"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "EDGEPROF_FLEET")}
    env.update(EDGEPROF_HOME=str(tmp / "light-home"), PYTHONPYCACHEPREFIX=str(tmp / "pycache"))
    # (name, store, arguments, what it loaded before issue 24 beyond what it loads now; None: nothing more)
    cases = [("--help", None, ["--help"], None), ("runs", empty, ["runs"], BEFORE_PRELUDE),
             ("runs", full, ["runs"], BEFORE_PRELUDE), ("runs --json", full, ["runs", "--json"], BEFORE_PRELUDE),
             ("show RUN", full, ["show", rid], BEFORE_PRELUDE),
             ("show --json RUN", full, ["show", "--json", rid], BEFORE_PRELUDE),
             ("devices", full, ["devices"], BEFORE_PRELUDE), ("models", None, ["models"], None)]

    def once(db: Path | None, args: list[str], prelude: str) -> dict:
        out = tmp / "light-command.json"
        run_env = {**env, "EDGEPROF_DB": str(db or empty)}
        subprocess.run([sys.executable, "-c", COMMAND, str(out), prelude, *args], capture_output=True, text=True,
                       cwd=ROOT, env=run_env, check=True)
        return json.loads(out.read_text())

    rows = []
    for name, db, args, prelude in cases:
        once(db, args, prelude or "pass")  # compiles and caches the bytecode both sides use
        pairs = [(once(db, args, prelude) if prelude else None, once(db, args, "pass")) for _ in range(repeat)]
        before, after = [p[0] for p in pairs if p[0]], [p[1] for p in pairs]
        rows.append({"command": name, "store": "-" if db is None else ("empty" if db == empty else f"{history} runs"),
                     "before_cpu_s": median(r["cpu_s"] for r in before) if before else None,
                     "before_mb": median(r["mb"] for r in before) if before else None,
                     "cpu_s": median(r["cpu_s"] for r in after), "mb": median(r["mb"] for r in after),
                     "heavy": [m for m in HEAVY if m in after[-1]["modules"]]})
    return rows


def print_light_commands(rows: list[dict], repeat: int = 3) -> None:
    print(f"\nReading commands, a fresh process each (median of {repeat}): CPU-s (user+sys) and peak RSS; 'before' "
          "imports first what they loaded before issue 24 (pandas, pyarrow, the runner, the fleet); target: runs "
          "and show under 0.4 CPU-s")
    print(f"  {'command':16} {'store':9} {'before CPU-s':>12} {'MB':>5} {'now CPU-s':>10} {'MB':>5}  heavy modules now")
    for r in rows:
        target = ""
        if r["command"].split()[0] in ("runs", "show"):
            target = "  met" if r["cpu_s"] < 0.4 else f"  missed by {r['cpu_s'] - 0.4:.2f} CPU-s"
        before = (f"{r['before_cpu_s']:12.2f} {r['before_mb']:5.0f}" if r["before_cpu_s"] is not None
                  else f"{'(as now)':>12} {'':5}")
        print(f"  {r['command']:16} {r['store']:9} {before} {r['cpu_s']:10.2f} {r['mb']:5.0f}  "
              f"{', '.join(r['heavy']) or '-'}{target}")


FEED = r"""
import json, resource, sys, time
from array import array
sys.path.insert(0, {root!r})
import numpy as np
from edgeprof.run.recorder import Recorder
from edgeprof.store import Store
from edgeprof.worker.messages import Batch
db, retention, seconds, rate = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
store = Store(db)
rid = store.insert_run(None, None, {{"model": "digits-cnn"}})
rng = np.random.default_rng(0)
import psutil
before = psutil.Process().memory_info().rss
c0 = time.process_time()
rec = Recorder(rid, store, retention=retention)
k, seq, t = rate // 10, 0, 10**9
for b in range(int(seconds * 10)):
    lat = (rng.lognormal(np.log(30e3), 0.2, k)).astype(np.int64)
    ts = t + np.arange(k, dtype=np.int64) * (10**8 // k)
    rec.add_batch(Batch(seq, "first" if b == 0 else "warmup" if b < 10 else "steady", array("q", ts.tobytes()),
                        array("q", lat.tobytes())))
    seq, t = seq + k, t + 10**8
    if b % 50 == 49:
        rec.flush()
rec.flush(final=True)
cpu = time.process_time() - c0
# VmHWM, not ru_maxrss: Linux carries the parent's maximum RSS into ru_maxrss across fork and exec, which hid
# every peak under the bench's own
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"run_id": rid, "samples": seq, "recorder_mb": (peak - before) / 1e6, "cpu_s": cpu}}))
"""


def retention(tmp: Path, seconds: list[float], rate: int = 26_000) -> None:
    """The retention figures side by side: ``all`` against ``auto`` at two run lengths (see the module)."""
    from edgeprof.store import Store

    rows = {}
    for mode in ("all", "auto"):
        for s in seconds:
            db = tmp / f"retention-{mode}-{s:g}.duckdb"
            res = subprocess.run([sys.executable, "-c", FEED.format(root=str(ROOT)), str(db), mode, str(s), str(rate)],
                                 capture_output=True, text=True, cwd=ROOT)
            if res.returncode:
                raise SystemExit(f"retention {mode} failed:\n{res.stderr[-3000:]}")
            fed = json.loads(res.stdout.strip().splitlines()[-1])
            summary = probe(db, [fed["run_id"]], "summary", tmp)
            dig = Store(db).latency_digest(fed["run_id"])
            rows[mode, s] = {**fed, "db_mb": db.stat().st_size / 1e6, "summary_mb": summary["mb"],
                             "p50": dig.steady.p50, "kept": "reduced" if dig.retention else "all"}
    lo, hi = min(seconds), max(seconds)
    print(f"\nRetention: a model at {rate:,} inferences/s fed through the recorder for {lo:g} s and {hi:g} s "
          "(database file; peak memory above the process before, MB)")
    print(f"{'retention':10} {'kept':8} {'samples':>10} {'DB MB':>8} {'B/sample':>9} {'MB/hour':>8} "
          f"{'recording MB':>12} {'summary MB':>11} {'p50 ms':>9}")
    for mode in ("all", "auto"):
        a, b = rows[mode, lo], rows[mode, hi]
        per_hour = (b["db_mb"] - a["db_mb"]) / (hi - lo) * 3600
        for s, r in ((lo, a), (hi, b)):
            print(f"{mode:10} {r['kept']:8} {r['samples']:>10,} {r['db_mb']:8.1f} {r['db_mb'] * 1e6 / r['samples']:9.2f} "
                  f"{per_hour if s == hi else float('nan'):8.0f} {r['recorder_mb']:12.1f} {r['summary_mb']:11.1f} "
                  f"{r['p50']:9.5f}")


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
    ap.add_argument("--commands-only", action="store_true", help="only the reading commands (runs, show, devices, "
                                                                 "models, --help), before and now")
    ap.add_argument("--retention-seconds", default="90,270", help="run lengths fed through the recorder for the "
                                                                  "retention figures (default 90,270)")
    ap.add_argument("--retention-only", action="store_true", help="only the retention figures")
    ap.add_argument("--watched-seconds", type=float, default=20.0, help="steady seconds of the watched run (default 20)")
    ap.add_argument("--skip-browser", action="store_true", help="no Chromium: leave out the watched view and the "
                                                                "server's RSS")
    ap.add_argument("--browser-only", action="store_true", help="only the watched view and the server's RSS")
    args = ap.parse_args()
    if not args.skip_browser and not (args.commands_only or args.retention_only):
        print_watched(watched_live_view(args.watched_seconds))
        print_rss(server_rss_session())
    if args.browser_only:
        return 0
    if args.commands_only:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp_s:
            print_light_commands(light_commands(Path(tmp_s)))
        return 0
    if args.retention_only:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp_s:
            retention(Path(tmp_s), [float(s) for s in args.retention_seconds.split(",")])
        return 0
    sizes = [float(s) for s in args.sizes.split(",")]
    ops = ["before", "summary", "export"] + ([] if args.skip_pages else ["runs_page", "compare_page"])
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp_s:
        tmp = Path(tmp_s)
        results: dict[str, dict[float, dict]] = {op: {} for op in ops}
        for m in sizes:
            db = tmp / f"runs-{m:g}M.duckdb"
            ids = long_runs(db, int(m * 1e6))
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

        print_light_commands(light_commands(tmp))
        retention(tmp, [float(s) for s in args.retention_seconds.split(",")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
