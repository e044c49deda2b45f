"""Run: pick a model, precision, runtime and memory cap, start a run and watch it live.

A run belongs to the server process (edgeprof.run's registry), not to this browser tab: reopening the page, or a
second tab, attaches to the run in progress. Each session keeps its own cursors into the run's live data, so every
refresh fetches only new points.
"""

from __future__ import annotations

import html
import os
import time

import numpy as np
import streamlit as st

from edgeprof import auth, booth, charts, run, showcase, study, ui
from edgeprof.config import PRECISIONS, PRESETS, RunConfig
from edgeprof.errors import EdgeprofError
from edgeprof.locks import WORK_PREFIX
from edgeprof.runtimes import registry
from edgeprof.runtimes.inputs import parse_given
from edgeprof.worker.messages import PHASE_CODES

STEADY = PHASE_CODES["steady"]
LIVE_REFRESH_S = 0.25  # the fragment period; the browser redraw (~0.1-0.3 s on 2 cores) paces it to ~3 refreshes a second
FIRST_POINT_WAIT_S = 1.5
TELEMETRY_REFRESH_S = 1.0  # telemetry charts: the sampler adds a point every 0.1 s; redrawing them at 4 Hz buys little
LATENCY_TOOLBAR = {"displayModeBar": True, "displaylogo": False,
                   "modeBarButtonsToRemove": ["select2d", "lasso2d", "toImage", "autoScale2d"]}
FOLLOW_S = 0.5  # while a study runs in this server, how often a page with no live run looks for its next run
MEMORY_LIMITS = [0, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024]
AUTO = "auto"
AS_FILE = "as in the file"
PRESET_WORDS = {"quick": "quick (10 s, 50 inferences)", "standard": "standard (60 s, 200 inferences)",
                "long": "long (10 min, 1,000 inferences)"}

store = ui.page_setup()
staff = auth.can_modify()  # booth visitors: bundled models, a bounded duration, stop only their own runs
st.title("Run a model")
st.caption("Pick a model and a precision, cap its memory, and watch latency and the hardware live. "
           "One run at a time per device.")


# ------------------------------------------------------------------------------------------------ which run to watch

def watched_handle():
    """The run this session watches: its own last start, else any live run of this server process."""
    rid = st.session_state.get("watch_run")
    handle = run.get_handle(rid) if rid else None
    active = run.active_runs()
    if active and (handle is None or (handle.finished and active[0].run_id != rid)):
        handle = active[0]
        st.session_state["watch_run"] = handle.run_id
    return handle


# ------------------------------------------------------------------------------------------------ the form

def _bundled() -> list[str]:
    from edgeprof.models.catalog import model_names

    try:
        return model_names()
    except EdgeprofError as exc:
        ui.show_error(exc, "The bundled model list cannot be read")
        return []


if staff:
    with st.expander("Upload your own model (.onnx or .tflite)", expanded=False):
        stored = ui.model_uploader("Model file", "run_upload")
        if stored is not None:
            st.session_state["model"] = str(stored[0])
            st.success(f"Stored {stored[1]}; it is selected below.")

bundled = _bundled()
options = bundled + (ui.uploaded_models() if staff else [])
if not options:
    st.info("No models found: restore the bundled ones with `git checkout models`, or upload a .onnx / .tflite file above.")
    st.stop()
if st.session_state.get("model") not in options:
    st.session_state["model"] = "digits-cnn" if "digits-cnn" in options else options[0]

c1, c2, c3, c4 = st.columns(4)
model = c1.selectbox("Model", options, key="model", format_func=ui.model_label)
uploaded = model in ui.uploaded_models()
if uploaded:
    file_runtime = "tflite" if model.lower().endswith(".tflite") else "onnx"
    precision = c2.selectbox("Precision", [AS_FILE, *PRECISIONS], key="precision_upload",
                             help="Only fp32 ONNX files can be quantized here; other files run as they are.")
    runtime = c3.selectbox("Runtime", [file_runtime], key="runtime_upload", disabled=True)
else:
    precision = c2.selectbox("Precision", list(PRECISIONS), key="precision",
                             help="fp32: full floats. fp16: half. int8: 8-bit integers (dynamic: activations "
                                  "quantized at run time; static: calibrated ahead).")
    runtime = c3.selectbox("Runtime", list(registry.formats()), key="runtime",
                           format_func=lambda r: {"onnx": "ONNX Runtime", "tflite": "TFLite"}.get(r, r))
# a visitor's run always has a cap (booth.py): their choice of a tighter one, else the cap chosen for them
limits = None if staff else booth.limits_for(store, model, "fp32" if precision == AS_FILE else precision, runtime)
memory_options = MEMORY_LIMITS if staff else [0] + [v for v in MEMORY_LIMITS if 0 < v < limits.memory_mb]
if st.session_state.get("memory_limit") not in memory_options:
    st.session_state.pop("memory_limit", None)
memory = c4.selectbox("Memory limit (MB)", memory_options, key="memory_limit", help=ui.MEMORY_LIMIT_HELP,
                      format_func=lambda v: f"{v} MB" if v else "no limit" if staff else
                      f"booth limit ({limits.memory_mb:g} MB)")

c5, c6, c7, c8 = st.columns(4)
backend, backend_options = ui.backend_widgets(runtime, [c5, c6])
threads = c7.number_input("Threads", min_value=1, max_value=max(4, 2 * (os.cpu_count() or 2)), value=2, step=1,
                          key="threads")
if threads_words := ui.watched_threads_words(model, int(threads)):  # run.runner.watched_choice: what the run gets
    c7.caption(threads_words)
preset = c8.selectbox("Duration", list(PRESETS) if staff else list(auth.VISITOR_PRESETS), key="preset",
                      format_func=lambda p: PRESET_WORDS.get(p, p),
                      help="The minimum steady-state time and number of inferences; loading and warm-up come first.")
with st.expander("Advanced", expanded=False):
    duration_s = st.number_input("Duration override (s of steady state; 0 = use the preset)", min_value=0.0,
                                 max_value=3600.0 if staff else auth.VISITOR_MAX_S, value=0.0, step=1.0,
                                 key="duration_s")
    profile_ops = st.checkbox("Profile operators after the measurement", key="profile_ops",
                              help="After the steady phase, a separate phase of inferences runs under ONNX Runtime's "
                                   "profiler and says where the time goes per operator; the measured latencies are "
                                   "not touched. TFLite has no profiler the app can use.")
if not staff:
    st.caption(f"{auth.VISITOR_RULE} {limits.words()}")
shape_texts, fill_texts = ui.inputs_panel(model, None if precision == AS_FILE else precision, runtime)


variant_precision = None if precision == AS_FILE else precision
st.caption(ui.footprint_hint(store, model, variant_precision, runtime, int(threads)))
st.caption(ui.duration_words(store, model, variant_precision, runtime, int(threads), preset, float(duration_s) or None))

on_device = ui.on_device_warning()  # watched here: the run leaves the browser a core (run.runner.watched_choice)
handle = watched_handle()
# the device's state before anyone presses Start: a run of another process (the CLI, another server) holds it
busy = showcase.device_busy(store) if handle is None or handle.finished else None
if busy is not None:
    st.info(f"{busy.sentence} Start is enabled again when it ends (reload the page).")
b1, b2, _ = st.columns([1, 1, 6])
start = b1.button("Start run", key="start", type="primary", disabled=busy is not None)
refusal = None if staff or not start else auth.visitor_refusal(model, bundled, preset, duration_s or None)
if refusal:
    st.error(refusal)
elif start:
    try:
        input_shapes, input_fills = parse_given(shape_texts, fill_texts)
        cfg = RunConfig(  # fp32 for a file "as in the file": a user's file runs as it is, and the run records what it is
            model=model, precision="fp32" if precision == AS_FILE else precision, runtime=runtime,
            input_shapes=input_shapes, input_fills=input_fills,
            backend=backend, backend_options=backend_options,
            threads=int(threads), memory_limit_mb=memory or None, preset=preset,
            duration_s=float(duration_s) if duration_s else None, profile_ops=bool(profile_ops), watched=on_device,
        )
        if not staff:
            cfg = booth.bound_run(cfg, bundled, limits)
        handle = run.start_run(cfg, store)
        auth.remember_start(handle.run_id)
        st.session_state["watch_run"] = handle.run_id
        st.session_state["just_started"] = handle.run_id
    except run.DeviceBusy as exc:
        holder = exc.holder_id or "another run"
        if holder.startswith(WORK_PREFIX):  # staff quantizing or computing fidelity
            st.error(f"One run at a time: {exc}")
        elif run.get_handle(holder) is not None:
            st.error(f"One run at a time: this device is busy with run {holder}; watch it below"
                     + (" or stop it." if auth.may_stop(holder) else ": it ends by itself within its set duration."))
        else:  # held by another process, e.g. `python -m edgeprof run`
            st.error(f"One run at a time: this device is busy with run {holder}, started outside this dashboard "
                     "(e.g. from the command line); wait for it to finish or stop it there (Ctrl-C).")
    except EdgeprofError as exc:
        ui.show_error(exc, "The run could not start")

if handle is not None and not handle.finished and not auth.may_stop(handle.run_id):
    by = f"study {handle.study_id}" if handle.study_id else "another browser session"
    st.caption(f"Run {handle.run_id} was started by {by}: only whoever started it, or staff, can stop it. It ends by "
               "itself within its set duration.")
elif handle is not None and not handle.finished and b2.button("Stop", key="stop"):
    handle.stop()
    st.info(f"Stopping run {handle.run_id}: the worker finishes its current inference and exits.")

st.divider()


# ------------------------------------------------------------------------------------------------ live view

def build_view(h, buf: ui.LiveBuffer, prev: dict | None) -> dict:
    """Everything the live view draws, built once per refresh for all the sessions watching this run.

    The latency chart changes with every batch; the telemetry charts only get a new 10 Hz sample or so, so they are
    rebuilt once a second. An unchanged figure is the same object, which the browser does not redraw: on a board
    that also runs the model, browser redraws are what limit the refresh rate."""
    t_ns, lat_ns, codes = buf.arrays()
    t0 = buf.started_ns
    spans = ui.phase_spans(buf.phases, t0)
    steady = np.flatnonzero(codes == STEADY)
    view = {
        "n": buf.n, "status": buf.status, "phase": buf.phase, "notes": list(buf.notes), "newest": buf.newest_wall(),
        "figures": buf.figures(),
        "latency": charts.latency_timeline((t_ns - t0) / 1e9, lat_ns / 1e6, warmup=spans.get("warmup"),
                                           load=spans.get("load"), status=buf.status,
                                           steady_from=int(steady[0]) if steady.size else 0),
    }
    now = time.monotonic()
    if prev is not None and now - prev["tel_at"] < TELEMETRY_REFRESH_S and not h.finished:
        view.update({k: prev[k] for k in ("telemetry", "tel_at")})
        return view
    tel = ui.telemetry_frame(buf.tel_rows, t0)
    status = getattr(h, "telemetry_status", None)
    result = buf.result or {}
    killed = result.get("worker_exit_s") if result.get("status") == "oom_killed" else None
    view["telemetry"] = ui.telemetry_charts(
        tel, stops=ui.source_stops(status, t0), sources=status or ui.probe_status(), memory_limit_mb=buf.memory_limit_mb,
        peak_charged_mb=(result.get("memory") or {}).get("peak_charged_mb"), killed_at_s=killed)
    view["tel_at"] = now
    return view


def draw(h, view: dict, *, final: bool) -> None:
    newest = view["newest"]
    age = (time.time() - newest) if newest else None
    phase_words = {"preparing": "preparing the model", "first": "first inference", "warmup": "warming up",
                   "steady": "measuring steady state", "profile": "profiling operators (after the measurement)"}
    if not final:
        line = f"Run `{h.run_id}` ({ui.model_label(h.config.model)}, {h.config.precision}): **{view['status']}**, " \
               f"{phase_words.get(view['phase'], view['phase'])} · {view['n']:,} inferences"
        if age is not None:
            line += f" · newest point {max(age, 0):.2f} s old"
        elif view["phase"] == "preparing":
            line += f" · {time.monotonic_ns() / 1e9 - h.started_ns / 1e9:.0f} s so far"
        st.markdown(line)
        if view["notes"]:
            note = view["notes"][-1]
            if view["phase"] == "preparing" and note.startswith(("fp16", "int8")):
                note += " (a quantized model is made on first use, then cached)"
            st.caption(auth.for_viewer(note))
    # machine-readable state for tests and the dashboard benchmark
    st.markdown(f'<div class="ep-live" data-run="{html.escape(h.run_id)}" data-seq="{view["n"]}" '
                f'data-newest-wall="{newest or 0:.6f}" data-render-wall="{time.time():.6f}" '
                f'data-status="{html.escape(str(view["status"]))}"></div>', unsafe_allow_html=True)
    if not final:
        ui.headline(view["figures"])
    if final and view["n"] == 0:
        st.info("This run made no inference, so there is no latency to draw; its memory and CPU up to the end are "
                "below.")
    else:
        st.plotly_chart(view["latency"], key="chart_latency", config=LATENCY_TOOLBAR)
    if final:
        draw_telemetry(view)


def draw_telemetry(view: dict) -> None:
    ui.telemetry_panel(view["telemetry"], key="chart", toolbar=False)


@st.fragment(run_every=LIVE_REFRESH_S)
def live_view(run_id: str) -> None:
    h = run.get_handle(run_id)
    if h is None:
        return
    view = ui.shared_view(h, build_view, max_age_s=LIVE_REFRESH_S * 0.8)
    # In the page run that pressed Start, no wait: that run must end for the previous run's results below to go (a
    # page run removes what it did not draw only when it ends); the fragment's next tick waits for the first point.
    started_now = st.session_state.pop("just_started", None) == run_id
    deadline = time.monotonic() + (0.0 if started_now else FIRST_POINT_WAIT_S)
    while view["n"] == 0 and not h.finished and time.monotonic() < deadline:
        # a run that has just started: draw its first point as soon as it exists rather than at the next tick
        time.sleep(0.02)
        view = ui.shared_view(h, build_view, max_age_s=0)
    draw(h, view, final=False)
    if h.finished:
        st.rerun()  # the whole page: the summary replaces the live view and Stop goes away


@st.fragment(run_every=TELEMETRY_REFRESH_S)
def live_telemetry(run_id: str) -> None:
    """The telemetry charts, in a fragment of their own: they change once a second (``build_view``), and redrawing
    them with every latency refresh cost the server a serialization of four unchanged figures each time."""
    h = run.get_handle(run_id)
    if h is not None and not h.finished:
        draw_telemetry(ui.shared_view(h, build_view, max_age_s=LIVE_REFRESH_S * 0.8))


@st.fragment(run_every=FOLLOW_S)
def follow_study(watched_id: str | None) -> None:
    """While a study runs in this server, a page showing no live run (none yet, or the cell that just ended) attaches
    to the study's next run as soon as it starts; once the study is over, one last rerun drops this poll."""
    active = run.active_runs()
    if (active and active[0].run_id != watched_id) or (not active and study.active_study() is None):
        st.rerun()


newest = None if handle is not None else ui.newest_run(store)
if handle is None and newest is not None:
    st.subheader("The newest stored run")
    ui.render_summary(newest)
elif handle is None:
    st.info("No run yet. Pick **digits-cnn** (tiny, ~0.1 ms per inference) or **efficientnet-lite0** and press "
            "**Start run**; try a different precision or a tight memory limit and compare.")
    # An empty chart now also loads the browser's plotly bundle, so the first live point shows without that delay.
    st.plotly_chart(charts.empty_figure("Latency per inference", "press Start run: each inference appears here"),
                    key="chart_latency_idle", config={"displayModeBar": False})
elif not handle.finished:
    live_view(handle.run_id)
    live_telemetry(handle.run_id)
else:
    view = ui.shared_view(handle, build_view, max_age_s=LIVE_REFRESH_S * 0.8)
    result = handle.result or {"run_id": handle.run_id, "status": handle.status, "error": handle.reason}
    ui.render_summary(result)
    draw(handle, view, final=True)  # the charts the run was watched on stay where they were
    ui.render_why(result, store)

if (handle is None or handle.finished) and study.active_study() is not None:
    follow_study(handle.run_id if handle is not None else None)
