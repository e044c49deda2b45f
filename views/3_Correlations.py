"""Correlations: does less memory slow inference here, how settings and hardware relate to latency across runs, and
how latency follows the hardware over time inside one run.

The memory question pools variants by setting each capped run against its own variant (questions.memory_effect);
across runs, one point per run (stats.correlation_matrix); inside a run, latency and telemetry in common time
windows (stats.windowed). The sentence under each chart comes from questions.relation_sentence: a relation only
where p < 0.05, else "no evidence", always with n.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from edgeprof import charts, questions, stats, ui
from edgeprof.errors import EdgeprofError

MODES = ["does less memory slow inference?", "across runs", "over time inside one run"]
DEFAULT_VARS = ["latency p50 (ms)", "CPU worker mean (%)", "CPU system mean (%)", "CPU other processes mean (% of a core)",
                "peak RAM (MB)", "model size (MB)", "bits", "warm-up (ms)"]
LATENCY_VARS = ("latency p50 (ms)", "latency p90 (ms)")

store = ui.page_setup("Correlations")
fleet = ui.fleet_choice("corr_scope")
mode = st.radio("Question", MODES, horizontal=True, key="corr_mode")

try:
    runs = ui.runs_frame(store, fleet=fleet)
except EdgeprofError as exc:
    ui.show_error(exc, "The runs cannot be read")
    st.stop()
if runs.empty:
    st.info("No runs stored yet: make a few on the **Run** page (e.g. one model at each precision) and come back.")
    st.stop()


def explain_notes(result: pd.DataFrame, unit: str) -> None:
    defined = result[~result["note"].fillna("").str.contains("did not vary")]
    small = defined[(defined["n"] < stats.CORRELATION_HINT_N) & (defined["n"] >= 3)]
    if not small.empty:
        st.info(f"n is too small for {len(small)} of {len(defined)} pairs: with fewer than {stats.CORRELATION_HINT_N} "
                f"{unit}, r can swing widely, so read those numbers as a hint. Add {unit} to firm them up.")


def result_table(result: pd.DataFrame, unit: str, system_cpu=None) -> None:
    """The pairs a person can read (questions.readable_correlations): what did not vary in one line, forced pairs
    last and marked, no empty cells."""
    view = questions.readable_correlations(result, system_cpu_pct=system_cpu)
    if view.constant:
        st.caption(f"Did not vary over these {unit}, so no correlation with them exists: "
                   f"{', '.join(view.constant)}.")
    if view.forced:
        st.caption(f"{view.forced} pair(s) are correlated by construction (other processes' CPU is the device's busy "
                   "CPU minus the worker's): they are listed last and say so.")
    if view.table.empty:
        st.info(f"No pair of these variables varied together over these {unit}.")
        return
    st.dataframe(view.table, hide_index=True, key="corr_table")


def latency_last(x: str, y: str) -> tuple[str, str]:
    """Latency is the response: it goes on the y axis."""
    return (y, x) if x in LATENCY_VARS and y not in LATENCY_VARS else (x, y)


if mode == MODES[0]:
    st.caption("Each capped run is set against its own variant (model, precision, runtime, threads): the limit as a "
               "multiple of the memory that variant needed without a limit (its **footprint**: the peak memory the "
               "kernel charged), and its p50 latency as a multiple of the same variant's p50 without a limit. So "
               "a tiny and a large model answer the same question on one chart.")
    effect = questions.memory_effect(runs)
    st.plotly_chart(charts.memory_effect_figure(effect.points), key="corr_memory")
    st.markdown(effect.sentence)
    if len(effect.footprints):
        st.table(ui.footprint_table(effect.footprints).set_index("variant"))
elif mode == MODES[1]:
    st.caption("Does latency go with precision, memory or CPU load? r near +1 or -1: a strong straight-line relation; "
               "near 0: none. Spearman rho looks at rank order only, so it also catches curved relations. "
               "Correlation is not cause: compare runs that differ in one setting.")
    shown = ui.filter_runs(runs, "corr", default_status=["ok"])
    chosen = st.multiselect("Variables", list(ui.VARIABLES), default=DEFAULT_VARS, key="corr_vars")
    if len(chosen) < 2:
        st.info("Pick at least two variables.")
        st.stop()
    if shown.empty:
        st.info("No runs match these filters: widen them.")
        st.stop()
    data = shown.copy()
    cols = [ui.VARIABLES[v] for v in chosen]
    for c in cols:
        data[c] = pd.to_numeric(data[c], errors="coerce")
    renamed = data[cols].rename(columns=ui.COLUMN_LABELS)
    result = stats.correlation_matrix(renamed, chosen, unit="runs")
    st.markdown(f"**{len(shown)} runs**. Each pair uses the runs where both values were measured (its n); for "
                "memory, the question above compares runs fairly (a limit means little without the model's "
                "footprint).")
    explain_notes(result, "runs")
    result_table(result, "runs", data.get("cpu_system_mean_pct"))
    kind = st.radio("Heatmap", ["Pearson r", "Spearman rho"], horizontal=True, key="corr_heat")
    st.plotly_chart(charts.correlation_heatmap(result, value="pearson_r" if kind == "Pearson r" else "spearman_r"),
                    key="corr_heatmap")
    pairs = [" vs ".join(reversed(latency_last(r.x, r.y))) for r in result.itertuples()]
    first = next((i for i, r in enumerate(result.itertuples()) if (r.x in LATENCY_VARS) != (r.y in LATENCY_VARS)), 0)
    pair = st.selectbox("Scatter plot", pairs, index=first, key="corr_pair")
    if pair:
        row = result.iloc[pairs.index(pair)]
        x, y = latency_last(row["x"], row["y"])
        st.plotly_chart(charts.scatter_fit(renamed[x], renamed[y], x_label=x, y_label=y,
                                           color=list(data["precision"].astype(str)), hover=list(data["label"])),
                        key="corr_scatter")
        st.markdown(questions.relation_sentence(x, y, row["pearson_r"], row["pearson_p"], int(row["n"]),
                                                spearman=row["spearman_r"], ci=(row["ci_low"], row["ci_high"]),
                                                spearman_p=row["spearman_p"]))
else:
    okruns = runs[runs["status"].isin(["ok", "stopped"])]
    if okruns.empty:
        st.info("No finished runs yet: this mode needs one run with latency samples and telemetry.")
        st.stop()
    st.caption("One point per time window of a single run: does latency rise when the CPU is busier, the memory "
               "fuller, the device hotter? A longer run gives more windows.")
    steady_s = (pd.to_numeric(okruns["n"], errors="coerce") * pd.to_numeric(okruns["p50_ms"], errors="coerce") / 1000)
    ids = list(okruns.assign(steady_s=steady_s).sort_values("steady_s", ascending=False)["run_id"])
    labels = dict(zip(okruns["run_id"], okruns["label"], strict=True))
    c1, c2 = st.columns([3, 1])
    rid = c1.selectbox("Run (the longest first)", ids, key="corr_run", format_func=labels.get)
    length = float(steady_s[okruns["run_id"] == rid].iloc[0]) if np.isfinite(steady_s[okruns["run_id"] == rid].iloc[0]) \
        else 10.0
    window_s = c2.number_input("Window (s)", min_value=0.05, max_value=60.0, step=0.25, key="window_s",
                               value=stats.readable_window_s(length / 40))
    lat, t0, t_end = ui.samples(store, fleet).latency_windows(rid, float(window_s))  # windowed in the database
    tel = ui.samples(store, fleet).telemetry(rid)
    wdf = stats.windowed_telemetry(lat, t0, t_end, tel, float(window_s)) if t0 is not None else \
        stats.windowed(None, tel, float(window_s))
    metrics = [c for c in wdf.columns if c not in ("window", "t_s", "n_samples", "latency_ms_median")
               and wdf[c].notna().sum() >= 2]
    if wdf.empty or not metrics:
        st.info("This run has too few steady-state windows with telemetry: pick a longer run or a shorter window.")
        st.stop()
    names = {m: ui.metric_label(m) for m in metrics}
    wide = wdf.rename(columns={"latency_ms_median": "latency median (ms)", **names})
    result = stats.correlation_matrix(wide, ["latency median (ms)", *names.values()], unit="windows")
    result = result[result["x"] == "latency median (ms)"].reset_index(drop=True)
    st.markdown(f"**{len(wdf)} windows** of {float(window_s):g} s over the steady state of this run.")
    explain_notes(result, "windows")
    result_table(result, "windows", wdf.get("cpu.total_pct"))
    varied = [m for m in metrics if wdf[m].nunique() > 1] or metrics  # a flat line has nothing to show
    default = "cpu.worker_pct" if "cpu.worker_pct" in varied else varied[0]
    metric = st.selectbox("Metric", varied, index=varied.index(default), key="corr_metric", format_func=names.get)
    st.plotly_chart(charts.windowed_figure(wdf, metric, metric_label=names[metric]), key="corr_windows")
    st.plotly_chart(charts.scatter_fit(wdf[metric], wdf["latency_ms_median"], x_label=names[metric],
                                       y_label="latency median (ms)", points="time windows"),
                    key="corr_window_scatter")
    row = result[result["y"] == names[metric]]
    if len(row):
        r = row.iloc[0]
        st.markdown(questions.relation_sentence(names[metric], "latency median (ms)", r["pearson_r"], r["pearson_p"],
                                                int(r["n"]), unit="windows", spearman=r["spearman_r"],
                                                spearman_p=r["spearman_p"]))
