"""edgeprof's measurement overhead: the same model file and threads, a bare loop against ``edgeprof run``, interleaved.

The bare loop is a fresh Python process calling ``session.run`` (ONNX Runtime) or ``invoke`` (LiteRT) in a tight loop,
with the same session options edgeprof uses. Rounds alternate bare / edgeprof so drift on a shared machine hits both.
Prints the median latency of each, the ratio with a 95% interval BETWEEN ROUNDS, and PASS if 0.97 <= ratio <= 1.03.
The interval comes from the spread of the per-round ratios (a paired t interval on their logs,
``stats.ratio_across_runs``): each round is a new pair of processes, and round ratios moved from 0.84 to 1.13 on the
shared machine while a pooled interval that treated 1,800 samples as independent claimed 1.053-1.081.

    .venv/bin/python bench/bench_overhead.py [--model efficientnet-lite0] [--runtime onnx] [--rounds 4] [--iterations 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BARE = r"""
import json, sys, time
import numpy as np
path, runtime, threads, warm, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if runtime == "onnx":
    import onnxruntime as ort
    o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    s = ort.InferenceSession(path, sess_options=o, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    x = np.random.default_rng(0).standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
    feed = {i.name: x}
    call = lambda: s.run(None, feed)
else:
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path, num_threads=threads); it.allocate_tensors()
    d = it.get_input_details()[0]
    x = np.zeros(d["shape"], dtype=d["dtype"])
    def call():
        it.set_tensor(d["index"], x); it.invoke()
for _ in range(warm):
    call()
out = []
for _ in range(n):
    t = time.monotonic_ns(); call(); out.append(time.monotonic_ns() - t)
print(json.dumps(out))
"""


def bare(path: str, runtime: str, threads: int, n: int) -> np.ndarray:
    r = subprocess.run(
        [sys.executable, "-c", BARE, path, runtime, str(threads), "50", str(n)], capture_output=True, text=True, check=True
    )
    return np.asarray(json.loads(r.stdout.strip().splitlines()[-1])) / 1e6


def edgeprof_run(model: str, precision: str, runtime: str, threads: int, n: int, db: str) -> np.ndarray:
    from edgeprof.store import Store

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeprof",
            "run",
            "--model",
            model,
            "--precision",
            precision,
            "--runtime",
            runtime,
            "--threads",
            str(threads),
            "--iterations",
            str(n),
            "--warmup",
            "50",
            "--db",
            db,
            "--json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if r.returncode != 0:
        raise SystemExit(f"edgeprof run failed: {r.stderr.strip()}")
    run_id = json.loads(r.stdout)["run_id"]
    lat = Store(db).latency(run_id)
    return lat[lat["phase"] == "steady"]["latency_ns"].to_numpy() / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--runtime", default="onnx", choices=("onnx", "tflite"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--iterations", type=int, default=300)
    args = ap.parse_args()
    from edgeprof import stats
    from edgeprof.models.catalog import resolve_variant

    variant = resolve_variant(args.model, args.precision, args.runtime)
    home = tempfile.mkdtemp(prefix="edgeprof-bench-")
    os.environ["EDGEPROF_HOME"] = home
    db = str(Path(home) / "bench.duckdb")
    a_all, b_all, rows = [], [], []
    for i in range(args.rounds):
        t = time.monotonic()
        if i % 2 == 0:  # ABBA order, so a drift in machine speed hits both sides alike
            a = bare(str(variant.path), args.runtime, args.threads, args.iterations)
            b = edgeprof_run(args.model, args.precision, args.runtime, args.threads, args.iterations, db)
        else:
            b = edgeprof_run(args.model, args.precision, args.runtime, args.threads, args.iterations, db)
            a = bare(str(variant.path), args.runtime, args.threads, args.iterations)
        a_all.append(a)
        b_all.append(b)
        rows.append((i + 1, float(np.median(a)), float(np.median(b)), float(np.median(b) / np.median(a)), time.monotonic() - t))
    a, b = np.concatenate(a_all), np.concatenate(b_all)
    r = stats.ratio_across_runs([x[2] for x in rows], [x[1] for x in rows], paired=True)
    print(
        f"model {args.model} {args.precision} {args.runtime}, file {variant.path.name}, threads {args.threads}, "
        f"{args.rounds} interleaved rounds x {args.iterations} steady iterations each"
    )
    print(f"{'round':>5} {'bare p50 ms':>12} {'edgeprof p50 ms':>16} {'ratio':>7}")
    for i, pa, pb, ratio, _ in rows:
        print(f"{i:>5} {pa:>12.3f} {pb:>16.3f} {ratio:>7.3f}")
    per_round = float(np.median([x[3] for x in rows]))
    print(f"median of per-round ratios: {per_round:.3f}")
    verdict = "PASS" if 0.97 <= r.ratio <= 1.03 else "FAIL"
    ci = f"[95% interval between rounds {r.low:.3f}, {r.high:.3f}]" if r.low is not None else "[one round: no interval]"
    print(
        f"bare median {np.median(a):.3f} ms (n={len(a)}), edgeprof median {np.median(b):.3f} ms (n={len(b)}); "
        f"ratio of the round medians {r.ratio:.3f} {ci}  target 0.97-1.03: {verdict}"
    )


if __name__ == "__main__":
    main()
