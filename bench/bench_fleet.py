"""Fleet benchmark: a synthetic fleet written to an S3 emulator on 127.0.0.1 (moto's server mode), read by DuckDB over
the Parquet objects as `runs --fleet` reads it, and the push of one run with 100,000 latency samples.

    .venv/bin/python bench/bench_fleet.py [--devices 5,10,20] [--runs 20] [--samples 1000]
    .venv/bin/python bench/bench_fleet.py --big        # 50,100,200 devices x 50 runs x 1000 samples (10 M rows at 200)
    .venv/bin/python bench/bench_fleet.py --push-only  # the push of one run with 100,000 samples, alone
    .venv/bin/python bench/bench_fleet.py --compare-fsspec  # also DuckDB through s3fs registered with it (minutes)

First, one run with 100,000 latency samples is pushed to the emulator, to a folder, and to the emulator again (the
repeated push finds its marker and sends nothing). ``push`` writes each object with DuckDB's own ``COPY ... TO``
Parquet writer from the store (no sample becomes a Python object): ~0.4 s to the emulator on a quiet 2-core machine.

For each device count D (one prefix each, written in the layout `push` writes, straight from DuckDB, not through
`push`, so that writing 10,000 runs takes minutes, not hours):

1. open: list the prefix, check every name, fetch the runs objects and check the runs table (store.checks), i.e.
   what `runs --fleet` does first;
2. runs list: `Fleet.runs()` (every device's runs, newest first, with device_name);
3. correlation: per device, the correlation across its runs between CPU used by other processes and the run's median
   latency computed from every latency row (fetching and checking every latency object, then DuckDB over them).

Each is timed cold (nothing cached) and warm (a second reader: the objects are in the cache, so the listing, the
checks and DuckDB remain).

Times grow with D; the table prints each time and its ratio to the smallest D side by side, measured in one process
one after the other. The machine is shared: read the ratios, not the absolute seconds. The emulator is single-process
Python and slower per request than a real S3 service, which serves requests in parallel.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

BUCKET = "bench-fleet"


def write_fleet(fs, prefix: str, devices: int, runs: int, samples: int, work: Path) -> int:
    """Write ``devices`` x ``runs`` synthetic runs under s3://BUCKET/prefix; returns the number of objects."""
    import duckdb

    from edgeprof.store import Store, new_run_id

    scratch = Store(work / "schema.duckdb")  # an empty database of this schema: the column names and types
    con = duckdb.connect()
    con.execute(f"ATTACH '{scratch.path}' AS s (READ_ONLY)")
    con.execute("CREATE TEMP TABLE runs_t AS SELECT * FROM s.runs WHERE false")
    local = work / "objects"
    shutil.rmtree(local, ignore_errors=True)
    for d in range(devices):
        device_id = f"{d:016x}"
        base = local / f"device={device_id}"
        for sub in ("runs", "latency", "telemetry", "study_cells"):
            (base / sub).mkdir(parents=True)
        (base / "device.json").write_text(f'{{"format": "edgeprof-fleet", "device_id": "{device_id}", '
                                          f'"device_name": "dev-{d:03d}"}}\n')
        for r in range(runs):
            run_id = new_run_id()
            slow = 1.0 + (d % 7) * 0.1
            con.execute(f"""COPY (SELECT '{run_id}' AS run_id, CAST(range AS INTEGER) AS seq, range * 1000000 AS t_ns,
                            CAST((2000000 + (hash(range) % 500000)) * {slow} + {r} * 1000 AS BIGINT) AS latency_ns,
                            CASE WHEN range < 20 THEN 'warmup' ELSE 'steady' END AS phase FROM range({samples}))
                            TO '{base}/latency/{run_id}.parquet' (FORMAT parquet)""")
            con.execute(f"""COPY (SELECT '{run_id}' AS run_id, range * 100000000 AS t_ns, 'host' AS source,
                            'cpu_pct' AS metric, CAST(range % 100 AS DOUBLE) AS value, '%' AS unit FROM range(20))
                            TO '{base}/telemetry/{run_id}.parquet' (FORMAT parquet)""")
            con.execute(f"COPY (SELECT * FROM s.study_cells WHERE false) TO '{base}/study_cells/{run_id}.parquet'"
                        " (FORMAT parquet)")
            con.execute("""INSERT INTO runs_t (run_id, device_id, device_name, status, model, precision, runtime,
                           threads, created_at, p50_ms, cpu_others_mean_pct, n)
                           VALUES (?, ?, ?, 'ok', 'digits-cnn', 'fp32', 'onnx', 2,
                                   TIMESTAMP '2026-11-01' + to_seconds(?), ?, ?, ?)""",
                        [run_id, device_id, f"dev-{d:03d}", d * runs + r, 2.0 * slow + r * 0.001, r % 10 * 5.0,
                         samples])
            con.execute(f"COPY (SELECT * FROM runs_t WHERE run_id = '{run_id}') TO '{base}/runs/{run_id}.parquet'"
                        " (FORMAT parquet)")
    con.close()
    n = sum(1 for p in local.rglob("*") if p.is_file())
    fs.put(str(local) + "/", f"{BUCKET}/{prefix}/", recursive=True)
    return n


def time_reads(url: str) -> dict:
    from edgeprof.store.fleet import Fleet

    t0 = time.perf_counter()
    fleet = Fleet(url)
    t1 = time.perf_counter()
    df = fleet.runs()
    t2 = time.perf_counter()
    corr = fleet.sql("""
        WITH med AS (SELECT run_id, median(latency_ns) / 1e6 AS med_ms FROM fleet_latency WHERE phase = 'steady'
                     GROUP BY run_id)
        SELECT r.device_name, corr(r.cpu_others_mean_pct, m.med_ms) AS r, count(*) AS n
        FROM fleet_runs r JOIN med m USING (run_id) GROUP BY r.device_name ORDER BY r.device_name""")
    t3 = time.perf_counter()
    engine = fleet.engine
    fleet.close()
    return {"open": t1 - t0, "list": t2 - t1, "corr": t3 - t2, "runs": len(df), "devices": len(corr), "engine": engine}


def push_one(fs, url: str, samples: int, work: Path) -> dict:
    """One run of ``samples`` latency rows, stored the way a run is, pushed to ``url``."""
    import numpy as np

    from edgeprof.device import identity
    from edgeprof.store import Store
    from edgeprof.store.fleet import push

    home = work / "push-home"
    home.mkdir(exist_ok=True)
    store = Store(home / "runs.duckdb")
    if store.list_runs().empty:
        ident = identity(home)
        store.upsert_device({"hostname": "bench", "device_id": ident.device_id, "device_name": "bench-pusher"})
        rid = store.insert_run(None, ident.device_id, {"model": "digits-cnn", "precision": "fp32", "runtime": "onnx",
                                                       "threads": 2})
        seq = np.arange(samples)
        lat = np.random.default_rng(0).integers(1_000_000, 3_000_000, samples)
        import pandas as pd

        store.append_latency(rid, pd.DataFrame({"seq": seq, "t_ns": seq * 3_000_000, "latency_ns": lat,
                                                "phase": "steady"}))
        store.finish_run(rid, "ok", summary={"latency_ms": {"p50": float(np.median(lat)) / 1e6, "n": samples}})
    t0 = time.perf_counter()
    res = push(store, url)
    return {"seconds": time.perf_counter() - t0, "bytes": res["bytes"], "objects": res["objects"],
            "pushed": res["pushed"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", default="5,10,20", help="device counts, comma-separated (default 5,10,20)")
    ap.add_argument("--runs", type=int, default=20, help="runs per device (default 20)")
    ap.add_argument("--samples", type=int, default=1000, help="latency rows per run (default 1000)")
    ap.add_argument("--push-samples", type=int, default=100_000, help="samples of the pushed run (default 100000)")
    ap.add_argument("--big", action="store_true", help="50,100,200 devices x 50 runs (10 M latency rows at 200)")
    ap.add_argument("--push-only", action="store_true", help="only the push (seconds; the reads take minutes)")
    ap.add_argument("--compare-fsspec", action="store_true",
                    help="also read the smallest fleet through s3fs registered with DuckDB (minutes: one object at a "
                         "time, several round trips each)")
    args = ap.parse_args(argv)
    counts = [50, 100, 200] if args.big else [int(c) for c in args.devices.split(",")]
    runs = 50 if args.big else args.runs

    from helpers import s3_emulator

    server, endpoint = s3_emulator()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
    fs.mkdir(BUCKET)
    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    os.environ["EDGEPROF_HOME"] = str(work / "home")
    try:
        # the push first: it takes seconds, and the reads below take minutes (it used to come last, and a 420-s
        # budget ended the benchmark before it)
        s3_push = push_one(fs, f"s3://{BUCKET}/push", args.push_samples, work)
        folder = work / "folder-fleet"
        folder.mkdir()
        dir_push = push_one(fs, str(folder), args.push_samples, work)
        again = push_one(fs, f"s3://{BUCKET}/push", args.push_samples, work)
        print(f"push of one run with {args.push_samples} samples: to the emulator {s3_push['seconds']:.2f} s "
              f"({s3_push['objects']} objects, {s3_push['bytes'] / 1e6:.2f} MB), to a folder {dir_push['seconds']:.2f} s;"
              f" the repeated push {again['seconds']:.2f} s ({again['pushed']} runs sent)", flush=True)
        if args.push_only:
            return 0
        print(f"S3 emulator at {endpoint}; {runs} runs per device, {args.samples} latency rows per run")
        rows = []
        for d in counts:
            t0 = time.perf_counter()
            objects = write_fleet(fs, f"d{d}", d, runs, args.samples, work)
            wrote = time.perf_counter() - t0
            r = time_reads(f"s3://{BUCKET}/d{d}")
            assert r["runs"] == d * runs and r["devices"] == d, r
            warm = time_reads(f"s3://{BUCKET}/d{d}")  # the objects are in the cache now: listing and DuckDB only
            r.update({f"warm_{k}": warm[k] for k in ("open", "list", "corr")})
            rows.append((d, objects, wrote, r))
            print(f"  wrote {d} devices ({objects} objects) in {wrote:.1f} s", flush=True)
        base = rows[0]
        print(f"\nDuckDB reads the objects through: {rows[0][3]['engine']}")
        keys = ("open", "list", "corr", "warm_open", "warm_list", "warm_corr")
        print(f"{'devices':>7} {'runs':>6} {'lat rows':>9} " + " ".join(f"{k + ' s':>11} {'x':>5}" for k in keys))
        for d, _objects, _wrote, r in rows:
            def ratio(key, r=r):
                return r[key] / base[3][key] if base[3][key] else float("nan")
            print(f"{d:>7} {d * runs:>6} {d * runs * args.samples:>9} "
                  + " ".join(f"{r[k]:>11.2f} {ratio(k):>5.1f}" for k in keys))
        print(f"(x: time / time at {base[0]} devices; device count grows {counts[-1] / counts[0]:.0f}x)")
        if not args.compare_fsspec:
            return 0
        os.environ["EDGEPROF_FLEET_ENGINE"] = "fsspec"  # s3fs registered with DuckDB, reading in place
        reg = time_reads(f"s3://{BUCKET}/d{base[0]}")
        os.environ.pop("EDGEPROF_FLEET_ENGINE")
        print(f"at {base[0]} devices, DuckDB through s3fs registered with it (EDGEPROF_FLEET_ENGINE=fsspec): open "
              f"{reg['open']:.2f} s, list {reg['list']:.2f} s, corr {reg['corr']:.2f} s; the cache, cold: "
              f"{base[3]['open']:.2f} / {base[3]['list']:.2f} / {base[3]['corr']:.2f} s")

    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
