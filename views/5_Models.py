"""Models: the catalog with sizes, fidelity of each compressed variant, quantization on the device, uploads."""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from edgeprof import auth, booth, run, ui
from edgeprof.errors import EdgeprofError
from edgeprof.models import catalog
from edgeprof.models.fidelity import fidelity_data

QUANT_PRECISIONS = ["fp16", "int8-dynamic", "int8-static"]

ui.page_setup("Models")
st.caption("Every bundled model in ONNX (fp32 ships; the others are quantized here and cached) and TFLite. "
           "Fidelity says how far a compressed variant's answers move from its fp32 parent's.")

try:
    models = catalog.list_models()
except EdgeprofError as exc:
    ui.show_error(exc, "The model catalog cannot be read")
    st.stop()

def changed(v) -> str | None:
    """What building the variant changed (its quantization report), for derived ONNX variants."""
    from edgeprof.models.quantize import describe_report

    if v.shipped or v.precision == "fp32":
        return None
    return describe_report(v.quantization) if v.built else "not built yet"


rows = []
for m in models:
    for v in m.variants:
        rows.append({"model": m.name, "format": v.format, "precision": v.precision,
                     "size (MB)": "not built" if v.size_bytes is None else f"{v.size_bytes / 1e6:.3f}",
                     "ready": "yes" if v.built else "quantized on first use", "shipped": v.shipped,
                     "layout": v.layout, "built with": v.built_with, "what quantization changed": changed(v)})
for path in ui.uploaded_models():
    rows.append({"model": ui.model_label(path), "format": "tflite" if path.endswith(".tflite") else "onnx",
                 "precision": "(from the file)", "size (MB)": f"{os.path.getsize(path) / 1e6:.3f}",
                 "ready": "yes", "shipped": False, "layout": None, "built with": "uploaded"})
if not rows:
    st.info("No models: restore the bundled ones with `git checkout models`, or upload one below.")
else:
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="models_table",
                 column_config={"size (MB)": st.column_config.TextColumn(alignment="right")})
for m in models:
    with st.expander(f"{m.name}: {m.task}"):
        st.markdown(f"{m.description}\n\nSource: {m.source}. Licence: {m.licence}. Input: `{m.input}`.")
        st.caption(f"Fidelity is measured on {fidelity_data(m)}.")

names = [m.name for m in models]


@st.cache_data(show_spinner=False, max_entries=8)
def fidelity_rows(name: str) -> list[dict]:
    from edgeprof.models.fidelity import fidelity

    return fidelity(name)


st.subheader("Fidelity")
staff = auth.can_modify()  # quantizing and fidelity keep the device busy for minutes: staff work at a booth
if names and not staff:
    st.info(booth.staff_only("fidelity"))
elif names:
    c1, c2 = st.columns([3, 1])
    fid_model = c1.selectbox("Model", names + [p for p in ui.uploaded_models() if p.endswith(".onnx")], key="fid_model",
                             format_func=ui.model_label)
    if c2.button("Compute fidelity", key="fidelity"):
        with st.spinner(f"Running every variant of {fid_model} on the evaluation inputs (EfficientNet takes a while)..."):
            try:
                with run.device_work(f"computing the fidelity of {fid_model}"):
                    st.session_state["fid_result"] = (fid_model, fidelity_rows(fid_model))
            except EdgeprofError as exc:
                ui.show_error(exc, "Fidelity failed")
    got = st.session_state.get("fid_result")
    if got and got[0] == fid_model:
        st.dataframe(pd.DataFrame([{k: v for k, v in r.items() if k != "outputs"} for r in got[1]]), hide_index=True,
                     key="fid_table",
                     column_config={k: st.column_config.NumberColumn(format="%.4f")
                                    for k in ("top1_agreement", "top5_overlap", "mean_kl", "cosine", "accuracy")})
        st.caption("top1_agreement: share of inputs where the variant's top answer equals fp32's. accuracy: against "
                   "the true labels where they ship (digits). mean_kl: 0 means identical output distributions. "
                   "rel_error and sqnr_db (dB, higher is closer) judge outputs that are not class scores; each row's "
                   "figures are those of its primary output.")
        for note in sorted({r["note"] for r in got[1] if r.get("note")}):
            st.caption(f"Data: {note}.")

st.subheader("Quantize")
if names and not staff:
    st.info(booth.staff_only("quantize"))
elif names:
    c1, c2, c3 = st.columns([2, 2, 1])
    q_model = c1.selectbox("Model to quantize", names + [p for p in ui.uploaded_models() if p.endswith(".onnx")],
                           key="q_model", format_func=ui.model_label)
    q_prec = c2.selectbox("Target precision", QUANT_PRECISIONS, key="q_precision")
    if c3.button("Quantize", key="quantize"):
        bar = st.progress(0.0, text="starting")
        steps: list[str] = []

        def progress(msg: str) -> None:
            steps.append(msg)
            bar.progress(min(0.95, 0.15 * len(steps)), text=msg)

        try:
            with run.device_work(f"quantizing {ui.model_label(q_model)} to {q_prec}"):
                v = catalog.resolve_variant(q_model, q_prec, "onnx", progress=progress)
        except EdgeprofError as exc:
            bar.empty()
            ui.show_error(exc, "Quantization failed")
        else:
            bar.progress(1.0, text="done")
            size = f"{v.size_bytes / 1e6:.2f} MB" if v.size_bytes else "?"
            st.success(f"{ui.model_label(q_model)} at {q_prec}: {v.path.name} ({size}), {v.built_with}. "
                       "It is ready on the Run page.")
            st.caption(f"What quantization changed: {changed(v)}.")
            if steps:
                st.caption(" → ".join(steps))



def doctor_section(choices: list[str]) -> None:
    """The quantization doctor and the trade-off picture (``edgeprof.doctor``): staff only in booth mode, since each
    takes minutes of the device."""
    st.subheader("Quantization doctor")
    st.caption("Which operators cost int8-static its accuracy and which cost time, measured on this device; then the "
               "variants that keep the worst operators in fp32, and the smallest one that meets your target. The "
               "models run in an isolated, memory-capped process.")
    if not auth.can_modify():
        st.info(f"The quantization doctor is for staff at this booth (it keeps the device busy for minutes); "
                f"{auth.STAFF_HINT}.")
        return
    if not choices:
        st.info("No ONNX model to examine: restore the bundled ones with `git checkout models`, or upload one.")
        return
    from edgeprof import charts
    from edgeprof.doctor import diagnose, tradeoff
    from edgeprof.doctor.analysis import ADDS_NONE, DB_LEGEND, EXACT, db_text

    c1, c2, c3, c4 = st.columns([3, 2, 1, 1])
    model = c1.selectbox("Model to examine", choices, key="doctor_model", format_func=ui.model_label)
    target = c2.number_input("Target top-1 agreement with fp32", 0.5, 1.0, 0.99, 0.005, format="%.3f",
                             key="doctor_target")
    if c3.button("Diagnose", key="doctor_run"):
        with st.spinner(f"Comparing {ui.model_label(model)} with its int8-static variant tensor by tensor, then "
                        "measuring the mixes (a few minutes for EfficientNet)..."):
            try:
                st.session_state["doctor_result"] = (model, diagnose(model, target_agreement=float(target)))
            except EdgeprofError as exc:
                ui.show_error(exc, "The doctor could not examine this model")
    if c4.button("Trade-off", key="tradeoff_run"):
        with st.spinner(f"Measuring every variant of {ui.model_label(model)}, each in its own process..."):
            try:
                st.session_state["tradeoff_result"] = (model, tradeoff(model))
            except EdgeprofError as exc:
                ui.show_error(exc, "The trade-off could not be measured")
    got = st.session_state.get("doctor_result")
    if got and got[0] == model:
        doc = got[1]
        for sentence in doc["sentences"]:
            st.markdown(sentence)
        st.caption(f"{doc['precision']} against fp32 on {doc['inputs']} inputs ({doc['data_note']}); "
                   f"{doc['tensors_compared']} tensors compared; onnxruntime {doc['onnxruntime']}. Added SQNR: the "
                   "noise an operator adds to what reaches it (lower is worse); output SQNR: its output against "
                   "fp32's, everything before it included.")
        ops = pd.DataFrame(doc["operators"])
        for col in ("local_sqnr_db", "sqnr_db", "weight_sqnr_db"):  # the no-noise sentinel in words, never "200.0"
            ops[col] = [db_text(v, added=col == "local_sqnr_db") for v in ops[col]]
        ops = ops.rename(columns={
            "node": "operator", "op_type": "type", "runs_as": "runs as (int8)", "local_sqnr_db": "added SQNR (dB)",
            "sqnr_db": "output SQNR (dB)", "weight_sqnr_db": "weight SQNR (dB)", "relative_error": "relative error",
            "ms_fp32": "fp32 (ms)", "ms_int8": "int8 (ms)"})
        shown = ["operator", "type", "runs as (int8)", "added SQNR (dB)", "output SQNR (dB)", "weight SQNR (dB)",
                 "relative error", "fp32 (ms)", "int8 (ms)"]
        numbers = {c: st.column_config.NumberColumn(format="%.3f") for c in shown[6:]}
        numbers |= {c: st.column_config.TextColumn(alignment="right") for c in shown[3:6]}
        st.markdown("**Operators by the noise they add** (worst first)")
        st.dataframe(ops[shown], hide_index=True, key="doctor_by_error", column_config=numbers)
        if any(v in (EXACT, ADDS_NONE) for c in shown[3:6] for v in ops[c]):
            st.caption(f"SQNR columns: {DB_LEGEND}.")
        st.markdown("**Operators by int8 time** (slowest first)")
        by_time = ops.set_index("operator").loc[doc["by_time"]].reset_index()
        st.dataframe(by_time[shown], hide_index=True, key="doctor_by_time", column_config=numbers)
        points = pd.DataFrame(doc["points"]).reindex(columns=["label", "p50_ms", "top1_agreement", "accuracy",
                                                             "output_sqnr_db", "peak_mb", "error"])
        points["output_sqnr_db"] = [db_text(v) for v in points["output_sqnr_db"]]
        st.markdown("**Variants measured** (each in its own process; p50 of a bare loop on one input)")
        st.dataframe(points.rename(columns={"label": "variant", "p50_ms": "p50 (ms)", "top1_agreement": "agreement",
                                            "output_sqnr_db": "output SQNR (dB)", "peak_mb": "peak memory (MB)"}),
                     hide_index=True, key="doctor_points")
    got = st.session_state.get("tradeoff_result")
    if got and got[0] == model:
        doc = got[1]
        st.plotly_chart(charts.tradeoff_figure(doc["points"], doc["front"], fidelity_axis=doc["fidelity_axis"]),
                        key="tradeoff_chart")
        st.markdown(doc["sentence"])
        st.caption(f"Latency: {doc['latency']}. Memory: {doc['memory']}. Fidelity: against the fp32 file of the "
                   "same format; the bars are each p50's within-run 95% interval.")


doctor_section(names + [p for p in ui.uploaded_models() if p.endswith(".onnx")])

st.subheader("Upload a model")
if not auth.can_modify():
    st.info(f"Uploading models is for staff at this booth: visitors run the bundled ones; {auth.STAFF_HINT}.")
else:
    stored = ui.model_uploader(".onnx or .tflite", "model_upload")
    if stored is not None:
        st.success(f"Stored {stored[1]} as {stored[0].name}; pick it on the Run page.")


def memory_view() -> None:
    """The Memory view: the curves `edgeprof memory` stored (run.memory), drawn; staff can measure one here."""
    from edgeprof import charts
    from edgeprof.run import memory

    st.subheader("Memory")
    staff = auth.can_modify()
    st.caption("How much memory a model needs on this device: its footprint without a cap, the smallest cap that "
               "completes a run (found by bisection; an OOM kill is a result), and latency and memory pressure on a "
               "ladder of caps up to 1.5x the footprint."
               + (" Command line: `python -m edgeprof memory MODEL`." if staff else ""))
    try:
        store = ui.get_store()
        curves = memory.list_curves(store)
    except EdgeprofError as exc:
        ui.show_error(exc, "The stored memory curves cannot be read")
        return
    if staff and names:
        with st.expander("Measure a memory curve (about a minute; one run at a time on this device)"):
            c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
            m_model = c1.selectbox("Model", names, key="mem_model")
            m_prec = c2.selectbox("Precision", ["fp32", *QUANT_PRECISIONS], key="mem_precision")
            m_rt = c3.selectbox("Runtime", ["onnx", "tflite"], key="mem_runtime")
            m_evict = c4.checkbox("Evictable weights", key="mem_evictable",
                                  help="weights in file-backed pages a cap can evict (TFLite without XNNPACK; ONNX "
                                       "Runtime from external data, without pre-packing)")
            if st.button("Measure", key="mem_measure"):
                with st.status("Measuring the memory curve", expanded=True) as box:
                    try:
                        memory.measure_memory(m_model, m_prec, m_rt, evictable=m_evict, store=store,
                                              on_step=lambda text: box.write(text))
                    except EdgeprofError as exc:
                        box.update(label="The memory curve could not be measured", state="error")
                        ui.show_error(exc, "Measuring failed")
                    else:
                        box.update(label="Measured", state="complete")
                curves = memory.list_curves(store)
    if not curves and staff:
        st.info("No memory curve is stored yet: measure one above or with `python -m edgeprof memory digits-cnn`.")
        return
    if not curves:  # a visitor cannot reach the command line, nor measure here
        st.info(f"No memory curve is stored yet. {booth.staff_only('memory')} Meanwhile, every run you start on the "
                "Run page shows its peak memory.")
        return
    labels = {c["group_id"]: f"{c['label']} (minimum {charts.fmt_mb(c['min_cap_mb'])}, measured "
                             f"{str(c['measured_at'])[:16]})" for c in curves}
    gid = st.selectbox("Curve", list(labels), format_func=labels.get, key="mem_curve")
    group = store.get_group(gid) or {}
    doc = group.get("result") or {}
    words = doc.get("sentences") or {}
    for key in ("cliff", "slope", "mechanism"):
        if words.get(key):
            st.markdown(words[key])
    c1, c2 = st.columns([3, 2])
    c1.plotly_chart(charts.memory_curve_figure(doc), key="mem_curve_chart")
    c2.plotly_chart(charts.memory_breakdown_figure(doc.get("breakdown") or {}), key="mem_breakdown_chart")
    for sentence in (doc.get("breakdown") or {}).get("sentences", []):
        st.caption(sentence)
    mech = doc.get("mechanism") or {}
    search = doc.get("search") or {}
    st.caption(f"Caps by {mech.get('cap_note')}. Swap: {mech.get('swap_note')}. Search: "
               f"{len(search.get('probes') or [])} probes, stopped by {search.get('stopped_by')}, resolution "
               f"{charts.fmt_mb(search.get('resolution_mb'))}; {doc.get('seconds')} s in all. Intervals are within "
               "each run (one process per cap).")


memory_view()
