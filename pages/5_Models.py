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
                     "size (MB)": None if v.size_bytes is None else v.size_bytes / 1e6,
                     "ready": "yes" if v.built else "quantized on first use", "shipped": v.shipped,
                     "layout": v.layout, "built with": v.built_with, "what quantization changed": changed(v)})
for path in ui.uploaded_models():
    rows.append({"model": ui.model_label(path), "format": "tflite" if path.endswith(".tflite") else "onnx",
                 "precision": "(from the file)", "size (MB)": os.path.getsize(path) / 1e6,
                 "ready": "yes", "shipped": False, "layout": None, "built with": "uploaded"})
if not rows:
    st.info("No models: restore the bundled ones with `git checkout models`, or upload one below.")
else:
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="models_table",
                 column_config={"size (MB)": st.column_config.NumberColumn(format="%.3f")})
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

st.subheader("Upload a model")
if not auth.can_modify():
    st.info(f"Uploading models is for staff at this booth: visitors run the bundled ones; {auth.STAFF_HINT}.")
else:
    stored = ui.model_uploader(".onnx or .tflite", "model_upload")
    if stored is not None:
        st.success(f"Stored {stored[1]} as {stored[0].name}; pick it on the Run page.")
