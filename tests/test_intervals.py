"""Each interval covers what it claims, measured over many simulated series with known structure (fixed seeds).

- within-run (stats.within_run_interval, the summary's p50_ci/p90_ci): the median (p90) of the process that made
  the series, for independent and for autocorrelated (AR(1)) latencies; the binomial interval that assumed
  independence is shown to fail on the latter;
- between runs (stats.across_runs, run --repeat): the typical run median of a configuration when each process has
  its own level (a level shift between processes), which a within-run interval does not cover and does not claim to;
- ratios between runs (paired and not) and within runs, and the noise floor as a prediction for two new runs.

Coverage is asserted within a tolerance around 95% that allows for the simulation's own error (1,000 series: one
standard error is 0.7 points).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from edgeprof import stats
from edgeprof.run.summary import group_latency, latency_block

SIMS = 1000
LOW, HIGH = 0.925, 0.975  # 95% +- ~3.5 standard errors of a 1,000-series coverage


def ar1(rng, sims: int, n: int, phi: float) -> np.ndarray:
    """(sims, n) stationary Gaussian AR(1) with unit marginal variance."""
    e = rng.standard_normal((sims, n)) * math.sqrt(1 - phi**2)
    return lfilter([1.0], [1.0, -phi], e, axis=1, zi=phi * rng.standard_normal((sims, 1)))[0]


def latency(z: np.ndarray, median_ms: float = 7.0, sigma: float = 0.15) -> np.ndarray:
    """Latency-like: log-normal marginal, so the true median is ``median_ms`` and the true p90 is known."""
    return median_ms * np.exp(sigma * z)


def coverage(intervals, truth) -> float:
    truth = np.broadcast_to(truth, (len(intervals),))
    return float(np.mean([ci is not None and ci[0] <= t <= ci[1] for ci, t in zip(intervals, truth, strict=True)]))


# ------------------------------------------------------------------------------------------------- within a run

def test_within_run_interval_covers_the_median_of_independent_latencies():
    x = latency(np.random.default_rng(1).standard_normal((SIMS, 2000)))
    assert LOW <= coverage([stats.within_run_interval(s) for s in x], 7.0) <= HIGH


@pytest.mark.parametrize("phi", [0.5, 0.8])
def test_within_run_interval_covers_the_median_of_autocorrelated_latencies(phi):
    x = latency(ar1(np.random.default_rng(2), SIMS, 5000, phi))
    assert LOW <= coverage([stats.within_run_interval(s) for s in x], 7.0) <= HIGH
    # the binomial interval (it assumes independent samples, as the summary did before) claims 95% and falls short
    assert coverage([stats.median_ci(s) for s in x], 7.0) < 0.88


def test_within_run_interval_of_p90_covers_the_true_p90():
    x = latency(ar1(np.random.default_rng(3), SIMS, 5000, 0.5))
    true_p90 = 7.0 * math.exp(0.15 * 1.2815516)
    assert LOW <= coverage([stats.within_run_interval(s, 90.0) for s in x], true_p90) <= HIGH


def test_summary_intervals_are_the_within_run_ones_and_say_so():
    x = latency(ar1(np.random.default_rng(4), 1, 3000, 0.6))[0]
    s = stats.summarize_latency(x)
    assert (s.median_ci_low, s.median_ci_high) == pytest.approx(stats.within_run_interval(x))
    assert (s.p90_ci_low, s.p90_ci_high) == pytest.approx(stats.within_run_interval(x, 90.0))
    assert s.ci_batches == stats.SECTIONS
    block = latency_block(s)
    assert block["p50_ci"] == [s.median_ci_low, s.median_ci_high] and block["ci_scope"] == "within-run"
    assert "within this run only" in block["ci_note"] and "variation between runs" in block["ci_note"]
    assert "not in them" in block["ci_note"]


def test_a_trend_inside_a_run_widens_its_interval():
    """Consecutive batches that differ (a slow drift) widen the within-run interval; the same values shuffled (no
    order) give a narrow one. The binomial interval cannot tell the two apart."""
    ramp = np.linspace(5.0, 9.0, 4000)
    shuffled = np.random.default_rng(5).permutation(ramp)
    lo, hi = stats.within_run_interval(ramp)
    slo, shi = stats.within_run_interval(shuffled)
    assert (hi - lo) > 5 * (shi - slo)
    assert stats.median_ci(ramp) == stats.median_ci(shuffled)


def test_short_runs_have_no_interval_and_long_ones_keep_the_input():
    assert stats.within_run_interval(np.ones(49)) is None
    assert stats.within_run_interval(np.ones(50)) == (1.0, 1.0)
    assert stats.summarize_latency(np.arange(49.0)).median_ci_low is None
    assert stats.summarize_latency(np.arange(50.0)).ci_batches == 5
    x = np.random.default_rng(6).lognormal(size=1001)
    before = x.copy()
    stats.summarize_latency(x)
    stats.within_run_interval(x)
    np.testing.assert_array_equal(x, before)


# ------------------------------------------------------------------------------------------------- between runs

def runs_with_level_shift(rng, sims: int, runs: int, *, shift: float = 0.08, n: int = 2000, phi: float = 0.6):
    """(sims, runs, n): each run (process) has its own level, exp(shift * u), u ~ N(0, 1), plus AR(1) noise."""
    level = np.exp(shift * rng.standard_normal((sims, runs, 1)))
    z = ar1(rng, sims * runs, n, phi).reshape(sims, runs, n)
    return level * latency(z, sigma=0.1)


def test_between_run_interval_covers_the_typical_run_median_when_processes_shift():
    series = runs_with_level_shift(np.random.default_rng(7), SIMS, 3)
    medians = np.median(series, axis=2)  # (sims, 3): each run's median
    between = [stats.across_runs(m) for m in medians]
    # the population median of a run's median: the median level (7 ms) times the within-run median (1): 7 ms
    assert LOW <= coverage([(a.low, a.high) for a in between], 7.0) <= HIGH
    # the first run's own interval is about that process only: it misses the typical run most of the time
    within = [stats.within_run_interval(s[0]) for s in series]
    assert coverage(within, 7.0) < 0.4


def test_group_latency_reports_the_between_run_interval_and_a_single_run_says_it_has_none():
    members = [{"status": "ok", "latency_ms": {"p50": v, "p90": v * 1.2, "p50_ci": [v - 0.1, v + 0.1]}}
               for v in (7.0, 7.4, 6.8)]
    lat = group_latency(members)
    a = stats.across_runs([7.0, 7.4, 6.8])
    assert lat["p50"] == 7.0 and lat["p50_ci"] == [a.low, a.high] and lat["ci_scope"] == "runs"
    assert lat["n_runs"] == 3 and "between 3 runs" in lat["ci_note"]
    one = group_latency(members[:1] + [{"status": "crashed", "latency_ms": {}}])
    assert one["ci_scope"] == "within-run" and one["p50_ci"] == [6.9, 7.1]
    assert stats.SINGLE_RUN in one["ci_note"]


def test_across_runs_edge_cases():
    assert stats.across_runs([]).center is None
    one = stats.across_runs([5.0])
    assert one.center == 5.0 and one.low is None
    same = stats.across_runs([5.0, 5.0, 5.0])
    assert (same.low, same.high) == pytest.approx((5.0, 5.0))
    skewed = stats.across_runs([1.0, 1.0, 10.0])  # the interval always holds the median it is reported with
    assert skewed.low <= skewed.center <= skewed.high


@pytest.mark.parametrize("paired", [True, False])
def test_ratio_between_runs_covers_the_true_ratio(paired):
    rng = np.random.default_rng(8)
    true = 0.8
    drift = np.exp(0.1 * rng.standard_normal((SIMS, 3)))  # what the machine did during pair i: both sides feel it
    own = np.exp(0.03 * rng.standard_normal((SIMS, 2, 3)))
    a = 7.0 * own[:, 0] * (drift if paired else np.exp(0.1 * rng.standard_normal((SIMS, 3))))
    b = 7.0 * true * own[:, 1] * drift
    rs = [stats.ratio_across_runs(b[i], a[i], paired=paired) for i in range(SIMS)]
    assert all(r.scope == "runs" for r in rs)
    # the ratio of the medians estimates the ratio of the typical runs: true, as every effect is symmetric in logs
    assert LOW <= coverage([(r.low, r.high) for r in rs], true) <= HIGH
    if paired:  # drift that falls on both sides cancels: the paired interval is narrower than Welch's
        welch = [stats.ratio_across_runs(b[i], a[i]) for i in range(200)]
        assert np.median([r.high - r.low for r in rs[:200]]) < 0.5 * np.median([r.high - r.low for r in welch])


def test_ratio_within_runs_covers_the_true_ratio_of_two_processes():
    rng = np.random.default_rng(9)
    a = latency(ar1(rng, SIMS, 3000, 0.6), 7.0)
    b = latency(ar1(rng, SIMS, 3000, 0.6), 5.6)
    rs = [stats.ratio_within_runs(b[i], a[i]) for i in range(SIMS)]
    assert {r.scope for r in rs} == {"within-run"}
    assert LOW <= coverage([(r.low, r.high) for r in rs], 0.8) <= HIGH


def test_noise_floor_holds_two_new_runs_95_percent_of_the_time():
    rng = np.random.default_rng(10)
    hits = 0
    for _ in range(SIMS):
        floor = stats.noise_floor_pct(7.0 * np.exp(0.05 * rng.standard_normal(5)))
        new = 7.0 * np.exp(0.05 * rng.standard_normal(2))
        hits += stats.below_floor(new[0] / new[1], floor)
    assert LOW <= hits / SIMS <= HIGH
    assert stats.noise_floor_pct([7.0, 7.1]) is None


def test_ratio_words_say_the_scope_and_whether_it_is_distinguishable():
    runs = stats.Ratio(0.8, 0.75, 0.86, "runs", 3, 3)
    assert "20% less time" in stats.ratio_words(runs) and "larger than the variation between runs" in \
        stats.ratio_words(runs)
    unclear = stats.Ratio(0.97, 0.9, 1.05, "runs", 3, 3)
    assert stats.ratio_words(unclear).startswith("not distinguishable")
    single = stats.Ratio(1.05, 1.04, 1.06, "within-run", 900, 900)
    text = stats.ratio_words(single, 12.0, subject="fp16", reference="fp32")
    assert "fp16 takes 5% more time per inference than fp32" in text and "within these runs only" in text
    assert stats.SINGLE_RUN in text
    assert "differences under 12% are not distinguishable on this device right now" in text
    assert "larger than this device's noise floor (3%)" in stats.ratio_words(single, 3.0)
