"""What every telemetry metric means, declared once: its name pattern, unit, label, device class, aggregation and power
scope. Sources write ``(metric, value, unit)`` rows under these names; the summary, charts, pages, report and CLI read
labels, units and classes from here instead of matching names themselves.

A new sensor is one ``telemetry/`` source module and its families added to ``FAMILIES``; nothing downstream needs its
name. The Hailo NPU (``hailo.py``) was added so: its ``npu<N>.*`` families below, and the summary, charts, Compare,
Correlations and ``devices`` show it through ``ACCELERATORS`` and ``quantity``.

``device``: what the metric describes, ``cpu``, ``gpu``, ``npu`` (accelerators a backend may run on, matched against
the backend's ``runs_on``), ``memory`` or ``board`` (the whole device). ``aggregation``: how a run's figure is made
from the samples (``mean`` over the steady phase, ``max`` over the run). ``power_scope``: for power metrics, what the
sensor covers (``board``, ``board rails``, ``cpu``, ``gpu``, ``npu``), None elsewhere. ``quantity``: for an
accelerator's families, which of its headline figures the metric is (``utilization``, ``memory``, ``power``,
``temperature``), read by the summary's accelerator blocks and the charts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

DEVICE_CLASSES = ("cpu", "gpu", "npu", "memory", "board")
ACCELERATORS = ("gpu", "npu")  # the device classes a backend may run on besides the CPU (``registry.RUNS_ON``)
DEVICE_NAMES = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU", "memory": "memory", "board": "board"}
QUANTITIES = ("utilization", "memory", "power", "temperature")


@dataclass(frozen=True)
class Family:
    """One kind of metric. ``pattern`` is a full-match regular expression over the stored name; ``label`` may hold
    ``{}`` for each of its groups (underscores read as spaces), and says the unit in brackets as a page shows it."""

    pattern: str
    label: str
    unit: str
    device: str
    aggregation: str = "mean"
    power_scope: str | None = None
    source: str = ""  # where the figure comes from, for a docstring or a hover
    quantity: str | None = None

    def match(self, metric: str) -> re.Match | None:
        return _compiled(self.pattern).fullmatch(metric)

    @property
    def literal(self) -> str | None:
        """The one metric name of a family without groups (``power.total_w``); None for a pattern."""
        return None if "(" in self.pattern else self.pattern.replace("\\", "")


@cache
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern)


GPU_UTIL = Family(r"gpu(\d+)\.(?:util|load)_pct", "GPU {} utilization (%)", "%", "gpu", source="NVML or jtop",
                  quantity="utilization")
GPU_MEM = Family(r"gpu(\d+)\.mem_used_mb", "GPU {} memory (MB)", "MB", "gpu", "max", source="NVML", quantity="memory")
GPU_POWER = Family(r"gpu(\d+)\.power_w", "GPU {} power (W)", "W", "gpu", power_scope="gpu", source="NVML",
                   quantity="power")

# Most specific first: the first family whose pattern matches a name is its family.
FAMILIES: tuple[Family, ...] = (
    Family(r"cpu\.total_pct", "device CPU busy (%)", "%", "cpu", source="/proc/stat: 100 = every core busy"),
    Family(r"cpu\.worker_pct", "worker CPU (% of one core)", "%", "cpu", source="the worker's /proc/PID/stat"),
    Family(r"cpu\.others_pct", "other processes' CPU (% of one core)", "%", "cpu"),
    Family(r"cpu\.core(\d+)_pct", "core {} busy (%)", "%", "cpu"),
    Family(r"cpu\.core(\d+)_freq_mhz", "core {} frequency (MHz)", "MHz", "cpu"),
    Family(r"cpu\.(?:arm_)?freq_mhz", "CPU frequency (MHz)", "MHz", "cpu"),
    Family(r"mem\.used_mb", "system RAM used (MB)", "MB", "memory", "max"),
    Family(r"mem\.available_mb", "system RAM available (MB)", "MB", "memory"),
    Family(r"mem\.total_mb", "system RAM (MB)", "MB", "memory"),
    Family(r"mem\.gpu_shared_mb", "RAM shared with the GPU (MB)", "MB", "gpu", "max", source="jtop"),
    Family(r"mem\.worker_rss_mb", "worker RSS (MB)", "MB", "memory", "max"),
    Family(r"mem\.charged_mb", "memory charged to the run (MB)", "MB", "memory", "max", source="the run's cgroup"),
    Family(r"mem\.anon_mb", "anonymous memory charged to the run (MB)", "MB", "memory", "max"),
    Family(r"mem\.file_mb", "file pages charged to the run (MB)", "MB", "memory", "max"),
    Family(r"mem\.pressure_some_pct", "memory pressure, some stalled (% of time)", "%", "memory",
           source="pressure stall information (PSI)"),
    Family(r"mem\.pressure_full_pct", "memory pressure, all stalled (% of time)", "%", "memory",
           source="pressure stall information (PSI)"),
    Family(r"mem\.major_faults_per_s", "major page faults (/s)", "/s", "memory"),
    Family(r"mem\.refaults_per_s", "page refaults (/s)", "/s", "memory"),
    Family(r"swap\.used_mb", "swap used (MB)", "MB", "memory", "max"),
    Family(r"temp\.(.+)_c", "temperature {} (C)", "C", "board", "max"),
    GPU_UTIL,
    GPU_MEM,
    Family(r"gpu(\d+)\.mem_total_mb", "GPU {} memory size (MB)", "MB", "gpu", source="NVML"),
    Family(r"gpu(\d+)\.temp_c", "GPU {} temperature (C)", "C", "gpu", "max", source="NVML", quantity="temperature"),
    GPU_POWER,
    Family(r"gpu(\d+)\.(?:sm_clock|freq)_mhz", "GPU {} clock (MHz)", "MHz", "gpu"),
    Family(r"npu(\d+)\.util_pct", "NPU {} utilization (%)", "%", "npu", source="hailortcli monitor",
           quantity="utilization"),
    Family(r"npu(\d+)\.power_w", "NPU {} power (W)", "W", "npu", power_scope="npu", source="hailortcli",
           quantity="power"),
    Family(r"npu(\d+)\.temp_c", "NPU {} temperature (C)", "C", "npu", "max",
           source="HailoRT get_chip_temperature (mean of its two sensors)", quantity="temperature"),
    Family(r"emc\.load_pct", "memory controller load (%)", "%", "memory", source="jtop (EMC)"),
    Family(r"emc\.freq_mhz", "memory controller clock (MHz)", "MHz", "memory", source="jtop (EMC)"),
    Family(r"throttle\.(.+)", "throttled: {} (1 = yes)", "bool", "board", "max", source="vcgencmd get_throttled"),
    Family(r"engine\.(.+)_mhz", "engine {} clock (MHz)", "MHz", "board", source="jtop"),
    Family(r"power\.total_w", "power total (W)", "W", "board", power_scope="board",
           source="jtop: the board's input rail (VDD_IN; POM_5V_IN on a Nano)"),
    Family(r"power\.pmic_total_w", "power pmic total (W)", "W", "board", power_scope="board rails",
           source="Raspberry Pi 5 PMIC: the sum of its rails (not the 5 V input's losses or USB devices)"),
    Family(r"power\.rapl_w", "power rapl (W)", "W", "cpu", power_scope="cpu",
           source="Intel RAPL: CPU package and DRAM (psys where the platform has it)"),
    Family(r"power\.(.+)_w", "power {} (W)", "W", "board"),
    Family(r"power\.(.+)_v", "voltage {} (V)", "V", "board"),
    Family(r"power\.(.+)_a", "current {} (A)", "A", "board"),
)


def family(metric: str) -> Family | None:
    """The declared family of a stored metric name, or None for a name no family declares."""
    for fam in FAMILIES:
        if fam.match(metric):
            return fam
    return None


def label(metric: str) -> str:
    """A metric in words with its unit: ``cpu.worker_pct`` -> ``worker CPU (% of one core)``, ``mem.file_mb`` ->
    ``file pages charged to the run (MB)``; a name no family declares is shown as it is stored."""
    for fam in FAMILIES:
        m = fam.match(metric)
        if m:
            return fam.label.format(*(g.replace("_", " ") for g in m.groups()))
    return metric


def unit(metric: str) -> str | None:
    """The unit of a metric (``%``, ``MB``, ``MHz``, ``W``, ``C``, ``/s``...), None when undeclared."""
    fam = family(metric)
    return fam.unit if fam else None


def device_class(metric: str) -> str | None:
    """``cpu``, ``gpu``, ``npu``, ``memory`` or ``board``; None when undeclared."""
    fam = family(metric)
    return fam.device if fam else None


def power_metrics(names, scope: str) -> list[str]:
    """The names among ``names`` that are power readings of ``scope`` (``board``, ``board rails``, ``cpu``, ``gpu``),
    sorted."""
    return sorted(n for n in names if (f := family(n)) is not None and f.unit == "W" and f.power_scope == scope)


def whole_power(scopes=("board", "board rails")) -> list[Family]:
    """The families of single power sensors that cover ``scopes``, in the catalog's order (best first)."""
    return [f for f in FAMILIES if f.power_scope in scopes and f.literal]


def of_device(names, device: str) -> list[str]:
    """The names among ``names`` whose family describes ``device``, sorted."""
    return sorted(n for n in names if device_class(n) == device)


def of_quantity(names, device: str, quantity: str) -> list[str]:
    """The names among ``names`` that are ``quantity`` (``utilization``, ``memory``, ``power``, ``temperature``) of
    ``device`` (``gpu``, ``npu``), sorted: ``of_quantity(names, "npu", "power")`` -> ``["npu0.power_w"]``."""
    return sorted(n for n in names if (f := family(n)) is not None and f.device == device and f.quantity == quantity)


def temperatures(names) -> list[str]:
    """The names among ``names`` that are temperatures (unit C) of any device, sorted."""
    return sorted(n for n in names if unit(n) == "C")
