"""Per-operator profiles, checked on every bundled variant: how much of the measured latency the profile accounts for
(coverage = sum of operator times / steady p50), and that asking for a profile leaves the measured steady phase
alone (the profile phase runs after it): the p50 with ``--profile-ops`` over the p50 without, interleaved.

For each repetition and variant, one run with and one without a profile, their order alternating between repetitions
(ABBA), so drift on a shared machine hits both. Prints per variant the median p50 without and with, their ratio, the
spread of the same setting's p50 over repetitions (the noise the ratio is read against), the coverage, the profiled
inferences' own median over the steady p50 (the profiler's overhead), and the slowest operator types.

    .venv/bin/python bench/bench_profile.py [--models digits-cnn efficientnet-lite0] [--runtimes onnx tflite]
                                            [--duration 2] [--reps 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one(store, model, precision, runtime, threads, duration, profile):
    from edgeprof.config import RunConfig
    from edgeprof.run import start_run

    cfg = RunConfig(model=model, precision=precision, runtime=runtime, threads=threads, duration_s=duration,
                    profile_ops=profile)
    res = start_run(cfg, store).wait(600) or {}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=None, help="bundled models (default: all)")
    ap.add_argument("--runtimes", nargs="+", default=["onnx", "tflite"])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "int8-dynamic", "int8-static"])
    ap.add_argument("--duration", type=float, default=2.0, help="steady-state seconds per run")
    ap.add_argument("--reps", type=int, default=2, help="repetitions of each with/without pair")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("EDGEPROF_HOME", tempfile.mkdtemp(prefix="edgeprof-bench-profile-"))
    from edgeprof.models.catalog import model_names
    from edgeprof.store import Store

    store = Store(Path(os.environ["EDGEPROF_HOME"]) / "runs.duckdb")
    variants = [(m, p, r) for m in (args.models or model_names()) for r in args.runtimes for p in args.precisions]
    got: dict = {v: {True: [], False: []} for v in variants}
    for rep in range(args.reps):
        for v in variants:
            for profile in ((False, True) if rep % 2 == 0 else (True, False)):
                res = one(store, *v, args.threads, args.duration, profile)
                got[v][profile].append(res)
                print(f"  rep {rep} {' '.join(v)} profile={profile}: {res.get('status')} "
                      f"p50 {(res.get('latency_ms') or {}).get('p50')}", file=sys.stderr, flush=True)
    print(f"{'variant':<34} {'p50 ms':>9} {'p50 prof':>9} {'ratio':>6} {'noise':>6} {'coverage':>8} "
          f"{'run/p50':>7}  slowest operators")
    for v, runs in got.items():
        without = [r["latency_ms"]["p50"] for r in runs[False] if r.get("status") == "ok"]
        with_ = [r["latency_ms"]["p50"] for r in runs[True] if r.get("status") == "ok"]
        if not without or not with_:
            print(f"{' '.join(v):<34} failed: {[r.get('error') for r in runs[False] + runs[True] if r.get('error')]}")
            continue
        a, b = statistics.median(without), statistics.median(with_)
        noise = max(max(without) / min(without), max(with_) / min(with_))
        profs = [r.get("op_profile") or {} for r in runs[True]]
        usable = [p for p in profs if "coverage" in p]
        if usable:
            cov = statistics.median(p["coverage"] for p in usable)
            rvp = statistics.median(p.get("run_vs_p50", float("nan")) for p in usable)
            top = ", ".join(f"{t['op_type']} {100 * t['share']:.0f}%" for t in usable[-1]["by_type"][:3])
            cov_s, rvp_s = f"{cov:8.2f}", f"{rvp:7.2f}"
        else:
            why = next((p.get("unavailable") for p in profs if p.get("unavailable")), "no profile")
            cov_s, rvp_s, top = f"{'-':>8}", f"{'-':>7}", f"unavailable: {why[:70]}..."
        print(f"{' '.join(v):<34} {a:9.3f} {b:9.3f} {b / a:6.2f} {noise:6.2f} {cov_s} {rvp_s}  {top}")
    print("ratio: median p50 with --profile-ops over without (1.00 = the profile phase left the measurement alone); "
          "noise: the largest max/min of one setting's p50 over the repetitions. Shared machines drift: read the "
          "ratio against the noise.")


if __name__ == "__main__":
    main()
