"""Runs: the stored runs, filtered; one run's charts again; delete (with a confirmation), export and import bundles."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from edgeprof import auth, charts, ui
from edgeprof.errors import EdgeprofError
from edgeprof.run import active_runs
from edgeprof.store.bundle import export_runs, import_bundle

store = ui.page_setup("Runs")
fleet = ui.fleet_choice("runs_scope")

try:
    runs = ui.runs_frame(store, fleet=fleet)
except EdgeprofError as exc:
    ui.show_error(exc, "The runs cannot be read")
    st.stop()

admin = auth.can_modify()
if not admin:
    st.info("History is read-only in booth mode: delete, import and export (a bundle carries the server's file paths) "
            "need the admin password (sidebar, Staff).")
with st.expander("Import a bundle (.zip exported from edgeprof)", expanded=runs.empty and admin):
    bundle = st.file_uploader("Bundle", type=["zip"], key="import_bundle")
    if st.button("Import", key="import", disabled=bundle is None or not admin) and bundle is not None and admin:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bundle.zip"
            path.write_bytes(bundle.getvalue())
            try:
                added = import_bundle(store, path, name=bundle.name)
            except EdgeprofError as exc:
                ui.show_error(exc, "Import failed")
            else:
                st.success(f"Imported {len(added)} new run(s)" + ("" if added else " (all were already here)") + ".")
                runs = ui.runs_frame(store)

if runs.empty and fleet:
    st.info(f"No runs at {fleet} yet: push them from each device with `edgeprof push {fleet}`.")
    st.stop()
if runs.empty:
    st.info("No runs stored yet. Start one on the **Run** page, or import a bundle above.")
    st.stop()

shown = ui.filter_runs(runs, "runs")
st.caption(f"{len(shown)} of {len(runs)} runs")
table, formats = ui.runs_table(shown)
st.dataframe(table, hide_index=True, key="runs_table", column_config=formats)

labels = dict(zip(shown["run_id"], shown["label"], strict=True))
ids = list(labels)

# ------------------------------------------------------------------------------------------------ one run
st.subheader("One run")
wanted = st.query_params.get("run_id")
if wanted in labels and st.session_state.get("_runs_qp") != wanted:
    st.session_state["show_run"] = wanted
    st.session_state["_runs_qp"] = wanted
if st.session_state.get("show_run") not in ids:
    st.session_state.pop("show_run", None)
show = st.selectbox("Show run", ids, key="show_run", format_func=labels.get, index=None,
                    placeholder="pick a run to see its charts")
if fleet:  # the fleet's runs: their results here; charts, delete and export act on this device's runs
    if show:
        ui.render_summary(ui.fleet_run(fleet, show)["summary"] or {"run_id": show}, run_id=show)
    st.stop()
if show:
    run = store.get_run(show)
    summary = (run or {}).get("summary") or {"run_id": show, "status": run.get("status"), "error": run.get("reason")}
    ui.render_summary(summary, run_id=show)
    lat = store.latency(show)
    tel = store.telemetry(show)
    if lat.empty and tel.empty:
        measured = (summary.get("latency_ms") or {}).get("n") if isinstance(summary.get("latency_ms"), dict) else None
        st.info(f"This run measured {measured:,} inferences, but none of its samples could be stored, so there is "
                "nothing to draw." if measured else
                "This run stored no samples (it ended before its first inference).")
    else:
        t0 = int(min(x for x in (lat["t_ns"].min() if not lat.empty else None,
                                 tel["t_ns"].min() if not tel.empty else None) if x is not None))
        phase = lat["phase"].astype(str)
        warm = lat[phase == "warmup"]
        steady = lat[phase == "steady"]
        warm_span = None
        if not warm.empty:
            end = steady["t_ns"].min() if not steady.empty else warm["t_ns"].max()
            warm_span = ((warm["t_ns"].min() - t0) / 1e9, (end - t0) / 1e9)
        st.plotly_chart(charts.latency_timeline((lat["t_ns"] - t0) / 1e9, lat["latency_ns"] / 1e6, warmup=warm_span),
                        key="run_latency")
        tframe = ui.telemetry_frame(tel, t0) if not tel.empty else tel
        left, right = st.columns(2)
        stops = ui.source_stops(summary.get("telemetry_sources"), t0)
        left.plotly_chart(charts.cpu_figure(tframe, stops=stops), key="run_cpu")
        mem = summary.get("memory") or {}
        exit_ns = summary.get("worker_exit_ns")
        right.plotly_chart(charts.memory_figure(
            tframe, run.get("memory_limit_mb"), peak_charged_mb=mem.get("peak_charged_mb"),
            killed_at_s=(exit_ns - t0) / 1e9 if exit_ns and run.get("status") == "oom_killed" else None), key="run_mem")
        right.caption(ui.MEMORY_CHART_NOTE)
        gfig, tfig = charts.gpu_figure(tframe, stops=stops), charts.thermal_figure(tframe, stops=stops)
        left, right = st.columns(2)
        if gfig is None:
            left.info(f"No GPU telemetry ({ui.gpu_reason(summary.get('telemetry_sources'))}).")
        else:
            left.plotly_chart(gfig, key="run_gpu")
        if tfig is None:
            right.info(ui.thermal_reason(tframe))
        else:
            right.plotly_chart(tfig, key="run_thermal")
    with st.expander("Full run document (JSON)"):
        st.json(auth.for_viewer(run), expanded=False)

# ------------------------------------------------------------------------------------------------ delete / export
st.subheader("Delete or export")
st.session_state["selected_runs"] = [r for r in st.session_state.get("selected_runs", []) if r in ids]
selected = st.multiselect("Selected runs", ids, key="selected_runs", format_func=labels.get,
                          placeholder="pick runs to delete or export")
c1, c2, c3 = st.columns([1, 1, 2])
fmt = c3.radio("Export format", ["parquet", "csv"], horizontal=True, key="export_format")
if c1.button("Delete selected", key="delete", disabled=not selected or not admin) and admin:
    st.session_state["confirm_delete"] = list(selected)
pending = st.session_state.get("confirm_delete") if admin else None
if pending:
    live = {h.run_id for h in active_runs()} & set(pending)
    if live:
        st.error(f"Run {', '.join(live)} is still running: stop it on the Run page first.")
        st.session_state.pop("confirm_delete")
    else:
        st.warning(f"Delete {len(pending)} run(s) with all their samples and telemetry? This cannot be undone.")
        y, n, _ = st.columns([1, 1, 4])
        if y.button(f"Yes, delete {len(pending)}", key="confirm_delete_yes", type="primary"):
            try:
                gone = store.delete_runs(pending)
            except EdgeprofError as exc:
                ui.show_error(exc, "Delete failed")
            else:
                st.session_state.pop("confirm_delete")
                st.session_state["flash"] = f"Deleted {gone} run(s)."
                st.rerun()
        if n.button("Cancel", key="confirm_delete_no"):
            st.session_state.pop("confirm_delete")
            st.rerun()
if st.session_state.get("flash"):
    st.success(st.session_state.pop("flash"))

if c2.button("Export selected", key="export", disabled=not selected or not admin) and admin:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "edgeprof-runs.zip"
        try:
            export_runs(store, selected, out, fmt=fmt)
            st.session_state["export_bytes"] = out.read_bytes()
        except EdgeprofError as exc:
            ui.show_error(exc, "Export failed")
if st.session_state.get("export_bytes"):
    stamp = pd.Timestamp.now().strftime("%Y%m%d-%H%M%S")
    st.download_button("Download the bundle (.zip)", st.session_state["export_bytes"], file_name=f"edgeprof-{stamp}.zip",
                       mime="application/zip", key="download")
