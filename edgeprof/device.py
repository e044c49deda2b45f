"""What this device is and what it can measure: the platform, the runtimes and execution providers a run will use,
each telemetry source (or why it is off) and the memory-cap mechanism. The ``devices`` command prints it; pages can
show it."""

from __future__ import annotations


def onnx_providers(providers: list[str] | None, arch: str, gpu: str | None, checkout: bool) -> dict:
    """The execution providers a run will use, in order, and how to get the GPU one when a GPU is visible but this
    ONNX Runtime is the CPU build (``providers`` None: ONNX Runtime is not installed). Pure: tests pass fakes."""
    from .install import gpu_hint

    if providers is None:
        return {"default": None, "chain": [], "on_request": [], "gpu": gpu, "hint": None}
    chain = (["cuda"] if "cuda" in providers else []) + ["cpu"]
    hint = gpu_hint(arch, gpu, checkout) if "cuda" not in providers else None
    return {"default": chain[0], "chain": chain, "on_request": [p for p in providers if p not in chain],
            "gpu": gpu, "hint": hint}


def memory_pressure(mech, parent, system_readable: bool) -> dict:
    """Where a run's memory pressure will come from: the worker's own cgroup (``scope`` cgroup, ``where`` the v2
    directory its PSI group is made under, or the cap's own v2 group), else the system's file (``scope`` system),
    else {"unavailable": why}. Pure: tests pass what the probes found."""
    from .telemetry.memory import PROC_PRESSURE_MEMORY

    if mech.kind == "cgroup2":
        return {"scope": "cgroup", "where": f"memory.pressure of the cap's cgroup under {mech.parent}"}
    if parent is not None:
        return {"scope": "cgroup", "where": f"memory.pressure of a group of the worker's own under {parent}"}
    if system_readable:
        return {"scope": "system", "where": f"{PROC_PRESSURE_MEMORY} (system-wide: every process counts)"}
    return {"unavailable": f"the kernel gives no pressure-stall information ({PROC_PRESSURE_MEMORY} cannot be read)"}


def device_report() -> dict:
    import platform

    from . import paths
    from .install import gpu_seen
    from .runtimes import available_runtimes
    from .telemetry import probe_all, static_info
    from .worker import limits

    mech = limits.detect()
    runtimes = available_runtimes()
    ort = next(s for s in runtimes if s.name == "onnxruntime")
    checkout = paths.BUNDLED_ROOT == paths.REPO_ROOT and (paths.REPO_ROOT / "scripts" / "setup.sh").is_file()
    return {
        "device": static_info(),
        "runtimes": [{"name": s.name, "available": s.available, "version": s.version, "reason": s.reason,
                      "execution_providers": list(s.providers)} for s in runtimes],
        "onnx_providers": onnx_providers(list(ort.providers) if ort.available else None, platform.machine(),
                                         gpu_seen(), checkout),
        "telemetry": [s._asdict() for s in probe_all()],
        "memory_cap": mech.to_dict(),
        "memory_pressure": memory_pressure(mech, limits.psi_parent(), _readable(PSI_SYSTEM)),
    }


PSI_SYSTEM = "/proc/pressure/memory"


def _readable(path: str) -> bool:
    try:
        with open(path) as fh:
            return bool(fh.read())
    except OSError:
        return False
