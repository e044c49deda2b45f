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
