"""How much CPU does the telemetry sampler itself cost?

Runs the platform's default sources (plus a live worker child, so worker metrics are read too) in a Sampler at
``--hz`` for ``--seconds`` and reports, side by side:

* sampler thread: CPU seconds of the sampler thread alone (time.thread_time inside the thread);
* process delta: this process's CPU seconds (psutil) during the sampled window minus an idle window of the same
  length without a sampler (catches costs outside the thread, e.g. GC, and interpreter overhead).

Percent is of one core. Target: under 1% at 10 Hz.

    .venv/bin/python bench/bench_sampler.py [--hz 10] [--seconds 10]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from edgeprof.telemetry import Sampler, default_sources  # noqa: E402


def process_cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def per_read_us(sources, worker_pid: int, n: int = 200) -> dict[str, float]:
    """Mean thread CPU time of one read() per source, in microseconds."""
    out = {}
    for src in sources:
        if not src.probe()[0]:
            continue
        src.read(worker_pid)
        t0 = time.thread_time()
        for _ in range(n):
            src.read(worker_pid)
        out[src.name] = (time.thread_time() - t0) / n * 1e6
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hz", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args(argv)

    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    me = psutil.Process()
    rows = 0

    def sink(batch):
        nonlocal rows
        rows += len(batch)

    try:
        sources = default_sources()
        # idle window: same process, no sampler
        c0, w0 = process_cpu_s(me), time.monotonic()
        time.sleep(args.seconds)
        idle_cpu, idle_wall = process_cpu_s(me) - c0, time.monotonic() - w0

        sampler = Sampler(sources, hz=args.hz, sink=sink, worker_pid=worker.pid)
        sampler.start()  # probes the sources first (not counted: once per run)
        c0, w0 = process_cpu_s(me), time.monotonic()
        time.sleep(args.seconds)
        busy_cpu, busy_wall = process_cpu_s(me) - c0, time.monotonic() - w0
        sampler.stop()
        status = sampler.status()

        reads = per_read_us(default_sources(), worker.pid)
    finally:
        worker.kill()
        worker.wait()

    print(f"# {platform.node()} {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    for s in status:
        print(f"#   {s.name:7s} {'on ' if s.available else 'off'}  {s.reason}")
    per_tick = rows / max(sampler.ticks, 1)
    print(f"# ticks {sampler.ticks}, overruns {sampler.overruns}, rows {rows} ({per_tick:.0f}/tick)")
    print()
    print(f"{'measure':<22}{'hz':>6}{'seconds':>9}{'cpu_s':>9}{'% of 1 core':>13}{'target':>9}")
    thread_pct = sampler.cpu_s / busy_wall * 100
    delta_cpu = busy_cpu - idle_cpu * busy_wall / idle_wall
    delta_pct = delta_cpu / busy_wall * 100
    for label, cpu, pct in (("sampler thread", sampler.cpu_s, thread_pct), ("process delta", delta_cpu, delta_pct)):
        verdict = "ok" if pct < 1.0 else "OVER"
        print(f"{label:<22}{args.hz:>6.1f}{busy_wall:>9.2f}{cpu:>9.4f}{pct:>12.3f}%{'<1% ' + verdict:>9}")
    idle_pct = idle_cpu / idle_wall * 100
    print(f"{'idle, no sampler':<22}{'':>6}{idle_wall:>9.2f}{idle_cpu:>9.4f}{idle_pct:>12.3f}%")
    print()
    print("per read(), mean thread CPU: " + ", ".join(f"{k} {v:.0f} us" for k, v in reads.items()))
    print(f"per tick: {sampler.cpu_s / max(sampler.ticks, 1) * 1e6:.0f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
