"""Correlations as a person reads them (questions.readable_correlations, ui.metric_label): what did not vary named
once, no empty cells, pairs forced by construction (shares of a saturated CPU) marked and last, p values in words."""

from __future__ import annotations

import numpy as np
import pandas as pd

from edgeprof import questions, stats, ui


def test_metrics_did_not_vary_are_named_once_and_forced_pairs_go_last():
    rng = np.random.default_rng(0)
    n = 30
    worker = rng.uniform(150, 190, n)
    runs = pd.DataFrame({
        "latency p50 (ms)": 5 + worker / 100 + rng.normal(0, 0.1, n),
        "CPU system mean (%)": np.full(n, 100.0),  # saturated: did not vary
        "CPU worker mean (%)": worker,
        "CPU other processes mean (% of a core)": 200.0 - worker,  # forced: the rest of two saturated cores
        "bits": np.full(n, 32.0),
    })
    result = stats.correlation_matrix(runs, list(runs.columns), unit="runs")
    view = questions.readable_correlations(result, system_cpu_pct=runs["CPU system mean (%)"])
    assert view.constant == ["CPU system mean (%)", "bits"]
    table = view.table
    assert len(table) == 3 and not table.isna().any().any() and "None" not in table.to_string()
    last = table.iloc[-1]
    assert {last["x"], last["y"]} == {"CPU worker mean (%)", "CPU other processes mean (% of a core)"}
    assert last["Pearson r"] == "-1.00" and last["note"].startswith("by construction") and "saturated" in last["note"]
    assert view.forced == 1 and table.iloc[0]["note"] == ""


def test_every_metric_a_source_writes_has_words():
    for metric in ("cpu.core0_freq_mhz", "cpu.arm_freq_mhz", "mem.pressure_some_pct", "mem.major_faults_per_s",
                   "mem.anon_mb", "emc.load_pct", "throttle.under_voltage", "temp.soc_c", "power.total_w"):
        label = ui.metric_label(metric)
        assert label != metric and "_" not in label, (metric, label)
    assert ui.metric_label("cpu.core0_freq_mhz") == "core 0 frequency (MHz)"


def test_p_values_read_as_words():
    assert questions.p_words(0.0001) == "p < 0.001" and questions.p_words(0.03) == "p = 0.03"
    said = questions.relation_sentence("bits", "latency p50 (ms)", 0.9, 1e-6, 40)
    assert "p < 0.001" in said and "p = <" not in said and "p = < " not in said


def test_pearson_and_spearman_that_disagree_give_no_direction():
    """A fresh user read "latency median (ms) weakly rises with worker CPU (r = 0.30, p = 0.047, ..., Spearman rho =
    -0.20)": the two coefficients point opposite ways, so the sentence must not pick one."""
    said = questions.relation_sentence("worker CPU (% of one core)", "latency median (ms)", 0.30, 0.047, 44,
                                       unit="windows", spearman=-0.20, spearman_p=0.19)
    assert said.startswith("No consistent relation between **latency median (ms)** and **worker CPU (% of one core)**")
    assert "Pearson r = 0.30 rises (p = 0.047) but Spearman rho = -0.20 falls (p = 0.19), n = 44 windows" in said
    assert "a few extreme windows drive r" in said and "weakly rises with" not in said
    # opposite signs even without rho's p (a caller that has only rho)
    assert "No consistent relation" in questions.relation_sentence("x", "y", 0.30, 0.047, 44, spearman=-0.2)
    # same sign, but only Pearson significant: no direction either
    one = questions.relation_sentence("x", "y", 0.35, 0.02, 44, unit="windows", spearman=0.1, spearman_p=0.5)
    assert "No consistent relation" in one and "rises" in one and "a few extreme windows drive r" in one
    # only Spearman significant
    rank = questions.relation_sentence("x", "y", 0.2, 0.2, 44, spearman=0.5, spearman_p=0.001)
    assert "No consistent relation" in rank and "the rank order holds but not a straight line" in rank
    # both significant and agreeing: the direction, as before
    agree = questions.relation_sentence("x", "y", 0.5, 0.001, 44, spearman=0.45, spearman_p=0.002)
    assert agree.startswith("**y** moderately rises with **x** (r = 0.50")
    assert questions.relation_sentence("x", "y", 0.1, 0.5, 44, spearman=-0.1, spearman_p=0.6).startswith(
        "No evidence of a relation")


def test_stalled_windows_make_pearson_and_spearman_disagree_and_the_sentence_says_so():
    """Real pipeline: stats.correlate on windows where a few extreme ones pull r up while most fall."""
    rng = np.random.default_rng(4)
    cpu = rng.uniform(100, 190, 60)
    lat = 0.05 - 0.0001 * (cpu - 100) + rng.normal(0, 0.002, 60)
    lat[np.argsort(cpu)[-3:]] = 2.0  # three windows with a stall, at the busiest CPU
    c = stats.correlate(cpu, lat, unit="windows")
    assert c.pearson_r > 0 > c.spearman_r and c.pearson_p < 0.05
    said = questions.relation_sentence("worker CPU", "latency median (ms)", c.pearson_r, c.pearson_p, c.n,
                                       unit="windows", spearman=c.spearman_r, spearman_p=c.spearman_p)
    assert said.startswith("No consistent relation") and "rises" in said and "falls" in said


def test_the_default_window_is_a_readable_length():
    assert stats.readable_window_s(1.61) == 1.5 and stats.readable_window_s(0.075) == 0.25
    assert stats.readable_window_s(1.8) == 2.0 and stats.readable_window_s(7.0) == 5.0
    assert stats.readable_window_s(float("nan")) == 0.25 and stats.readable_window_s(1e6) == 60.0
