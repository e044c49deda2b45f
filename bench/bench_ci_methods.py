"""Which within-run interval of the median holds what it claims? Methods compared on synthetic series with known
structure and on real runs, with their cost on a 10-M-sample run.

Methods: the binomial order-statistic interval (``stats.median_ci``: assumes independent samples, what edgeprof used
before), sectioning with k consecutive batches (``stats.within_run_interval``), and a moving-block bootstrap
(percentile, block length n^(1/3); arch's ``MovingBlockBootstrap`` with the Politis-White block length when arch is
installed: it is not a dependency of edgeprof, ``pip install arch`` to include it).

Synthetic series: latency-like (log-normal marginal, median 1) with AR(1) correlation phi, and a two-level regime
series (a neighbour process that comes and goes); coverage = share of simulated series whose interval holds the true
median. Real runs: one long run of a model cut into windows of ``--window`` seconds; coverage = share of windows whose
interval holds the median of the rest of the same run (the within-run claim), and of the other runs' medians (what a
within-run interval does not claim).

    .venv/bin/python bench/bench_ci_methods.py [--sims 400] [--real-duration 40] [--real-runs 3] [--model efficientnet-lite0]
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

from edgeprof import stats  # noqa: E402


def ar1(rng, n: int, phi: float, sims: int) -> np.ndarray:
    """(sims, n) stationary AR(1) with unit marginal variance."""
    from scipy.signal import lfilter

    e = rng.standard_normal((sims, n)) * np.sqrt(1 - phi**2)
    z0 = rng.standard_normal((sims, 1))
    zi = phi * z0
    return lfilter([1.0], [1.0, -phi], e, axis=1, zi=zi)[0]


def regime(rng, n: int, sims: int, p_switch: float = 0.01) -> np.ndarray:
    """Two levels (1.0 and 1.3) switching with probability p_switch per sample, plus log-normal noise."""
    flips = rng.random((sims, n)) < p_switch
    state = (np.cumsum(flips, axis=1) + rng.integers(0, 2, (sims, 1))) % 2
    return np.log(1.0 + 0.3 * state) + 0.1 * rng.standard_normal((sims, n))


def mbb(x: np.ndarray, rng, reps: int = 300, block: int | None = None) -> tuple[float, float]:
    n = x.size
    b = block or max(1, int(round(n ** (1 / 3))))
    starts = rng.integers(0, n - b + 1, (reps, -(-n // b)))
    idx = (starts[:, :, None] + np.arange(b)).reshape(reps, -1)[:, :n]
    med = np.median(x[idx], axis=1)
    return tuple(np.quantile(med, [0.025, 0.975]))


def arch_mbb(x: np.ndarray, reps: int = 300, seed: int = 0) -> tuple[float, float] | None:
    try:
        from arch.bootstrap import MovingBlockBootstrap, optimal_block_length
    except ImportError:
        return None
    b = max(1, int(round(float(optimal_block_length(x)["stationary"].iloc[0]))))
    bs = MovingBlockBootstrap(b, x, seed=seed)
    ci = bs.conf_int(np.median, reps=reps, method="percentile")
    return float(ci[0, 0]), float(ci[1, 0])


def methods(have_arch: bool) -> dict:
    out = {"binomial (independent)": lambda x, rng: stats.median_ci(x)}
    for k in (5, 10, 20, 30):
        out[f"sectioning k={k}"] = lambda x, rng, k=k: stats.within_run_interval(x, batches=k)
    out["moving-block bootstrap"] = lambda x, rng: mbb(x, rng)
    if have_arch:
        out["arch MBB (Politis-White)"] = lambda x, rng: arch_mbb(x)
    return out


def synthetic(sims: int, have_arch: bool) -> None:
    rng = np.random.default_rng(1)
    cases = [(f"AR(1) phi={phi}", n, phi) for phi in (0.0, 0.5, 0.9) for n in (150, 400, 4000)]
    cases += [("regime switches", n, None) for n in (400, 4000)]
    meth = methods(have_arch)
    true_regime = float(np.exp(np.median(regime(np.random.default_rng(9), 200_000, 4))))
    print(f"synthetic series: coverage of the true median over {sims} series each (target 95%), median width %")
    print(f"{'series':<18} {'n':>5} " + " ".join(f"{m[:22]:>23}" for m in meth))
    for name, n, phi in cases:
        z = ar1(rng, n, phi, sims) if phi is not None else regime(rng, n, sims)
        series = np.exp(0.2 * z) if phi is not None else np.exp(z)
        truth = 1.0 if phi is not None else true_regime
        cells = []
        for m, f in meth.items():
            n_sims = sims if not m.startswith("arch") else min(sims, 100)
            hits, widths = 0, []
            for s in series[:n_sims]:
                ci = f(s, rng)
                if ci is None:
                    continue
                hits += ci[0] <= truth <= ci[1]
                widths.append(100 * (ci[1] - ci[0]) / truth)
            cells.append(f"{100 * hits / n_sims:5.1f}% w {np.median(widths):5.2f}" if widths else "-")
        print(f"{name:<18} {n:>5} " + " ".join(f"{c:>23}" for c in cells))


def cost(have_arch: bool) -> None:
    rng = np.random.default_rng(2)
    x = np.exp(0.2 * ar1(rng, 10_000_000, 0.5, 1)[0])
    t = time.perf_counter()
    stats.within_run_interval(x)
    sec = time.perf_counter() - t
    t = time.perf_counter()
    stats.summarize_latency(x)
    summ = time.perf_counter() - t
    small = x[:1_000_000]
    t = time.perf_counter()
    mbb(small, rng, reps=20)
    boot = (time.perf_counter() - t) * 10 * (1000 / 20)
    print(f"\ncost on 10 M samples: sectioning {sec:.2f} s; the whole summary {summ:.2f} s; a moving-block "
          f"bootstrap with 1,000 resamples ~{boot:.0f} s (measured with 20 on 1 M samples, scaled)")
    if have_arch:
        t = time.perf_counter()
        arch_mbb(small, reps=20)
        print(f"arch MBB, 20 resamples of 1 M samples: {time.perf_counter() - t:.1f} s (1,000 resamples of 10 M: "
              f"~{(time.perf_counter() - t) * 500:.0f} s)")


def real(args) -> None:
    from edgeprof.store import Store

    home = tempfile.mkdtemp(prefix="edgeprof-bench-")
    env = {**os.environ, "EDGEPROF_HOME": home}
    db = str(Path(home) / "bench.duckdb")
    series = []
    for _ in range(args.real_runs):
        r = subprocess.run([sys.executable, "-m", "edgeprof", "run", "--model", args.model, "--duration",
                            str(args.real_duration), "--threads", "2", "--db", db, "--json", "--quiet"],
                           capture_output=True, text=True, cwd=ROOT, env=env)
        if r.returncode != 0:
            raise SystemExit(f"edgeprof run failed: {r.stderr.strip()}")
        lat = Store(db).latency(json.loads(r.stdout)["run_id"])
        lat = lat[lat["phase"] == "steady"]
        series.append((lat["t_ns"].to_numpy(), lat["latency_ns"].to_numpy() / 1e6))
    meth = methods(False)
    rng = np.random.default_rng(3)
    medians = [float(np.median(x)) for _, x in series]
    acf = [float(np.corrcoef(x[:-1], x[1:])[0, 1]) for _, x in series]
    print(f"\nreal runs: {args.real_runs} runs of {args.model} fp32 onnx, 2 threads, {args.real_duration:g} s each; "
          f"run medians {', '.join(f'{m:.3f}' for m in medians)} ms; lag-1 autocorrelation "
          f"{', '.join(f'{a:.2f}' for a in acf)}; windows of {args.window:g} s")
    print(f"{'method':<26} {'holds rest of its run':>22} {'holds other runs':>17} {'median width %':>15}")
    for m, f in meth.items():
        own = other = total = 0
        widths = []
        for i, (t, x) in enumerate(series):
            w = ((t - t[0]) // int(args.window * 1e9)).astype(int)
            for j in np.unique(w):
                part = x[w == j]
                if part.size < 50:
                    continue
                ci = f(part, rng)
                if ci is None:
                    continue
                rest = float(np.median(x[w != j]))
                others = float(np.median([mm for k, mm in enumerate(medians) if k != i]))
                total += 1
                own += ci[0] <= rest <= ci[1]
                other += ci[0] <= others <= ci[1]
                widths.append(100 * (ci[1] - ci[0]) / np.median(part))
        if total:
            print(f"{m:<26} {own:>9}/{total:<3} ({100 * own / total:3.0f}%) {other:>6}/{total:<3} ({100 * other / total:3.0f}%)"
                  f" {np.median(widths):>10.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=400)
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--real-duration", type=float, default=40.0)
    ap.add_argument("--real-runs", type=int, default=3)
    ap.add_argument("--window", type=float, default=3.0)
    ap.add_argument("--no-real", action="store_true")
    args = ap.parse_args()
    try:
        import arch  # noqa: F401

        have_arch = True
    except ImportError:
        have_arch = False
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; arch {'installed' if have_arch else 'absent'}")
    synthetic(args.sims, have_arch)
    cost(have_arch)
    if not args.no_real:
        real(args)


if __name__ == "__main__":
    main()
