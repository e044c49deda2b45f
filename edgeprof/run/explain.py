"""Why a run's numbers are what they are, in sentences: memory pressure with its faults and charged split, energy per
inference, the operator profile's coverage, and why there is no GPU telemetry. Pure: a result document (``summary``)
in, plain text out, so the Run page (markdown, its topic in bold) and the CLI (a column per topic) say the same thing.

Each line says what could not be measured and why (``{"unavailable": why}`` in the document) rather than leaving the
topic out.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from ..stats import fmt_ms, plural

GPU_SOURCES = ("nvml", "jetson")  # the telemetry sources whose probe status says why a run has no GPU telemetry
TOP_OPERATORS = 5


class Why(NamedTuple):
    """One line of a run's "why": ``topic`` is its emphasis (``Memory pressure``; a page shows it in bold),
    ``short`` the same topic in a CLI column (``pressure``), ``text`` the plain sentence after it. ``text`` carries
    data from the run (a source's name, a runtime's reason): escape it where it lands in markup."""

    topic: str
    short: str
    text: str


def _num(value, digits: int = 2, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.{digits}f}{unit}"


def one_level(text: str) -> str:
    """``text`` with at most one level of parentheses: a reason quoted inside another's parentheses loses its own,
    ``no sensor (nvml: no GPU found (NVML: not loaded))`` -> ``no sensor (nvml: no GPU found, NVML: not loaded)``, so a
    sentence built from sources' reasons reads as one sentence."""
    out, depth = [], 0
    for ch in str(text):
        if ch == "(":
            depth += 1
            if depth > 1:
                while out and out[-1] == " ":
                    out.pop()
                out.append(", ")
                continue
        elif ch == ")" and depth:
            depth -= 1
            if depth:
                continue
        out.append(ch)
    return "".join(out)


def _unavailable(why) -> str:
    """``unavailable: no power sensor on this device (nvml: no GPU found, NVML: ...; rapl: ...)``."""
    return f"unavailable: {one_level(why)}"


def _rate(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.0f}/s" if value >= 10 else f"{value:.1f}/s"


def why(result: dict) -> list[Why]:
    """The lines on why a run is slow, in this order where the result has them: memory pressure (``memory.pressure``
    with ``memory.major_faults_per_s``, ``refaults_per_s``, ``anon_mb``, ``file_mb``), energy (``energy``) and the
    operator profile (``op_profile``). A topic the result lacks altogether (a run stored before it was measured) is
    left out; one marked unavailable says why."""
    mem = result.get("memory") or {}
    lines = []
    pressure = mem.get("pressure")
    if isinstance(pressure, dict):
        if "unavailable" in pressure:
            parts = [_unavailable(pressure["unavailable"])]
        else:
            whose = "in the worker's cgroup" if pressure.get("scope") == "cgroup" else \
                "system-wide: every process on the device counts"
            parts = [f"some task stalled on memory {_num(pressure.get('some_pct'), 1, '%')} of the steady phase, "
                     f"all tasks {_num(pressure.get('full_pct'), 1, '%')} ({whose})"]
        parts.append(f"major faults {_rate(mem.get('major_faults_per_s'))}")
        if mem.get("refaults_per_s") is not None:
            parts.append(f"refaults {_rate(mem.get('refaults_per_s'))}")
        if mem.get("anon_mb") is not None or mem.get("file_mb") is not None:
            parts.append(f"charged memory {_num(mem.get('anon_mb'), 1, ' MB')} anonymous and "
                         f"{_num(mem.get('file_mb'), 1, ' MB')} file pages")
        lines.append(Why("Memory pressure", "pressure", "; ".join(parts) + "."))
    energy = result.get("energy")
    if isinstance(energy, dict):
        if "unavailable" in energy:
            text = f"{_unavailable(energy['unavailable'])}."
        else:
            note = f"; {energy['note']}" if energy.get("note") else ""
            text = (f"{_num(energy.get('mj_per_inference'), 3, ' mJ')} per inference at "
                    f"{_num(energy.get('avg_power_w'), 2, ' W')} mean power over the steady phase "
                    f"({energy.get('source')}{note}).")
        lines.append(Why("Energy", "energy", text))
    prof = result.get("op_profile")
    if isinstance(prof, dict):
        if "unavailable" in prof:
            text = f"{_unavailable(prof['unavailable'])}."
        else:
            top = ", ".join(f"{t['op_type']} {fmt_ms(t.get('ms_per_inference'))} ({100 * t['share']:.0f}%)"
                            for t in (prof.get("by_type") or [])[:TOP_OPERATORS])
            cov = prof.get("coverage")
            text = ((f"{top}; " if top else "") + f"operators sum to {fmt_ms(prof.get('op_total_ms'))}"
                    + (f", {100 * cov:.0f}% of the steady p50" if cov is not None else "")
                    + f" ({plural(prof.get('inferences'), 'inference')} profiled after the steady phase).")
        lines.append(Why("Operator profile", "op profile", text))
    return lines


def gpu_reason(sources: list | None) -> str:
    """Why there is no GPU telemetry, from the sampler's probe status (a run's ``telemetry_sources`` or
    ``telemetry.probe_all``: dicts with ``name``, ``available``, ``reason``): ``nvml: driver not loaded``, or
    ``no GPU source on this device`` where no GPU source was tried."""
    for s in sources or []:
        if s.get("name") in GPU_SOURCES and not s.get("available"):
            return f"{s.get('name')}: {s.get('reason') or 'unavailable'}"
    return "no GPU source on this device"
