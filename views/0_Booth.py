"""Try it: the booth's one screen. A photo (bundled, uploaded or from the camera) through the bundled image classifier
in every precision on this device, as a row of cards and one sentence (``edgeprof.showcase``). The photo stays in
this browser session; each precision is a real, stored run."""

from __future__ import annotations

import html

import streamlit as st

from edgeprof import auth, booth, showcase, ui
from edgeprof.errors import EdgeprofError
from edgeprof.models.catalog import get_model, model_names
from edgeprof.models.preprocess import image_tensor

BUSY_REFRESH_S = 2.0

store = ui.page_setup()
st.markdown(
    """<style>
    .block-container {padding-top: 2.2rem; padding-bottom: 0.5rem;}
    .ep-card-label {font-size: 1.35rem; font-weight: 600; line-height: 1.2; margin: 0.1rem 0 0.2rem 0;}
    .ep-card-figs {font-size: 0.92rem; line-height: 1.5;}
    </style>""", unsafe_allow_html=True)
st.markdown("### What does a smaller model cost?")
st.markdown("Pick a photo and this device names what it shows with the same AI model stored four ways, from full "
            "32-bit numbers (FP32) down to 8-bit (INT8): you see how much faster and smaller each one is, and whether "
            "it still gives the same answer.")


@st.fragment(run_every=BUSY_REFRESH_S)
def busy_line() -> None:
    """Shown before anyone presses anything, and kept current: who holds the device and the wait."""
    busy = showcase.device_busy(store)
    st.session_state["showcase_busy"] = busy is not None
    if busy is None:
        st.caption(":green[●] The device is free.")
    else:
        st.info(f"{busy.sentence} This page updates by itself.", icon=":material/hourglass_top:")


@st.cache_resource(show_spinner=False)
def _model():
    return get_model(showcase.SHOWCASE_MODEL)


def _tensors(image) -> dict:
    info = _model()
    return {layout: image_tensor(image, info.preprocessing, layout) for layout in ("NCHW", "NHWC")}


def chosen_photo():
    """(PIL image, caption) of the photo chosen, newest source first: camera, upload, sample."""
    if st.session_state.get("use_camera"):
        shot = st.camera_input("Take a photo", key="camera_photo", label_visibility="collapsed")
        if shot is not None:
            return shot.getvalue(), "your camera photo"
    upload = st.file_uploader(f"…or upload a photo (up to {showcase.MAX_PHOTO_BYTES // 2**20} MB)",
                              type=["jpg", "jpeg", "png", "webp", "bmp", "gif"], key="photo_upload",
                              max_upload_size=showcase.MAX_PHOTO_BYTES // 2**20)
    if upload is not None:
        return upload.getvalue(), "your photo"
    samples = showcase.sample_photos()
    name = st.session_state.get("sample_photo") or "Chelsea"
    return samples[name].read_bytes() if name in samples else None, name


left, right = st.columns([1, 3.2], gap="medium")
with left:
    busy_line()
    samples = showcase.sample_photos()
    st.selectbox("Sample photo", list(samples), index=list(samples).index("Chelsea") if "Chelsea" in samples else 0,
                 key="sample_photo")
    data, caption = chosen_photo()
    st.toggle("Use the camera", key="use_camera")
    image = None
    if data is not None:
        try:
            image = showcase.open_photo(data)
        except showcase.PhotoError as exc:
            st.error(str(exc))
    if image is not None:
        st.image(image, caption=caption, width=180)
    go = st.button("Classify this photo", type="primary", key="classify", disabled=image is None,
                   width="stretch")


def visitor_bound():
    """A visitor's limits on each run (booth.bound_run: a memory cap from the variant's footprint, a wall-clock
    bound); staff run as configured."""
    if auth.can_modify():
        return None
    bundled = model_names()
    return lambda cfg: booth.bound_run(cfg, bundled, booth.limits_for(store, cfg.model, cfg.precision, cfg.runtime))


def card(c: showcase.Card, fp32_ms: float | None) -> None:
    with st.container(border=True):
        st.markdown(f"**{c.title}**")
        if c.error:
            st.warning(auth.for_viewer(c.error))
            return
        sure = f"{c.confidence:.0%} sure" if c.confidence is not None else ""
        agree = ("same answer as FP32" if c.agrees else "a different answer from FP32") if c.agrees is not None \
            else "the reference"
        mark = "✓ " if c.agrees else ("✗ " if c.agrees is False else "")
        speed = ""
        if fp32_ms and c.p50_ms and c.precision != "fp32":
            r = fp32_ms / c.p50_ms
            speed = f" ({r:.1f}x faster)" if r >= 1.05 else (f" ({1 / r:.1f}x slower)" if r <= 0.95 else "")
        figs = [f"{ui.fmt_ms(c.p50_ms)} per photo{speed}", f"{ui.fmt_file_mb(c.size_mb)} model" if c.size_mb else "",
                f"{c.peak_mb:.0f} MB peak memory" if c.peak_mb else "", f"{mark}{agree}"]
        st.markdown(f'<div class="ep-card-label">{html.escape(c.label or "?")}</div>'
                    f'<div class="ep-card-figs">{html.escape(sure)}<br>'
                    + "<br>".join(html.escape(f) for f in figs if f) + "</div>", unsafe_allow_html=True)


with right:
    if go and image is not None:
        runtime = showcase.showcase_runtime()
        busy = showcase.device_busy(store)
        if busy is not None:
            st.info(busy.sentence)
        else:
            slot = st.empty()
            with slot.status("Running the photo in every precision…", expanded=False) as status:
                def progress(i, n, precision):
                    status.update(label=f"Running {showcase.PRECISION_LABELS.get(precision, precision)} "
                                        f"({i + 1} of {n})…")
                try:
                    result = showcase.run_photo(_tensors(image), store, runtime=runtime, progress=progress,
                                               bound=visitor_bound())
                except EdgeprofError as exc:
                    status.update(label="Not run", state="error")
                    st.info(auth.for_viewer(str(exc)))
                    result = None
            if result is not None:
                slot.empty()
                st.session_state["showcase_result"] = (result, caption)
    shown = st.session_state.get("showcase_result")
    if shown is None:
        st.markdown("The cards for each precision appear here: the answer and how sure it is, the time per photo, "
                    "the model's size and the memory it took.")
    else:
        result, what = shown
        st.markdown(f"**{html.escape(result.sentence)}**")
        cols = st.columns(len(result.cards))
        fp32_ms = next((c.p50_ms for c in result.cards if c.precision == "fp32"), None)
        for col, c in zip(cols, result.cards, strict=True):
            with col:
                card(c, fp32_ms)
        backend = next((c.backend for c in result.cards if c.backend), None)
        peak = next((c.peak_source for c in result.cards if c.peak_source), None)
        st.caption(
            f"For {what}. Each card is a real run on this device{f' ({backend})' if backend else ''}: "
            f"{showcase.SHOWCASE_WARMUP} warm-up inferences, then {showcase.SHOWCASE_SECONDS:g} s timed; time per "
            "photo is the median (p50). Size is the model file; peak memory is the run's "
            f"{'memory charged to its cgroup' if peak == 'charged' else 'peak resident set size (RSS)'}. "
            "The runs are in the Runs page; the photo is not kept.")
