"""The result document of one run: what was timed, how, on what, and what makes the numbers suspect.

This is the ``--json`` output of ``edgeprof run`` and the ``summary`` column of the runs table; the store flattens its
headline figures into columns. Only steady-state samples go into the latency percentiles; the first inference and
the warm-up are reported on their own.
"""

from __future__ import annotations

import re

import numpy as np

from . import stats

_GPU_UTIL = re.compile(r"^gpu\d+\.(util|load)_pct$")
_GPU_MEM = re.compile(r"^gpu\d+\.mem_used_mb$")


def _mean(values) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _max(values) -> float | None:
    return float(np.max(values)) if len(values) else None


def _phase_start(phases, name):
    return next((t for p, t, _ in phases if p == name), None)


def build_summary(handle, status: str, reason: str | None, mem: dict, lat, tel: list, phases: list) -> dict:
    cfg = handle.config
    from .runner import PHASE_CODES

    # int64, int64, int8 codes, in seq order: a long run of a fast model is 10 M samples, so no full-size float copy
    # of the whole run is made, only of the steady latencies
    t_ns, lat_ns, phase = lat
    is_steady = phase == PHASE_CODES["steady"]
    first = lat_ns[phase == PHASE_CODES["first"]] / 1e6
    warm = lat_ns[phase == PHASE_CODES["warmup"]] / 1e6
    summary = stats.summarize_latency(lat_ns[is_steady] / 1e6)
    steady_idx = (int(np.argmax(is_steady)), len(is_steady) - 1 - int(np.argmax(is_steady[::-1]))) \
        if is_steady.any() else None
    del is_steady

    loaded = handle._loaded
    t_warm, t_steady = _phase_start(phases, "warmup"), _phase_start(phases, "steady")
    warm_reason = next((r for p, _, r in phases if p == "steady"), None)
    steady_s = (t_ns[steady_idx[1]] + lat_ns[steady_idx[1]] - t_ns[steady_idx[0]]) / 1e9 if steady_idx else None

    # telemetry over the steady window (or the whole run if it never got there)
    rows = tel
    if steady_idx:
        lo, hi = t_ns[steady_idx[0]], t_ns[steady_idx[1]]
        rows = [r for r in tel if lo <= r[0] <= hi] or tel
    by_metric: dict[str, list[float]] = {}
    for _, _src, metric, value, _unit in rows:
        if isinstance(value, (int, float)):
            by_metric.setdefault(metric, []).append(value)
    all_metric: dict[str, list[float]] = {}
    for _, _src, metric, value, _unit in tel:
        if isinstance(value, (int, float)):
            all_metric.setdefault(metric, []).append(value)

    window = (t_ns[steady_idx[0]], t_ns[steady_idx[1]]) if steady_idx else \
        ((t_ns[0], t_ns[-1]) if len(t_ns) else None)
    coverage = _coverage(tel, window, getattr(handle, "telemetry_status", []), handle.started_ns)
    gpu_util = [v for m, vs in by_metric.items() if _GPU_UTIL.match(m) for v in vs]
    gpu_mem = [v for m, vs in all_metric.items() if _GPU_MEM.match(m) for v in vs]
    temps = [v for m, vs in all_metric.items() if m.startswith("temp.") for v in vs]
    throttled = any(v for m, vs in all_metric.items() if m.startswith("throttle.") and "occurred" not in m for v in vs)
    rss = all_metric.get("mem.worker_rss_mb", [])
    done = handle._done_msg
    peak_rss = max([x for x in [_max(rss), done.max_rss_mb if done else None] if x is not None], default=None)
    charged = all_metric.get("mem.charged_mb", [])
    peak_charged = mem.get("peak_charged_mb") or _max(charged)

    device = getattr(handle, "device", None) or {}
    governor = device.get("governor")
    busy, worker = _mean(by_metric.get("cpu.total_pct", [])), _mean(by_metric.get("cpu.worker_pct", []))
    others = max(busy * device["cores"] - worker, 0.0) if busy is not None and worker is not None and device.get("cores") \
        else None
    int8_ratio = _int8_ratio(handle, summary.p50)
    flags = stats.suspect_flags(
        summary, throttled=throttled if any(m.startswith("throttle.") for m in all_metric) else None,
        governor=governor, int8_vs_fp32_ratio=int8_ratio,
        cap_hit=bool(mem.get("oom_kill_count")) if mem.get("mechanism") in ("cgroup1", "cgroup2") else None,
        warmup_capped=warm_reason if warm_reason in ("max_iterations", "max_seconds") else None,
        cpu_others_pct=others, cpu_busy_pct=busy,
    ) if status == "ok" else []

    variant = handle.variant
    runtime = dict(handle.runtime or {})
    return {
        "run_id": handle.run_id,
        "status": status,
        "error": reason,
        "error_detail": (failed.detail or None) if (failed := getattr(handle, "_failed", None)) else None,
        "model": getattr(variant, "model", None) or cfg.model,
        "precision": getattr(variant, "precision", cfg.precision),
        "format": getattr(variant, "format", cfg.runtime),
        "model_path": str(variant.path) if variant is not None else None,
        "model_size_bytes": getattr(variant, "size_bytes", None),
        "load_ms": loaded.load_ns / 1e6 if loaded else None,
        "first_inference_ms": float(first[0]) if len(first) else None,
        "warmup_ms": (t_steady - t_warm) / 1e6 if t_warm and t_steady else (float(warm.sum()) if len(warm) else None),
        "warmup_iterations": int(len(warm)),
        "warmup_reason": warm_reason,
        "latency_ms": {k: getattr(summary, k) for k in
                       ("p50", "p90", "p95", "p99", "mean", "std", "cov", "n", "median_ci_low", "median_ci_high",
                        "min", "max")},
        "steady_s": steady_s,
        "throughput_ips": stats.throughput(summary.n, steady_s) if steady_s else None,
        "iterations_total": int(len(lat_ns)),
        "memory": {
            "requested_mb": mem.get("requested_mb"), "mechanism": mem.get("mechanism"),
            "mechanism_note": mem.get("reason"), "peak_charged_mb": peak_charged, "peak_rss_mb": peak_rss,
            "oom_killed": status == "oom_killed", "oom_kill_count": mem.get("oom_kill_count"),
            "major_faults": mem.get("major_faults") if mem.get("major_faults") is not None
            else (done.major_faults if done else None),
            "swap_peak_mb": mem.get("swap_peak_mb"),
        },
        "cpu": {
            "system_mean_pct": busy,
            "system_peak_pct": _max(all_metric.get("cpu.total_pct", [])),
            "worker_mean_pct": worker,
            "worker_peak_pct": _max(all_metric.get("cpu.worker_pct", [])),
            "others_mean_pct": others,
            "cores": device.get("cores"),
            "freq_mean_mhz": _mean(by_metric.get("cpu.freq_mhz", [])),
            "governor": governor,
        },
        "gpu": {"util_mean_pct": _mean(gpu_util), "util_peak_pct": _max(gpu_util), "mem_peak_mb": _max(gpu_mem)}
        if (gpu_util or gpu_mem) else None,
        "temp_max_c": _max(temps),
        "throttled": throttled,
        "runtime": {"name": runtime.get("name"), "version": runtime.get("version"),
                    "provider": runtime.get("provider"), "threads": runtime.get("threads", cfg.threads)},
        "telemetry_sources": getattr(handle, "telemetry_status", []),
        "telemetry_coverage": coverage,
        "notes": list(handle.notes),
        "worker_heavy_imports": list(loaded.heavy_modules) if loaded else None,
        "flags": [f.message for f in flags],
        "flag_codes": [f.code for f in flags],
        "config": cfg.to_dict(),
        "device": getattr(handle, "device", None),
    }


def _coverage(tel: list, window, statuses: list, started_ns: int) -> dict:
    """For each source that did not report over the whole measured window (it stopped, or started late): the part
    of the window its figures cover, in seconds after the run started. Figures from such a source describe only
    that part. Empty when every source covered the window (the usual case)."""
    if window is None or window[1] <= window[0]:
        return {}
    lo, hi = window
    span: dict[str, list[int]] = {}
    for t, src, *_ in tel:
        if lo <= t <= hi:
            s = span.setdefault(src, [t, t])
            s[0], s[1] = min(s[0], t), max(s[1], t)
    stopped = {st.get("name"): st for st in statuses or [] if st.get("stopped_s") is not None}
    out = {}
    length = (hi - lo) / 1e9
    for src in set(span) | set(stopped):
        first, last = span.get(src, (None, None))
        share = (last - first) / (hi - lo) if first is not None else 0.0
        if src not in stopped and share >= 0.95:
            continue
        doc = {"from_s": None if first is None else round((first - started_ns) / 1e9, 3),
               "to_s": None if last is None else round((last - started_ns) / 1e9, 3),
               "window_s": [round((lo - started_ns) / 1e9, 3), round((hi - started_ns) / 1e9, 3)],
               "share": round(share, 3), "of_s": round(length, 3)}
        if src in stopped:
            doc["stopped_s"], doc["reason"] = stopped[src]["stopped_s"], stopped[src].get("reason")
        out[src] = doc
    return out


def _int8_ratio(handle, p50: float | None) -> float | None:
    """p50 of this INT8 run over the latest FP32 run of the same model, runtime, threads and device."""
    variant = handle.variant
    if p50 is None or variant is None or not str(variant.precision).startswith("int8") or handle._store is None:
        return None
    try:
        ref = handle._store.list_runs(model=getattr(variant, "model", None) or handle.config.model, precision="fp32",
                                      status="ok")
    except Exception:
        return None
    if ref is None or len(ref) == 0:
        return None
    ref = ref[(ref["runtime"] == variant.format) & (ref["threads"] == handle.config.threads)]
    if "device_id" in ref and getattr(handle, "device_id", None):
        ref = ref[ref["device_id"] == handle.device_id]
    ref = ref.dropna(subset=["p50_ms"])
    if ref.empty:
        return None
    return float(p50 / ref.sort_values("created_at").iloc[-1]["p50_ms"])
