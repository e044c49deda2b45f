"""Small helpers shared by the dashboard pages: the store, the sidebar, run filters, the summary block, uploads.

Pages stay thin: gather inputs, call one library function, draw. Everything here that touches Streamlit is a helper
for pages; the figures themselves live in ``charts.py`` (pure).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time as _time
from datetime import date, datetime, time, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from . import charts, paths
from .errors import EdgeprofError
from .run.live import LiveBuffer
from .run.summary import phase_starts
from .store import columns
from .worker.priority import describe as describe_priority

UPLOAD_CAP_MB = 200  # matches server.maxUploadSize in .streamlit/config.toml; upload_cap_mb() is the one in force
PAGES = {  # page file -> (title, icon); pages/6_Study.py and pages/7_Report.py are picked up when present
    "0_Booth.py": ("Try it", ":material/photo_camera:"),
    "1_Run.py": ("Run", ":material/play_circle:"),
    "2_Runs.py": ("Runs", ":material/table_rows:"),
    "3_Correlations.py": ("Correlations", ":material/scatter_plot:"),
    "4_Compare.py": ("Compare", ":material/compare_arrows:"),
    "5_Models.py": ("Models", ":material/deployed_code:"),
    "6_Study.py": ("Study", ":material/grid_view:"),
    "7_Report.py": ("Report", ":material/description:"),
}

# Variables a user can correlate across runs: label -> column of runs_frame()
VARIABLES = columns.CORRELATE
COLUMN_LABELS = {v: k for k, v in VARIABLES.items()}


# ------------------------------------------------------------------------------------------------------- store

def db_path() -> Path:
    return paths.default_db()


@st.cache_resource(show_spinner=False)
def _store_for(path: str):
    """One Store per database path and process; recover() runs here, so once per process: runs whose owner died
    are marked interrupted and leftover cgroups are removed."""
    from .run import recover
    from .store import Store

    store = Store(path)
    with contextlib.suppress(EdgeprofError, OSError):
        recover(store)
    return store


def recover_at_start() -> None:
    """Open the store once per process before anything else, the password screen included, so that runs a crashed
    server left ``running`` are marked interrupted as soon as the next server serves its first page, not after the
    first login. Silent: an error is for ``get_store`` to show to someone let in."""
    with contextlib.suppress(EdgeprofError):
        _store_for(str(db_path()))


def get_store():
    """The run database, or a page-stopping st.error that says what to do."""
    from . import auth

    try:
        return _store_for(str(db_path()))
    except EdgeprofError as exc:
        st.error(auth.for_viewer(f"Cannot open the run database: {exc}"))
        st.info("Set EDGEPROF_DB to a writable file path and restart the dashboard.")
        st.stop()


def sidebar() -> None:
    from . import auth

    if auth.can_modify():  # a server path is for staff only
        with st.sidebar:
            st.caption(f"Database: `{db_path()}`")
    auth.admin_unlock()


def page_setup(title: str | None = None):
    """Every page starts here: the booth gate, the sidebar and the store (standalone pages under AppTest work too)."""
    from . import auth

    auth.gate()
    sidebar()
    if title:
        st.title(title)
    store = get_store()
    fleet_push(store)
    return store


@st.cache_resource
def _auto_push():
    from .store.fleet import AutoPush

    return AutoPush()


def fleet_push(store) -> None:
    """With ``EDGEPROF_FLEET`` set, push finished runs there in the background (queued while it is unreachable), and
    say in the sidebar how the last push went."""
    from .store.fleet import fleet_url

    url = fleet_url()
    if not url or store is None:
        return
    try:
        state = _auto_push().poke(store, url)
    except Exception as exc:  # the store busy or unreadable: the page itself says so
        state = {"ok": False, "error": str(exc)}
    if state.get("ok"):
        st.sidebar.caption(f"Fleet: runs pushed to {url} (last push sent {state['pushed']}).")
    elif state:
        st.sidebar.caption(f"Fleet: the last push did not reach {url}; it is queued and tried again. "
                           f"({state['error']})")


def page_link(page: str, label: str, query: dict | None = None) -> None:
    """st.page_link to another page; outside st.navigation (a page run on its own) a plain link instead."""
    try:
        st.page_link(page, label=label, query_params=query)
    except Exception:  # StreamlitPageNotFoundError and friends: the page is not registered in this session
        name = Path(page).stem.split("_", 1)[-1]
        q = "&".join(f"{k}={v}" for k, v in (query or {}).items())
        st.markdown(f"[{label}](/{name}{'?' + q if q else ''})")


_MARKDOWN = re.compile(r"([\\`\[\]<>$])")


def md_text(text) -> str:
    """``text`` to show inside markdown (st.markdown, st.error, captions) as text: the characters that open a link,
    an image, HTML, code, LaTeX or a Streamlit directive (``:red[...]``) are escaped, so a name from a bundle or a model
    file (``![b](http://host/x)``) never fetches or links anything. Emphasis marks stay (harmless, and common in
    names: int8_static)."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def show_error(exc: BaseException, what: str = "") -> None:
    """An error in one sentence; a visitor in booth mode reads it without the server's paths."""
    from . import auth

    prefix = f"{what}: " if what else ""
    st.error(auth.for_viewer(prefix + str(exc)))


# ------------------------------------------------------------------------------------------------------- runs

def run_label(row) -> str:
    """A run in a picker: when, what (model, precision, runtime, limit, threads), how it ended, its p50, its id's end."""
    created = row.get("created_at")
    when = pd.Timestamp(created).strftime("%m-%d %H:%M:%S") if created is not None and not pd.isna(created) else "?"
    p50 = row.get("p50_ms")
    lat = f", p50 {fmt_ms(p50)}" if p50 is not None and not pd.isna(p50) else ""
    model = model_label(str(row.get("model"))) if row.get("model") else "?"
    threads = f" · {int(row['threads'])} threads" if row.get("threads") is not None and not pd.isna(row["threads"]) else ""
    rid = str(row["run_id"])[-6:]
    return (f"{when} {model} {row.get('precision')} · {row.get('runtime')} · {limit_words(row.get('memory_limit_mb'))}"
            f"{threads} [{row.get('status')}{lat}] …{rid}")


def fleet_choice(key: str) -> str | None:
    """With ``EDGEPROF_FLEET`` set, a "this device / the fleet" choice; the fleet URL when the fleet is chosen."""
    from .store.fleet import fleet_url

    url = fleet_url()
    if not url:
        return None
    scope = st.radio("Runs of", ["this device", "the fleet"], horizontal=True, key=key,
                     help=f"the fleet: every device's runs pushed to {url} (EDGEPROF_FLEET)")
    return url if scope == "the fleet" else None


@st.cache_data(ttl=30, show_spinner="Reading the fleet...")
def _fleet_runs(url: str) -> pd.DataFrame:
    from .store.fleet import list_runs

    return list_runs(url)


class FleetSamples:
    """Samples of the fleet's runs where a page reads them from the store (``latency``, ``telemetry``)."""

    def __init__(self, url: str):
        self.url = url

    def latency(self, run_id, **kw) -> pd.DataFrame:
        from .store.fleet import Fleet

        with Fleet(self.url) as fleet:
            return fleet.latency(run_id, **kw)

    def telemetry(self, run_id, **kw) -> pd.DataFrame:
        from .store.fleet import Fleet

        with Fleet(self.url) as fleet:
            return fleet.telemetry(run_id, **kw)

    def steady_subsample(self, run_ids, **kw) -> dict:
        from .store.fleet import Fleet

        with Fleet(self.url) as fleet:
            return fleet.steady_subsample(run_ids, **kw)

    def latency_windows(self, run_id, window_s) -> tuple:
        from .store.fleet import Fleet

        with Fleet(self.url) as fleet:
            return fleet.latency_windows(run_id, window_s)

    def latency_timeline(self, run_id, **kw) -> dict:
        from .store.fleet import Fleet

        with Fleet(self.url) as fleet:
            return fleet.latency_timeline(run_id, **kw)


def samples(store, fleet: str | None):
    """Where a page reads latency and telemetry: the store, or the fleet at ``fleet``."""
    return FleetSamples(fleet) if fleet else store


def fleet_run(url: str, run_id: str) -> dict | None:
    """One run of the fleet (``Fleet.get_run``)."""
    from .store.fleet import Fleet

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


def runs_table(df: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The Runs page's table and its column formats: words for columns, "no limit" for an empty limit, the model by
    the name it was uploaded with, numbers as numbers (empty where not measured, never "None")."""
    num = lambda col: pd.to_numeric(df[col], errors="coerce").astype(float)  # noqa: E731
    table = pd.DataFrame({
        "started (UTC)": pd.to_datetime(df["created_at"]), "device": _device_column(df),
        "model": [model_label(str(m)) for m in df["model"]], "precision": df["precision"], "runtime": df["runtime"],
        "threads": df["threads"], "memory limit": [limit_words(v) for v in df["memory_limit_mb"]],
        "status": df["status"], "p50 (ms)": num("p50_ms"), "p90 (ms)": num("p90_ms"),
        "inferences/s": num("throughput_ips"), "peak charged (MB)": num("peak_charged_mb"),
        "peak RSS (MB)": num("peak_rss_mb"), "run": df["run_id"],
    })
    config = {"started (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
              "status": st.column_config.TextColumn(width="medium"),
              "p50 (ms)": st.column_config.NumberColumn(format="%.3f"),
              "p90 (ms)": st.column_config.NumberColumn(format="%.3f"),
              "inferences/s": st.column_config.NumberColumn(format="%.1f"),
              "peak charged (MB)": st.column_config.NumberColumn(format="%.0f"),
              "peak RSS (MB)": st.column_config.NumberColumn(format="%.0f")}
    return table, config


def _device_column(df: pd.DataFrame) -> pd.Series:
    """Each run's device as people call it (``compare.device_labels``: its name, by device id)."""
    from .compare import device_keys, device_labels

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


# ------------------------------------------------------------------------------------------------------- frames

def telemetry_frame(rows, t0_ns: int) -> pd.DataFrame:
    """Telemetry rows (t_ns, source, metric, value, unit) or a store frame -> long frame with t_s from ``t0_ns``."""
    if isinstance(rows, pd.DataFrame):
        df = rows.loc[:, ["t_ns", "source", "metric", "value", "unit"]].copy()
        df["metric"] = df["metric"].astype(str)
    else:
        df = pd.DataFrame(list(rows), columns=["t_ns", "source", "metric", "value", "unit"])
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    df["t_s"] = (df["t_ns"].astype("int64") - int(t0_ns)) / 1e9
    return df


def phase_spans(phases: list, t0_ns: int) -> dict:
    """(phase, t_ns, reason) events -> {"load": (s0, s1), "warmup": (s0, s1) or (s0, None)} in seconds from t0."""
    first = phase_starts(phases)
    to_s = lambda t: None if t is None else (t - t0_ns) / 1e9  # noqa: E731
    out = {}
    if "load" in first:
        out["load"] = (to_s(first["load"]), to_s(first.get("first")))
    if "warmup" in first:
        out["warmup"] = (to_s(first["warmup"]), to_s(first.get("steady")))
    return out


def source_stops(sources: list | None, t0_ns: int | None = None) -> dict:
    """{source: (seconds after ``t0_ns``, reason)} for the sources that stopped mid-run (a run's telemetry_sources);
    without ``t0_ns``, seconds after the run started."""
    out = {}
    for s in sources or []:
        if s.get("stopped_s") is None:
            continue
        t = (s["stopped_ns"] - t0_ns) / 1e9 if t0_ns is not None and s.get("stopped_ns") else s["stopped_s"]
        out[s["name"]] = (t, s.get("reason", ""))
    return out


def metric_label(metric: str) -> str:
    """A telemetry metric in words: ``cpu.worker_pct`` -> ``worker CPU (% of one core)`` (``telemetry.catalog``)."""
    from .telemetry import catalog

    return catalog.label(metric)


def footprint_table(footprints: pd.DataFrame) -> pd.DataFrame:
    """questions.MemoryEffect.footprints as a student reads it: units in the cells, "not measured" for a gap."""
    fp = footprints.reset_index()
    return pd.DataFrame({
        "variant": fp["variant"],
        "footprint": [charts.fmt_mb(v) if pd.notna(v) else "not measured (no run without a limit in a cgroup)"
                      for v in fp["footprint_mb"]],
        "p50 without a limit": [fmt_ms(v) if pd.notna(v) else "no run without a limit" for v in fp["uncapped_p50_ms"]],
    })


def thermal_reason(tel: pd.DataFrame) -> str:
    """Why there is no temperature/frequency chart: no sensor, and a frequency that never moved (said with its value)."""
    freq = tel.loc[tel["metric"].astype(str) == "cpu.freq_mhz", "value"] if tel is not None and len(tel) else []
    if len(freq):
        return (f"No temperature sensor is readable on this device, and its CPU frequency stayed at "
                f"{float(freq.median()):,.0f} MHz (a virtual machine reports its nominal one): nothing to plot.")
    return "No temperature or CPU-frequency sensor is readable on this device."


def newest_run(store) -> dict | None:
    """The newest stored run's summary (for a page that has no run of its own to show), or None."""
    try:
        df = store.list_runs(limit=1)
        run = store.get_run(str(df.iloc[0]["run_id"])) if len(df) else None
    except EdgeprofError:
        return None
    if run is None:
        return None
    return run.get("summary") or {"run_id": run["run_id"], "status": run["status"], "error": run.get("reason")}


def gpu_reason(sources: list | None) -> str:
    """Why there is no GPU telemetry, from the sampler's probe status (list of dicts: name, available, reason)."""
    for s in sources or []:
        if s.get("name") in ("nvml", "jetson") and not s.get("available"):
            return f"{s.get('name')}: {s.get('reason')}"
    return "no GPU source on this device"


@st.cache_resource(show_spinner=False)
def probe_status() -> list[dict]:
    """Telemetry sources' probe results, once per process (a probe can take a moment: NVML init, jtop)."""
    from .telemetry import probe_all

    try:
        return [s._asdict() for s in probe_all()]
    except Exception as exc:  # a broken sensor must not break the page
        return [{"name": "probe", "available": False, "reason": str(exc)}]


# ------------------------------------------------------------------------------------------------------- summary

def _fmt(v, nd=2, unit=""):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return f"{v:,.{nd}f}{unit}"


def fmt_ms(v) -> str:
    """A duration in ms with a unit that keeps it short: 12.3 us, 4.56 ms, 135 ms, 2.1 s."""
    if v is None or not np.isfinite(v):
        return "-"
    if v < 1:
        return f"{v * 1000:.3g} \u00b5s"
    if v < 100:
        return f"{v:.3g} ms"
    if v < 10_000:
        return f"{v:.0f} ms"
    return f"{v / 1000:.1f} s"


def fmt_rate(v) -> str:
    """Inferences a second: ``0.79/s``, ``12/s``, ``3,456/s``, ``45.6k/s``."""
    if v is None or not np.isfinite(v):
        return "-"
    if v >= 10_000:
        return f"{v / 1000:.1f}k/s"
    return f"{v:,.0f}/s" if v >= 10 else f"{v:.2g}/s"


def headline(figures: dict) -> None:
    """st.metric rows: load, first inference, warm-up / p50, p90, throughput (values may be None while running)."""
    items = [
        ("Load", fmt_ms(figures.get("load_ms"))),
        ("First inference", fmt_ms(figures.get("first_inference_ms"))),
        ("Warm-up", fmt_ms(figures.get("warmup_ms"))),
        ("p50 latency", fmt_ms(figures.get("p50_ms"))),
        ("p90 latency", fmt_ms(figures.get("p90_ms"))),
        ("Throughput", fmt_rate(figures.get("throughput_ips"))),
    ]
    for row in (items[:3], items[3:]):
        for col, (label, value) in zip(st.columns(3), row, strict=True):
            col.metric(label, value)


def summary_figures(result: dict) -> dict:
    lat = result.get("latency_ms") or {}
    return {"load_ms": result.get("load_ms"), "first_inference_ms": result.get("first_inference_ms"),
            "warmup_ms": result.get("warmup_ms"), "p50_ms": lat.get("p50"), "p90_ms": lat.get("p90"),
            "throughput_ips": result.get("throughput_ips")}


STATUS_WORDS = {
    "ok": "finished normally",
    "oom_killed": "was killed for running out of memory under its cap",
    "crashed": "crashed",
    "timed_out": "hit its wall-clock timeout",
    "stopped": "was stopped by a user",
    "failed": "failed",
    "interrupted": "was interrupted (the process running it ended)",
    "running": "is still running",
}


def render_summary(result: dict, *, run_id: str | None = None) -> None:
    """The end-of-run block: status in words, headline numbers, memory, flags in plain words, a link to Runs. A
    visitor in booth mode reads it without the server's paths (an error or a note may name a file)."""
    from . import auth

    result = auth.for_viewer(result)
    status = result.get("status")
    rid = run_id or result.get("run_id")
    words = f"Run `{rid}` {STATUS_WORDS.get(status, status)}."
    if status == "ok":
        st.success(words)
    elif status in ("stopped",):
        st.warning(words)
    else:
        error = str(result.get("error") or "").strip()
        st.error(words[:-1] + (f": {md_text(error)}" if error else "."))  # as written: "text.onnx is ..." keeps its name
    headline(summary_figures(result))
    lat = result.get("latency_ms") or {}
    mem = result.get("memory") or {}
    cpu = result.get("cpu") or {}
    lines = []
    if lat.get("n"):
        lines.append(f"**{lat['n']:,}** steady-state inferences; median {_fmt(lat.get('p50'), 3)} ms, "
                     f"p99 {_fmt(lat.get('p99'), 3)} ms, CoV {_fmt(lat.get('cov'), 3)}.")
        lines.append(interval_words(lat))
    cap = mem.get("requested_mb")
    limit = f"{charts.fmt_mb(cap)} ({mem.get('mechanism')})" if cap else "none"
    lines.append(f"Memory: peak charged {charts.fmt_mb(mem.get('peak_charged_mb'))} (the footprint the limit acts on), "
                 f"peak worker RSS {charts.fmt_mb(mem.get('peak_rss_mb'))} (also counts shared libraries); limit "
                 f"{limit}.")
    if result.get("cpu_priority"):  # none: an older run, or the worker never started
        lines.append(f"Worker CPU priority: {describe_priority(result.get('cpu_priority'))}.")
    if cpu:
        cores = f" of {cpu['cores']} cores" if cpu.get("cores") else ""
        others = f", other processes {_fmt(cpu.get('others_mean_pct'), 0, '%')}" if cpu.get("others_mean_pct") is not None else ""
        lines.append(f"CPU: device {_fmt(cpu.get('system_mean_pct'), 0, '%')} busy{cores}; worker "
                     f"{_fmt(cpu.get('worker_mean_pct'), 0, '%')}{others} (100% = one core).")
    be = result.get("backend") or {}
    if be.get("name"):
        via = (f"execution provider {be['execution_provider']}" if be.get("execution_provider")
               else f"delegate {be['delegate']}" if be.get("delegate") else "default provider")
        lines.append(md_text(f"Runtime: {be.get('name')} {be.get('version') or ''}, {via}, {be.get('threads')} threads."))
    st.markdown("  \n".join(lines))
    flags = result.get("flags") or []
    if flags:
        st.warning("**Why these numbers may be off:**\n\n" + "\n".join(f"- {md_text(f)}" for f in flags))
    elif status == "ok":
        st.caption("No suspect-run flags: nothing in this run makes its numbers doubtful.")
    notes = [n for n in result.get("notes") or [] if not n.startswith("writes delayed")]
    if notes:
        st.caption("Notes: " + md_text("; ".join(notes)) + ".")
    if rid:
        page_link("pages/2_Runs.py", label="Open this run in Runs", query={"run_id": rid})


WHY_METRICS = ["mem.pressure_some_pct", "mem.pressure_full_pct", "mem.major_faults_per_s"]


def why_lines(result: dict) -> list[str]:
    """Markdown lines on why a run is slow: memory pressure with faults and the charged split, energy per inference,
    the operator profile's coverage. Each says what it could not measure and why."""
    mem = result.get("memory") or {}
    lines = []
    pressure = mem.get("pressure")
    if isinstance(pressure, dict):
        if "unavailable" in pressure:
            lines.append(f"**Memory pressure**: unavailable ({pressure['unavailable']}).")
        else:
            whose = "in the worker's cgroup" if pressure.get("scope") == "cgroup" else \
                "system-wide (every process on the device counts)"
            parts = [f"some task stalled on memory {_fmt(pressure.get('some_pct'), 1, '%')} of the measured time, "
                     f"all tasks {_fmt(pressure.get('full_pct'), 1, '%')} ({whose})",
                     f"major faults {_fmt(mem.get('major_faults_per_s'), 0, '/s')}"]
            if mem.get("refaults_per_s") is not None:
                parts.append(f"refaults {_fmt(mem.get('refaults_per_s'), 0, '/s')}")
            if mem.get("anon_mb") is not None:
                parts.append(f"charged memory {_fmt(mem.get('anon_mb'), 1, ' MB')} anonymous and "
                             f"{_fmt(mem.get('file_mb'), 1, ' MB')} file pages")
            lines.append("**Memory pressure**: " + "; ".join(parts) + ".")
    energy = result.get("energy")
    if isinstance(energy, dict):
        if "unavailable" in energy:
            lines.append(f"**Energy**: unavailable ({energy['unavailable']}).")
        else:
            lines.append(f"**Energy**: {_fmt(energy.get('mj_per_inference'), 3, ' mJ')} per inference at "
                         f"{_fmt(energy.get('avg_power_w'), 2, ' W')} mean power over the steady phase "
                         f"({energy.get('source')}" + (f"; {energy['note']}" if energy.get("note") else "") + ").")
    prof = result.get("op_profile")
    if isinstance(prof, dict):
        if "unavailable" in prof:
            lines.append(f"**Operator profile**: unavailable ({prof['unavailable']}).")
        else:
            cov = prof.get("coverage")
            lines.append(f"**Operator profile**: {prof.get('inferences')} inferences profiled after the measurement; "
                         f"operators sum to {_fmt(prof.get('op_total_ms'), 3, ' ms')}"
                         + (f", {100 * cov:.0f}% of the steady p50" if cov is not None else "") + ".")
    return lines


def render_why(result: dict, store=None) -> None:
    """The Run page's "why" block: pressure, energy and operator lines, the operator chart and the pressure over
    time (read back from the store)."""
    lines = why_lines(result)
    if not lines:
        return
    from . import charts

    with st.expander("Why is it slow: operators, memory pressure, energy", expanded=True):
        st.markdown("  \n".join(lines))
        prof = result.get("op_profile")
        if isinstance(prof, dict) and "unavailable" not in prof:
            st.plotly_chart(charts.op_profile_figure(prof), key="why_ops", config={"displayModeBar": False})
            st.caption("Each bar: median ms per inference of that operator type over the profiled inferences, and "
                       "its share of the operator total. The profile phase runs after the steady phase, so the "
                       "latencies above were measured without the profiler.")
        elif prof is None:
            st.caption("Tick **Profile operators** (Advanced) before starting a run to see where its time goes.")
        rid = result.get("run_id")
        if store is not None and rid:
            try:
                tel = store.telemetry(rid, metrics=WHY_METRICS)
            except EdgeprofError:
                tel = None
            if tel is not None and not tel.empty:
                t0 = int(tel["t_ns"].min())
                st.plotly_chart(charts.pressure_figure(telemetry_frame(tel, t0)), key="why_pressure",
                                config={"displayModeBar": False})


def op_comparison(store, run_a: str, run_b: str, labels: dict | None = None, key: str = "ops") -> None:
    """Two runs' operator profiles side by side (``ops.compare_profiles``): the chart, the sentence under it, the
    table; an info box that says what to do when a run has no profile."""
    from . import charts
    from .ops import compare_profiles

    try:
        runs = [store.get_run(r) for r in (run_a, run_b)]
        cmp = compare_profiles(*runs)
    except EdgeprofError as exc:
        st.info(str(exc))
        return
    st.plotly_chart(charts.op_compare_figure(cmp.table, cmp.name_a, cmp.name_b), key=f"{key}_chart")
    st.markdown(f"**{md_text(cmp.sentence)}**")
    cov = [f"{name} {100 * c:.0f}%" for name, c in zip((cmp.name_a, cmp.name_b), cmp.coverage, strict=True)
           if c is not None]
    if cov:
        st.caption("Operator times are medians per inference over each run's profile phase (after its steady "
                   f"phase); they add up to {', '.join(cov)} of the steady p50.")
    table = cmp.table.rename(columns={"op_type": "operator", "ms_a": f"ms {cmp.name_a}", "ms_b": f"ms {cmp.name_b}",
                                      "ratio": "ratio", "diff_ms": "difference (ms)",
                                      "share_of_difference": "share of the difference"})
    st.dataframe(table, hide_index=True, key=f"{key}_table",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in table.columns[1:]})


def interval_words(lat: dict) -> str:
    """The run's 95% interval of the median and p90 with what it covers, in words a student can act on."""
    ci50, ci90 = lat.get("p50_ci"), lat.get("p90_ci")
    if not ci50:
        return f"No interval: {lat.get('ci_note') or 'too few samples'}."
    text = f"95% interval of the median {_fmt(ci50[0], 3)} to {_fmt(ci50[1], 3)} ms" + (
        f" (p90: {_fmt(ci90[0], 3)} to {_fmt(ci90[1], 3)} ms)" if ci90 else "")
    if lat.get("ci_scope") == "runs":
        return text + f", **between {lat.get('n_runs')} runs**: a rerun is expected inside it."
    return text + (", **within this run only**: the uncertainty from the noise inside this run, had the device kept "
                   "behaving as it did. Another run (a new process) can land outside it; to know how far, repeat the run "
                   "(`--repeat 3`) or compare with `edgeprof compare`.")


MEMORY_LIMIT_HELP = (
    "The most memory the model may use, as the kernel counts it: what the runtime allocates plus the model file's "
    "pages it reads (the memory *charged* to the run). A run that needs more is killed by the kernel (an OOM kill), "
    "which is recorded as a result. With *no limit* the run still measures how much it needed: its footprint.")


MEMORY_CHART_NOTE = ("*Charged* memory is what the limit acts on. Worker RSS also counts shared libraries that other "
                     "processes had loaded first, so it can sit above the limit without a kill.")


def footprint_hint(store, model: str, precision: str | None, runtime: str, threads: int) -> str:
    """What a student needs to choose a memory limit: this variant's footprint here (peak charged memory of its
    newest ok run without a binding limit), which number that is, and why worker RSS can be higher."""
    from .config import NON_BINDING
    from .study.runner import charges_memory

    try:
        df = store.list_runs(model=model, precision=precision, status="ok", runtime=runtime, threads=threads,
                             limit=50) if precision else store.list_runs(model=model, status="ok", runtime=runtime,
                                                                           threads=threads, limit=50)
    except EdgeprofError:
        return ""
    if not charges_memory():
        rss = df[df["memory_limit_mb"].isna() & df["peak_rss_mb"].notna()]
        if rss.empty:
            return "Peak memory not measured yet for this variant: run it once with **no limit**."
        return (f"This variant's peak worker RSS here: **{charts.fmt_mb(rss.iloc[0]['peak_rss_mb'])}**. This device has "
                "no memory cgroup, so a limit here bounds address space, which runtimes reserve far more of than they "
                "use: expect a run to fail well above that figure.")
    df = df[df["peak_charged_mb"].notna()]
    free = df[df["memory_limit_mb"].isna() | (df["memory_limit_mb"] >= NON_BINDING * df["peak_charged_mb"])]
    if free.empty:
        return ("Footprint not measured yet for this variant: run it once with **no limit** (it still measures the "
                "memory it needs), then choose a limit relative to that.")
    row = free.iloc[0]
    rss = row.get("peak_rss_mb")
    extra = (f" Worker RSS ({charts.fmt_mb(rss)}) also counts shared libraries that other processes had loaded "
             "already, so it can sit above a limit the run stays within." if rss and np.isfinite(rss)
             and rss > row["peak_charged_mb"] else "")
    return (f"This variant's footprint here: **{charts.fmt_mb(row['peak_charged_mb'])}** charged at its peak (run "
            f"…{str(row['run_id'])[-6:]}, no binding limit). A limit below that will likely OOM-kill the run.{extra}")


def duration_words(store, model: str, precision: str | None, runtime: str, threads: int, preset: str,
                   duration_s: float | None) -> str:
    """How long a run will take, honestly: a preset is a minimum time AND a minimum number of inferences, plus
    warm-up and loading; with this variant's measured latency the estimate says which one dominates."""
    from .config import RunConfig

    cfg = RunConfig(model=model, preset=preset, duration_s=duration_s or None)
    try:
        df = store.list_runs(model=model, precision=precision, status="ok", runtime=runtime, threads=threads, limit=5) \
            if precision else store.list_runs(model=model, status="ok", runtime=runtime, threads=threads, limit=5)
    except EdgeprofError:
        df = None
    n = cfg.min_iterations
    rule = (f"at least {cfg.min_duration_s:g} s of steady state and {n:,} inference{'' if n == 1 else 's'}, after "
            "loading and warm-up")
    if df is None or df.empty or pd.isna(df.iloc[0]["p50_ms"]):
        return f"A run measures {rule}."
    p50_s = float(df.iloc[0]["p50_ms"]) / 1000
    est = cfg.estimate_seconds(p50_s)
    why = (f": {cfg.min_iterations:,} inferences of ~{fmt_ms(p50_s * 1000)} take longer than {cfg.min_duration_s:g} s"
           if cfg.min_iterations * p50_s > cfg.min_duration_s else "")
    return f"A run measures {rule}: about {fmt_duration(est)} for this variant here{why}."


def fmt_duration(seconds: float) -> str:
    """``75`` -> ``1 min 15 s``, ``8.4`` -> ``8 s``."""
    s = int(round(seconds))
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"


@st.cache_resource(show_spinner=False)
def _backend_status(name: str):
    from .runtimes import registry

    return registry.get(name).status()


AUTO = "auto"


def backend_widgets(runtime: str, columns: list, disabled: bool = False) -> tuple[str | None, dict]:
    """The Run page's backend selectbox and one widget per option of the backend it runs on (``runtimes.registry``):
    the first column takes the backend, the next ones its options; an option whose values a build may lack (the
    execution providers) offers only those this build has. Returns (backend or None for the best available,
    {option: value} without the ones left at auto)."""
    from .runtimes import registry

    readers = registry.for_format(runtime)
    name = columns[0].selectbox(
        "Backend", [AUTO, *(b.name for b in readers)], key=f"backend_{runtime}", disabled=disabled,
        help="What runs the file: " + "; ".join(f"{b.name}: {b.summary}" for b in readers)
             + ". auto: the best available.")
    backend = registry.get(name) if name != AUTO else (readers[0] if readers else None)
    options = {}
    for col, f in zip(columns[1:], backend.option_fields() if backend else [], strict=False):
        choices = list(f.metadata.get("choices") or ())
        built = _backend_status(backend.name).providers
        if built:
            choices = [c for c in choices if c in built] or choices
        value = col.selectbox(f.name.replace("_", " ").capitalize(), [AUTO, *choices], key=f"{backend.name}_{f.name}",
                              disabled=disabled, help=f.metadata.get("help"))
        if value != AUTO:
            options[f.name] = value
    return (None if name == AUTO else name), options


# ------------------------------------------------------------------------------------------------------- viewer

@st.cache_resource(show_spinner=False, ttl=60)
def _own_addresses() -> frozenset:
    from .device import own_addresses

    return frozenset(own_addresses())


def viewer_address() -> str | None:
    """The browser's address as the server sees it (None: loopback, as Streamlit reports it); behind a proxy on this
    device, the first hop of X-Forwarded-For."""
    with contextlib.suppress(Exception):  # no client context (a bare script run)
        forwarded = st.context.headers.get("X-Forwarded-For")
        if isinstance(forwarded, str) and forwarded:
            return forwarded.split(",")[0].strip()
    ip = st.context.ip_address
    return ip if isinstance(ip, str) else None  # AppTest's client is a mock: it runs on this machine


def on_device_warning() -> bool:
    """Before Start: say so when the browser runs on the device being measured, and how to watch from another
    machine. Returns whether it was shown."""
    from .device import client_on_device, lan_addresses

    client, own = viewer_address(), set(_own_addresses())
    if not client_on_device(client, own):
        return False
    port = st.get_option("server.port")
    lan = lan_addresses(own)
    where = " or ".join(f"`http://{a}:{port}`" for a in lan[:2]) if lan else f"`http://<this device's address>:{port}`"
    st.warning(f"**This browser runs on the device being measured** (it connects from {client or 'this machine'}). "
               "Drawing the live charts takes CPU that the model needs: edgeprof gives the model CPU priority where "
               "the system allows it (each run's summary says how), but its numbers can still come out slower. "
               "To watch from another machine, start the app with `--server.address 0.0.0.0` and a password "
               f"(README, \"A demo booth or a LAN\") and open {where} there; or start runs from the command line "
               "and look at them here afterwards.")
    return True


# ------------------------------------------------------------------------------------------------------- uploads

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
    from .models.catalog import add_upload

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
    from .models.catalog import upload_names

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
    from .models.catalog import model_inputs, resolve_variant

    return [s.to_dict() for s in model_inputs(resolve_variant(model, precision, runtime, build=False))]


def inputs_panel(model: str, precision: str | None, runtime: str | None) -> tuple[dict, dict]:
    """The Run page's Inputs panel: each input's name, type and declared shape, with a field for its shape and one
    for a fill value (the page's --shape and --fill). Returns the texts typed, {input: text}, for
    :func:`edgeprof.runtimes.inputs.parse_given`. Opens by itself when edgeprof would have to guess something."""
    from .runtimes import TensorSpec
    from .runtimes.inputs import describe_shape, format_shape, plan_feeds

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


# ------------------------------------------------------------------------------------------------------- live view



# ------------------------------------------------------------------------------------------------ shared live views

_SHARED: dict[str, dict] = {}
_SHARED_LOCK = threading.Lock()
_SHARED_KEEP = 3


def shared_view(handle, build, *, max_age_s: float) -> dict:
    """The live view of a run, shared by every browser session that watches it.

    One LiveBuffer per run in the server (not per session) and figures rebuilt at most every ``max_age_s``: four
    visitors watching a run cost one build per refresh, not four, which is what keeps a 2-core board refreshing
    every session. A finished run gets one last build with all its points, then it is served as it is and its
    points are let go (up to 34 MB each for the last ``_SHARED_KEEP`` runs, which made the server's level depend on
    how fast the last few study cells were).
    """
    with _SHARED_LOCK:
        entry = _SHARED.get(handle.run_id)
        if entry is None:
            entry = _SHARED[handle.run_id] = {"buf": LiveBuffer(handle.run_id, handle.started_ns, handle.started_wall),
                                              "lock": threading.Lock(), "view": None, "at": 0.0, "final": False}
            for old in list(_SHARED)[:-_SHARED_KEEP]:
                del _SHARED[old]
    with entry["lock"]:
        now = _time.monotonic()
        fresh = entry["view"] is not None and (entry["final"] or now - entry["at"] < max_age_s)
        if not fresh:
            finished = handle.finished
            buf = entry["buf"]
            buf.update(handle.snapshot(buf.next_seq, buf.tel_since_ns))
            entry["view"], entry["at"], entry["final"] = build(handle, buf, entry["view"]), now, finished
            if finished:  # the final view holds its (decimated) figures; the points behind them are not needed
                entry["buf"] = None
        return entry["view"]
