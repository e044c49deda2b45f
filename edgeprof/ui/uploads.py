"""Model files from the browser: the upload limit in force, storing an upload, the uploaded models, a model's name
as people know it, and the Run page's Inputs panel."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import streamlit as st

from .. import paths
from ..errors import EdgeprofError
from .words import md_text

UPLOAD_CAP_MB = 200  # matches server.maxUploadSize in .streamlit/config.toml; upload_cap_mb() is the one in force


def upload_cap_mb() -> int:
    """The upload limit in force: the server's ``server.maxUploadSize``, at most UPLOAD_CAP_MB. Pages pass it to
    st.file_uploader so the browser refuses a bigger file with a clear message; a widget limit above the server's
    would let the file through to a bare "AxiosError: Request failed with status code 413" instead."""
    try:
        server_mb = int(st.get_option("server.maxUploadSize"))
    except (TypeError, ValueError, RuntimeError):
        return UPLOAD_CAP_MB
    return max(1, min(UPLOAD_CAP_MB, server_mb))


def save_upload(uploaded) -> Path | None:
    """Store an st.file_uploader model file with catalog.add_upload (size, extension and format checked)."""
    from ..models.catalog import add_upload

    if uploaded is None:
        return None
    cap_mb = upload_cap_mb()
    if uploaded.size > cap_mb * 1024 * 1024:
        st.error(f"{uploaded.name} is {uploaded.size / 1e6:.1f} MB, over the {cap_mb} MB upload limit. "
                 "Run it from a path on the device instead: `python -m edgeprof run --model PATH`.")
        return None
    try:
        path = add_upload(uploaded.getvalue(), uploaded.name, max_bytes=cap_mb * 1024 * 1024)
    except EdgeprofError as exc:
        st.error(str(exc))
        return None
    names = st.session_state.setdefault("upload_names", {})
    names[str(path)] = uploaded.name
    return path


def model_uploader(label: str, key: str) -> tuple[Path, str] | None:
    """A model file uploader capped at the server's limit; returns (stored path, original name) once per new file."""
    cap_mb = upload_cap_mb()
    up = st.file_uploader(f"{label} (at most {cap_mb} MB)", type=["onnx", "tflite"], key=key, max_upload_size=cap_mb)
    if up is None or st.session_state.get(f"{key}_done") == up.file_id:
        return None
    path = save_upload(up)
    if path is None:
        return None
    st.session_state[f"{key}_done"] = up.file_id
    return path, up.name


def uploaded_models() -> list[str]:
    """Paths of the models stored in the uploads folder, newest first."""
    folder = paths.uploads_dir()
    files = [p for p in folder.iterdir() if p.suffix.lower() in (".onnx", ".tflite") and not p.name.startswith(".")]
    return [str(p) for p in sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)]


def model_label(model: str) -> str:
    """A model as people know it: a bundled name, or an upload by the name it was uploaded with."""
    from ..models.catalog import upload_names

    names = {**upload_names(), **st.session_state.get("upload_names", {})}
    if model in names:
        return f"{names[model]} (uploaded)"
    if os.sep in model or "/" in model:
        return Path(model).name
    return model


@st.cache_data(show_spinner=False, max_entries=64)
def _declared_inputs(model: str, precision: str | None, runtime: str | None, mtime: float) -> list[dict]:
    """The model's declared inputs, read from its file once per (file, change time): a large ONNX file takes a
    moment to parse, and the page reruns on every click."""
    from ..models.catalog import model_inputs, resolve_variant

    return [s.to_dict() for s in model_inputs(resolve_variant(model, precision, runtime, build=False))]


def inputs_panel(model: str, precision: str | None, runtime: str | None) -> tuple[dict, dict]:
    """The Run page's Inputs panel: each input's name, type and declared shape, with a field for its shape and one
    for a fill value (the page's --shape and --fill). Returns the texts typed, {input: text}, for
    :func:`edgeprof.runtimes.inputs.parse_given`. Opens by itself when edgeprof would have to guess something."""
    from ..runtimes import TensorSpec
    from ..runtimes.inputs import describe_shape, format_shape, plan_feeds

    try:
        mtime = Path(model).stat().st_mtime if Path(model).is_file() else 0.0
        specs = [TensorSpec(**{**d, "shape": tuple(d["shape"]),
                               "stored_shape": tuple(d["stored_shape"]) if d.get("stored_shape") else None})
                 for d in _declared_inputs(model, precision, runtime, mtime)]
    except EdgeprofError as exc:
        st.caption(f"Inputs: the model's inputs cannot be read ({exc})")
        return {}, {}
    try:
        plan = plan_feeds(specs)
        feeds = list(plan.feeds)
    except EdgeprofError as exc:
        st.warning(str(exc))
        return {}, {}
    guessed = any(f.guessed for f in feeds)
    title = f"Inputs: {len(specs)}" + (" (some sizes are guessed: check them)" if guessed else "")
    shapes, fills = {}, {}
    with st.expander(title, expanded=guessed):
        st.caption("What each run feeds the model. Empty fields: sizes as declared (a dynamic size is guessed) and "
                   "random values. Set a shape like 1x512, or a value that every element takes (a sample rate such "
                   "as 16000, a token id): audio and text models often need both.")
        for spec, feed in zip(specs, feeds, strict=True):
            c1, c2, c3 = st.columns([3, 2, 2])
            kind = f"sequence of {spec.dtype}" if spec.kind == "sequence" else spec.dtype
            dims = md_text(describe_shape(spec.shape)[1:-1])  # a dimension's name comes from the file
            c1.markdown(f"**{md_text(spec.name)}** · {md_text(kind)} · declared [{dims}]")
            shapes[spec.name] = c2.text_input(
                "Shape", key=f"input_shape|{model}|{spec.name}",
                placeholder=f"{format_shape(feed.shape) or 'scalar'} ({'guessed' if feed.guessed else 'as declared'})",
                help="Sizes separated by x, e.g. 1x512; empty for the declared (or guessed) shape.")
            fills[spec.name] = c3.text_input(
                "Fill value", key=f"input_fill|{model}|{spec.name}", placeholder=feed.values,
                help="One value for every element, e.g. 16000; empty for random data.")
    return shapes, fills


def now_utc() -> datetime:
    return datetime.now(timezone.utc)
