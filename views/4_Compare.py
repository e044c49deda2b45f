"""Compare: two to four runs (repeated runs, or groups of runs by device) side by side, with ratios against a chosen
baseline, the scope of each ratio's interval, and the device's noise floor (measured here on request)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from edgeprof import auth, charts, compare, run, ui
from edgeprof.config import NOISE_FLOOR_MODEL, NOISE_FLOOR_RUNS
from edgeprof.errors import EdgeprofError


def noise_floor_block(floor: dict | None) -> None:
    """The device's noise floor in words, and a button that measures it now."""
    st.caption(compare.noise_floor_words(floor), help="Measured with short repeated runs of a bundled model; "
               "measure again when the device's load changes.")
    if st.session_state.get("cmp_floor_done"):
        st.success(st.session_state.pop("cmp_floor_done"))
    if not auth.can_modify():  # it keeps the device busy and changes every comparison's verdicts
        st.caption(f"Measuring the noise floor is for staff at this booth; {auth.STAFF_HINT}.")
    elif st.button("Measure this device's noise floor now (about 20 s)", key="cmp_noise_floor"):
        try:
            with st.spinner(f"Measuring: {NOISE_FLOOR_RUNS} short runs of {NOISE_FLOOR_MODEL}, each its own "
                            "process..."):
                done = run.measure_noise_floor(store)
            if done.get("floor_pct") is not None:
                st.session_state["cmp_floor_done"] = f"Measured: {done['floor_note']}."
                st.rerun()  # the table and the sentences use the new floor
            else:
                st.warning(f"Only {done.get('runs_ok')} of {done.get('repeat')} runs finished ok: no noise floor.")
        except EdgeprofError as exc:
            ui.show_error(exc, "The noise floor could not be measured")


store = ui.page_setup("Compare")
st.caption("Latency distributions side by side. The ratio column divides each median by the baseline's: "
           "0.5 means twice as fast, 2.0 twice as slow. Its 95% interval says what it covers: **between runs** "
           "(from repeated runs: a rerun is expected inside it) or **within these runs only** (single runs: a rerun "
           "in a new process can land outside it, so compare repeated runs, e.g. `edgeprof compare ... --vs "
           "precision=fp16`).")

fleet = ui.fleet_choice("cmp_scope")
data = ui.samples(store, fleet)  # latency and telemetry: this device's store, or the fleet's objects
try:
    runs = ui.runs_frame(store, fleet=fleet)
except EdgeprofError as exc:
    ui.show_error(exc, "The runs cannot be read")
    st.stop()
runs = runs[runs["status"].isin(["ok", "stopped"])]
if len(runs) < 2:
    st.info("Compare needs at least two finished runs: make them on the **Run** page (e.g. fp32 and int8-static).")
    noise_floor_block(compare.noise_floor(store))
    st.stop()

mode = st.radio("Compare", ["runs", "repeated runs (--repeat)", "groups of runs by device"], horizontal=True,
                key="cmp_mode")


if mode == "runs":
    labels = dict(zip(runs["run_id"], runs["label"], strict=True))
    ids = list(labels)
    st.session_state["cmp_runs"] = [r for r in st.session_state.get("cmp_runs", ids[:2]) if r in ids][:4]
    chosen = st.multiselect("Runs (2 to 4)", ids, key="cmp_runs", format_func=labels.get, max_selections=4)
    if len(chosen) < 2:
        st.info("Pick two to four runs.")
        st.stop()
    baseline = st.selectbox("Baseline", chosen, key="cmp_baseline", format_func=labels.get)
    cmp = compare.compare_runs(data, runs, chosen, baseline, model_label=ui.model_label)
elif mode == "repeated runs (--repeat)":
    choices = compare.group_choices(runs)
    if len(choices) < 2:
        st.info("Compare needs two groups of repeated runs: make them on the command line with `edgeprof run ... "
                "--repeat 3` (once per configuration), or both at once, interleaved, with `edgeprof compare "
                "--model ... --vs precision=fp16`.")
        st.stop()
    gids = list(choices)
    chosen = st.multiselect("Groups (2 to 4)", gids, default=gids[:2], key="cmp_groups", format_func=choices.get,
                            max_selections=4)
    if len(chosen) < 2:
        st.info("Pick two to four groups.")
        st.stop()
    baseline = st.selectbox("Baseline", chosen, key="cmp_baseline_rep", format_func=choices.get)
    cmp = compare.compare_groups(data, runs, chosen, baseline, {g: choices[g] for g in chosen})
else:
    st.caption("Devices are compared on identical settings: the same model, precision, runtime, threads and memory "
               "limit; a device's runs of those settings are pooled.")
    c1, c2, c3, c4, c5 = st.columns(5)
    models = sorted(runs["model"].dropna().astype(str).unique())
    model = c1.selectbox("Model", models, key="cmp_model", format_func=lambda m: ui.model_label(m))
    pool = runs[runs["model"] == model]
    prec = c2.selectbox("Precision", sorted(pool["precision"].dropna().astype(str).unique()), key="cmp_precision")
    pool = pool[pool["precision"] == prec]
    runtime = c3.selectbox("Runtime", sorted(pool["runtime"].dropna().astype(str).unique()), key="cmp_runtime")
    pool = pool[pool["runtime"] == runtime]
    threads = c4.selectbox("Threads", sorted(pool["threads"].dropna().astype(int).unique()), key="cmp_threads")
    pool = pool[pool["threads"] == threads]
    limits = sorted({None if pd.isna(v) else float(v) for v in pool["memory_limit_mb"]}, key=lambda v: (v is not None, v))
    limit = c5.selectbox("Memory limit", limits, key="cmp_limit",
                         format_func=lambda v: "no limit" if v is None else f"{v:,.0f} MB")
    sel = compare.same_config(runs, model=model, precision=prec, runtime=runtime, threads=threads,
                              memory_limit_mb=limit)
    names = compare.device_labels(sel)  # by device id: two boards both called "raspberrypi" stay two devices
    ids = sorted(names, key=names.get)
    devices = st.multiselect("Devices (2 to 4)", ids, default=ids[:4], key="cmp_devices", max_selections=4,
                             format_func=names.get)
    sel = sel[compare.device_keys(sel).isin(devices)]
    if compare.device_keys(sel).nunique() < 2:
        st.info("These filters leave fewer than two devices with runs. Import runs from another device on the "
                "**Runs** page (export there, import here), or compare single runs instead.")
        st.stop()
    baseline_device = st.selectbox("Baseline", devices, key="cmp_baseline_group", format_func=names.get)
    cmp = compare.compare_devices(data, sel, baseline_device)

left, right = st.columns(2)
left.plotly_chart(charts.latency_cdf(cmp.groups), key="cmp_cdf")
right.plotly_chart(charts.latency_box(cmp.groups), key="cmp_box")
floor = compare.noise_floor(store)
summary = compare.summary_table(cmp, (floor or {}).get("floor_pct"))
st.subheader("Summary")
for sentence in compare.verdicts(cmp, (floor or {}).get("floor_pct")):
    st.markdown(f"- {ui.md_text(sentence)}.")  # starts with a run's name, written as its model is (digits-cnn, not Digits-cnn)
st.dataframe(summary, hide_index=True, key="cmp_table",
             column_config={**{c: st.column_config.NumberColumn(format="%.3f") for c in
                               ("p50 (ms)", "p90 (ms)", "p99 (ms)", "mean (ms)", "p50 ratio vs baseline")},
                            **{c: st.column_config.NumberColumn(format="%.0f") for c in
                               ("load (ms)", "warm-up (ms)", "worker CPU (%)", "peak RAM (MB)", "n")},
                            "inf/s": st.column_config.NumberColumn(format="%.1f")})
noise_floor_block(floor)

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
overlay = compare.overlay_metrics(data, [ids[0] for ids in cmp.members.values()])  # labels from the catalog
metric = st.selectbox("Metric", list(overlay), key="cmp_metric", format_func=overlay.get)
frames = {}
for name, ids in cmp.members.items():
    rid = ids[0]  # one run per group keeps the overlay readable
    tel = data.telemetry(rid, metrics=metric)
    first = data.latency_timeline(rid, buckets=1)["t_ns"]
    t0 = int(first[0]) if len(first) else (int(tel["t_ns"].min()) if not tel.empty else 0)
    frames[name] = ui.telemetry_frame(tel, t0) if not tel.empty else tel
st.plotly_chart(charts.telemetry_overlay(frames, metric, label=overlay[metric]), key="cmp_overlay")
st.caption("Time 0 is each run's first inference; for groups, the first run of each device is drawn.")
