"""Runs: the stored runs, filtered; one run's charts again; delete (with a confirmation), export and import bundles."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import pandas as pd
import streamlit as st

from edgeprof import auth, charts, ui
from edgeprof.errors import EdgeprofError
from edgeprof.run import active_runs
from edgeprof.store import history, samples
from edgeprof.store.bundle import export_runs, import_bundle

store = ui.page_setup("Runs")
fleet = ui.fleet_choice("runs_scope")

PAGE_SIZE = 100  # runs a page of the table shows: the history is filtered and paged in the database


def history_filters(f: dict) -> history.Query:
    """Filter widgets over the values the store offers (``Store.run_facets``), in two rows."""
    cols = st.columns(4) + st.columns(3)
    values = {
        "device": cols[0].multiselect("Device", f["device"], key="runs_device", placeholder="all devices"),
        "model": cols[1].multiselect("Model", f["model"], key="runs_model", format_func=ui.model_label,
                                     placeholder="all models"),
        "precision": cols[2].multiselect("Precision", f["precision"], key="runs_precision", placeholder="all"),
        "runtime": cols[3].multiselect("Runtime", f["runtime"], key="runs_runtime", placeholder="all"),
        "status": cols[5].multiselect("Status", f["status"], key="runs_status", placeholder="any status"),
    }
    words = {ui.limit_words(v): v for v in f["limits"]}
    picked = cols[4].multiselect("Memory limit", list(words), key="runs_limit", placeholder="any limit")
    dates = None
    if f["dates"]:
        chosen = cols[6].date_input("Date (UTC)", value=f["dates"], key="runs_dates")
        if isinstance(chosen, (tuple, list)) and len(chosen) == 2:
            dates = (chosen[0], chosen[1])
        elif isinstance(chosen, date):
            dates = (chosen, chosen)
    return history.Query(values, [words[w] for w in picked] or None, dates)


def this_device() -> tuple[pd.DataFrame, int, int, int]:
    """(this page of the matching runs with labels, how many match, how many are stored, the page's first row)."""
    facets = store.run_facets()
    if not facets["total"]:
        return pd.DataFrame(), 0, 0, 0
    query = history_filters(facets)
    _, matched = store.runs_page(query, limit=0)
    pages = max(1, -(-matched // PAGE_SIZE))
    at = st.number_input(f"Page (of {pages:,})", 1, pages, 1, key="runs_page") if pages > 1 else 1
    first = (int(at) - 1) * PAGE_SIZE
    frame, matched = store.runs_page(query, offset=first, limit=PAGE_SIZE, include=st.query_params.get("run_id"))
    frame["label"] = [ui.run_label(r) for r in frame.to_dict("records")] if len(frame) else pd.Series(dtype=str)
    return frame, matched, facets["total"], first


try:
    if fleet:
        runs = ui.runs_frame(store, fleet=fleet)
        total = len(runs)
    else:
        runs, matched, total, first = this_device()
except EdgeprofError as exc:
    ui.show_error(exc, "The runs cannot be read")
    st.stop()

admin = auth.can_modify()
if not admin:
    st.info("History is read-only in booth mode: delete, import and export (a bundle carries the server's file paths) "
            "need the admin password (sidebar, Staff).")
with st.expander("Import a bundle (.zip exported from edgeprof)", expanded=not total and admin):
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
                if added:
                    st.rerun()

if not total and fleet:
    st.info(f"No runs at {fleet} yet: push them from each device with `edgeprof push {fleet}`.")
    st.stop()
if not total:
    st.info("No runs stored yet. Start one on the **Run** page, or import a bundle above.")
    st.stop()

if fleet:
    shown = ui.filter_runs(runs, "runs")
    st.caption(f"{len(shown)} of {len(runs)} runs")
else:
    shown = runs
    on_page = min(PAGE_SIZE, max(matched - first, 0))
    st.caption(f"{matched:,} of {total:,} runs" if matched <= PAGE_SIZE else
               f"{matched:,} of {total:,} runs; this page shows {first + 1:,} to {first + on_page:,}, newest first")
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
        ui.render_summary(ui.fleet_run(fleet, show)["summary"] or {"run_id": show}, run_id=show, link=False)
    st.stop()
if show:
    run = store.get_run(show)
    summary = (run or {}).get("summary") or {"run_id": show, "status": run.get("status"), "error": run.get("reason")}
    ui.render_summary(summary, run_id=show, link=False)  # this is Runs: no link to itself
    if ui.retention_caption(summary):  # which samples the statistics came from (run.recorder)
        st.caption(ui.retention_caption(summary))
    reduced = store.latency_timeline(show)
    raw = reduced["samples"] <= samples.RAW_MAX and not reduced["reduced"]  # short: sample by sample
    lat = store.latency(show) if raw else None
    tel = store.telemetry(show)
    if not reduced["samples"] and tel.empty:
        measured = (summary.get("latency_ms") or {}).get("n") if isinstance(summary.get("latency_ms"), dict) else None
        st.info(f"This run measured {measured:,} inferences, but none of its samples could be stored, so there is "
                "nothing to draw." if measured else
                "This run stored no samples (it ended before its first inference).")
    else:
        t0 = int(min(x for x in (reduced["t_ns"][0] if reduced["samples"] else None,
                                 tel["t_ns"].min() if not tel.empty else None) if x is not None))
        if raw:
            phase = lat["phase"].astype(str)
            warm = lat[phase == "warmup"]
            steady = lat[phase == "steady"]
            warm_span = None
            if not warm.empty:
                end = steady["t_ns"].min() if not steady.empty else warm["t_ns"].max()
                warm_span = ((warm["t_ns"].min() - t0) / 1e9, (end - t0) / 1e9)
            fig = charts.latency_timeline((lat["t_ns"] - t0) / 1e9, lat["latency_ns"] / 1e6, warmup=warm_span,
                                          status=run.get("status"))
        else:
            w0, s0, cut = reduced["warmup_t0"], reduced["steady_t0"], reduced.get("exact_t1")
            fig = charts.latency_reduced(
                (reduced["t_ns"] - t0) / 1e9, reduced["max_ns"] / 1e6, reduced["median_ns"] / 1e6,
                reduced["p05_ns"] / 1e6, reduced["p95_ns"] / 1e6, samples=reduced["samples"],
                exact_s=(cut - t0) / 1e9 if reduced["reduced"] and cut is not None else None,
                warmup=((w0 - t0) / 1e9, ((s0 or reduced["t_ns"][-1]) - t0) / 1e9) if w0 is not None else None)
        st.plotly_chart(fig, key="run_latency")
        tframe = ui.telemetry_frame(tel, t0) if not tel.empty else tel
        exit_ns = summary.get("worker_exit_ns")
        ui.telemetry_panel(ui.telemetry_charts(
            tframe, stops=ui.source_stops(summary.get("telemetry_sources"), t0),
            sources=summary.get("telemetry_sources"), memory_limit_mb=run.get("memory_limit_mb"),
            peak_charged_mb=(summary.get("memory") or {}).get("peak_charged_mb"),
            killed_at_s=(exit_ns - t0) / 1e9 if exit_ns and run.get("status") == "oom_killed" else None), key="run")
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
