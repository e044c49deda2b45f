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

Not measured here (see the report of issue 24): the server's RSS over a scripted browser session and the watched
page's redraw rate (bench/bench_load.py and bench/bench_observer.py measure those).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,4", help="run lengths in millions of samples (default 1,4)")
    ap.add_argument("--history", default="20,2000,20000", help="runs stored for the page switch (default "
                                                               "20,2000,20000)")
    ap.add_argument("--skip-pages", action="store_true", help="no Streamlit pages (the library and commands only)")
    args = ap.parse_args()
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
