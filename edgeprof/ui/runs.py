"""Runs in lists: a run's label in a picker, the runs of this device or the fleet, the Runs page's table and its
filter widgets."""

from __future__ import annotations

from datetime import date, datetime, time

import numpy as np
import pandas as pd
import streamlit as st

from .. import charts
from ..stats import plural
from ..store import columns
from .uploads import model_label
from .words import fmt_ms

# Variables a user can correlate across runs: label -> column of runs_frame()
VARIABLES = columns.CORRELATE
COLUMN_LABELS = {v: k for k, v in VARIABLES.items()}


def _known(v) -> bool:
    """Whether a field of a stored run holds a value (not None, NaN or an empty string)."""
    if v is None:
        return False
    try:
        return not pd.isna(v) and str(v) != ""
    except (TypeError, ValueError):
        return True


def run_label(row) -> str:
    """A run in a picker: when, what (model, precision, runtime, limit, threads), how it ended, its p50 (and, for a run
    the store keeps reduced, that it came from a reservoir: ``run.recorder``), its id's end. A part the run lacks (a
    failed run has no runtime, no p50) is left out, never written "nan" or "None"."""
    created = row.get("created_at")
    when = pd.Timestamp(created).strftime("%m-%d %H:%M:%S") if _known(created) else "?"
    p50 = row.get("p50_ms")
    lat = f", p50 {fmt_ms(p50)}" if _known(p50) else ""
    lat += " from a reservoir of its samples" if lat and row.get("retention") == "reduced" else ""
    model = model_label(str(row.get("model"))) if _known(row.get("model")) else "?"
    what = " ".join([model] + [str(row["precision"])] * _known(row.get("precision")))
    threads = plural(int(row["threads"]), "thread") if _known(row.get("threads")) else None
    parts = [what, str(row["runtime"]) if _known(row.get("runtime")) else None,
             limit_words(row.get("memory_limit_mb")), threads]
    rid = str(row["run_id"])[-6:]
    status = row.get("status") if _known(row.get("status")) else "?"
    return f"{when} {' · '.join(p for p in parts if p)} [{status}{lat}] …{rid}"


def fleet_choice(key: str) -> str | None:
    """With ``EDGEPROF_FLEET`` set, a "this device / the fleet" choice; the fleet URL when the fleet is chosen."""
    from ..store.fleet import fleet_url

    url = fleet_url()
    if not url:
        return None
    scope = st.radio("Runs of", ["this device", "the fleet"], horizontal=True, key=key,
                     help=f"the fleet: every device's runs pushed to {url} (EDGEPROF_FLEET)")
    return url if scope == "the fleet" else None


@st.cache_data(ttl=30, show_spinner="Reading the fleet...")
def _fleet_runs(url: str) -> pd.DataFrame:
    from ..store.fleet import list_runs

    return list_runs(url)


class FleetSamples:
    """Samples of the fleet's runs where a page reads them from the store (``latency``, ``telemetry``)."""

    def __init__(self, url: str):
        self.url = url

    def latency(self, run_id, **kw) -> pd.DataFrame:
        from ..store.fleet import Fleet

        with Fleet(self.url) as fleet:
            return fleet.latency(run_id, **kw)

    def telemetry(self, run_id, **kw) -> pd.DataFrame:
        from ..store.fleet import Fleet

        with Fleet(self.url) as fleet:
            return fleet.telemetry(run_id, **kw)

    def steady_subsample(self, run_ids, **kw) -> dict:
        from ..store.fleet import Fleet

        with Fleet(self.url) as fleet:
            return fleet.steady_subsample(run_ids, **kw)

    def latency_windows(self, run_id, window_s) -> tuple:
        from ..store.fleet import Fleet

        with Fleet(self.url) as fleet:
            return fleet.latency_windows(run_id, window_s)

    def latency_timeline(self, run_id, **kw) -> dict:
        from ..store.fleet import Fleet

        with Fleet(self.url) as fleet:
            return fleet.latency_timeline(run_id, **kw)


def samples(store, fleet: str | None):
    """Where a page reads latency and telemetry: the store, or the fleet at ``fleet``."""
    return FleetSamples(fleet) if fleet else store


def fleet_run(url: str, run_id: str) -> dict | None:
    """One run of the fleet (``Fleet.get_run``)."""
    from ..store.fleet import Fleet

    with Fleet(url) as fleet:
        return fleet.get_run(run_id)


def runs_frame(store, fleet: str | None = None, **filters) -> pd.DataFrame:
    """store.list_runs (with its derived columns: bits, model size in MB, peak RAM) plus a label for pickers; with
    ``fleet`` (a URL), every device's runs there instead (``hostname`` is then each run's device name)."""
    df = _fleet_runs(fleet).copy() if fleet else store.list_runs(**filters)
    df["label"] = [run_label(r) for r in df.to_dict("records")] if len(df) else pd.Series(dtype=str)
    return df


def limit_words(mb) -> str:
    """A run's memory limit as a person reads it: ``no limit`` or ``256 MB``."""
    return "no limit" if mb is None or pd.isna(mb) else charts.fmt_mb(float(mb))


NUMBER_FORMATS = {"threads": "{:.0f}", "p50 (ms)": "{:.3f}", "p90 (ms)": "{:.3f}", "inferences/s": "{:.1f}",
                  "peak charged (MB)": "{:.0f}", "peak RSS (MB)": "{:.0f}"}


def runs_table(df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The Runs page's table and its column config: words for columns, "no limit" for an empty limit, the model by
    the name it was uploaded with, a value a run lacks written "-" as the CLI writes it (a failed run has no runtime
    and no p50), never "None" or "nan". Numbers are written as text, right-aligned (as the Models page writes its
    sizes): Streamlit's table draws a missing number as a grey "None" whatever a Styler says, so a number column
    cannot show "-"; sorting by such a column sorts the text, which this page, paged newest first, can live with."""
    num = lambda col: pd.to_numeric(df[col], errors="coerce").astype(float)  # noqa: E731
    text = lambda col: [str(v) if _known(v) else "-" for v in df[col]]  # noqa: E731
    table = pd.DataFrame({
        "started (UTC)": pd.to_datetime(df["created_at"]), "device": _device_column(df),
        "model": [model_label(str(m)) if _known(m) else "-" for m in df["model"]], "precision": text("precision"),
        "runtime": text("runtime"), "threads": num("threads"),
        "memory limit": [limit_words(v) for v in df["memory_limit_mb"]], "status": text("status"),
        "p50 (ms)": num("p50_ms"), "p90 (ms)": num("p90_ms"), "inferences/s": num("throughput_ips"),
        "peak charged (MB)": num("peak_charged_mb"), "peak RSS (MB)": num("peak_rss_mb"), "run": df["run_id"],
    })
    for col, spec in NUMBER_FORMATS.items():
        table[col] = [spec.format(v) if np.isfinite(v) else "-" for v in table[col]]
    config = {"started (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
              "status": st.column_config.TextColumn(width="medium"),
              **{col: st.column_config.TextColumn(alignment="right") for col in NUMBER_FORMATS}}
    return table, config


def _device_column(df: pd.DataFrame) -> pd.Series:
    """Each run's device as people call it (``compare.device_labels``: its name, by device id)."""
    from ..compare import device_keys, device_labels

    if df.empty:
        return pd.Series(dtype=str)
    return device_keys(df).map(device_labels(df))


def filter_runs(df: pd.DataFrame, key: str, *, default_status: list[str] | None = None, dates: bool = True) -> pd.DataFrame:
    """Filter widgets (device, model, precision, runtime, memory limit, status, dates) in two rows; returns the
    filtered frame."""
    if df.empty:
        return df
    cols = st.columns(4) + st.columns(3 if dates else 2)
    devices = _device_column(df)
    hosts = sorted(devices.dropna().astype(str).unique())
    models = sorted(df["model"].dropna().astype(str).unique())
    precisions = sorted(df["precision"].dropna().astype(str).unique())
    statuses = sorted(df["status"].dropna().astype(str).unique())
    dev = cols[0].multiselect("Device", hosts, key=f"{key}_device", placeholder="all devices")
    mod = cols[1].multiselect("Model", models, key=f"{key}_model", format_func=model_label, placeholder="all models")
    pre = cols[2].multiselect("Precision", precisions, key=f"{key}_precision", placeholder="all")
    run = cols[3].multiselect("Runtime", sorted(df["runtime"].dropna().astype(str).unique()), key=f"{key}_runtime",
                              placeholder="all")
    limits = sorted({limit_words(v) for v in df["memory_limit_mb"]}, key=lambda w: (w != "no limit", len(w), w))
    lim = cols[4].multiselect("Memory limit", limits, key=f"{key}_limit", placeholder="any limit")
    default = [s for s in (default_status or []) if s in statuses]
    sta = cols[5].multiselect("Status", statuses, default=default, key=f"{key}_status", placeholder="any status")
    out = df
    if run:
        out = out[out["runtime"].astype(str).isin(run)]
    if lim:
        out = out[[limit_words(v) in lim for v in out["memory_limit_mb"]]]
    if dev:
        out = out[devices.loc[out.index].astype(str).isin(dev)]
    if mod:
        out = out[out["model"].astype(str).isin(mod)]
    if pre:
        out = out[out["precision"].astype(str).isin(pre)]
    if sta:
        out = out[out["status"].astype(str).isin(sta)]
    created = pd.to_datetime(df["created_at"], errors="coerce") if dates else None
    if dates and created.notna().any():  # any stored time, 9999-12-31 too (time.max: no day after it to overflow)
        lo, hi = created.min().date(), created.max().date()
        picked = cols[6].date_input("Date (UTC)", value=(lo, hi), key=f"{key}_dates")
        c = pd.to_datetime(out["created_at"], errors="coerce")
        if isinstance(picked, (tuple, list)) and len(picked) == 2:
            out = out[(c >= datetime.combine(picked[0], time.min)) & (c <= datetime.combine(picked[1], time.max))]
        elif isinstance(picked, date):
            out = out[c.dt.date == picked]
    return out
