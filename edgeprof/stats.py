"""Pure statistics for edgeprof: latency summaries, warm-up detection, suspect flags, correlations.

Everything here is a pure function (or a tiny online state machine for the worker): numpy arrays or pandas
frames in, plain numbers, frozen dataclasses or DataFrames out. Nothing here raises or warns on empty,
tiny or constant input: it returns ``None`` for what cannot be computed, because a half-finished run
still has to produce a summary page.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


class _Lazy:
    """Import pandas / scipy.stats on first use: the CLI imports this module on every start and most commands never
    need scipy (~0.3 s to import on a Raspberry Pi 4)."""

    def __init__(self, module: str):
        self._module = module

    def __getattr__(self, name: str):
        import importlib

        return getattr(importlib.import_module(self._module), name)


_st = _Lazy("scipy.stats")
pd = _Lazy("pandas")  # noqa: F811

__all__ = [
    "Correlation",
    "Flag",
    "LatencySummary",
    "RatioOfMedians",
        "correlate",
    "correlation_matrix",
    "detect_warmup",
    "median_ci",
    "median_ci_ranks",
    "ratio_of_medians",
    "summarize_latency",
    "suspect_flags",
    "throughput",
    "windowed",
]

#: Below this many samples no distribution-free 95% CI for the median exists (0.5**5 * 2 > 0.05).
MEDIAN_CI_MIN_N = 6
#: Below this many points a correlation coefficient swings so widely that we say so in a note.
CORRELATION_HINT_N = 10
#: INT8 must be at least this much slower than FP32 before we flag it (small gaps are run-to-run noise).
INT8_SLOWER_MIN_RATIO = 1.05
#: Other processes must keep at least this much of one core busy (mean, %), on a device at least CONTENDED_BUSY_PCT
#: busy, before we say they competed with the model (a headless CLI run's own parent and sampler stay well below).
CONTENTION_MIN_PCT = 30.0
CONTENDED_BUSY_PCT = 85.0


def _finite(values: Any) -> np.ndarray:
    """1-D float array with NaN/inf dropped: a failed or missing sample must not poison a percentile."""
    arr = np.asarray(values, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def _f(x: Any) -> float | None:
    """Plain Python float, or None for NaN/inf (JSON- and DuckDB-friendly)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------------------------------------------
# 1. Latency summary
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencySummary:
    """Latency distribution of one run, in milliseconds. Fields are None where they cannot be computed."""

    n: int
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None
    std: float | None = None
    cov: float | None = None
    min: float | None = None
    max: float | None = None
    median_ci_low: float | None = None
    median_ci_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int] | None:
    """1-based ranks (j, k) so that [x_(j), x_(k)] covers the population median with >= ``confidence``.

    The number of samples below the true median is Binomial(n, 1/2) whatever the distribution, so the
    interval is exact (conservative by the binomial's discreteness) and needs no normality: latency
    distributions are skewed and multi-modal, so a mean +- t*s interval would lie.
    Returns None when n is too small for any pair of order statistics to reach the confidence.
    """
    if n < 1:
        return None
    alpha = 1.0 - confidence
    j = int(_st.binom.ppf(alpha / 2.0, n, 0.5))  # P(B <= j-1) < alpha/2
    if j < 1:
        return None
    return j, n - j + 1


def median_ci(values: Any, confidence: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free CI for the median from binomial order statistics; None when n is too small."""
    x = np.sort(_finite(values))
    ranks = median_ci_ranks(x.size, confidence)
    if ranks is None:
        return None
    j, k = ranks
    return float(x[j - 1]), float(x[k - 1])


def summarize_latency(latency_ms: Any) -> LatencySummary:
    """Percentiles (linear interpolation), mean, std (ddof=1), CoV, range and a median CI of latencies in ms.

    Non-finite values are dropped. Empty input gives n=0 and None everywhere; std/cov need n >= 2 and the
    median CI needs n >= 6.
    """
    x = _finite(latency_ms)  # a copy this function owns: sorted in place, never another full-size temporary
    n = int(x.size)
    if n == 0:
        return LatencySummary(n=0)
    x.sort()
    ranks = median_ci_ranks(n)
    lo, hi = float(x[0]), float(x[-1])
    ci = (float(x[ranks[0] - 1]), float(x[ranks[1] - 1])) if ranks else (None, None)
    mean = float(x.mean())
    std = _std(x, mean) if n >= 2 else None
    cov = std / mean if std is not None and mean > 0 else None
    p50, p90, p95, p99 = (float(v) for v in np.percentile(x, [50, 90, 95, 99], overwrite_input=True))  # reorders x
    return LatencySummary(
        n=n,
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        mean=mean,
        std=std,
        cov=cov,
        min=lo,
        max=hi,
        median_ci_low=ci[0],
        median_ci_high=ci[1],
    )


_CHUNK = 1 << 20


def _std(x: np.ndarray, mean: float) -> float:
    """Sample std (ddof=1) in 1M-value chunks: ``x.std()`` makes a full-size temporary (80 MB for a 10-M-sample run
    of a fast model, in the dashboard's server)."""
    ss = 0.0
    for i in range(0, x.size, _CHUNK):
        d = x[i:i + _CHUNK] - mean
        ss += float(np.dot(d, d))
    return float(np.sqrt(ss / (x.size - 1)))


# --------------------------------------------------------------------------------------------------------------
# 2. Warm-up detection
# --------------------------------------------------------------------------------------------------------------


def detect_warmup(
    latency_ms: Any,
    window: int = 20,
    tolerance: float = 0.05,
    *,
    tail_fraction: float = 0.5,
    abs_tolerance: float = 0.0,
) -> int:
    """Index of the first steady sample of a finished series (offline, for analysis and the recorded runs).

    Rule: smooth with a *centred* rolling median of ``window`` samples (robust to single spikes, and
    centred so it neither leads nor lags a decaying warm-up curve), take as reference the median of the
    last ``tail_fraction`` of the series, and return the first index i from which the smoothed value stays
    within ``max(tolerance * reference, abs_tolerance)`` of the reference for ``window`` consecutive
    samples. Returns 0 for a series too short to judge (fewer than 2 * window samples) and ``len(series)``
    when it never becomes steady. NaNs are dropped first, so the index refers to the finite samples.
    """
    x = _finite(latency_ms)
    n = x.size
    window = max(1, int(window))
    if n < 2 * window:
        return 0
    tail = x[int(n * (1.0 - tail_fraction)) :]
    ref = float(np.median(tail))
    tol = max(tolerance * abs(ref), abs_tolerance)
    smooth = pd.Series(x).rolling(window, center=True, min_periods=1).median().to_numpy()
    ok = np.abs(smooth - ref) <= tol
    # first i with ok[i : i + window] all true, via a cumulative sum (vectorised: series can be 10^6 long)
    cs = np.concatenate(([0], np.cumsum(ok, dtype=np.int64)))
    hits = np.flatnonzero(cs[window:] - cs[:-window] == window)
    return int(hits[0]) if hits.size else n


# --------------------------------------------------------------------------------------------------------------
# 3. Suspect flags
# --------------------------------------------------------------------------------------------------------------


class Flag(NamedTuple):
    """Something that makes a result doubtful: a stable ``code`` and a plain-words ``message``."""

    code: str
    message: str


def suspect_flags(
    summary: LatencySummary,
    *,
    cov_threshold: float = 0.10,
    throttled: bool | None = None,
    governor: str | None = None,
    int8_vs_fp32_ratio: float | None = None,
    n_min: int = 30,
    cap_hit: bool | None = None,
    warmup_capped: bool | str | None = None,
    cpu_others_pct: float | None = None,
    cpu_busy_pct: float | None = None,
) -> list[Flag]:
    """Reasons not to trust a latency number, in plain words, so the page can say why a result looks off.

    ``int8_vs_fp32_ratio`` is INT8 median latency / FP32 median latency of the same model and runtime.
    ``warmup_capped`` is True (or the WarmupDetector reason, e.g. "max_seconds") when warm-up stopped on a
    bound instead of reaching a steady state. ``cpu_others_pct`` is the mean CPU of everything but the worker, in %
    of one core, and ``cpu_busy_pct`` the mean busy share of the whole device (0-100), both over the steady state.
    ``None`` means "unknown" and never raises a flag.
    """
    flags: list[Flag] = []
    if summary.n < n_min:
        what = "no samples" if summary.n == 0 else f"only {summary.n} samples"
        flags.append(
            Flag(
                "few_samples",
                f"Few measurements ({what}, fewer than {n_min}): percentiles, especially p99, are rough; "
                "run more iterations or longer.",
            )
        )
    if summary.cov is not None and summary.cov > cov_threshold:
        flags.append(
            Flag(
                "high_cov",
                f"Latency varied a lot (CoV {summary.cov:.0%} > {cov_threshold:.0%}): other load on the device or "
                "thermal throttling; rerun and compare.",
            )
        )
    if throttled:
        flags.append(
            Flag(
                "throttled",
                "The device throttled (temperature or power limit) during the run: latencies are slower than the "
                "hardware can do; cool the device, check the power supply, and rerun.",
            )
        )
    if governor is not None and governor.strip() and governor.strip().lower() != "performance":
        flags.append(
            Flag(
                "governor",
                f"CPU governor is '{governor.strip()}', not 'performance': frequencies move during the run; set the "
                "'performance' governor for stable numbers or compare only runs made with the same governor.",
            )
        )
    if (
        int8_vs_fp32_ratio is not None
        and math.isfinite(int8_vs_fp32_ratio)
        and (int8_vs_fp32_ratio > INT8_SLOWER_MIN_RATIO)
    ):
        flags.append(
            Flag(
                "int8_slower",
                f"INT8 ran {int8_vs_fp32_ratio:.1f}x slower than FP32 of the same model on this runtime: this "
                "runtime likely lacks fast integer kernels for this CPU and falls back to slow paths or extra "
                "quantize/dequantize steps; try another runtime or precision.",
            )
        )
    if cap_hit:
        flags.append(
            Flag(
                "cap_hit",
                "The run reached its memory cap: the system reclaimed memory or swapped, which slows inference; "
                "the numbers describe this cap, not the model alone. Raise the cap to compare.",
            )
        )
    if warmup_capped:
        how = f" ({warmup_capped})" if isinstance(warmup_capped, str) else ""
        flags.append(
            Flag(
                "warmup_not_steady",
                f"Warm-up stopped on its limit{how} before latency settled: early measured samples may still be "
                "warming up; allow a longer warm-up or check for background load.",
            )
        )
    if (cpu_others_pct is not None and cpu_busy_pct is not None and cpu_others_pct >= CONTENTION_MIN_PCT
            and cpu_busy_pct >= CONTENDED_BUSY_PCT):
        flags.append(
            Flag(
                "cpu_contention",
                f"Other processes kept {cpu_others_pct:.0f}% of a core busy while the device was {cpu_busy_pct:.0f}% "
                "busy: they competed with the model for CPU (a browser on the device itself counts); close them, "
                "or watch from another machine or run from the CLI, and rerun.",
            )
        )
    return flags


# --------------------------------------------------------------------------------------------------------------
# 4. Correlations
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Correlation:
    """Pearson (with a Fisher-z 95% CI) and Spearman correlation of paired data; None where undefined."""

    n: int
    pearson_r: float | None = None
    pearson_p: float | None = None
    pearson_ci_low: float | None = None
    pearson_ci_high: float | None = None
    spearman_r: float | None = None
    spearman_p: float | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fisher_ci(r: float, n: int, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Fisher z interval for Pearson r: atanh(r) is about normal with sd 1/sqrt(n-3). Needs n > 3."""
    if n <= 3:
        return None, None
    if abs(r) >= 1.0:
        return float(r), float(r)
    z = math.atanh(r)
    half = _st.norm.ppf(0.5 + confidence / 2.0) / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def correlate(x: Any, y: Any, *, unit: str = "runs") -> Correlation:
    """Pearson and Spearman correlation of x and y, dropping pairs where either is NaN or inf.

    Coefficients are None when fewer than 3 pairs remain or a variable is constant; ``note`` then says why,
    and also warns when fewer than 10 pairs make r unreliable. ``unit`` names the points in the note.
    """
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    if xa.size != ya.size:
        raise ValueError(f"x and y differ in length ({xa.size} vs {ya.size})")
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    n = int(xa.size)
    if n < 3:
        return Correlation(n=n, note=f"only {n} {unit}: too few to compute a correlation (need at least 3)")
    constant = [name for name, v in (("x", xa), ("y", ya)) if np.ptp(v) == 0]
    if constant:
        return Correlation(n=n, note=f"{' and '.join(constant)} did not vary: correlation is undefined")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pr, pp = _st.pearsonr(xa, ya)
        sr, sp = _st.spearmanr(xa, ya)
    pr_f = _f(pr)
    lo, hi = _fisher_ci(pr_f, n) if pr_f is not None else (None, None)
    note = None
    if n < CORRELATION_HINT_N:
        note = f"only {n} {unit}: r can swing widely; treat as a hint"
    return Correlation(
        n=n,
        pearson_r=pr_f,
        pearson_p=_f(pp),
        pearson_ci_low=_f(lo),
        pearson_ci_high=_f(hi),
        spearman_r=_f(sr),
        spearman_p=_f(sp),
        note=note,
    )


_MATRIX_COLUMNS = ["x", "y", "n", "pearson_r", "pearson_p", "ci_low", "ci_high", "spearman_r", "spearman_p", "note"]


def correlation_matrix(df: pd.DataFrame, columns: list[str], *, unit: str = "runs") -> pd.DataFrame:
    """Long-form correlations of every pair of ``columns`` (x before y in the given order), one row per pair.

    Long form rather than a square matrix because each pair has its own n (NaNs are dropped pairwise),
    p-values, CI and note. Non-numeric values become NaN.
    """
    rows = []
    for cx, cy in combinations(columns, 2):
        c = correlate(pd.to_numeric(df[cx], errors="coerce"), pd.to_numeric(df[cy], errors="coerce"), unit=unit)
        rows.append(
            {
                "x": cx,
                "y": cy,
                "n": c.n,
                "pearson_r": c.pearson_r,
                "pearson_p": c.pearson_p,
                "ci_low": c.pearson_ci_low,
                "ci_high": c.pearson_ci_high,
                "spearman_r": c.spearman_r,
                "spearman_p": c.spearman_p,
                "note": c.note,
            }
        )
    out = pd.DataFrame(rows, columns=_MATRIX_COLUMNS)
    for col in _MATRIX_COLUMNS[3:-1]:
        out[col] = out[col].astype(float)
    out["n"] = out["n"].astype("int64")
    return out


def windowed(latency_df: pd.DataFrame, telemetry_df: pd.DataFrame, window_s: float = 1.0) -> pd.DataFrame:
    """Bucket one run's latency samples and telemetry into common time windows, to correlate them over time.

    ``latency_df`` has ``t_ns`` and ``latency_ns``; ``telemetry_df`` is long form with ``t_ns``, ``metric``,
    ``value``; both on the same monotonic clock. Windows start at the first latency sample and are
    ``window_s`` long; telemetry outside the latency span is dropped (it belongs to load or warm-up).
    Returns one row per window that holds latency samples: ``window`` (index), ``t_s`` (window start,
    seconds from the first sample), ``n_samples``, ``latency_ms_median``, then one column per metric with
    its mean in the window (NaN where the sampler had nothing). Medians for latency because single
    spikes would otherwise dominate short windows; means for utilisation, which is already an average.
    """
    if window_s <= 0:
        raise ValueError("window_s must be > 0")
    window_ns = window_s * 1e9
    base_cols = ["window", "t_s", "n_samples", "latency_ms_median"]
    if latency_df is None or len(latency_df) == 0:
        return pd.DataFrame(columns=base_cols)
    lat = latency_df[["t_ns", "latency_ns"]].dropna()
    if lat.empty:
        return pd.DataFrame(columns=base_cols)
    t0 = int(lat["t_ns"].min())
    t_end = int(lat["t_ns"].max())
    lw = ((lat["t_ns"].astype("int64") - t0) // window_ns).astype("int64")
    g = (lat["latency_ns"].astype(float) / 1e6).groupby(lw)
    out = pd.DataFrame({"n_samples": g.size(), "latency_ms_median": g.median()})
    out.index.name = "window"
    if telemetry_df is not None and len(telemetry_df):
        tel = telemetry_df[["t_ns", "metric", "value"]].dropna(subset=["t_ns", "metric"])
        tel = tel[(tel["t_ns"] >= t0) & (tel["t_ns"] <= t_end)]
        if not tel.empty:
            tw = ((tel["t_ns"].astype("int64") - t0) // window_ns).astype("int64").rename("window")
            wide = (
                pd.to_numeric(tel["value"], errors="coerce")
                .groupby([tw, tel["metric"].astype(str)])
                .mean()
                .unstack("metric")
            )
            wide.columns.name = None
            out = out.join(wide, how="left")
    out = out.reset_index()
    out.insert(1, "t_s", out["window"] * window_s)
    out["n_samples"] = out["n_samples"].astype("int64")
    return out


# --------------------------------------------------------------------------------------------------------------
# 5. Ratio of medians, 6. throughput
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RatioOfMedians:
    """median(a) / median(b) with a percentile-bootstrap CI; None where undefined (empty input, median(b) 0)."""

    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    n_a: int
    n_b: int
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bootstrap_median_draws(sorted_x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of ``n_boot`` bootstrap resamples, drawn exactly without materialising the resamples.

    The resample median (lower median, the ceil(n/2)-th order statistic) is <= x_(j) exactly when at least
    ceil(n/2) of the n draws land among the j smallest values, i.e. P(rank <= j) = P(Binom(n, j/n) >=
    ceil(n/2)). Inverting that CDF gives the same distribution as resampling, in O(n + n_boot) instead of
    O(n * n_boot), so it stays cheap for millions of latency samples.
    """
    n = sorted_x.size
    m = (n + 1) // 2
    cdf = _st.binom.sf(m - 1, n, np.arange(1, n + 1) / n)
    cdf[-1] = 1.0
    ranks = np.searchsorted(cdf, rng.random(n_boot), side="left")
    return sorted_x[np.minimum(ranks, n - 1)]


def ratio_of_medians(a: Any, b: Any, *, confidence: float = 0.95, n_boot: int = 4000, seed: int = 0) -> RatioOfMedians:
    """median(a) / median(b) with a seeded percentile-bootstrap CI (a and b resampled independently).

    Used to state e.g. "edgeprof's loop is 1.02x (1.01-1.03) the bare loop": the ratio of medians is
    robust to spikes, the bootstrap needs no distributional assumption, and the fixed seed makes reports
    reproducible. NaN/inf are dropped; the CI needs at least 2 samples on each side.
    """
    xa = np.sort(_finite(a))
    xb = np.sort(_finite(b))
    na, nb = int(xa.size), int(xb.size)
    if na == 0 or nb == 0:
        return RatioOfMedians(None, None, None, na, nb, confidence)
    mb = float(np.median(xb))
    if mb == 0:
        return RatioOfMedians(None, None, None, na, nb, confidence)
    ratio = float(np.median(xa)) / mb
    if na < 2 or nb < 2:
        return RatioOfMedians(ratio, None, None, na, nb, confidence)
    rng = np.random.default_rng(seed)
    da = _bootstrap_median_draws(xa, n_boot, rng)
    db = _bootstrap_median_draws(xb, n_boot, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = da / db
    r = r[np.isfinite(r)]
    if r.size == 0:
        return RatioOfMedians(ratio, None, None, na, nb, confidence)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(r, [alpha / 2.0, 1.0 - alpha / 2.0])
    return RatioOfMedians(ratio, float(lo), float(hi), na, nb, confidence)


def throughput(n: int, seconds: float) -> float | None:
    """Inferences per second; None when no time elapsed (or it is unknown), rather than inf or an error."""
    if seconds is None or not math.isfinite(seconds) or seconds <= 0 or n is None:
        return None
    return float(n) / float(seconds)
