"""Every variant of one model on this device, one after another, as a table: what a closing note or a README quotes.

Each variant runs through ``python -m edgeprof run`` (the real engine, stored in a scratch database) under a
non-binding memory cap (default 4096 MB), so the kernel reports the memory it charged.

    .venv/bin/python bench/variants.py [--model efficientnet-lite0] [--duration 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = [("onnx", p, None) for p in ("fp32", "fp16", "int8-dynamic", "int8-static")] + [
    ("tflite", p, "litert") for p in ("fp32", "fp16", "int8-dynamic", "int8-static")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--duration", default="10")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--memory-limit", default="4096")
    ap.add_argument("--tflite-runtime", action="store_true", help="also run the TFLite variants in tflite-runtime 2.14")
    args = ap.parse_args()
    variants = VARIANTS + ([("tflite", p, "tflite-runtime") for p in ("fp32", "fp16", "int8-dynamic", "int8-static")]
                           if args.tflite_runtime else [])
    db = str(Path(tempfile.mkdtemp(prefix="edgeprof-variants-")) / "runs.duckdb")
    rows = []
    for runtime, precision, interp in variants:
        cmd = [sys.executable, "-m", "edgeprof", "run", "--model", args.model, "--precision", precision, "--runtime",
               runtime, "--threads", args.threads, "--duration", args.duration, "--memory-limit", args.memory_limit,
               "--db", db, "--json", "--quiet"] + (["--tflite-interpreter", interp] if interp else [])
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        doc = json.loads(r.stdout) if r.stdout.strip() else {"status": "no output", "error": r.stderr.strip()[-200:]}
        rows.append((runtime, precision, doc))
    head = (f"{'runtime':<22} {'precision':<13} {'size MB':>7} {'load ms':>8} {'first ms':>8} {'warm-up':>12} "
            f"{'p50 ms':>8} {'p90 ms':>8} {'CoV':>5} {'inf/s':>7} {'worker CPU':>10} {'charged MB':>10} {'RSS MB':>7}")
    print(f"{args.model}, {args.threads} threads, >= {args.duration} s steady state each, cap {args.memory_limit} MB")
    print(head)
    for runtime, precision, d in rows:
        if d.get("status") != "ok":
            print(f"{runtime:<22} {precision:<13} {d.get('status')}: {d.get('error')}")
            continue
        lat, mem, rt = d["latency_ms"], d["memory"], d["backend"]
        name = f"{rt['name']} {rt['version']}"
        warm = f"{d['warmup_ms']:.0f} ms/{d['warmup_iterations']}"
        print(f"{name:<22} {precision:<13} {d['model_size_bytes'] / 1e6:>7.2f} {d['load_ms']:>8.1f} "
              f"{d['first_inference_ms']:>8.2f} {warm:>12} {lat['p50']:>8.3f} {lat['p90']:>8.3f} {lat['cov']:>5.2f} "
              f"{d['throughput_ips']:>7.1f} {d['cpu']['worker_mean_pct'] or 0:>9.0f}% "
              f"{mem['peak_charged_mb'] or 0:>10.1f} {mem['peak_rss_mb'] or 0:>7.1f}")
        for flag in d.get("flags") or []:
            print(f"{'':<36}! {flag}")


if __name__ == "__main__":
    main()
