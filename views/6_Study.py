"""Study: run a grid of runs (a preset or a TOML description), watch its progress, resume an unfinished one.

A study runs in a background thread of the server process (edgeprof.study's registry), not in this browser tab:
closing the tab does not stop it, and reopening the page shows its progress. One study at a time per device.
"""

from __future__ import annotations

import streamlit as st

from edgeprof import auth, study, ui
from edgeprof.errors import EdgeprofError

REFRESH_S = 1.0
SOURCES = {"quick": "Preset: quick", "paper": "Preset: paper", "toml": "My own (TOML)"}
EXAMPLE = """name = "my-study"
models = ["digits-cnn"]
precisions = ["fp32", "int8-dynamic"]
runtimes = ["onnx"]
memory_limits = ["none", "2x", "1x"]
repetitions = 1
duration_s = 2.0
cooldown_s = 1.0
"""

store = ui.page_setup()
staff = auth.can_modify()
STAFF_ONLY = ("Studies are for staff at this booth: a study runs many models one after another, for minutes to hours, "
              f"and keeps the device busy for everyone; {auth.STAFF_HINT}. Single runs are on the Run page.")
st.title("Study")
st.caption("A study runs every combination of models, precisions, runtimes, memory limits and threads, one cell "
           "after another, and can be resumed if it is interrupted. The Report page tests the paper's claims on it.")


def watched():
    """The study this session watches: the running one, else the last one it started or resumed."""
    handle = study.active_study()
    if handle is not None:
        st.session_state["study_watch"] = handle.study_id
        return handle
    sid = st.session_state.get("study_watch")
    return study.get_study_handle(sid) if sid else None


def _fmt_s(s) -> str:
    if s is None:
        return "?"
    s = int(s)
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else f"{s // 60} min {s % 60:02d} s"


def start(cfg: study.StudyConfig, study_id: str | None = None) -> None:
    try:
        handle = study.start_study_background(cfg, store, study_id=study_id)
    except EdgeprofError as exc:
        ui.show_error(exc, "The study could not start")
        return
    st.session_state["study_watch"] = handle.study_id


# ------------------------------------------------------------------------------------------------ new study

handle = watched()
running = handle is not None and not handle.finished

with st.container(border=True):
    st.subheader("New study")
    source = st.radio("Study", list(SOURCES), key="study_source", horizontal=True, format_func=SOURCES.get)
    text = None
    if source == "toml":
        up = st.file_uploader("Upload a study file (.toml)", type=["toml"], key="study_upload")
        if up is not None and st.session_state.get("study_upload_seen") != up.file_id:
            st.session_state["study_upload_seen"] = up.file_id
            st.session_state["study_toml"] = up.getvalue().decode(errors="replace")
        if "study_toml" not in st.session_state:
            st.session_state["study_toml"] = EXAMPLE
        text = st.text_area("Study description (TOML; the format is in docs/studies.md)", key="study_toml", height=220)
    else:
        with st.expander(f"What the {source} preset runs", expanded=False):
            st.code(study.preset_text(source), language="toml")
    duration = st.number_input("Duration override per cell (s of steady state; 0 = as the study says)", min_value=0.0,
                               max_value=3600.0, value=0.0, step=1.0, key="study_duration")
    try:
        cfg = study.resolve_config(store, preset=None if source == "toml" else source, toml_text=text,
                                   duration_s=duration or None)
        st.caption(f"{cfg.n_cells} cells: {len(cfg.variants)} variants x {len(cfg.memory_limits)} memory limits x "
                   f"{cfg.repetitions} repetitions; about {_fmt_s(cfg.estimate_s())}.")
    except EdgeprofError as exc:
        cfg = None
        ui.show_error(exc, "This study description is not valid")
    if not staff:
        st.info(STAFF_ONLY)
    if st.button("Start study", key="study_start", type="primary", disabled=cfg is None or not staff) and staff:
        if running:
            st.error(f"One study at a time: study {handle.study_id} is running; wait for it or stop it below.")
        else:
            start(cfg)
            handle = watched()
            running = handle is not None and not handle.finished


# ------------------------------------------------------------------------------------------------ progress

@st.fragment(run_every=REFRESH_S if running else None)
def progress_view() -> None:
    h = watched()
    if h is None:
        return
    p = h.progress()
    total = max(1, p["total"])
    words = {"starting": "starting", "running": "running", "cooldown": "cooling down", "done": "done",
             "stopped": "stopped", "failed": "failed"}
    text = f"{p['done']}/{p['total']} cells · {words.get(p['state'], p['state'])}"
    if p.get("current") and not h.finished:
        text += f" · now {p['current']}"
    if p.get("eta_s") is not None and not h.finished:
        text += f" · about {_fmt_s(p['eta_s'])} left"
    st.markdown(f"**Study `{h.study_id}`**")
    st.progress(min(1.0, p["done"] / total), text=auth.for_viewer(text))
    if p.get("last"):
        last = p["last"]
        lat = f", p50 {last['p50_ms']:.3f} ms" if last.get("p50_ms") is not None else ""
        st.caption(auth.for_viewer(f"Last cell: {last['key']} → {last['status']}{lat}"))
    if p.get("failed"):
        st.warning(f"{p['failed']} cells failed (no run record, or the run ended failed).")
    if p.get("message") and not h.finished:
        st.caption(auth.for_viewer(p["message"]))
    if not h.finished:
        if not staff:
            st.caption(f"Only staff can stop a study; {auth.STAFF_HINT}.")
        elif st.button("Stop study", key="study_stop"):
            h.stop()
            st.info("Stopping: the current run is stopped, and the study can be resumed later.")
        return
    if h.error:
        st.error(auth.for_viewer(f"Study {h.study_id} ended with an error: {h.error}"))
    elif p["done"] >= p["total"]:
        st.success(f"Study {h.study_id} is done: {p['done']} cells, {p['failed']} failed.")
        ui.page_link("views/7_Report.py", "Open its report", {"study": h.study_id})
    else:
        st.warning(f"Study {h.study_id} stopped after {p['done']} of {p['total']} cells; resume it below.")
    if running:  # it just finished: redraw the whole page so the list below is current
        st.rerun(scope="app")


progress_view()


# ------------------------------------------------------------------------------------------------ studies

st.subheader("Studies")
try:
    rows = study.list_studies(store)
except EdgeprofError as exc:
    ui.show_error(exc, "The studies cannot be listed")
    rows = []
if not rows:
    st.info("No studies yet: pick a preset above and press Start study.")
else:
    st.dataframe([{k: r[k] for k in ("study_id", "status", "cells", "done", "failed", "created_at")} for r in rows],
                 hide_index=True, key="study_list")
    resumable = [r["study_id"] for r in rows if r["resumable"]]
    if resumable:
        c1, c2 = st.columns([3, 1])
        pick = c1.selectbox("Unfinished study", resumable, key="study_resume_pick")
        if c2.button("Resume", key="study_resume", disabled=running or not staff) and staff:
            try:
                start(study.resolve_config(store, study_id=pick), study_id=pick)
                st.rerun()
            except EdgeprofError as exc:
                ui.show_error(exc, "The study could not be resumed")
