"""Pure plotly figure builders for the dashboard: arrays or DataFrames in, a ``go.Figure`` out.

Nothing here reads the database or Streamlit state, so tests and benchmarks can pin every figure down. Live charts
get at most a few thousand points: ``decimate`` keeps the minimum and maximum of each bucket (spikes stay visible)
and the bucket median (the trend), so a run of a million inferences draws as fast as one of a thousand.

Telemetry frames are long form with at least ``t_s`` (seconds on the run's clock), ``metric`` and ``value``.
"""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .telemetry import catalog

MAX_POINTS = 2000
LIVE_POINTS = 600  # per latency trace on the live chart: the browser redraws it several times a second (SVG)
COLORS = ["#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d"]
WARMUP_FILL = "rgba(230, 119, 0, 0.15)"
LOAD_FILL = "rgba(120, 120, 120, 0.12)"
_CORE = re.compile(r"^cpu\.core(\d+)_pct$")
#: A right-hand axis with round ticks of its own: plotly.js defaults an overlaying axis to tickmode "sync", which puts
#: its ticks on the left axis' grid lines and so at whatever values fall there (140.3 / 162.9 / 185.5; 0 0 0 1 1 1
#: under an integer format).
OWN_TICKS = {"tickmode": "auto"}
#: A legend below the axis title whatever its height: anchored to the bottom of the figure (``yref`` "container"), so
#: plotly makes room for it under the title. At ``y`` -0.32 of the plot (``_layout``) a legend of three or four rows
#: grew the bottom margin, which shortened the plot and pulled the legend up onto "time (s)".
LEGEND_AT_BOTTOM = {"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "x": 0}


def _layout(fig: go.Figure, title: str, y_title: str, x_title: str = "time (s)", height: int = 300,
            **extra) -> go.Figure:
    """One update_layout call with plain dicts: live pages rebuild figures twice a second and plotly's per-property
    validation (templates, add_vrect) is the costly part, so no template here (Streamlit's theme styles the chart)."""
    layout = {"title": {"text": title, "x": 0.01, "font": {"size": 17}}, "height": height,
              "margin": {"l": 60, "r": 20, "t": 45, "b": 45},
              # below the x-axis title (at -0.25 the legend sat on it); the toolbar upright at the right edge, so it
              # never covers buttons or a title at the top
              "legend": {"orientation": "h", "y": -0.32, "yanchor": "top", "x": 0}, "modebar": {"orientation": "v"},
              "xaxis": {"title": {"text": x_title}, "automargin": True},
              "yaxis": {"title": {"text": y_title}, "automargin": True}, "font": {"size": 14},
              "uirevision": "keep"}
    fig.update_layout(**{**layout, **extra})
    return fig


def _vspan(x0: float, x1: float, fill: str, label: str) -> tuple[dict, dict]:
    """A shaded x range over the whole plot height, and its label (what add_vrect makes, without its cost)."""
    shape = {"type": "rect", "xref": "x", "yref": "paper", "x0": x0, "x1": x1, "y0": 0, "y1": 1, "fillcolor": fill,
             "line": {"width": 0}, "layer": "below"}
    note = {"text": label, "x": x0, "y": 1, "xref": "x", "yref": "paper", "xanchor": "left", "yanchor": "top",
            "showarrow": False, "font": {"size": 12, "color": "#666"}}
    return shape, note


def empty_figure(title: str, message: str, height: int = 300) -> go.Figure:
    """A blank chart that says why it is blank (never a flat zero line)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 15})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, "", "", height)


# ------------------------------------------------------------------------------------------------------- helpers

def decimate(x, y, max_points: int = MAX_POINTS) -> dict[str, np.ndarray]:
    """Reduce a series to at most ``max_points // 2`` equal buckets: per bucket the mean x, the 5th, 50th and 95th
    percentiles and the maximum of y (so the trend, the spread and the spikes all stay visible).

    Short series come back whole (every statistic equals y). Input must be ordered by x. Equal buckets let numpy
    do it in one vectorised call (a million points in a few tens of milliseconds); the oldest ``n % buckets``
    points join the first bucket.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = x.size
    if n <= max_points:
        return {"x": x, "lo": y, "hi": y, "median": y, "max": y, "bucketed": False}
    buckets = max(1, max_points // 2)
    k = n // buckets
    head = n - k * buckets  # folded into the first bucket's statistics via its mean x only
    xb = x[head:].reshape(buckets, k)
    yb = y[head:].reshape(buckets, k)
    lo, med, hi = np.percentile(yb, [5, 50, 95], axis=1)
    return {"x": xb.mean(axis=1), "lo": lo, "hi": hi, "median": med, "max": yb.max(axis=1), "bucketed": True}


def with_gaps(x, y, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The decimated median line of a telemetry series, broken (NaN) where readings stopped for a while: more than
    five times the usual spacing and at least a second. A source that paused or stopped shows a gap, never a line
    drawn across the time it did not report."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size < 3:
        return x, y
    dx = np.diff(x)
    cut = np.flatnonzero(dx > max(1.0, 5.0 * float(np.median(dx))))
    if cut.size == 0:
        d = decimate(x, y, max_points)
        return d["x"], d["median"]
    xs, ys = [], []
    for part in np.split(np.arange(x.size), cut + 1):
        d = decimate(x[part], y[part], max(4, int(max_points * part.size / x.size)))
        xs += [d["x"], [np.nan]]
        ys += [d["median"], [np.nan]]
    return np.concatenate(xs[:-1]), np.concatenate(ys[:-1])


def stop_marks(stops: dict | None, sources) -> dict:
    """Layout shapes and annotations marking when a source (among ``sources``) stopped: ``stops`` maps a source name
    to (seconds on the run's clock, reason)."""
    shapes, notes = [], []
    for name, (t_s, reason) in sorted((stops or {}).items()):
        if name not in set(sources):
            continue
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": t_s, "x1": t_s, "y0": 0, "y1": 1,
                       "line": {"dash": "dot", "color": "#c92a2a", "width": 1.5}})
        notes.append({"text": f"{name} stopped", "hovertext": str(reason), "x": t_s, "y": 1, "xref": "x",
                      "yref": "paper", "xanchor": "right", "yanchor": "top", "showarrow": False,
                      "font": {"size": 12, "color": "#c92a2a"}})
    return {"shapes": shapes, "annotations": notes} if shapes else {}


def _sources(tel: pd.DataFrame, prefix: tuple[str, ...]) -> set:
    if "source" not in tel:
        return set()
    return set(tel.loc[tel["metric"].astype(str).str.startswith(prefix), "source"].astype(str).unique())


def _sources_of(tel: pd.DataFrame, metrics) -> set:
    if "source" not in tel:
        return set()
    return set(tel.loc[tel["metric"].isin(list(metrics)), "source"].astype(str).unique())


def rolling_median(y, window: int | None = None) -> np.ndarray:
    """A trailing rolling median; the window defaults to 2% of the series (5 to 501 samples)."""
    y = np.asarray(y, dtype=float)
    if y.size == 0:
        return y
    w = window or int(min(501, max(5, y.size // 50)))
    return pd.Series(y).rolling(w, min_periods=1).median().to_numpy()


# ------------------------------------------------------------------------------------------------------- run view

def latency_axis(lat: np.ndarray, steady_from: int = 0) -> tuple[float, float, int]:
    """(bottom, top, spikes above): a y range that shows the bulk of the latencies, not the few slow ones. The
    top is 1.5x the 99th percentile of the steady samples (of all samples before steady state), so a 0.13-ms model
    with a 27-ms first inference is drawn on a 0-0.3 ms axis, not flattened at 0; ``spikes`` counts what lies above."""
    lat = np.asarray(lat, dtype=float)
    lat = lat[np.isfinite(lat)]
    if lat.size == 0:
        return 0.0, 1.0, 0
    bulk = lat[steady_from:] if lat.size - steady_from >= 20 else lat
    top = float(np.percentile(bulk, 99)) * 1.5 if bulk.size >= 20 else float(bulk.max()) * 1.1
    top = max(top, float(np.median(bulk)) * 1.2, 1e-6)
    return 0.0, top, int((lat > top).sum())


def latency_timeline(t_s, latency_ms, *, warmup: tuple[float, float] | None = None,
                     load: tuple[float, float] | None = None, title: str = "Latency per inference",
                     max_points: int = LIVE_POINTS, height: int = 340, log: bool = False,
                     status: str | None = None, steady_from: int = 0) -> go.Figure:
    """Each inference's latency over time with a rolling median; the load and warm-up phases shaded.

    The y axis shows the bulk (``latency_axis``) on a linear scale, or every sample on a log scale (``log``); slower
    spikes above a clipped axis are counted in the axis title, not drawn over the plot. ``status`` says what an
    empty chart means: a run that ended without an inference is not "waiting" for one.
    """
    t_s = np.asarray(t_s, dtype=float)
    lat = np.asarray(latency_ms, dtype=float)
    if t_s.size == 0:
        ended = status not in (None, "starting", "running")
        return empty_figure(title, "no inference was made: the run ended before its first one" if ended
                            else "waiting for the first inference...", height)
    fig = go.Figure()
    d = decimate(t_s, lat, max_points)
    if d["bucketed"]:
        fig.add_trace(go.Scatter(x=d["x"], y=d["max"], mode="lines", name="slowest in each bucket",
                                 line={"width": 1, "color": "rgba(31, 95, 191, 0.45)"}))
        fig.add_trace(go.Scatter(x=d["x"], y=d["hi"], mode="lines", line={"width": 0}, showlegend=False,
                                 hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=d["x"], y=d["lo"], mode="lines", line={"width": 0}, fill="tonexty",
                                 fillcolor="rgba(31, 95, 191, 0.3)", name="5-95% of inferences"))
        med = d["median"]
    else:
        fig.add_trace(go.Scatter(x=d["x"], y=d["median"], mode="markers", name="inference",
                                 marker={"size": 4, "color": "rgba(31, 95, 191, 0.45)"}))
        med = rolling_median(lat)
    fig.add_trace(go.Scatter(x=d["x"], y=med, mode="lines", name="rolling median", line={"color": COLORS[1], "width": 2.5}))
    shapes, notes = [], []
    for row, (span, fill, label) in enumerate(((load, LOAD_FILL, "load"), (warmup, WARMUP_FILL, "warm-up"))):
        if span and span[1] is not None and span[0] is not None and span[1] > span[0]:
            shape, note = _vspan(span[0], span[1], fill, label)
            note["y"] = 1 - 0.09 * row  # one label under the other: a short load and warm-up never overlap
            shapes.append(shape)
            notes.append(note)
    y_title = "latency (ms, log scale)" if log else "latency (ms)"
    yaxis: dict = {"title": {"text": y_title}, "automargin": True}
    if log:
        yaxis["type"] = "log"
    else:
        lo, hi, above = latency_axis(lat, steady_from)
        if above:
            yaxis["range"] = [lo, hi]
            notes.append({"text": f"▲ {above:,} slower above the axis", "x": 1, "y": 1, "xref": "paper",
                          "yref": "paper", "xanchor": "right", "yanchor": "top", "showarrow": False,
                          "font": {"size": 12, "color": "#495057"}})
        else:
            yaxis["rangemode"] = "tozero"
    _layout(fig, title, y_title, height=height, shapes=shapes, annotations=notes)
    linear = {"yaxis.type": "linear", "yaxis.title.text": yaxis["title"]["text"] if not log else "latency (ms)"}
    linear.update({"yaxis.range": yaxis["range"]} if "range" in yaxis else {"yaxis.autorange": True})
    fig.update_layout(yaxis=yaxis, updatemenus=[{
        "type": "buttons", "direction": "right", "x": 1, "y": 1.16, "xanchor": "right", "yanchor": "bottom",
        "showactive": True, "active": 1 if log else 0, "pad": {"r": 0, "t": 0}, "font": {"size": 12},
        "buttons": [{"label": "linear", "method": "relayout", "args": [linear]},
                    {"label": "log scale", "method": "relayout",
                     "args": [{"yaxis.type": "log", "yaxis.autorange": True,
                               "yaxis.title.text": "latency (ms, log scale)"}]}]}])
    return fig


def latency_reduced(t_s, max_ms, median_ms, low_ms=None, high_ms=None, *, samples: int,
                    warmup: tuple[float, float] | None = None, exact_s: float | None = None,
                    title: str = "Latency per inference", height: int = 340) -> go.Figure:
    """A long stored run's latency over time from its reduction in the store (``store.samples.timeline``), drawn as
    the live chart draws it: per stretch of consecutive inferences the median (the line, which matches the run's
    p50: a stretch's mean is pulled far up by a few slow inferences), the 5-95% band (``low_ms``/``high_ms``) and
    the slowest (a thin line: no spike is lost, and it does not paint the plot as a fastest-to-slowest band did).

    The y axis comes from the robust band, never the slowest: 1.2x the 99th percentile of the stretches' 95th
    percentiles (a run's p99, as the live chart takes, is itself a spike where one inference in fifty is slow, and
    flattened a 0.017-ms median at the bottom of a 1.5-ms axis); the stretches whose slowest reach above it are
    counted in the plot's corner. The title says the reduction is only for drawing; ``exact_s`` (a run the store keeps
    reduced: where its samples stored one by one end) says what a point is before and after it."""
    t_s = np.asarray(t_s, dtype=float)
    if t_s.size == 0:
        return empty_figure(title, "no inference was made: the run ended before its first one", height)
    med = np.asarray(median_ms, dtype=float)
    hi_band = np.asarray(high_ms if high_ms is not None else med, dtype=float)
    slowest = np.asarray(max_ms, dtype=float)
    each = f"each {max(1, round(samples / t_s.size)):,}" if exact_s is None else "each stretch"
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=t_s, y=slowest, mode="lines", name=f"slowest of {each}",
                             line={"width": 1, "color": "rgba(31, 95, 191, 0.45)"}))
    if low_ms is not None and high_ms is not None:
        fig.add_trace(go.Scatter(x=t_s, y=hi_band, mode="lines", line={"width": 0}, showlegend=False,
                                 hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=t_s, y=np.asarray(low_ms, dtype=float), mode="lines", line={"width": 0},
                                 fill="tonexty", fillcolor="rgba(31, 95, 191, 0.3)", name=f"5-95% of {each}"))
    fig.add_trace(go.Scatter(x=t_s, y=med, mode="lines", name=f"median of {each}",
                             line={"color": COLORS[1], "width": 2.5}))
    shapes, notes = [], []
    if warmup and warmup[0] is not None and warmup[1] is not None and warmup[1] > warmup[0]:
        shape, note = _vspan(warmup[0], warmup[1], WARMUP_FILL, "warm-up")
        shapes.append(shape)
        notes.append(note)
    title = f"{title}: {samples:,} inferences, {_reduction_words(t_s, samples, exact_s)}"
    _layout(fig, title, "latency (ms)", height=height, shapes=shapes, annotations=notes)
    band = hi_band[np.isfinite(hi_band)]
    top = 1.2 * float(np.percentile(band, 99)) if band.size else None
    over = int((slowest > top).sum()) if top else 0  # NaN compares False
    if top and over:  # counted in the corner, as latency_timeline does: an axis title that long ran off the plot
        fig.update_yaxes(range=[0.0, top])
        fig.add_annotation(text=f"▲ the slowest of {over:,} of {t_s.size:,} stretches above the axis", x=1, y=1,
                           xref="paper", yref="paper", xanchor="right", yanchor="top", showarrow=False,
                           font={"size": 12, "color": "#495057"})
    else:
        fig.update_yaxes(rangemode="tozero")
    return fig


def _reduction_words(t_s: np.ndarray, samples: int, exact_s: float | None) -> str:
    """What a point of :func:`latency_reduced` stands for, and that the reduction is for drawing only."""
    if exact_s is None:
        per = max(1, round(samples / t_s.size))
        drawn = "drawn one point per inference" if per == 1 else f"drawn as the median of every {per:,}"
        return f"{drawn} (statistics use every sample)"
    after = t_s[t_s > exact_s]
    step = float(np.median(np.diff(after))) if after.size > 1 else 1.0
    every = "one point a second" if step <= 1.5 else f"one point every {step:,.0f} s"
    return (f"drawn as medians: to {exact_s:,.0f} s of each stretch of stored samples, after it {every} "
            "(the median of the run's reservoir samples in it); only the drawing is reduced this way")


def _lines(fig: go.Figure, tel: pd.DataFrame, metrics: list[tuple[str, str]], *, dash: str | None = None,
           width: float = 2.0, color_offset: int = 0) -> int:
    drawn = 0
    for i, (metric, label) in enumerate(metrics):
        part = tel[tel["metric"] == metric]
        if part.empty:
            continue
        x, y = with_gaps(part["t_s"].to_numpy(), part["value"].to_numpy())
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=label,
                                 line={"width": width, "dash": dash, "color": COLORS[(i + color_offset) % len(COLORS)]}))
        drawn += 1
    return drawn


def cpu_figure(tel: pd.DataFrame, *, title: str = "CPU", height: int = 300, stops: dict | None = None) -> go.Figure:
    """The device's CPU busy and each core's (thin) in % (0 to 100 on the left axis, from 0), and the worker's CPU in
    cores busy on the right axis (from 0).

    Why the worker in cores on an axis of its own: the kernel counts a process's CPU in % of one core, so a worker on
    two busy cores reads 190 and sat above the device's 100 (all cores) on a shared "%" axis, as if it used more than
    the device had. With the core count known (from the per-core lines) the right axis spans 0 to that count at the
    height of 0 to 100% on the left, so the two lines still compare by eye: a worker on every core meets the device
    line at the top."""
    if tel is None or tel.empty or not tel["metric"].astype(str).str.startswith("cpu.").any():
        return empty_figure(title, "no CPU samples yet", height)
    fig = go.Figure()
    cores = sorted({m for m in tel["metric"].astype(str).unique() if _CORE.match(m)}, key=lambda m: int(_CORE.match(m)[1]))
    for j, m in enumerate(cores):
        part = tel[tel["metric"] == m]
        x, y = with_gaps(part["t_s"].to_numpy(), part["value"].to_numpy())
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"core {_CORE.match(m)[1]}",
                                 line={"width": 1, "color": COLORS[(j + 3) % len(COLORS)]}, opacity=0.55))
    _lines(fig, tel, [("cpu.total_pct", "device (100 = all cores busy)")], width=3)
    left = tel[tel["metric"].astype(str).str.match(r"^cpu\.(total|core\d+)_pct$")]["value"]
    scale = max(1.0, float(left.max()) / 100.0 if len(left) else 1.0)
    worker = tel[tel["metric"] == "cpu.worker_pct"]
    if not worker.empty:
        busy = worker["value"].to_numpy(dtype=float) / 100.0
        x, y = with_gaps(worker["t_s"].to_numpy(), busy)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=WORKER_CORES, yaxis="y2",
                                 line={"width": 3, "color": COLORS[1]}))
        y2 = {"overlaying": "y", "side": "right", "title": {"text": "worker (cores)"}, "showgrid": False,
              "automargin": True, "rangemode": "tozero", **OWN_TICKS}
        if cores:
            top = np.nanmax(busy) if np.isfinite(busy).any() else 0.0
            scale = max(scale, float(top) / len(cores))
            y2["range"] = [0, len(cores) * 1.05 * scale]  # n cores level with 100% on the left
        fig.update_layout(yaxis2=y2)
    _layout(fig, title, CPU_AXIS, height=height, **stop_marks(stops, _sources(tel, ("cpu.",))))
    fig.update_layout(yaxis={"title": {"text": CPU_AXIS}, "range": [0, 105 * scale]}, legend=LEGEND_AT_BOTTOM)
    return fig


CPU_AXIS = "CPU (%)"
WORKER_CORES = "worker (cores busy, right axis)"


def memory_figure(tel: pd.DataFrame, cap_mb: float | None = None, *, title: str = "Memory", height: int = 300,
                  peak_charged_mb: float | None = None, killed_at_s: float | None = None,
                  stops: dict | None = None) -> go.Figure:
    """The worker's memory against its cap: charged to the cap (what the kernel limits), the worker's RSS (which
    also counts shared libraries other processes loaded first, so it may sit above the cap without a kill), system
    RAM used on the right axis, the cap as a dashed line.

    ``peak_charged_mb`` is the kernel's own peak (the cgroup's high-water mark): 10 Hz samples miss the last spike
    before an OOM kill, so it is marked as a point; ``killed_at_s`` marks the moment of an OOM kill. The axis always
    shows the cap and every line.
    """
    if tel is None or tel.empty or not tel["metric"].astype(str).str.startswith("mem.").any():
        return empty_figure(title, "no memory samples yet", height)
    fig = go.Figure()
    _lines(fig, tel, [("mem.charged_mb", "charged to the cap"), ("mem.worker_rss_mb", "worker RSS")], width=3)
    used = tel[tel["metric"] == "mem.used_mb"]
    if not used.empty:
        x, y = with_gaps(used["t_s"].to_numpy(), used["value"].to_numpy())
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="system RAM used (right axis)",
                                 line={"width": 1.5, "color": "#868e96"}, yaxis="y2"))
        fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "title": "system used (MB)", "showgrid": False,
                                  "tickformat": ",.0f", **OWN_TICKS})
    worker = tel[tel["metric"].isin(["mem.charged_mb", "mem.worker_rss_mb"])]["value"]
    tops = [float(worker.max()) if len(worker) else 0.0, float(cap_mb or 0), float(peak_charged_mb or 0)]
    shapes, notes = [], []
    if cap_mb:
        cap = float(cap_mb)
        shapes.append({"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": cap, "y1": cap,
                       "line": {"dash": "dash", "color": "#c92a2a", "width": 2}})
        notes.append({"text": f"limit {fmt_mb(cap)}", "xref": "paper", "yref": "y", "x": 0, "y": cap,
                      "xanchor": "left", "yanchor": "bottom", "showarrow": False, "font": {"color": "#c92a2a", "size": 12}})
    if killed_at_s is not None:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": killed_at_s, "x1": killed_at_s, "y0": 0,
                       "y1": 1, "line": {"color": "#c92a2a", "width": 2}})
        notes.append({"text": "OOM-killed", "x": killed_at_s, "y": 1, "xref": "x", "yref": "paper", "xanchor": "right",
                      "yanchor": "top", "showarrow": False, "font": {"color": "#c92a2a", "size": 13}})
    if peak_charged_mb:
        charged = tel[tel["metric"] == "mem.charged_mb"]
        x = killed_at_s if killed_at_s is not None else (float(charged["t_s"].max()) if len(charged) else 0.0)
        fig.add_trace(go.Scatter(x=[x], y=[float(peak_charged_mb)], mode="markers", name="peak charged (kernel)",
                                 marker={"symbol": "x", "size": 12, "color": "#c92a2a"}))
    _layout(fig, title, "worker memory (MB)", height=height, shapes=shapes, annotations=notes)
    fig.update_layout(yaxis={"title": {"text": "worker memory (MB)"}, "range": [0, max(tops) * 1.15 or 1],
                             "tickformat": ",.0f"}, legend=LEGEND_AT_BOTTOM)
    return fig


def fmt_mb(mb: float | None) -> str:
    """``94.863`` -> ``95 MB``, ``9.62`` -> ``9.6 MB``, ``1536`` -> ``1,536 MB``; None -> ``-``."""
    if mb is None or not np.isfinite(mb):
        return "-"
    return f"{mb:,.0f} MB" if abs(mb) >= 10 else f"{mb:.1f} MB"


def _right_lines(fig: go.Figure, tel: pd.DataFrame, metrics: list[str], axis_title: str) -> None:
    """``metrics`` as dotted lines named by the catalog on a right axis titled ``axis_title``."""
    for i, m in enumerate(metrics):
        part = tel[tel["metric"] == m]
        x, y = with_gaps(part["t_s"].to_numpy(), part["value"].to_numpy())
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=catalog.label(m) + " (right)",
                                 line={"dash": "dot", "color": COLORS[(i + 4) % len(COLORS)]}, yaxis="y2"))
    fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "title": axis_title, "showgrid": False})


def accelerator_figure(tel: pd.DataFrame, device: str = "gpu", *, title: str | None = None, height: int = 300,
                       stops: dict | None = None) -> go.Figure | None:
    """An accelerator class of ``telemetry.catalog.ACCELERATORS`` (``gpu``, ``npu``) over time: its utilization
    (left, %) and its memory (right, MB), or its power (right, W) where it reports no memory; None when the run has
    no metric of that class at all. Which metric is which comes from the catalog. ``stops``: see :func:`stop_marks`."""
    if tel is None or tel.empty:
        return None
    metrics = [m for m in tel["metric"].astype(str).unique() if catalog.device_class(m) == device]
    if not metrics:
        return None
    title = title or catalog.DEVICE_NAMES.get(device, device)
    fig = go.Figure()
    _lines(fig, tel, [(m, catalog.label(m)) for m in catalog.of_quantity(metrics, device, "utilization")], width=3)
    right = catalog.of_quantity(metrics, device, "memory") or catalog.of_quantity(metrics, device, "power")
    if right:
        _right_lines(fig, tel, right, "memory (MB)" if catalog.unit(right[0]) == "MB" else f"power ({catalog.unit(right[0])})")
    return _layout(fig, title, "utilization (%)", height=height, **stop_marks(stops, _sources_of(tel, metrics)))


def gpu_figure(tel: pd.DataFrame, *, title: str = "GPU", height: int = 300, stops: dict | None = None) -> go.Figure | None:
    """GPU utilization (left) and GPU memory (right); None when the run has no GPU metric at all
    (:func:`accelerator_figure` of ``gpu``)."""
    return accelerator_figure(tel, "gpu", title=title, height=height, stops=stops)


def thermal_figure(tel: pd.DataFrame, *, title: str = "Temperature and frequency", height: int = 300,
                   stops: dict | None = None) -> go.Figure | None:
    """Temperatures (left, C) and CPU frequency (right, MHz); None when the run has neither. ``stops``: see
    :func:`stop_marks`."""
    if tel is None or tel.empty:
        return None
    names = tel["metric"].astype(str)
    temps = catalog.temperatures(names.unique())
    freq = tel.loc[names == "cpu.freq_mhz", "value"]
    has_freq = len(freq) > 0
    if not temps and (not has_freq or float(freq.max() - freq.min()) < 1.0):
        return None  # no sensor, and a frequency that never moved (a VM reports its nominal one): nothing to plot
    fig = go.Figure()
    _lines(fig, tel, [(m, catalog.label(m)) for m in temps], width=2.5)
    if has_freq:
        part = tel[names == "cpu.freq_mhz"]
        x, y = with_gaps(part["t_s"].to_numpy(), part["value"].to_numpy())
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="CPU frequency (MHz, right)",
                                 line={"dash": "dot", "color": "#495057"}, yaxis="y2"))
        lo, hi = float(freq.min()), float(freq.max())
        pad = max(50.0, 0.05 * hi)  # a steady frequency gets a readable range, not ticks of 1,999.5
        fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "title": "MHz", "showgrid": False,
                                  "range": [max(0.0, lo - pad), hi + pad], "tickformat": ",.0f"})
    return _layout(fig, title, "temperature (C)" if temps else "", height=height,
                   **stop_marks(stops, _sources(tel, ("cpu.freq",)) | _sources_of(tel, temps)))


def device_figure(tel: pd.DataFrame, device: str, *, title: str | None = None, height: int = 300,
                  stops: dict | None = None) -> go.Figure | None:
    """Every metric of one device class that is not an accelerator (those get :func:`accelerator_figure`; a class a
    later catalog adds, say) as lines named by the catalog: the first unit on the left axis, the others dotted on the
    right. None when the run has no metric of that class. ``stops``: see :func:`stop_marks`."""
    if tel is None or tel.empty:
        return None
    declared = {fam: i for i, fam in enumerate(catalog.FAMILIES)}
    names = sorted(catalog.of_device(tel["metric"].astype(str).unique(), device),
                   key=lambda n: (declared[catalog.family(n)], n))
    if not names:
        return None
    units = list(dict.fromkeys(catalog.unit(n) for n in names))
    left = [n for n in names if catalog.unit(n) == units[0]]
    right = [n for n in names if n not in left]
    fig = go.Figure()
    _lines(fig, tel, [(n, catalog.label(n)) for n in left], width=3)
    if right:
        _right_lines(fig, tel, right, ", ".join(units[1:]))
    prefixes = tuple(sorted({n.split(".", 1)[0] + "." for n in names}))
    return _layout(fig, title or device.upper(), units[0], height=height, **stop_marks(stops, _sources(tel, prefixes)))


# ------------------------------------------------------------------------------------------------------- correlations

def correlation_heatmap(corr: pd.DataFrame, *, value: str = "pearson_r", labels: dict | None = None,
                        title: str | None = None) -> go.Figure:
    """A symmetric heatmap of ``value`` from the long-form output of ``stats.correlation_matrix``, n in the hover."""
    labels = labels or {}
    names = list(dict.fromkeys(list(corr["x"]) + list(corr["y"])))
    idx = {n: i for i, n in enumerate(names)}
    k = len(names)
    z = np.full((k, k), np.nan)
    text = [["" for _ in range(k)] for _ in range(k)]
    for i in range(k):
        z[i, i] = 1.0
    for _, row in corr.iterrows():
        i, j = idx[row["x"]], idx[row["y"]]
        v = row[value]
        z[i, j] = z[j, i] = np.nan if v is None or pd.isna(v) else float(v)
        cell = "n/a" if np.isnan(z[i, j]) else f"{z[i, j]:.2f}"
        text[i][j] = text[j][i] = f"{cell}<br>n={int(row['n'])}"
    for i in range(k):
        text[i][i] = "1"
    shown = [labels.get(n, n) for n in names]
    fig = go.Figure(go.Heatmap(z=z, x=shown, y=shown, zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
                               text=text, texttemplate="%{text}", hovertemplate="%{y} vs %{x}: %{text}<extra></extra>",
                               colorbar={"title": "r"}))
    fig.update_yaxes(autorange="reversed")
    kind = "Pearson r" if value.startswith("pearson") else "Spearman rho"
    return _layout(fig, title or f"{kind} between variables", "", "", height=max(320, 60 * k + 120))


def scatter_fit(x, y, *, x_label: str, y_label: str, hover: list | None = None, color: list | None = None,
                title: str | None = None, points: str = "runs") -> go.Figure:
    """A scatter of paired values with a least-squares line (drawn when at least 3 pairs vary). ``points`` names
    the points in the legend where they are not coloured by group ("runs", "time windows")."""
    x = np.asarray(pd.to_numeric(pd.Series(x), errors="coerce"), dtype=float)
    y = np.asarray(pd.to_numeric(pd.Series(y), errors="coerce"), dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    title = title or f"{y_label} vs {x_label}"
    if keep.sum() == 0:
        return empty_figure(title, "no pairs where both values were measured")
    fig = go.Figure()
    marker: dict = {"size": 9, "opacity": 0.8}
    groups = None if color is None else np.asarray(color, dtype=object)[keep]
    hx = None if hover is None else np.asarray(hover, dtype=object)[keep]
    if groups is None:
        fig.add_trace(go.Scatter(x=x[keep], y=y[keep], mode="markers", name=points, marker=marker, text=hx))
    else:
        for i, g in enumerate(pd.unique(groups)):
            sel = groups == g
            fig.add_trace(go.Scatter(x=x[keep][sel], y=y[keep][sel], mode="markers", name=str(g),
                                     marker={**marker, "color": COLORS[i % len(COLORS)]},
                                     text=None if hx is None else hx[sel]))
    xs, ys = x[keep], y[keep]
    if xs.size >= 3 and np.ptp(xs) > 0:
        slope, intercept = np.polyfit(xs, ys, 1)
        line_x = np.array([xs.min(), xs.max()])
        fig.add_trace(go.Scatter(x=line_x, y=slope * line_x + intercept, mode="lines", name="least-squares fit",
                                 line={"color": "#c92a2a", "width": 2, "dash": "dash"}))
    return _layout(fig, title, y_label, x_label, height=360)


def memory_effect_figure(points: pd.DataFrame, *, title: str = "Does less memory make inference slower?") -> go.Figure:
    """Latency relative to the same variant without a limit (y, log) against the limit as a multiple of the variant's
    footprint (x, log), one colour per variant. Runs without a limit sit apart at the right ("no limit"); killed
    runs are crosses on the top edge at their limit; y = 1 is "as fast as without a limit", x = 1 the footprint."""
    pts = points if points is not None else pd.DataFrame()
    capped = pts[pts["factor"].notna()] if len(pts) else pts
    if capped.empty:
        return empty_figure(title, "no capped run next to a run of the same variant without a limit")
    fig = go.Figure()
    ok = capped[(capped["status"] == "ok") & capped["relative_p50"].notna()]
    top = float(np.nanmax(ok["relative_p50"])) * 1.6 if len(ok) else 2.0
    top = max(top, 1.5)
    right = float(capped["factor"].max()) * 1.8
    for i, (variant, part) in enumerate(pts.groupby("variant", sort=True)):
        color = COLORS[i % len(COLORS)]
        good = part[(part["status"] == "ok") & part["relative_p50"].notna()]
        x = np.where(good["factor"].notna(), good["factor"], right)
        fig.add_trace(go.Scatter(x=x, y=good["relative_p50"], mode="markers", name=variant, text=good["label"],
                                 hoverinfo="text", marker={"size": 10, "color": color, "opacity": 0.85}))
        dead = part[part["factor"].notna() & part["status"].isin(["oom_killed", "timed_out"])]
        if len(dead):
            fig.add_trace(go.Scatter(x=dead["factor"], y=[top / 1.15] * len(dead), mode="markers",
                                     name=f"{variant}: killed (OOM) or timed out", text=dead["label"],
                                     hoverinfo="text", marker={"symbol": "x", "size": 12, "color": color}))
    lo = min(float(capped["factor"].min()) / 1.3, 0.8)
    shapes = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": 1, "y1": 1,
               "line": {"dash": "dot", "color": "#868e96"}},
              {"type": "line", "xref": "x", "x0": 1, "x1": 1, "yref": "paper", "y0": 0, "y1": 1,
               "line": {"dash": "dot", "color": "#c92a2a"}},
              {"type": "line", "xref": "x", "x0": right / 1.35, "x1": right / 1.35, "yref": "paper", "y0": 0, "y1": 1,
               "line": {"color": "#ced4da"}}]
    notes = [{"text": "footprint", "x": 1, "y": 0, "xref": "x", "yref": "paper", "showarrow": False,
              "xanchor": "left", "yanchor": "bottom", "font": {"color": "#c92a2a", "size": 12}},
             {"text": "as fast as without a limit", "x": 0, "y": 1, "xref": "paper", "yref": "y", "showarrow": False,
              "xanchor": "left", "yanchor": "bottom", "font": {"color": "#868e96", "size": 12}},
             {"text": "killed (OOM) or timed out", "x": 0, "y": top / 1.15, "xref": "paper", "yref": "y",
              "showarrow": False, "xanchor": "left", "yanchor": "bottom", "font": {"color": "#868e96", "size": 12}}]
    ticks = [v for v in (0.5, 0.75, 1, 1.25, 1.5, 2, 3, 4, 8) if lo <= v < right / 1.35]
    bottom = min(0.8, float(np.nanmin(pts["relative_p50"])) / 1.2) if pts["relative_p50"].notna().any() else 0.8
    yticks = [v for v in (0.1, 0.2, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64) if bottom <= v <= top]
    _layout(fig, title, Y_RELATIVE, "memory limit / the variant's footprint (x)", height=460, shapes=shapes,
            annotations=notes)
    fig.update_layout(
        xaxis={"type": "log", "range": [np.log10(lo), np.log10(right * 1.25)], "tickvals": ticks + [right],
               "ticktext": [f"{v:g}x" for v in ticks] + ["no limit"],
               "title": {"text": "memory limit / the variant's footprint (x)"}},
        yaxis={"type": "log", "range": [np.log10(bottom), np.log10(top)], "tickvals": yticks,
               "ticktext": [f"{v:g}x" for v in yticks], "title": {"text": Y_RELATIVE}})
    return fig


Y_RELATIVE = "p50 / p50 without a limit (x)"


def windowed_figure(wdf: pd.DataFrame, metric: str, *, metric_label: str | None = None) -> go.Figure:
    """Latency median per window (left) and a telemetry metric's mean per window (right) over one run."""
    title = "Latency and utilization over time windows"
    if wdf is None or wdf.empty:
        return empty_figure(title, "no windows: the run has no latency samples")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=wdf["t_s"], y=wdf["latency_ms_median"], mode="lines+markers", name="latency median (ms)",
                             line={"color": COLORS[0], "width": 2.5}))
    if metric in wdf.columns:
        fig.add_trace(go.Scatter(x=wdf["t_s"], y=wdf[metric], mode="lines+markers", name=(metric_label or metric) + " (right)",
                                 line={"color": COLORS[1], "dash": "dot"}, yaxis="y2"))
        fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "title": metric_label or metric, "showgrid": False,
                                  **OWN_TICKS})
    return _layout(fig, title, "latency (ms)", "window start (s)")


# ------------------------------------------------------------------------------------------------------- compare

def _quantile_curve(values: np.ndarray, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    v = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)])
    if v.size == 0:
        return v, v
    q = np.linspace(0, 1, min(points, v.size))
    return np.quantile(v, q), q


def latency_cdf(series: dict[str, np.ndarray], *, title: str = "Latency distribution (CDF)") -> go.Figure:
    """Empirical CDF of each run's (or group's) latencies, drawn from at most 400 quantiles each."""
    if not series or all(len(v) == 0 for v in series.values()):
        return empty_figure(title, "no steady-state latency samples")
    fig = go.Figure()
    lows, highs = [], []
    for i, (name, values) in enumerate(series.items()):
        v = np.asarray(values, dtype=float)
        x, q = _quantile_curve(v)
        if x.size:
            fig.add_trace(go.Scatter(x=x, y=q, mode="lines", name=name, line={"width": 2.5, "color": COLORS[i % len(COLORS)]}))
            finite = v[np.isfinite(v)]
            lows.append(float(np.percentile(finite, 0.5)))
            highs.append(float(np.percentile(finite, 99.5)))
    fig.update_yaxes(range=[0, 1])
    log = bool(lows) and min(lows) > 0 and max(highs) / min(lows) > 10  # one slow run must not crush the others
    unit = "latency (ms, log scale" if log else "latency (ms"
    _layout(fig, title, "share of inferences at or below", f"{unit}; up to each run's p99.5)", height=380)
    if lows:  # the bulk, not one spike: a 9-ms outlier had squeezed two 0.03-ms curves onto the y axis
        lo, hi = min(lows), max(highs)
        pad = (hi - lo) * 0.03
        if log:
            fig.update_xaxes(type="log", range=[np.log10(lo) - 0.02, np.log10(hi) + 0.02], **log_ticks(lo, hi))
        else:
            fig.update_xaxes(range=[max(0.0, lo - pad), hi + pad])
    return fig


def log_ticks(lo: float, hi: float) -> dict:
    """Tick values 1, 2, 5 x 10^k within [lo, hi] and their full labels (0.05, 2, 20, 500): plotly's own log axis
    labels its minor ticks with the leading digit only, so 20 read as "2"."""
    if not (lo > 0 and hi > lo):
        return {}
    vals = [m * 10.0 ** k for k in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
            for m in (1, 2, 5) if lo <= m * 10.0 ** k <= hi]
    return {"tickvals": vals, "ticktext": [f"{v:g}" for v in vals]} if len(vals) >= 2 else {}


def _wrapped(name: str, width: int = 18) -> str:
    """A run or group label as short lines (one per " · " part, a long part wrapped at spaces), so tick labels of
    several boxes side by side in a half-width column stay level and never collide."""
    return "<br>".join(line for part in name.split(" · ") for line in textwrap.wrap(part, width) or [part])


def latency_box(series: dict[str, np.ndarray], *, title: str = "Latency (box: quartiles, whiskers: 1.5 IQR)") -> go.Figure:
    """Box plots from precomputed quartiles, so a million samples per run send five numbers each to the browser."""
    if not series or all(len(v) == 0 for v in series.values()):
        return empty_figure(title, "no steady-state latency samples")
    fig = go.Figure()
    for i, (name, values) in enumerate(series.items()):
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        q1, med, q3 = np.percentile(v, [25, 50, 75])
        iqr = q3 - q1
        lo = float(v[v >= q1 - 1.5 * iqr].min())
        hi = float(v[v <= q3 + 1.5 * iqr].max())
        label = _wrapped(name) if len(name) > 24 else name
        fig.add_trace(go.Box(name=label, q1=[q1], median=[med], q3=[q3], lowerfence=[lo], upperfence=[hi],
                             mean=[float(v.mean())], x=[label], marker_color=COLORS[i % len(COLORS)], boxpoints=False))
    _layout(fig, title, "latency (ms)", "", height=380, showlegend=False)
    fig.update_xaxes(tickangle=0)  # wrapped labels read level; rotated ones took half the chart's height
    if fig.data and min(t.lowerfence[0] for t in fig.data) > 0 and \
            max(t.upperfence[0] for t in fig.data) / min(t.lowerfence[0] for t in fig.data) > 10:
        bottom = min(t.lowerfence[0] for t in fig.data)
        top = max(t.upperfence[0] for t in fig.data)
        fig.update_yaxes(type="log", title={"text": "latency (ms, log scale)"}, **log_ticks(bottom, top))
    return fig


def telemetry_overlay(frames: dict[str, pd.DataFrame], metric: str, *, label: str | None = None) -> go.Figure:
    """One telemetry metric from several runs on a common time axis (seconds from each run's start)."""
    title = f"{label or metric} over time"
    fig = go.Figure()
    for i, (name, tel) in enumerate(frames.items()):
        if tel is None or tel.empty:
            continue
        part = tel[tel["metric"] == metric]
        if part.empty:
            continue
        d = decimate(part["t_s"].to_numpy(), part["value"].to_numpy())
        fig.add_trace(go.Scatter(x=d["x"], y=d["median"], mode="lines", name=name, line={"color": COLORS[i % len(COLORS)]}))
    if not fig.data:
        return empty_figure(title, f"none of these runs recorded {metric}")
    return _layout(fig, title, label or metric, height=320)


# ------------------------------------------------------------------------------ why it is slow (operators, pressure)

def op_profile_figure(profile: dict | None, *, top: int = 12, title: str = "Time per operator type") -> go.Figure:
    """One run's operator profile (``runtimes.profile``): ms per inference of each operator type, slowest on top,
    the rest summed as "other"; a blank chart that says why when there is no profile."""
    if not profile or "unavailable" in profile or not profile.get("by_type"):
        why = (profile or {}).get("unavailable") or "no operator profile (run with --profile-ops)"
        return empty_figure(title, why[:90] + ("..." if len(why) > 90 else ""), 260)
    rows = profile["by_type"]
    shown, rest = rows[:top], rows[top:]
    names = [r["op_type"] for r in shown] + ([f"other ({len(rest)} types)"] if rest else [])
    ms = [r["ms_per_inference"] for r in shown] + ([sum(r["ms_per_inference"] for r in rest)] if rest else [])
    shares = [r["share"] for r in shown] + ([sum(r["share"] for r in rest)] if rest else [])
    fig = go.Figure(go.Bar(x=ms[::-1], y=names[::-1], orientation="h", marker_color=COLORS[0],
                           text=[f"{100 * s:.0f}%" for s in shares[::-1]], textposition="outside"))
    return _layout(fig, title, "", "ms per inference (median over the profiled inferences)",
                   height=max(260, 28 * len(names) + 90), showlegend=False)


def op_compare_figure(table: pd.DataFrame, name_a: str, name_b: str, *, top: int = 10,
                      title: str = "Time per operator type, side by side") -> go.Figure:
    """Two runs' operator types (``ops.op_table``) as paired horizontal bars, largest change on top."""
    if table is None or table.empty:
        return empty_figure(title, "no operator profiles to compare", 260)
    t = table.head(top).iloc[::-1]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=t["ms_a"], y=t["op_type"], orientation="h", name=name_a, marker_color=COLORS[0]))
    fig.add_trace(go.Bar(x=t["ms_b"], y=t["op_type"], orientation="h", name=name_b, marker_color=COLORS[1]))
    return _layout(fig, title, "", "ms per inference", height=max(280, 34 * len(t) + 110), barmode="group")


def pressure_figure(tel: pd.DataFrame, *, title: str = "Memory pressure", height: int = 300) -> go.Figure:
    """Share of time stalled on memory (PSI some / full, %) and major faults per second (right axis)."""
    if tel is None or tel.empty or not tel["metric"].astype(str).str.startswith("mem.pressure").any():
        return empty_figure(title, "no pressure-stall information recorded", height)
    fig = go.Figure()
    _lines(fig, tel, [("mem.pressure_some_pct", "some task stalled (%)"),
                      ("mem.pressure_full_pct", "all tasks stalled (%)")], width=2.5)
    faults = tel[tel["metric"] == "mem.major_faults_per_s"]
    if not faults.empty:
        x, y = with_gaps(faults["t_s"].to_numpy(), faults["value"].to_numpy())
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name="major faults/s (right)", yaxis="y2",
                                 line={"width": 1.5, "dash": "dot", "color": COLORS[2]}))
        # from 0 with round ticks of its own at any size: not "-0.54 ... 10.17", nor "0 0 0 1 1 1" (ticks synced to
        # the left grid under an integer format)
        fig.update_layout(yaxis2={"overlaying": "y", "side": "right", "title": "major faults/s", "showgrid": False,
                                  "rangemode": "tozero", "tickformat": "~g", **OWN_TICKS})
    fig.update_layout(yaxis={"range": [0, 100]})
    return _layout(fig, title, "time stalled (%)", height=height, legend=LEGEND_AT_BOTTOM)


# ------------------------------------------------------------------------------------------------------- memory curve


def memory_curve_figure(doc: dict, *, title: str = "Latency against the memory cap") -> go.Figure:
    """``run.memory``'s document: p50 (ms) with its within-run 95% interval at each ladder cap (MB), caps whose run
    did not complete marked on the x axis, the minimum cap and the footprint as vertical lines, and PSI some (%) on
    a second axis."""
    pts = [p for p in doc.get("curve") or [] if p.get("cap_mb") is not None]
    if not pts:
        return empty_figure(title, "no curve: no cap up to the footprint completed a run")
    ok = [p for p in pts if p.get("status") == "ok" and p.get("p50_ms") is not None]
    fig = go.Figure()
    if ok:
        lo = [p["p50_ms"] - p["p50_ci"][0] if p.get("p50_ci") else 0 for p in ok]
        hi = [p["p50_ci"][1] - p["p50_ms"] if p.get("p50_ci") else 0 for p in ok]
        fig.add_trace(go.Scatter(x=[p["cap_mb"] for p in ok], y=[p["p50_ms"] for p in ok], mode="lines+markers",
                                 name="p50 (95% interval within the run)", line={"color": COLORS[0]},
                                 error_y={"type": "data", "array": hi, "arrayminus": lo, "visible": True}))
        fig.add_trace(go.Scatter(x=[p["cap_mb"] for p in ok], y=[p.get("pressure_some_pct") or 0 for p in ok],
                                 mode="lines+markers", name="stalled on memory, some (%)", yaxis="y2",
                                 line={"color": COLORS[1], "dash": "dot"}))
    dead = [p for p in pts if p.get("status") != "ok"]
    probes = [p for p in (doc.get("search") or {}).get("probes") or [] if not p.get("fits")]
    if dead or probes:
        xs = [p["cap_mb"] for p in dead] + [p["cap_mb"] for p in probes]
        fig.add_trace(go.Scatter(x=xs, y=[0] * len(xs), mode="markers", name="did not complete (OOM-killed)",
                                 marker={"symbol": "x", "size": 11, "color": "#c92a2a"}))
    shapes, notes = [], []
    for x, label, color in ((doc.get("min_cap_mb"), "minimum cap", "#c92a2a"),
                            (doc.get("footprint_mb"), "footprint", "#555")):
        if x is not None:
            shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
                           "line": {"color": color, "dash": "dash", "width": 1}})
            notes.append({"text": f"{label} {fmt_mb(x)}", "x": x, "y": 1, "xref": "x", "yref": "paper",
                          "xanchor": "left", "yanchor": "top", "showarrow": False,
                          "font": {"size": 12, "color": color}})
    return _layout(fig, title, "p50 (ms)", "memory cap (MB)", 360, shapes=shapes, annotations=notes,
                   yaxis={"title": {"text": "p50 (ms)"}, "rangemode": "tozero"},
                   yaxis2={"title": {"text": "stalled (%)"}, "overlaying": "y", "side": "right", "range": [0, 100],
                           "showgrid": False})


MEMORY_PARTS = (("runtime_mb", "Python and the runtime"), ("weights_anon_mb", "weights, anonymous"),
                ("weights_file_mb", "weights, file-backed"), ("activations_mb", "activations and arena"))


def memory_breakdown_figure(parts: dict, *, title: str = "What the footprint is made of") -> go.Figure:
    """``run.memory.breakdown``: the peak charged memory as a stacked bar (runtime and Python, weights anonymous and
    file-backed, activations and arena, MB) beside the model file's size on disk."""
    if parts.get("unavailable"):
        return empty_figure(title, parts["unavailable"])
    fig = go.Figure()
    for i, (key, label) in enumerate(MEMORY_PARTS):
        fig.add_trace(go.Bar(x=["charged (cgroup)"], y=[parts.get(key) or 0.0], name=label,
                             marker={"color": COLORS[i]}, hovertemplate=f"{label}: %{{y:.1f}} MB<extra></extra>"))
    if parts.get("file_size_mb") is not None:
        fig.add_trace(go.Bar(x=["model file (disk)"], y=[parts["file_size_mb"]], name="model file",
                             marker={"color": "#999"}, hovertemplate="file size: %{y:.1f} MB<extra></extra>"))
    return _layout(fig, title, "MB", "", 360, barmode="stack")


def tradeoff_figure(points: list[dict], front: list[str], *, fidelity_axis: str = "top-1 agreement with fp32",
                    title: str = "Latency against fidelity (size: peak memory)") -> go.Figure:
    """Every variant as a point of p50 latency (x, with its within-run interval) against fidelity (y), its marker
    area proportional to peak charged memory; the Pareto front (``doctor.analysis.pareto_front``) as a line through
    the points it names. Points that could not be measured are left out and said in the title's place."""
    have = [p for p in points if p.get("p50_ms") is not None and p.get("fidelity") is not None]
    if not have:
        return empty_figure(title, "no variant could be measured")
    peaks = [p.get("peak_mb") or 0.0 for p in have]
    top = max(peaks) or 1.0
    fig = go.Figure()
    for i, p in enumerate(have):
        ci = p.get("p50_ci")
        err = None if not ci else {"type": "data", "symmetric": False, "array": [ci[1] - p["p50_ms"]],
                                   "arrayminus": [p["p50_ms"] - ci[0]], "thickness": 1.2}
        peak = p.get("peak_mb")
        fig.add_trace(go.Scatter(
            x=[p["p50_ms"]], y=[p["fidelity"]], mode="markers", name=p["label"], error_x=err,
            marker={"size": 12 + 30 * ((peak or 0.0) / top) ** 0.5, "color": COLORS[i % len(COLORS)], "opacity": 0.75,
                    "line": {"width": 2 if p["label"] in front else 0, "color": "#222"}},
            hovertemplate=f"{p['label']}<br>p50 %{{x:.3g}} ms<br>{fidelity_axis} %{{y:.3f}}<br>peak "
                          f"{fmt_mb(peak)}<extra></extra>"))
    on = [p for p in have if p["label"] in front]
    on.sort(key=lambda p: p["p50_ms"])
    if on:
        fig.add_trace(go.Scatter(x=[p["p50_ms"] for p in on], y=[p["fidelity"] for p in on], mode="lines",
                                 name="Pareto front", line={"color": "#222", "dash": "dot", "width": 1.5},
                                 hoverinfo="skip"))
    return _layout(fig, title, fidelity_axis, "p50 latency (ms)", height=420)
