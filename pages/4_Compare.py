"""Compare: two to four runs (or groups of runs by device) side by side, with ratios against a chosen baseline."""

from __future__ import annotations

import streamlit as st

from edgeprof import charts, compare, ui
from edgeprof.errors import EdgeprofError

OVERLAY = {"cpu.worker_pct": "worker CPU (%)", "cpu.total_pct": "system CPU (%)", "mem.worker_rss_mb": "worker RSS (MB)",
           "mem.charged_mb": "memory charged to the cap (MB)", "mem.used_mb": "system RAM used (MB)"}

store = ui.page_setup("Compare")
st.caption("Latency distributions side by side. The ratio column divides each median by the baseline's: "
           "0.5 means twice as fast, 2.0 twice as slow (95% CI from a bootstrap).")

try:
    runs = ui.runs_frame(store)
except EdgeprofError as exc:
    ui.show_error(exc, "The runs cannot be read")
    st.stop()
runs = runs[runs["status"].isin(["ok", "stopped"])]
if len(runs) < 2:
    st.info("Compare needs at least two finished runs: make them on the **Run** page (e.g. fp32 and int8-static).")
    st.stop()

mode = st.radio("Compare", ["runs", "groups of runs by device"], horizontal=True, key="cmp_mode")


if mode == "runs":
    labels = dict(zip(runs["run_id"], runs["label"], strict=True))
    ids = list(labels)
    st.session_state["cmp_runs"] = [r for r in st.session_state.get("cmp_runs", ids[:2]) if r in ids][:4]
    chosen = st.multiselect("Runs (2 to 4)", ids, key="cmp_runs", format_func=labels.get, max_selections=4)
    if len(chosen) < 2:
        st.info("Pick two to four runs.")
        st.stop()
    baseline = st.selectbox("Baseline", chosen, key="cmp_baseline", format_func=labels.get)
    short = {rid: f"{ui.model_label(str(runs.set_index('run_id').loc[rid, 'model']))} "
                  f"{runs.set_index('run_id').loc[rid, 'precision']} ..{rid[-4:]}" for rid in chosen}
    cmp = compare.compare_runs(store, runs, chosen, baseline, short)
else:
    c1, c2, c3 = st.columns(3)
    hosts = sorted(runs["hostname"].dropna().astype(str).unique())
    models = sorted(runs["model"].dropna().astype(str).unique())
    model = c1.selectbox("Model", models, key="cmp_model", format_func=lambda m: ui.model_label(m))
    precs = sorted(runs.loc[runs["model"] == model, "precision"].dropna().astype(str).unique())
    prec = c2.selectbox("Precision", precs, key="cmp_precision")
    devices = c3.multiselect("Devices (2 to 4)", hosts, default=hosts[:4], key="cmp_devices", max_selections=4)
    sel = runs[(runs["model"] == model) & (runs["precision"] == prec) & runs["hostname"].isin(devices)]
    if sel["hostname"].nunique() < 2:
        st.info("These filters leave fewer than two devices with runs. Import runs from another device on the "
                "**Runs** page (export there, import here), or compare single runs instead.")
        st.stop()
    baseline_host = st.selectbox("Baseline", sorted(sel["hostname"].unique()), key="cmp_baseline_group")
    cmp = compare.compare_devices(store, sel, baseline_host)

left, right = st.columns(2)
left.plotly_chart(charts.latency_cdf(cmp.groups), key="cmp_cdf")
right.plotly_chart(charts.latency_box(cmp.groups), key="cmp_box")
summary = compare.summary_table(cmp)
st.subheader("Summary")
st.dataframe(summary, hide_index=True, key="cmp_table",
             column_config={c: st.column_config.NumberColumn(format="%.4f") for c in
                            ("p50 (ms)", "p90 (ms)", "p99 (ms)", "mean (ms)", "p50 ratio vs baseline")})

if cmp.kind == "run":
    st.subheader("Where the time goes: operators")
    op_ids = [members[0] for members in cmp.members.values()]
    names = dict(zip(op_ids, cmp.members, strict=True))
    o1, o2 = st.columns(2)
    op_a = o1.selectbox("Reference run", op_ids, key="cmp_ops_a", format_func=names.get,
                        index=op_ids.index(baseline) if baseline in op_ids else 0)
    op_b = o2.selectbox("Run to explain", [r for r in op_ids if r != op_a], key="cmp_ops_b", format_func=names.get)
    ui.op_comparison(store, op_a, op_b, key="cmp_ops")

st.subheader("Telemetry")
metric = st.selectbox("Metric", list(OVERLAY), key="cmp_metric", format_func=OVERLAY.get)
frames = {}
for name, ids in cmp.members.items():
    rid = ids[0]  # one run per group keeps the overlay readable
    tel = store.telemetry(rid, metrics=metric)
    lat0 = store.latency(rid)
    t0 = int(lat0["t_ns"].min()) if not lat0.empty else (int(tel["t_ns"].min()) if not tel.empty else 0)
    frames[name] = ui.telemetry_frame(tel, t0) if not tel.empty else tel
st.plotly_chart(charts.telemetry_overlay(frames, metric, label=OVERLAY[metric]), key="cmp_overlay")
st.caption("Time 0 is each run's first inference; for groups, the first run of each device is drawn.")
