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
    "AcrossRuns",
    "Ratio",
    "across_runs",
    "below_floor",
    "correlate",
    "correlation_matrix",
    "detect_warmup",
    "floor_words",
    "fmt_ms",
    "fmt_ms_range",
    "fmt_p",
    "median_ci",
    "median_ci_ranks",
    "noise_floor_pct",
    "p_words",
    "plural",
    "ratio_across_runs",
    "ratio_within_runs",
    "ratio_words",
    "sections",
    "summarize_latency",
    "suspect_flags",
    "throughput",
    "windowed",
    "within_run_interval",
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
#: "Latency varied a lot" when p90 is more than this share above p50: one inference in ten ran over 1.3x slower than
#: the typical one. Why p90 against p50 and not the CoV: a latency series has a floor and a long right tail, and on a
#: fast model a handful of scheduler stalls (8 ms against a 0.03-ms median) make the std several times the mean, so a
#: CoV threshold fired on nearly every sub-millisecond run (CoV 337% with p99 only 1.85x p50). p50 and p90 move only
#: when at least a tenth of the inferences slow down, which is what other load sharing the cores or a throttled clock
#: do. Why 30%: a CoV of 10% (the old threshold) puts p90 12.8% above p50 in a normal spread, and latency is right-
#: skewed (timer, cache and frequency-step noise of a quiet run keep its middle within ~10-20% of the median); 30% is
#: past that, and well under what a busy device gave here (2 cores, load average 3: p90 49% and 68% above p50 for
#: efficientnet-lite0 and digits-cnn).
SPREAD_THRESHOLD = 0.30


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
    """Latency distribution of one run, in milliseconds. Fields are None where they cannot be computed.

    ``median_ci_low``/``median_ci_high`` and ``p90_ci_low``/``p90_ci_high`` are 95% intervals *within this run*
    (:func:`within_run_interval`, from ``ci_batches`` consecutive batches): the uncertainty from the noise inside this
    run, had the device kept behaving as it did during it. Variation between runs (another process, another start)
    and drift beyond the run are not in them.
    """

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
    p90_ci_low: float | None = None
    p90_ci_high: float | None = None
    ci_batches: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int] | None:
    """1-based ranks (j, k) so that [x_(j), x_(k)] covers the population median with >= ``confidence``, for
    INDEPENDENT draws (one value per process, say; not consecutive latencies of one run, which are autocorrelated).

    The number of draws below the true median is Binomial(n, 1/2) whatever the distribution, so the interval is
    exact (conservative by the binomial's discreteness) and needs no normality.
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
    """Distribution-free CI for the median of independent draws from binomial order statistics; None when n is too
    small. ``bench/bench_ci_methods.py`` shows it undercovers on a run's consecutive latencies."""
    x = np.sort(_finite(values))
    ranks = median_ci_ranks(x.size, confidence)
    if ranks is None:
        return None
    j, k = ranks
    return float(x[j - 1]), float(x[k - 1])


#: The within-run interval splits a run into at most this many consecutive batches ... Fewer, longer batches hold
#: more correlation (AR(1) phi 0.9, 400 samples: 20 batches covered 85% of the true medians, 10 covered 91%, 5 93%)
#: but widen the interval through t's degrees of freedom (5 batches: ~25% wider than 10 on independent samples);
#: bench/bench_ci_methods.py measured both.
SECTIONS = 10
#: ... of at least this many samples each; with fewer than MIN_SECTIONS such batches there is no interval.
SECTION_MIN_SAMPLES = 10
MIN_SECTIONS = 5


def _t(confidence: float, df: float) -> float:
    return float(_st.t.ppf(0.5 + confidence / 2.0, df))


def sections(n: int, batches: int = SECTIONS) -> int:
    """How many consecutive batches a run of ``n`` samples is split into for its within-run interval (0: none)."""
    k = min(int(batches), n // SECTION_MIN_SAMPLES)
    return k if k >= MIN_SECTIONS else 0


def _batch_quantiles(x: np.ndarray, percents: list[float], k: int) -> np.ndarray:
    """(k, len(percents)) percentiles of k consecutive, equal batches of the time-ordered ``x``, which it REORDERS
    within each batch (partitioned in place: no copy of a 10-M-sample run; the batches stay where they are)."""
    edges = (np.arange(k + 1) * x.size) // k
    return np.array([np.percentile(x[edges[i]:edges[i + 1]], percents, overwrite_input=True) for i in range(k)],
                    dtype=float).reshape(k, len(percents))


def _section_halfwidth(batch_q: np.ndarray, confidence: float) -> np.ndarray:
    """Half-widths, one per column of ``batch_q`` (k batch estimates): t(k-1) * sd / sqrt(k)."""
    k = batch_q.shape[0]
    return _t(confidence, k - 1) * batch_q.std(axis=0, ddof=1) / math.sqrt(k)


def within_run_interval(latency_ms: Any, percent: float = 50.0, *, confidence: float = 0.95,
                        batches: int = SECTIONS) -> tuple[float, float] | None:
    """A ``confidence`` interval of the ``percent``-th percentile of ONE run's latencies, given in time order, that
    stays valid when consecutive latencies are correlated. None when the run is too short (see :func:`sections`).

    Sectioning (Asmussen & Glynn 2007, ch. IV.5; Nakayama 2014 for quantiles): split the series into k consecutive
    batches, take the percentile of each, and centre a Student-t interval with k-1 degrees of freedom on the
    percentile of the whole run: ``q_all +- t(k-1) * sd(q_batch) / sqrt(k)``. Consecutive latencies share the
    processor's frequency, cache and neighbours' load, so they are not independent draws; batches long against that
    memory are nearly independent, and the spread of their percentiles carries the correlation the binomial
    interval ignores. Why this and not a block bootstrap (measured in ``bench/bench_ci_methods.py``): both cover
    about 95% on autocorrelated series, but a moving-block bootstrap resamples the whole run hundreds of times
    (seconds for a 10-M-sample run) while sectioning reads each sample once (~0.2 s for 10 M samples), and it needs
    no block length to tune. Centring on the whole run's percentile (not the mean of the batch percentiles) keeps
    the interval free of the small-batch bias of a percentile.

    The interval is about this run only: a run in another process (another start, memory layout, frequency,
    neighbours) can land well outside it, and so can a later stretch of the same process when the device's load
    changes (no within-run method can see a change that has not happened yet). :func:`across_runs` makes the
    interval that includes that.
    """
    x = _finite(latency_ms)  # a copy: reordered below
    k = sections(x.size, batches)
    if k == 0:
        return None
    half = float(_section_halfwidth(_batch_quantiles(x, [percent], k), confidence)[0])
    centre = float(np.percentile(x, percent, overwrite_input=True))
    return max(centre - half, float(x.min())), min(centre + half, float(x.max()))


def summarize_latency(latency_ms: Any) -> LatencySummary:
    """Percentiles (linear interpolation), mean, std (ddof=1), CoV, range, and 95% intervals of the median and p90
    within this run (:func:`within_run_interval`) of latencies in ms, **given in time order**.

    Non-finite values are dropped. Empty input gives n=0 and None everywhere; std/cov need n >= 2 and the intervals
    ``SECTION_MIN_SAMPLES * MIN_SECTIONS`` samples. One copy of the input, no full sort (percentiles by partition,
    in place): ~0.5 s for 10 M samples on a 2-core x86 (bench/bench_ci_methods.py).
    """
    x = _finite(latency_ms)  # a copy this function owns, reordered in place below
    n = int(x.size)
    if n == 0:
        return LatencySummary(n=0)
    k = sections(n)
    batch_q = _batch_quantiles(x, [50.0, 90.0], k) if k else None  # reorders x within each batch only
    lo, hi = float(x.min()), float(x.max())
    mean = float(x.mean())
    std = _std(x, mean) if n >= 2 else None
    cov = std / mean if std is not None and mean > 0 else None
    p50, p90, p95, p99 = (float(v) for v in np.percentile(x, [50, 90, 95, 99], overwrite_input=True))  # reorders x
    ci: list[float | None] = [None] * 4
    if batch_q is not None:
        h50, h90 = _section_halfwidth(batch_q, 0.95)
        ci = [max(p50 - h50, lo), min(p50 + h50, hi), max(p90 - h90, lo), min(p90 + h90, hi)]
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
        median_ci_low=_f(ci[0]),
        median_ci_high=_f(ci[1]),
        p90_ci_low=_f(ci[2]),
        p90_ci_high=_f(ci[3]),
        ci_batches=k or None,
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
    spread_threshold: float = SPREAD_THRESHOLD,
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
    ``None`` means "unknown" and never raises a flag. ``spread_threshold``: see :data:`SPREAD_THRESHOLD` (the CoV
    stays a reported figure, not a flag: a few stalls inflate it).
    """
    flags: list[Flag] = []
    if summary.n < n_min:
        what = "no samples" if summary.n == 0 else f"only {plural(summary.n, 'sample')}"
        flags.append(
            Flag(
                "few_samples",
                f"Few measurements ({what}, fewer than {n_min}): percentiles, especially p99, are rough; "
                "run more iterations or longer.",
            )
        )
    if summary.p50 is not None and summary.p90 is not None and summary.p50 > 0 \
            and summary.p90 > (1.0 + spread_threshold) * summary.p50:
        flags.append(
            Flag(
                "high_spread",
                f"Latency varied a lot (p90 {summary.p90:.3g} ms is {summary.p90 / summary.p50:.2f}x p50 "
                f"{summary.p50:.3g} ms; flagged above {1.0 + spread_threshold:.2f}x): a tenth of the inferences or "
                "more ran slower, as under other load on the device or thermal throttling; rerun and compare.",
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


#: What a p value that could not be computed reads as in a table cell: the dash of every other undefined cell.
UNDEFINED = "–"


def fmt_p(p: float | None) -> str:
    """A p value as people read it, the one format of the app: ``0.83`` (two decimals from 0.1), ``0.03`` or
    ``0.0042`` (two significant digits below; three where two would round across 0.05, ``0.0496``), ``< 0.001``
    (no figure below: the test is not that precise), and ``UNDEFINED`` for None or NaN."""
    if p is None or not math.isfinite(p):
        return UNDEFINED
    if p < 0.001:
        return "< 0.001"
    text = f"{p:.2g}" if p < 0.1 else f"{p:.2f}"
    if (float(text) < 0.05) != (p < 0.05):  # 0.0496 must not read "0.05" beside a verdict made at p < 0.05
        text = f"{p:.3g}"
    return text


def p_words(p: float | None) -> str:
    """``fmt_p`` in a sentence: ``p = 0.03``, ``p < 0.001`` (never "p = < 0.001"), ``p = n/a`` when undefined."""
    if p is None or not math.isfinite(p):
        return "p = n/a"
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def plural(n, word: str, many: str | None = None) -> str:
    """``1 thread``, ``2 threads``, ``0 runs``: a count with its noun, singular for exactly one (``many`` where the
    plural is not ``word + "s"``); a count that is not a number (None, text) takes the plural."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def _ms_unit(v: float) -> tuple[float, str]:
    """The unit a duration in ms reads best in (the rule of ``fmt_ms``): what to multiply ms by, and the unit."""
    a = abs(v)
    return (1000.0, " \u00b5s") if a < 1 else (1.0, " ms") if a < 10_000 else (0.001, " s")


def fmt_ms(v: float | None) -> str:
    """A duration in ms as the app and the CLI write it, three significant figures: ``33.4 µs`` and ``19.0 µs`` below
    1 ms (so a fast model never reads ``0.019 ms``), ``4.57 ms``, ``135 ms``, ``12.3 s`` from 10 s; ``-`` for None or a
    number that is not finite."""
    if v is None or not math.isfinite(v):
        return "-"
    factor, unit = _ms_unit(v)
    x = v * factor
    if unit == " ms" and abs(x) >= 100:
        return f"{x:.0f}{unit}"
    if unit == " s":
        return f"{x:.1f}{unit}"
    return f"{x:.{_decimals(x)}f}{unit}"


def _decimals(x: float, figures: int = 3) -> int:
    """Decimals that give ``x`` ``figures`` significant figures, trailing zeros kept (``19.0``, ``4.50``), so a column
    of latencies reads alike."""
    return max(0, figures - 1 - math.floor(math.log10(abs(x)))) if x else 0


def fmt_ms_range(lo: float | None, hi: float | None) -> str:
    """An interval of durations in ms in one unit (``fmt_ms``'s, from its larger end), with at least three
    significant figures and more where fewer would print two different ends alike: ``18.2 to 18.4 µs``,
    ``18.23 to 18.25 µs``, ``0.95 to 1.05 ms``; ``-`` when an end is missing."""
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "-"
    factor, unit = _ms_unit(max(abs(lo), abs(hi)))
    a, b = lo * factor, hi * factor
    decimals = _decimals(max(abs(a), abs(b)))
    for extra in range(5):  # up to seven significant figures: beyond that the ends are the same measurement
        d = decimals + extra
        ta, tb = f"{a:.{d}f}", f"{b:.{d}f}"
        if ta != tb or lo == hi:
            break
    return f"{ta} to {tb}{unit}"

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
    return windowed_telemetry(out, t0, t_end, telemetry_df, window_s)


#: The window lengths the Correlations page offers by default (s): values a person reads at a glance.
READABLE_WINDOWS_S = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0)


def readable_window_s(target_s: float) -> float:
    """The readable window length nearest ``target_s`` on a log scale (1.61 s -> 1.5 s), at least 0.25 s: the page
    aims at about 40 windows a run, and "1.61 s" reads like a measurement when it is only a choice."""
    if not math.isfinite(target_s) or target_s <= 0:
        return READABLE_WINDOWS_S[0]
    return min(READABLE_WINDOWS_S, key=lambda w: abs(math.log(w / target_s)))


def windowed_telemetry(latency_windows: pd.DataFrame, t0: int, t_end: int, telemetry_df: pd.DataFrame | None,
                       window_s: float) -> pd.DataFrame:
    """:func:`windowed`'s result from latency already in windows (``n_samples`` and ``latency_ms_median`` indexed by
    window number, windows of ``window_s`` from ``t0``; ``t_end`` the last sample's start): what
    ``store.samples.latency_windows`` computes in the database for a long run."""
    window_ns = window_s * 1e9
    out = latency_windows[["n_samples", "latency_ms_median"]].copy()
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
# 5. Across runs, ratios, the noise floor; 6. throughput
# --------------------------------------------------------------------------------------------------------------

#: What an interval covers: the noise inside one run, or the spread between separate runs.
SCOPE_WITHIN_RUN = "within-run"
SCOPE_RUNS = "runs"
SINGLE_RUN = "single run: no between-run uncertainty"


@dataclass(frozen=True)
class AcrossRuns:
    """One figure (e.g. p50, ms) over ``n`` separate runs: ``center`` is the median of the runs' values, [low, high]
    the ``confidence`` interval between runs (None with fewer than 2 runs), ``spread`` the standard deviation of the
    log values (about the relative spread between runs: 0.03 = 3%)."""

    n: int
    center: float | None
    low: float | None
    high: float | None
    spread: float | None
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _logs(values: Any) -> np.ndarray:
    x = _finite(values)
    return np.log(x[x > 0])


def across_runs(values: Any, confidence: float = 0.95) -> AcrossRuns:
    """The interval of a figure between separate runs (one value per run, e.g. each run's median latency).

    Runs are separate processes, so their values are independent draws (the sample each run measured is not). The
    interval is Student's t on the logs of the values (exp of mean(log) +- t(n-1) * sd(log) / sqrt(n)), widened if
    needed to hold the median of the values it is reported with: latency is positive and its run-to-run spread is
    multiplicative (a busy neighbour slows a run by a share), so logs make the spread symmetric, and t is exact for
    log-normal run effects at any n >= 2, where no distribution-free interval exists below 6 runs (the binomial
    interval of :func:`median_ci` needs n >= 6). Non-positive and non-finite values are dropped.
    """
    v = _finite(values)
    v = v[v > 0]
    n = int(v.size)
    if n == 0:
        return AcrossRuns(0, None, None, None, None, confidence)
    center = float(np.median(v))
    if n < 2:
        return AcrossRuns(n, center, None, None, None, confidence)
    logs = np.log(v)
    sd = float(logs.std(ddof=1))
    half = _t(confidence, n - 1) * sd / math.sqrt(n)
    m = float(logs.mean())
    return AcrossRuns(n, center, min(math.exp(m - half), center), max(math.exp(m + half), center), sd, confidence)


@dataclass(frozen=True)
class Ratio:
    """a / b (e.g. median latencies) with a ``confidence`` interval and its ``scope``: "runs" (between separate
    runs) or "within-run" (single runs: only the noise inside each run). Fields None where undefined."""

    ratio: float | None
    low: float | None
    high: float | None
    scope: str | None
    n_a: int
    n_b: int
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def excludes_one(self) -> bool:
        """True when the interval says a and b differ (it lies wholly above or below 1)."""
        return self.low is not None and self.high is not None and (self.low > 1.0 or self.high < 1.0)


def _ratio_interval(ratio: float, d: float, se: float, df: float, confidence: float) -> tuple[float, float]:
    half = _t(confidence, df) * se if se > 0 else 0.0
    return min(math.exp(d - half), ratio), max(math.exp(d + half), ratio)


def ratio_across_runs(a: Any, b: Any, *, paired: bool = False, confidence: float = 0.95) -> Ratio:
    """median(a) / median(b) of per-run values (e.g. run medians of two configurations) with an interval between
    runs: Student's t on the difference of log means, paired when run i of a and run i of b were made side by side
    (an interleaved comparison, where drift falls on both), else Welch's. Needs 2 runs on each side (2 pairs); the
    interval is widened if needed to hold the ratio it is reported with."""
    la, lb = _logs(a), _logs(b)
    na, nb = int(la.size), int(lb.size)
    if na == 0 or nb == 0:
        return Ratio(None, None, None, None, na, nb, confidence)
    ratio = float(np.median(np.exp(la)) / np.median(np.exp(lb)))
    if paired and na == nb and na >= 2:
        diff = la - lb
        d, se, df = float(diff.mean()), float(diff.std(ddof=1)) / math.sqrt(na), na - 1
    elif na >= 2 and nb >= 2:
        va, vb = float(la.var(ddof=1)) / na, float(lb.var(ddof=1)) / nb
        d, se = float(la.mean() - lb.mean()), math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1)) if va + vb > 0 else na + nb - 2
    else:
        return Ratio(ratio, None, None, None, na, nb, confidence)
    low, high = _ratio_interval(ratio, d, se, df, confidence)
    return Ratio(ratio, low, high, SCOPE_RUNS, na, nb, confidence)


def _log_section(x: np.ndarray, batches: int) -> tuple[float, float, int] | None:
    """(log median, its standard error by sectioning, degrees of freedom) of one time-ordered run."""
    k = sections(x.size, batches)
    if k == 0 or not np.all(x > 0):
        return None
    q = _batch_quantiles(x, [50.0], k)[:, 0]
    med = float(np.median(x))
    return math.log(med), float(q.std(ddof=1)) / math.sqrt(k) / med, k - 1


def ratio_within_runs(a: Any, b: Any, *, confidence: float = 0.95, batches: int = SECTIONS) -> Ratio:
    """median(a) / median(b) of two SINGLE runs' latencies (each in time order) with an interval that holds only the
    noise inside each run (sectioning, as :func:`within_run_interval`, combined on the log scale with Welch's
    degrees of freedom). Scope "within-run": two reruns can differ by more; say so wherever it is shown."""
    xa, xb = _finite(a), _finite(b)
    na, nb = int(xa.size), int(xb.size)
    if na == 0 or nb == 0 or np.median(xb) <= 0:
        return Ratio(None, None, None, None, na, nb, confidence)
    ratio = float(np.median(xa) / np.median(xb))
    sa, sb = _log_section(xa, batches), _log_section(xb, batches)
    if sa is None or sb is None:
        return Ratio(ratio, None, None, None, na, nb, confidence)
    va, vb = sa[1] ** 2, sb[1] ** 2
    df = (va + vb) ** 2 / (va**2 / sa[2] + vb**2 / sb[2]) if va + vb > 0 else sa[2] + sb[2]
    low, high = _ratio_interval(ratio, sa[0] - sb[0], math.sqrt(va + vb), df, confidence)
    return Ratio(ratio, low, high, SCOPE_WITHIN_RUN, na, nb, confidence)


def noise_floor_pct(run_values: Any, confidence: float = 0.95) -> float | None:
    """The device's noise floor, in %: how far apart two single runs of the same configuration land ``confidence``
    of the time, from ``n`` runs of one configuration (their medians). A difference between two single runs smaller
    than this is not distinguishable from rerunning. It is the prediction interval of a log ratio of two new runs:
    ``exp(t(n-1) * sd(log) * sqrt(2)) - 1``. None with fewer than 3 runs."""
    logs = _logs(run_values)
    if logs.size < 3:
        return None
    half = _t(confidence, logs.size - 1) * float(logs.std(ddof=1)) * math.sqrt(2.0)
    return 100.0 * (math.exp(half) - 1.0)


def below_floor(ratio: float | None, floor_pct: float | None) -> bool:
    """True when a ratio's difference from 1 (either way: 0.9 and 1/0.9 alike) is under the noise floor."""
    if ratio is None or floor_pct is None or ratio <= 0:
        return False
    return abs(math.log(ratio)) < math.log1p(floor_pct / 100.0)


def floor_words(floor_pct: float) -> str:
    return f"differences under {floor_pct:.0f}% are not distinguishable on this device right now"


def ratio_words(r: Ratio, floor_pct: float | None = None, *, subject: str = "it",
                reference: str = "the baseline") -> str:
    """One sentence a student can act on: how much more or less time ``subject`` takes per inference than
    ``reference``, the interval with its scope, and whether the difference is distinguishable (between runs: the
    interval excludes 1; single runs: larger than the device's noise floor ``floor_pct``, when one was measured)."""
    if r.ratio is None:
        return f"no ratio: {subject} or {reference} has no latency"
    pct = abs(r.ratio - 1.0) * 100.0
    how = (f"{subject} takes {pct:.0f}% {'less' if r.ratio < 1 else 'more'} time per inference than {reference}"
           if pct >= 0.5 else f"{subject} takes the same time per inference as {reference}")
    if r.scope == SCOPE_RUNS:
        ci = f"95% interval between runs {r.low:.3f} to {r.high:.3f}"
        if r.excludes_one:
            return f"{how} ({ci}): a difference larger than the variation between runs"
        return f"not distinguishable: {how}, but the {ci} holds 1 (no difference)"
    text = how + (f" (95% interval within these runs only {r.low:.3f} to {r.high:.3f})" if r.low is not None else "")
    text += f"; {SINGLE_RUN}"
    if floor_pct is not None:
        text += (f"; {floor_words(floor_pct)}" if below_floor(r.ratio, floor_pct) else
                 f"; larger than this device's noise floor ({floor_pct:.0f}%)")
    return text


def throughput(n: int, seconds: float) -> float | None:
    """Inferences per second; None when no time elapsed (or it is unknown), rather than inf or an error."""
    if seconds is None or not math.isfinite(seconds) or seconds <= 0 or n is None:
        return None
    return float(n) / float(seconds)
