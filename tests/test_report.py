"""Claim evaluation on synthetic run tables (pure), the HTML report rendered from one (no runs), and the one p-value
format of the app."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
import pytest

from edgeprof import questions, stats
from edgeprof.store import columns
from edgeprof.study import report
from edgeprof.study.report import NOT_SUPPORTED, NOT_TESTABLE, SUPPORTED, TOO_FEW, claims

SIZES = {"small": 0.1, "big": 20.0}
BASE = {"small": 1.0, "big": 30.0}
LIMITS = [("none", None), ("2x", 200.0), ("1.25x", 125.0), ("1x", 100.0), ("0.75x", 75.0)]


def synth(*, models=("small", "big"), precisions=("fp32", "fp16", "int8-static"), limits=LIMITS, reps=3,
          mem_effect=0.15, bits_effect=True, size_effect=True, cpu_slope=5.0, gpu=False, die_below=1.0,
          seed=0) -> pd.DataFrame:
    """A study table: latency grows as the limit shrinks (mem_effect per step), with bits and with model size."""
    rng = np.random.default_rng(seed)
    rows = []
    bits_factor = {"fp32": 1.0, "fp16": 0.7, "int8-static": 0.45, "int8-dynamic": 0.5}
    for rep, m, p, (label, mb) in itertools.product(range(reps), models, precisions, limits):
        step = [lab for lab, _ in limits].index(label)
        factor = 1.0 if label == "none" or not label.endswith("x") else float(label[:-1])
        died = label.endswith("x") and factor < die_below
        base = BASE[m] if size_effect else 5.0
        p50 = base * (bits_factor[p] if bits_effect else 1.0) * (1 + mem_effect * step) * rng.normal(1, 0.01)
        cpu = 60 + cpu_slope * (len(limits) - step) + rng.normal(0, 0.5)
        rows.append({"rep": rep, "model": m, "precision": p, "runtime": "onnx", "threads": 2, "mem": label,
                     "memory_limit_mb": mb, "status": "oom_killed" if died else "ok",
                     "p50_ms": None if died else p50, "cpu_system_mean_pct": None if died else cpu,
                     "cpu_worker_mean_pct": None if died else cpu * 0.9, "peak_ram_mb": None if died else 90 + step,
                     "gpu_util_mean_pct": (50.0 + step) if gpu and not died else None,
                     "model_size_mb": SIZES[m], "warmup_ms": 100.0, "load_ms": 20.0, "first_inference_ms": 5.0})
    return pd.DataFrame(rows)


def by_id(findings):
    return {f.claim_id: f for f in findings}


def test_all_claims_supported_on_a_table_that_follows_the_paper():
    f = by_id(report.evaluate_claims(synth()))
    assert f["memory_latency"].verdict == SUPPORTED, f["memory_latency"].evidence
    assert f["memory_latency"].numbers["spearman_rho"] < -0.5 and f["memory_latency"].numbers["p"] < 0.05
    assert f["memory_latency"].numbers["died"] == 2 * 3 * 3  # the 0.75x cells of every variant and repetition
    assert f["cpu_memory_cpu"].verdict == SUPPORTED, f["cpu_memory_cpu"].evidence
    assert f["cpu_memory_gpu"].verdict == NOT_TESTABLE
    assert f["model_size"].verdict == SUPPORTED
    assert f["model_size"].numbers["median_ratio"] == pytest.approx(30.0, rel=0.05)
    assert f["precision_bits"].verdict == SUPPORTED
    ratios = f["precision_bits"].numbers["per_model"]["big"]
    assert ratios["int8-static"] == pytest.approx(0.45, rel=0.05) and ratios["fp16"] == pytest.approx(0.7, rel=0.05)
    for finding in f.values():
        assert finding.verdict in report.VERDICTS
        assert finding.to_dict()["claim"]  # JSON-safe


def test_not_supported_when_the_data_go_the_other_way_or_nowhere():
    flat = by_id(report.evaluate_claims(synth(mem_effect=0.0, bits_effect=False, cpu_slope=-5.0, seed=1)))
    assert flat["memory_latency"].verdict == NOT_SUPPORTED
    assert flat["cpu_memory_cpu"].verdict == NOT_SUPPORTED  # CPU falls with the limit: the opposite sign
    assert flat["precision_bits"].verdict == NOT_SUPPORTED
    reverse = synth(bits_effect=False)
    reverse.loc[reverse["precision"] == "int8-static", "p50_ms"] *= 3  # int8 slower than fp32
    assert report.claim_precision_bits(reverse).verdict == NOT_SUPPORTED
    inverted = synth(size_effect=False)
    inverted.loc[inverted["model"] == "small", "p50_ms"] *= 4  # the small model is the slow one
    assert report.claim_model_size(inverted).verdict == NOT_SUPPORTED


def test_saturated_cpu_is_not_testable_here_and_says_why():
    df = synth()
    df.loc[df["status"] == "ok", "cpu_system_mean_pct"] = 100.0
    f = report.claim_cpu_memory_cpu(df)
    assert f.verdict == NOT_TESTABLE and f.caution is None
    assert f.evidence.startswith("Not testable here: the CPU was saturated (95-100%) in every run, so utilization "
                                 "could not rise or fall with the memory limit"), f.evidence
    assert "n/a" not in f.evidence and " y " not in f.evidence


def test_a_measure_that_did_not_vary_is_named_and_not_testable_here():
    df = synth()
    df.loc[df["status"] == "ok", "cpu_system_mean_pct"] = 50.0
    f = report.claim_cpu_memory_cpu(df)
    assert f.verdict == NOT_TESTABLE
    assert f.evidence.startswith("Not testable here: system CPU utilization did not vary across the runs, so there is "
                                 "no trend to test."), f.evidence
    assert "rho between the memory limit (ranked within each variant) and system CPU utilization (relative to the " \
           "most generous limit) undefined" in f.evidence
    no_sensor = synth()
    no_sensor["cpu_system_mean_pct"] = float("nan")
    f = report.claim_cpu_memory_cpu(no_sensor)
    assert f.verdict == NOT_TESTABLE and "no CPU utilization was recorded in any run" in f.evidence


def test_precision_ratios_say_how_they_were_aggregated_and_agree_with_the_figure():
    df = synth()
    f = report.claim_precision_bits(df)
    assert report.RATIO_METHOD in f.evidence and "(n = 3 vs 3)" in f.evidence, f.evidence
    ratios, counts = report.precision_ratios(df)
    assert ratios == f.numbers["per_model"] and counts["big"]["fp32"] == 3


def test_too_few_data():
    tiny = synth(reps=1, models=("small",), precisions=("fp32",), limits=LIMITS[:2])
    f = by_id(report.evaluate_claims(tiny))
    assert f["memory_latency"].verdict == TOO_FEW  # 2 runs
    assert f["model_size"].verdict == NOT_TESTABLE  # one model
    assert f["precision_bits"].verdict == NOT_TESTABLE  # one precision
    # every limit but one killed the runs: no variant has two limits with a result
    dead = synth(reps=2, die_below=5.0)
    assert report.claim_memory_latency(dead).verdict == TOO_FEW
    empty = report.evaluate_claims(synth().iloc[0:0])
    assert {x.verdict for x in empty} <= {TOO_FEW, NOT_TESTABLE}


def test_few_runs_carry_a_caution():
    f = report.claim_memory_latency(synth(reps=1, models=("small",), precisions=("fp32", "fp16"), limits=LIMITS[:4]))
    assert f.numbers["n"] < report.FEW_N and f.caution and "only" in f.caution
    assert "single run" in f.caution  # one repetition
    assert "single run" not in (report.claim_memory_latency(synth(reps=3)).caution or "")


def test_gpu_board_switches_which_cpu_claim_is_testable():
    df = synth(gpu=True, cpu_slope=-5.0)  # on a GPU board CPU falls as the limit grows
    assert report.has_gpu(df)
    f = by_id(report.evaluate_claims(df))
    assert f["cpu_memory_cpu"].verdict == NOT_TESTABLE
    assert f["cpu_memory_gpu"].verdict == SUPPORTED


def test_correlation_table_has_pearson_with_ci_and_spearman():
    corr = report.correlation_table(synth(gpu=True))
    assert set(corr["metric"]) == set(report.UTILIZATION.values())
    assert set(corr["scope"]) == {"all runs", "within variant"}
    row = corr[(corr["metric"] == "peak RAM (MB)") & (corr["scope"] == "within variant")].iloc[0]
    assert row["n"] == 2 * 3 * 4 * 3 and row["ci_low"] <= row["pearson_r"] <= row["ci_high"]
    assert row["spearman_r"] > 0.5  # RAM peak and latency both grow as the limit shrinks
    assert "GPU utilization (%)" not in set(report.correlation_table(synth())["metric"])


def test_html_report_from_a_synthetic_table(tmp_path):
    df = synth(reps=1)
    df["mem_pressure_some_pct"] = df["p50_ms"].notna() * 10.0  # PSI, which every run records now
    findings = report.evaluate_claims(df)
    figs = report.render_figures(df)
    assert set(figs) == set(report.FIGURES)
    assert all(b[:8] == b"\x89PNG\r\n\x1a\n" for b in figs.values())
    page = report.render_html({"study_id": "s1", "status": "done"}, df, findings, report.correlation_table(df), figs)
    assert "id='findings'" in page and page.count("data:image/png;base64,") == len(figs)
    assert ".png'>" not in page  # the downloaded page links to no PNG file it does not contain
    for f in findings:
        assert f.verdict in page
    table = report.correlations_for_people(report.correlation_table(df))
    assert list(table.columns) == ["metric", "runs compared", "n", "Pearson r", "95% CI", "p", "Spearman rho", "note"]
    assert "None" not in page and "nan" not in table.to_string()
    assert all(p == "< 0.001" or p == "–" or float(p) >= 0.001 for p in table["p"])  # never 0.000000008
    one = df[df["model"] == df["model"].iloc[0]]
    assert "latency_by_size.png" not in report.render_figures(one)  # one model: no size to compare


def test_ratios_carry_their_between_run_interval_and_single_runs_say_they_have_none():
    f = report.claim_precision_bits(synth(reps=3))
    row = next(g for g in f.groups if g["group"].startswith("big"))
    assert row["int8-static/fp32 95% interval"].endswith("(between 3 and 3 runs)")
    low, high = (float(x) for x in row["int8-static/fp32 95% interval"].split(" (")[0].split(" to "))
    assert low <= row["int8-static/fp32"] <= high < 1.0
    single = report.claim_precision_bits(synth(reps=1), floor_pct=50.0)
    row = next(g for g in single.groups if g["group"].startswith("big"))
    assert row["fp16/fp32 95% interval"] == "single run: no between-run uncertainty"
    assert "under this device's noise floor (50%)" in single.caution
    assert "differences under 50% are not distinguishable on this device right now" in single.caution


def test_a_verdict_needs_a_difference_larger_than_the_variation_between_runs():
    inside = [stats.Ratio(0.95, 0.85, 1.05, "runs", 3, 3), stats.Ratio(0.97, 0.9, 1.04, "runs", 3, 3)]
    verdict, caution = claims._spread_verdict(SUPPORTED, None, inside, -1, None)
    assert verdict == NOT_SUPPORTED and "no group's difference is larger than the variation between runs" in caution
    clear = [stats.Ratio(0.5, 0.45, 0.55, "runs", 3, 3), inside[0]]
    verdict, caution = claims._spread_verdict(SUPPORTED, None, clear, -1, None)
    assert verdict == SUPPORTED and "in 1 of 2 groups only" in caution
    assert claims._spread_verdict(SUPPORTED, None, clear[:1], -1, None) == (SUPPORTED, None)


def test_report_says_what_its_intervals_cover():
    one = report.uncertainty_words(synth(reps=1), None)
    assert "single run: no between-run uncertainty" in one and "No noise floor was measured" in one
    three = report.uncertainty_words(synth(reps=3), {"floor_pct": 12.0, "measured_at": "2026-11-30"})
    assert "between runs" in three and "Differences under 12% are not distinguishable on this device right now" in three
    df = synth(reps=1)
    page = report.render_html({"study_id": "s1", "status": "done", "uncertainty": one}, df,
                              report.evaluate_claims(df), report.correlation_table(df), {})
    assert "single run: no between-run uncertainty" in page


def test_the_report_names_its_columns_as_the_run_columns_declare_them():
    """Labels and units are the ones store.columns declares (the Correlations page's), never written in the report."""
    corr = report.correlation_table(synth(gpu=True))
    assert list(dict.fromkeys(corr["metric"])) == ["CPU system mean (%)", "CPU worker mean (%)", "peak RAM (MB)",
                                                   "GPU utilization (%)"]
    assert all(label == columns.BY_NAME[col].label for col, label in {**report.UTILIZATION, **report.WHY}.items())
    df = synth(reps=1).assign(mem_pressure_some_pct=10.0, major_faults_per_s=3.0)
    assert list(report.why_table(df).columns) == [
        "variant", "limit", "status", "latency p50 (ms)", "memory pressure, some stalled (% of time)",
        "memory pressure, all stalled (% of time)", "major page faults (/s)", "energy per inference (mJ)",
        "slowest operators"]


def test_every_claim_is_one_function_listed_in_claims():
    """A claim is a function in report.claims and an entry in CLAIMS; evaluate_claims runs them in that order."""
    functions = [name for name in vars(claims) if name.startswith("claim_")]
    assert sorted(functions) == sorted(c.__name__ for c in claims.CLAIMS)
    found = report.evaluate_claims(synth())
    assert [f.claim_id for f in found] == ["memory_latency", "cpu_memory_cpu", "cpu_memory_gpu", "model_size",
                                           "precision_bits"]
    assert all(f.claim_id == c.__name__.removeprefix("claim_") for f, c in zip(found, claims.CLAIMS, strict=True))


def test_one_p_value_format_in_tables_sentences_and_the_report():
    assert [stats.fmt_p(p) for p in (0.83, 0.34, 0.1, 0.03, 0.0042, 0.001, 0.0004, 0.0)] == [
        "0.83", "0.34", "0.10", "0.03", "0.0042", "0.001", "< 0.001", "< 0.001"]
    assert [stats.fmt_p(p) for p in (0.0496, 0.0504, 0.05, 0.0449)] == ["0.0496", "0.05", "0.05", "0.045"]
    assert stats.fmt_p(None) == stats.fmt_p(float("nan")) == "–"  # the dash of every undefined table cell
    assert [stats.p_words(p) for p in (0.34, 0.03, 1e-9, None)] == ["p = 0.34", "p = 0.03", "p < 0.001", "p = n/a"]
    assert questions.fmt_p is stats.fmt_p and questions.p_words is stats.p_words
    flat = report.claim_precision_bits(synth(mem_effect=0.0, bits_effect=False, seed=1))
    assert re.search(r"= -?0\.\d+, p = 0\.\d\d, n = 72\.", flat.evidence), flat.evidence  # p = 0.52, not 0.520
    strong = report.claim_memory_latency(synth())
    assert "p < 0.001, n = " in strong.evidence and "p = <" not in strong.evidence and "p = < " not in strong.evidence


def test_the_memory_claim_cites_the_stored_curves_whatever_its_verdict():
    curves = {"small fp32 onnx t2": {"group_id": "g1", "measured_at": "2026-12-07T10:00:00",
                                     "sentences": {"cliff": "It dies below 28.5 MB."}}}
    for df in (synth(), synth(reps=2, die_below=5.0)):  # supported; too few data (every capped cell died)
        f = report.evaluate_claims(df, curves=curves)[0]
        assert f.evidence.endswith(" The memory curve of small fp32 onnx t2 (`edgeprof memory`, measured "
                                   "2026-12-07T10:00): It dies below 28.5 MB."), f.evidence
        assert f.numbers["memory_curves"] == {"small fp32 onnx t2": "g1"}
    assert report.evaluate_claims(synth(reps=2, die_below=5.0))[0].verdict == TOO_FEW
