"""Telemetry: one ``Source`` per hardware vendor and a ``Sampler`` thread that reads them on one clock.

The platform is decided here and only here (``default_sources``, from the table ``SOURCES``):

* Raspberry Pi (device-tree model "Raspberry Pi ...")  -> host + rpi + hailo (a Hailo NPU on the AI Kit, when present)
* Jetson (L4T release file or "nvidia,tegra" device tree) -> host + jetson   (the iGPU is not an NVML device)
* anything else                                         -> host + nvml + rapl (each switches itself off when absent)

A new vendor's source is its module and one entry in ``SOURCES`` (``"module:Class"``, imported when a run starts);
``$EDGEPROF_SOURCES`` adds sources on every platform (comma-separated ``module:Class``: a plug-in, the tests' fakes).

Energy: jtop's board input on a Jetson, the PMIC's rails on a Raspberry Pi 5 (``rpi``), Intel RAPL (``power``) and
NVML's GPU power elsewhere. Memory pressure (``memory``) is made per run by the runner, which knows the worker's
cgroup.

Every source probes once and says why it is off; see ``probe_all``. What each metric a source writes means (unit,
label, device class, power scope) is declared in ``catalog``.
"""

from __future__ import annotations

import importlib
import os
import platform
import socket

from . import host, jetson, rpi
from .base import Source, SourceStatus
from .host import HostSource
from .jetson import JetsonSource
from .memory import MemoryPressureSource
from .nvml import NvmlSource
from .power import RaplSource
from .rpi import RpiSource, memory_cgroup_disabled
from .sampler import Sampler

SOURCES = {
    "rpi": ("edgeprof.telemetry.host:HostSource", "edgeprof.telemetry.rpi:RpiSource",
            "edgeprof.telemetry.hailo:HailoSource"),
    "jetson": ("edgeprof.telemetry.host:HostSource", "edgeprof.telemetry.jetson:JetsonSource"),
    "generic": ("edgeprof.telemetry.host:HostSource", "edgeprof.telemetry.nvml:NvmlSource",
                "edgeprof.telemetry.power:RaplSource"),
}
ENV_SOURCES = "EDGEPROF_SOURCES"

DEVICE_TREE_MODEL_PATH = "/proc/device-tree/model"
DMI_PRODUCT_NAME_PATH = "/sys/class/dmi/id/product_name"
OS_RELEASE_PATH = "/etc/os-release"

__all__ = [
    "HostSource",
    "JetsonSource",
    "MemoryPressureSource",
    "NvmlSource",
    "RaplSource",
    "RpiSource",
    "Sampler",
    "Source",
    "SourceStatus",
    "default_sources",
    "measurable",
    "memory_cgroup_disabled",
    "platform_kind",
    "probe_all",
    "static_info",
]


def platform_kind(
    model_path: str = DEVICE_TREE_MODEL_PATH,
    nv_tegra_release_path: str = jetson.NV_TEGRA_RELEASE_PATH,
    compatible_path: str = jetson.DEVICE_TREE_COMPATIBLE_PATH,
) -> str:
    """'rpi', 'jetson' or 'generic'."""
    if rpi.is_raspberry_pi(model_path):
        return "rpi"
    if jetson.is_jetson(nv_tegra_release_path, compatible_path):
        return "jetson"
    return "generic"


def default_sources(kind: str | None = None) -> list[Source]:
    """Fresh, unprobed sources for this platform (or for ``kind``: 'rpi', 'jetson', 'generic'): its row of
    ``SOURCES``, then those named in ``$EDGEPROF_SOURCES``."""
    kind = kind or platform_kind()
    extra = [s.strip() for s in os.environ.get(ENV_SOURCES, "").split(",") if s.strip()]
    return [_source_class(spec)() for spec in dict.fromkeys([*SOURCES[kind], *extra])]


def _source_class(spec: str) -> type[Source]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def probe_all(sources: list[Source] | None = None) -> list[SourceStatus]:
    """Probe each source (once) and say what it found or why it is off.

    Without ``sources``, fresh default sources are probed and closed again (NVML, jtop handles released).
    """
    if sources is not None:
        return [src.status() for src in sources]
    fresh = default_sources()
    try:
        return [src.status() for src in fresh]
    finally:
        for src in fresh:
            src.close()


def measurable(sources: list[Source] | None = None) -> dict[str, list[str]]:
    """What this device can measure: {device class (``catalog.DEVICE_CLASSES`` order): [available sources]}, from
    each source's ``measures``; fresh default sources are probed and closed when ``sources`` is None."""
    from .catalog import DEVICE_CLASSES

    fresh = sources is None
    sources = default_sources() if fresh else sources
    try:
        found = [(d, s.name) for s in sources if s.probe()[0] for d in s.measures]
    finally:
        if fresh:
            for src in sources:
                src.close()
    return {d: [name for c, name in found if c == d] for d in DEVICE_CLASSES if any(c == d for c, _ in found)}


def _os_name(os_release_path: str = OS_RELEASE_PATH) -> str:
    try:
        with open(os_release_path, encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.strip().partition("=")
                if key == "PRETTY_NAME":
                    return value.strip('"')
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


def _model(model_path: str = DEVICE_TREE_MODEL_PATH, dmi_path: str = DMI_PRODUCT_NAME_PATH) -> str | None:
    for path in (model_path, dmi_path):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read().replace("\x00", "").strip()
        except OSError:
            continue
        if text:
            return text
    return None


def static_info(
    model_path: str = DEVICE_TREE_MODEL_PATH,
    dmi_path: str = DMI_PRODUCT_NAME_PATH,
    os_release_path: str = OS_RELEASE_PATH,
    governor_path: str = host.GOVERNOR_PATH,
    cpuinfo_path: str = host.CPUINFO_PATH,
) -> dict:
    """The device a run happened on.

    Keys: hostname, machine, model (device-tree model on Pi/Jetson, DMI product name on x86), os, kernel, cpu,
    cores, cores_physical, cores_usable (CPU affinity), ram_mb, governor (None without cpufreq), python,
    platform_kind ('rpi' | 'jetson' | 'generic'), power_mode (a Jetson's ``nvpmodel`` mode by name; None elsewhere).
    """
    info = {
        "hostname": socket.gethostname(),
        "machine": platform.machine(),
        "model": _model(model_path, dmi_path),
        "os": _os_name(os_release_path),
        "python": platform.python_version(),
        "platform_kind": platform_kind(model_path),
    }
    info["power_mode"] = jetson.power_mode() if info["platform_kind"] == "jetson" else None
    info.update(host.static_info(governor_path, cpuinfo_path))
    info["cores_usable"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return info
