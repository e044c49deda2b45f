"""What a run costs the server's memory, without Streamlit: runs go through the runner in this process, as the
dashboard's study thread drives them, and this process's RSS is sampled every 20 ms.

    .venv/bin/python bench/bench_runner_memory.py [--seconds 20] [--rounds 2]

Runs digits-cnn (the fastest bundled model: ~50,000 inferences/s here, so the most samples) at fp32, int8-static and
fp16, ``--rounds`` times, ``--seconds`` of steady state each, into a scratch database. Per run it prints the samples,
the RSS at the start, the peak during the run (flushes, the summary's read-back) and the RSS once the run is done, and
how much of the peak happened inside each storage call. The end of the table says how far the RSS after a run moved
from the first round to the last (what a server keeps per run) and the largest rise above a run's start (what it
needs while a run ends). The page side (live views, figures) is in bench_load.py.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeprof.config import RunConfig  # noqa: E402
from edgeprof.run import runner, summary  # noqa: E402
from edgeprof.store import store  # noqa: E402

VARIANTS = ("fp32", "int8-static", "fp16")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="steady-state seconds per run (default 20)")
    ap.add_argument("--rounds", type=int, default=2, help="times through the three variants (default 2)")
    args = ap.parse_args()

    proc = psutil.Process()
    activity = {"now": "running"}

    def tagged(name, fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            prev, activity["now"] = activity["now"], name
            try:
                return fn(*a, **k)
            finally:
                activity["now"] = prev
        return wrapper

    store.Store.append_samples = tagged("flush", store.Store.append_samples)
    store.Store.latency_arrays = tagged("read-back", store.Store.latency_arrays)
    runner.build_summary = tagged("summary", summary.build_summary)  # the name the runner calls

    samples: list[tuple[float, float, str]] = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append((time.monotonic(), proc.memory_info().rss / 2**20, activity["now"]))
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    db = Path(tempfile.mkdtemp(prefix="edgeprof-bench-")) / "runs.duckdb"
    print(f"{'run':<24} {'samples':>10} {'RSS start':>10} {'peak':>7} {'after':>7}  peak inside")
    ends, rises = [], []
    for r in range(args.rounds):
        for precision in VARIANTS:
            t0 = time.monotonic()
            res = runner.start_run(RunConfig(model="digits-cnn", precision=precision, duration_s=args.seconds), db).wait()
            time.sleep(0.5)
            seg = [s for s in samples if s[0] >= t0]
            start, peak, end = seg[0][1], max(s[1] for s in seg), seg[-1][1]
            where = max(seg, key=lambda s: s[1])[2]
            ends.append((r, end))
            rises.append(peak - start)
            print(f"{'digits-cnn ' + precision:<24} {res.get('iterations_total', 0):>10,} {start:>10.0f} {peak:>7.0f} "
                  f"{end:>7.0f}  {where}", flush=True)
    stop.set()
    first = [e for r, e in ends if r == 0]
    last = [e for r, e in ends if r == args.rounds - 1]
    print(f"\nRSS after a run (MB): round 1 mean {sum(first) / len(first):.0f}, round {args.rounds} mean "
          f"{sum(last) / len(last):.0f}; largest rise above a run's start {max(rises):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
