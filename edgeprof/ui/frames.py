"""A run's telemetry and phases as frames for the charts, the sentences said where a chart is missing (no GPU, no
temperature sensor), and the telemetry sources' probe status."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from .. import charts
from ..errors import EdgeprofError
from ..run.summary import phase_starts
from .words import fmt_ms


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
    from ..telemetry import catalog

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


@st.cache_resource(show_spinner=False)
def probe_status() -> list[dict]:
    """Telemetry sources' probe results, once per process (a probe can take a moment: NVML init, jtop)."""
    from ..telemetry import probe_all

    try:
        return [s._asdict() for s in probe_all()]
    except Exception as exc:  # a broken sensor must not break the page
        return [{"name": "probe", "available": False, "reason": str(exc)}]
