"""Correlations: how run settings and hardware relate to latency, across runs or over time inside one run.

Across runs: one point per run (stats.correlation_matrix: Pearson r with p-value, 95% CI and n, Spearman beside it).
Within one run: latency and telemetry bucketed into common time windows (stats.windowed), one point per window.
Only the runs table is read for the first mode, so the page stays fast on a database of millions of samples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from edgeprof import charts, stats, ui
from edgeprof.errors import EdgeprofError

DEFAULT_VARS = ["latency p50 (ms)", "latency p90 (ms)", "warm-up (ms)", "CPU system mean (%)", "CPU worker mean (%)",
                "peak RAM (MB)", "memory limit (MB)", "model size (MB)", "bits"]
RESULT_COLUMNS = {"x": "x", "y": "y", "n": "n", "pearson_r": "Pearson r", "pearson_p": "p", "ci_low": "95% CI low",
                  "ci_high": "95% CI high", "spearman_r": "Spearman rho", "spearman_p": "Spearman p", "note": "note"}

store = ui.page_setup("Correlations")
st.caption("Does latency go with precision, memory or CPU load? r near +1 or -1: a strong straight-line relation; "
           "near 0: none. Spearman rho looks at rank order only, so it also catches curved relations. "
           "Correlation is not cause: compare runs that differ in one setting.")

mode = st.radio("Correlate", ["across runs", "over time inside one run"], horizontal=True, key="corr_mode")

try:
    runs = ui.runs_frame(store)
except EdgeprofError as exc:
    ui.show_error(exc, "The runs cannot be read")
    st.stop()
if runs.empty:
    st.info("No runs stored yet: make a few on the **Run** page (e.g. one model at each precision) and come back.")
    st.stop()


def explain_notes(result: pd.DataFrame, unit: str) -> None:
    notes = result.dropna(subset=["note"])
    if notes.empty:
        return
    small = notes[notes["n"] < stats.CORRELATION_HINT_N]
    if not small.empty:
        st.info(f"n is too small for {len(small)} of {len(result)} pairs: with fewer than {stats.CORRELATION_HINT_N} "
                f"{unit}, r can swing widely, so read those numbers as a hint. Add {unit} to firm them up.")
    other = notes[notes["n"] >= stats.CORRELATION_HINT_N]
    for row in other.itertuples():
        st.caption(f"{row.x} vs {row.y}: {row.note}")


def result_table(result: pd.DataFrame) -> None:
    st.dataframe(result.rename(columns=RESULT_COLUMNS), hide_index=True, key="corr_table",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("Pearson r", "95% CI low", "95% CI high", "Spearman rho")} |
                 {c: st.column_config.NumberColumn(format="%.2g") for c in ("p", "Spearman p")})


if mode == "across runs":
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
    st.markdown(f"**{len(shown)} runs**. Each pair uses the runs where both values were measured (its n); "
                "a run without a memory limit has no value for *memory limit*.")
    explain_notes(result, "runs")
    result_table(result)
    kind = st.radio("Heatmap", ["Pearson r", "Spearman rho"], horizontal=True, key="corr_heat")
    st.plotly_chart(charts.correlation_heatmap(result, value="pearson_r" if kind == "Pearson r" else "spearman_r"),
                    key="corr_heatmap")
    pairs = [f"{r.y} vs {r.x}" for r in result.itertuples()]
    pair = st.selectbox("Scatter plot", pairs, key="corr_pair")
    if pair:
        row = result.iloc[pairs.index(pair)]
        st.plotly_chart(charts.scatter_fit(renamed[row["x"]], renamed[row["y"]], x_label=row["x"], y_label=row["y"],
                                           color=list(data["precision"].astype(str)), hover=list(data["label"])),
                        key="corr_scatter")
        r, n = row["pearson_r"], int(row["n"])
        if r is not None and not np.isnan(r):
            strength = "strong" if abs(r) >= 0.7 else "moderate" if abs(r) >= 0.4 else "weak"
            direction = "rises" if r > 0 else "falls"
            st.markdown(f"Over {n} runs, **{row['y']}** {direction} with **{row['x']}**: {strength} correlation "
                        f"(r = {r:.2f}, 95% CI {row['ci_low']:.2f} to {row['ci_high']:.2f}, p = {row['pearson_p']:.2g}; "
                        f"Spearman rho = {row['spearman_r']:.2f}).")
        elif row["note"]:
            st.info(f"{row['y']} vs {row['x']}: {row['note']}.")
else:
    okruns = runs[runs["status"].isin(["ok", "stopped"])]
    if okruns.empty:
        st.info("No finished runs yet: this mode needs one run with latency samples and telemetry.")
        st.stop()
    labels = dict(zip(okruns["run_id"], okruns["label"], strict=True))
    c1, c2 = st.columns([3, 1])
    rid = c1.selectbox("Run", list(labels), key="corr_run", format_func=labels.get)
    window_s = c2.number_input("Window (s)", min_value=0.05, max_value=60.0, value=0.5, step=0.25, key="window_s")
    lat = store.latency(rid)
    lat = lat[lat["phase"].astype(str) == "steady"]
    tel = store.telemetry(rid)
    wdf = stats.windowed(lat, tel, window_s=float(window_s))
    metrics = [c for c in wdf.columns if c not in ("window", "t_s", "n_samples", "latency_ms_median")
               and wdf[c].notna().sum() >= 2]
    if wdf.empty or not metrics:
        st.info("This run has too few steady-state windows with telemetry: pick a longer run or a shorter window.")
        st.stop()
    wide = wdf.rename(columns={"latency_ms_median": "latency median (ms)"})
    result = stats.correlation_matrix(wide, ["latency median (ms)", *metrics], unit="windows")
    result = result[result["x"] == "latency median (ms)"].reset_index(drop=True)
    st.markdown(f"**{len(wdf)} windows** of {float(window_s):g} s over the steady state of this run.")
    explain_notes(result, "windows")
    result_table(result)
    default = "cpu.worker_pct" if "cpu.worker_pct" in metrics else metrics[0]
    metric = st.selectbox("Metric", metrics, index=metrics.index(default), key="corr_metric")
    st.plotly_chart(charts.windowed_figure(wdf, metric), key="corr_windows")
    st.plotly_chart(charts.scatter_fit(wdf[metric], wdf["latency_ms_median"], x_label=metric,
                                       y_label="latency median (ms)"), key="corr_window_scatter")
