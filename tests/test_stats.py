import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from edgeprof.stats import (
    Correlation,
    Flag,
    LatencySummary,
    correlate,
    correlation_matrix,
    detect_warmup,
    median_ci,
    median_ci_ranks,
    summarize_latency,
    suspect_flags,
    throughput,
    windowed,
    within_run_interval,
)
from edgeprof.worker.warmup import WarmupDetector


def warmup_series(n=300, seed=1, noise=0.01):
    """10 ms steady state; the first 30 samples start at 30 ms and decay towards it."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    slow = 20.0 * np.exp(-t / 6.0) * (t < 30)
    return 10.0 + slow + rng.normal(0, 10.0 * noise, n)


# ---------------------------------------------------------------------------------------------------- summary


def test_known_percentiles():
    s = summarize_latency(np.arange(1, 101, dtype=float))
    assert s.n == 100
    assert s.p50 == pytest.approx(50.5)
    assert s.p90 == pytest.approx(90.1)
    assert s.p95 == pytest.approx(95.05)
    assert s.p99 == pytest.approx(99.01)
    assert s.mean == pytest.approx(50.5)
    assert s.std == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    assert s.cov == pytest.approx(s.std / 50.5)
    assert (s.min, s.max) == (1.0, 100.0)
    # 10 batches of 10 in time order: batch medians 5.5, 15.5, ..., 95.5 (a steady climb: the widest case), centred
    # on the run's median: 50.5 +- t(9) * sd / sqrt(10)
    batch = np.arange(5.5, 100, 10)
    half = st.t.ppf(0.975, 9) * batch.std(ddof=1) / math.sqrt(10)
    assert (s.median_ci_low, s.median_ci_high) == pytest.approx((50.5 - half, 50.5 + half))
    assert s.ci_batches == 10
    d = s.to_dict()
    assert d["n"] == 100 and set(d) >= {"p99", "median_ci_low", "median_ci_high", "p90_ci_low", "cov", "ci_batches"}
    assert all(type(v) in (int, float) for v in d.values())


def test_summary_empty_and_tiny_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e = summarize_latency(np.array([]))
        assert e == LatencySummary(n=0)
        assert all(v is None for k, v in e.to_dict().items() if k != "n")
        one = summarize_latency([5.0])
        assert one.n == 1 and one.p50 == 5.0 and one.std is None and one.cov is None
        assert one.median_ci_low is None
        few = summarize_latency(np.arange(49.0))  # fewer than 5 batches of 10: no within-run interval
        assert few.median_ci_low is None and few.median_ci_high is None and few.ci_batches is None
        enough = summarize_latency(np.ones(50))
        assert (enough.median_ci_low, enough.median_ci_high, enough.ci_batches) == (1.0, 1.0, 5)
        nan = summarize_latency([np.nan, 2.0, np.inf, 4.0])
        assert nan.n == 2 and nan.p50 == 3.0


def test_median_ci_ranks_known_values():
    assert median_ci_ranks(100) == (40, 61)
    assert median_ci_ranks(5) is None
    assert median_ci_ranks(6) == (1, 6)
    assert median_ci_ranks(0) is None
    # exact binomial coverage is at least 95% for a range of n
    for n in (6, 7, 10, 25, 50, 101, 1000):
        j, k = median_ci_ranks(n)
        coverage = st.binom.cdf(k - 1, n, 0.5) - st.binom.cdf(j - 1, n, 0.5)
        assert coverage >= 0.95
        # and the interval is the shortest symmetric one (one rank narrower would drop below 95%)
        narrower = st.binom.cdf(k - 2, n, 0.5) - st.binom.cdf(j, n, 0.5)
        assert narrower < 0.95


def test_median_ci_covers_true_median_in_simulation():
    rng = np.random.default_rng(42)
    true_median = math.exp(0.0)  # lognormal(0, 0.5): skewed like latency, median 1
    trials, hits = 2000, 0
    for _ in range(trials):
        lo, hi = median_ci(rng.lognormal(0.0, 0.5, size=30))
        hits += lo <= true_median <= hi
    assert 0.94 <= hits / trials <= 0.995


# ---------------------------------------------------------------------------------------------------- warm-up


def test_detect_warmup_finds_knee():
    x = warmup_series()
    i = detect_warmup(x)
    assert 18 <= i <= 32
    # after the index, the series is steady
    assert np.median(x[i : i + 20]) == pytest.approx(10.0, rel=0.05)


def test_detect_warmup_robust_to_spike_and_edge_cases():
    x = warmup_series(seed=3)
    x[100] = 500.0  # a single spike after warm-up does not move the knee
    assert 18 <= detect_warmup(x) <= 32
    assert detect_warmup(np.full(100, 5.0)) == 0
    assert detect_warmup([]) == 0
    assert detect_warmup([3.0, 2.0, 1.0]) == 0  # too short to judge
    growing = 1.01 ** np.arange(400)
    assert detect_warmup(growing) == 400  # never steady


def test_online_detector_finds_knee():
    x = warmup_series()
    d = WarmupDetector()
    stop = None
    for i, ms in enumerate(x):
        if d.update(int(ms * 1e6), int((i + 1) * 10e6)):
            stop = i
            break
    assert d.reason == "steady" and d.done
    assert 30 <= stop <= 80
    assert d.iterations == stop + 1
    assert d.update(1, 10**12) is True and d.reason == "steady"  # stays done


def test_online_detector_sub_ms_model_with_jitter_becomes_steady():
    # 0.1 ms model with 15% jitter: the absolute tolerance keeps it from warming up forever
    rng = np.random.default_rng(0)
    d = WarmupDetector()
    for i in range(2000):
        lat = int(100_000 * (1 + 0.15 * rng.standard_normal()))
        if d.update(lat, (i + 1) * 100_000):
            break
    assert d.reason == "steady"
    assert d.iterations < 200


def test_online_detector_stops_at_max_iters():
    d = WarmupDetector(window=10, max_iters=150, max_seconds=1e9)
    results = [d.update(int(1e6 * 1.02**i), (i + 1) * 1_000_000) for i in range(1000) if not d.done]
    assert d.reason == "max_iterations"
    assert d.iterations == 150 and len(results) == 150 and results[-1] and not any(results[:-1])


def test_online_detector_stops_at_max_seconds():
    d = WarmupDetector(max_iters=10**6, max_seconds=2.0)
    t = 0
    while not d.done:
        t += 100_000_000  # 100 ms model that keeps getting slower
        d.update(int(100e6 * 1.05 ** (t / 1e8)), t)
    assert d.reason == "max_seconds"
    assert d.iterations in (20, 21)


def test_online_detector_respects_min_iters():
    d = WarmupDetector(window=2, min_iters=10)
    done_at = next(i for i in range(100) if d.update(1_000_000, (i + 1) * 1_000_000))
    assert d.iterations == 10 and done_at == 9 and d.reason == "steady"


# ---------------------------------------------------------------------------------------------------- flags


def codes(flags):
    return [f.code for f in flags]


def test_flags_fire():
    s = summarize_latency(np.r_[np.full(12, 10.0), np.full(8, 15.0)])
    flags = suspect_flags(
        s,
        throttled=True,
        governor="ondemand",
        int8_vs_fp32_ratio=2.4,
        cap_hit=True,
        warmup_capped="max_seconds",
        cpu_others_pct=120.0,
        cpu_busy_pct=97.0,
    )
    assert codes(flags) == [
        "few_samples",
        "high_spread",
        "throttled",
        "governor",
        "int8_slower",
        "cap_hit",
        "warmup_not_steady",
        "cpu_contention",
    ]
    msg = dict(flags)
    assert "kept 120% of a core busy while the device was 97% busy" in msg["cpu_contention"]
    assert "Latency varied a lot (p90 15 ms is 1.50x p50 10 ms; flagged above 1.30x)" in msg["high_spread"]
    assert "'ondemand', not 'performance'" in msg["governor"]
    assert msg["int8_slower"].startswith("INT8 ran 2.4x slower than FP32")
    assert "only 20 samples" in msg["few_samples"]
    assert "max_seconds" in msg["warmup_not_steady"]
    assert all(isinstance(f, Flag) and isinstance(f, tuple) and len(f) == 2 for f in flags)


def test_flags_do_not_fire():
    rng = np.random.default_rng(0)
    s = summarize_latency(10 + rng.normal(0, 0.2, 200))
    assert suspect_flags(s) == []
    assert (
        suspect_flags(
            s,
            throttled=False,
            governor="performance",
            int8_vs_fp32_ratio=0.4,
            cap_hit=False,
            warmup_capped=False,
        )
        == []
    )
    assert suspect_flags(s, int8_vs_fp32_ratio=1.02) == []  # within noise
    assert suspect_flags(s, cpu_others_pct=80.0, cpu_busy_pct=40.0) == []  # others busy, but cores to spare
    assert suspect_flags(s, cpu_others_pct=12.0, cpu_busy_pct=99.0) == []  # the device busy with the model itself
    assert codes(suspect_flags(s, spread_threshold=0.001)) == ["high_spread"]
    assert codes(suspect_flags(s, n_min=500)) == ["few_samples"]


def test_rare_stalls_on_a_fast_model_do_not_say_latency_varied():
    """A fresh user's digits-cnn run: p50 0.033 ms, p99 0.061 ms, a few stalls up to 8 ms. The stalls make the CoV
    several hundred percent, but the run's middle is steady: no "varied a lot" (the CoV is still reported)."""
    rng = np.random.default_rng(1)
    x = 0.033 * rng.lognormal(0.0, 0.15, 60_000)
    x[rng.choice(x.size, 40, replace=False)] = rng.uniform(2.0, 8.0, 40)
    s = summarize_latency(x)
    assert s.cov > 3.0 and s.p99 < 0.07
    assert suspect_flags(s) == []
    slow = summarize_latency(np.r_[x[:40_000], 1.6 * x[40_000:]])  # a third of the run on a throttled clock
    assert codes(suspect_flags(slow)) == ["high_spread"]
    assert "ran slower, as under other load on the device or thermal throttling" in suspect_flags(slow)[0].message


def test_flags_on_empty_summary():
    flags = suspect_flags(summarize_latency([]))
    assert codes(flags) == ["few_samples"]
    assert "no samples" in flags[0].message


# ---------------------------------------------------------------------------------------------------- correlation

ANSCOMBE_X = [10, 8, 13, 9, 11, 14, 6, 4, 12, 7, 5]
ANSCOMBE_Y = [8.04, 6.95, 7.58, 8.81, 8.33, 9.96, 7.24, 4.26, 10.84, 4.82, 5.68]


def test_correlate_matches_scipy():
    c = correlate(ANSCOMBE_X, ANSCOMBE_Y)
    ref = st.pearsonr(ANSCOMBE_X, ANSCOMBE_Y)
    assert c.n == 11
    assert c.pearson_r == pytest.approx(0.81642, abs=1e-4)
    assert c.pearson_r == pytest.approx(ref.statistic)
    assert c.pearson_p == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval(0.95)
    assert c.pearson_ci_low == pytest.approx(ci.low)
    assert c.pearson_ci_high == pytest.approx(ci.high)
    sref = st.spearmanr(ANSCOMBE_X, ANSCOMBE_Y)
    assert c.spearman_r == pytest.approx(sref.statistic)
    assert c.spearman_p == pytest.approx(sref.pvalue)
    assert c.note is None
    assert isinstance(c, Correlation) and c.to_dict()["n"] == 11


def test_correlate_drops_nan_pairs():
    x = ANSCOMBE_X + [np.nan, 3.0, np.inf]
    y = ANSCOMBE_Y + [1.0, np.nan, 2.0]
    assert correlate(x, y) == correlate(ANSCOMBE_X, ANSCOMBE_Y)


def test_correlate_degenerate_inputs_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        const = correlate([1, 2, 3, 4, 5], [7, 7, 7, 7, 7])
        assert const.n == 5 and const.pearson_r is None and const.spearman_r is None
        assert "y did not vary" in const.note
        two = correlate([1, 2, np.nan], [3, 4, 5])
        assert two.n == 2 and two.pearson_r is None and two.pearson_p is None
        assert "only 2 runs" in two.note
        empty = correlate([], [])
        assert empty.n == 0 and empty.pearson_r is None
        three = correlate([1, 2, 3], [1, 3, 2])
        assert three.pearson_r == pytest.approx(0.5)
        assert three.pearson_ci_low is None  # Fisher z needs n > 3
        perfect = correlate([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
        assert perfect.pearson_r == pytest.approx(1.0)
        assert perfect.pearson_ci_low == pytest.approx(1.0) and perfect.pearson_ci_high == pytest.approx(1.0)
        assert perfect.note == "only 5 runs: r can swing widely; treat as a hint"
    with pytest.raises(ValueError):
        correlate([1, 2], [1, 2, 3])


def test_correlation_matrix_long_form():
    df = pd.DataFrame(
        {
            "a": ANSCOMBE_X,
            "b": ANSCOMBE_Y,
            "c": [1.0] * 11,
            "d": ["x"] + [str(v) for v in range(10)],  # text column: non-numbers become NaN
        }
    )
    m = correlation_matrix(df, ["a", "b", "c", "d"])
    assert list(m.columns) == [
        "x",
        "y",
        "n",
        "pearson_r",
        "pearson_p",
        "ci_low",
        "ci_high",
        "spearman_r",
        "spearman_p",
        "note",
    ]
    pairs = list(zip(m["x"], m["y"], strict=True))
    assert pairs == [("a", "b"), ("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]
    ab = m.iloc[0]
    assert ab["n"] == 11 and ab["pearson_r"] == pytest.approx(0.81642, abs=1e-4)
    ac = m.iloc[1]
    assert math.isnan(ac["pearson_r"]) and "did not vary" in ac["note"]
    assert m.iloc[2]["n"] == 10
    assert correlation_matrix(df, ["a"]).empty


def test_windowed_join_on_synthetic_timeline():
    t0 = 5_000_000_000  # arbitrary monotonic origin
    t = t0 + np.arange(500) * 10_000_000  # a sample every 10 ms for 5 s
    lat_ms = np.where(t - t0 < 2_000_000_000, 2.0, 4.0)
    lat_ms[::50] = 100.0  # one spike per window: the median ignores it
    latency = pd.DataFrame({"t_ns": t, "latency_ns": (lat_ms * 1e6).astype(np.int64)})
    tt = t0 - 1_000_000_000 + np.arange(0, 70) * 100_000_000  # 10 Hz, starting 1 s before the first sample
    cpu = np.where(tt - t0 < 2_000_000_000, 20.0, 80.0)
    rows = [pd.DataFrame({"t_ns": tt, "metric": "cpu_percent", "value": cpu})]
    rows.append(pd.DataFrame({"t_ns": [t0 + 3_500_000_000], "metric": ["temp_c"], "value": [55.0]}))
    telemetry = pd.concat(rows, ignore_index=True)

    w = windowed(latency, telemetry, window_s=1.0)
    assert list(w.columns[:4]) == ["window", "t_s", "n_samples", "latency_ms_median"]
    assert list(w["window"]) == [0, 1, 2, 3, 4]
    assert list(w["t_s"]) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert list(w["n_samples"]) == [100] * 5
    assert list(w["latency_ms_median"]) == [2.0, 2.0, 4.0, 4.0, 4.0]
    assert list(w["cpu_percent"]) == [20.0, 20.0, 80.0, 80.0, 80.0]  # pre-run telemetry dropped
    assert w["temp_c"].isna().sum() == 4 and w.loc[3, "temp_c"] == 55.0
    c = correlate(w["cpu_percent"], w["latency_ms_median"], unit="windows")
    assert c.pearson_r == pytest.approx(1.0) and "only 5 windows" in c.note

    half = windowed(latency, telemetry, window_s=0.5)
    assert len(half) == 10 and half["n_samples"].sum() == 500


def test_windowed_empty_inputs():
    empty = windowed(pd.DataFrame({"t_ns": [], "latency_ns": []}), pd.DataFrame(), window_s=1.0)
    assert empty.empty and "latency_ms_median" in empty.columns
    lat = pd.DataFrame({"t_ns": [0, 10, 20], "latency_ns": [1_000_000] * 3})
    w = windowed(lat, pd.DataFrame(columns=["t_ns", "metric", "value"]))
    assert list(w.columns) == ["window", "t_s", "n_samples", "latency_ms_median"] and len(w) == 1
    with pytest.raises(ValueError):
        windowed(lat, None, window_s=0)


# ---------------------------------------------------------------------------------------------------- ratio, throughput


def test_throughput():
    assert throughput(500, 2.0) == 250.0
    assert throughput(0, 1.0) == 0.0
    assert throughput(10, 0.0) is None
    assert throughput(10, float("nan")) is None


def test_summary_of_a_long_run_matches_plain_numpy_and_leaves_the_input_alone():
    """The lean path (one copy partitioned in place, chunked std) gives numpy's own answers on a run longer than one
    chunk."""
    rng = np.random.default_rng(7)
    x = rng.lognormal(-1.0, 0.4, size=2_500_001)
    x[::100_000] = np.nan
    before = x.copy()
    s = summarize_latency(x)
    f = x[np.isfinite(x)]
    assert s.n == f.size
    assert [s.p50, s.p90, s.p95, s.p99] == [float(v) for v in np.percentile(f, [50, 90, 95, 99])]
    assert s.mean == pytest.approx(f.mean(), rel=1e-12)
    assert s.std == pytest.approx(f.std(ddof=1), rel=1e-9)
    assert (s.min, s.max) == (f.min(), f.max())
    assert (s.median_ci_low, s.median_ci_high) == pytest.approx(within_run_interval(x))
    np.testing.assert_array_equal(x, before)
