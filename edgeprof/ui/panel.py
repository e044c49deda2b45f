"""One telemetry panel for the Run page (a live run and a finished one) and the Runs page (a stored run): a grid of
charts, two a row, one per device class of ``telemetry.catalog`` (``cpu``, ``memory``, ``gpu``, ``board``, then any
other class the run measured: an accelerator such as ``npu`` by ``charts.accelerator_figure``), so a new
accelerator's metrics get a chart without a page knowing their names. Building (``telemetry_charts``, no Streamlit:
the live view builds once a second for every session) is apart from drawing (``telemetry_panel``)."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from .. import charts
from ..run.explain import gpu_reason
from ..telemetry import catalog
from .frames import thermal_reason

MEMORY_CHART_NOTE = ("*Charged* memory is what the limit acts on. Worker RSS also counts shared libraries that other "
                     "processes had loaded first, so it can sit above the limit without a kill.")
KNOWN = ("cpu", "memory", "gpu", "board")  # device classes with a chart of their own, in the grid's order


class Cell(NamedTuple):
    """One place in the grid: the chart of a ``device`` class, the sentence under it (``caption``), or, where the
    run has nothing to draw for it, the sentence that says why (``reason``, shown instead of the chart)."""

    device: str
    figure: go.Figure | None
    caption: str | None = None
    reason: str | None = None


def telemetry_charts(tel: pd.DataFrame, *, stops: dict | None = None, sources: list | None = None,
                     memory_limit_mb: float | None = None, peak_charged_mb: float | None = None,
                     killed_at_s: float | None = None) -> list[Cell]:
    """The panel's cells from a run's telemetry frame (``telemetry_frame``: t_s, source, metric, value, unit).

    ``stops``: ``source_stops`` (marked on the charts); ``sources``: the telemetry sources' status (a run's
    ``telemetry_sources`` or ``probe_status()``), which says why there is no GPU chart; ``memory_limit_mb``,
    ``peak_charged_mb`` (the kernel's peak) and ``killed_at_s`` (an OOM kill, seconds on the frame's clock) for the
    memory chart. CPU and memory always have a cell (an empty chart says "no samples yet"); GPU and temperature say
    why they are missing; another class (an NPU) appears only where the run measured it."""
    gpu = charts.gpu_figure(tel, stops=stops)
    thermal = charts.thermal_figure(tel, stops=stops)
    cells = [
        Cell("cpu", charts.cpu_figure(tel, stops=stops)),
        Cell("memory", charts.memory_figure(tel, memory_limit_mb, peak_charged_mb=peak_charged_mb,
                                            killed_at_s=killed_at_s), caption=MEMORY_CHART_NOTE),
        Cell("gpu", gpu, reason=None if gpu is not None else f"No GPU telemetry ({gpu_reason(sources)})."),
        Cell("board", thermal, reason=None if thermal is not None else thermal_reason(tel)),
    ]
    for device in catalog.DEVICE_CLASSES:
        figure = charts.accelerator_figure if device in catalog.ACCELERATORS else charts.device_figure
        if device not in KNOWN and (fig := figure(tel, device, stops=stops)) is not None:
            cells.append(Cell(device, fig))
    return cells


def telemetry_panel(cells: list[Cell], *, key: str, toolbar: bool = True) -> None:
    """Draw ``cells`` two a row; each chart's widget key is ``{key}_{device}``. ``toolbar=False`` hides plotly's
    mode bar (as the Run page shows its telemetry)."""
    config = None if toolbar else {"displayModeBar": False}
    for first in range(0, len(cells), 2):
        for column, cell in zip(st.columns(2), cells[first:first + 2], strict=False):
            with column:
                if cell.figure is None:
                    st.info(cell.reason)
                    continue
                st.plotly_chart(cell.figure, key=f"{key}_{cell.device}", config=config)
                if cell.caption:
                    st.caption(cell.caption)
