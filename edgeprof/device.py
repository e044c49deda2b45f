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
    }
