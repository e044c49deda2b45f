"""The result document of one run: what was timed, how, on what, and what makes the numbers suspect.

A pure function of plain facts (``RunFacts``): the runner gathers them (worker messages, the cap's report, the
recorder's samples, the sampler's status, a reference run from the store) and nothing here reads a database, a
process or a clock, so tests pin the document down from made-up facts. It is the ``--json`` output of
``edgeprof run`` and the ``summary`` column of the runs table (the store flattens its headline figures into
columns). Only steady-state samples go into the latency percentiles; load, the first inference and the warm-up are
reported on their own.

Summary version 2 (``store.schema.SUMMARY_VERSION``) names the runtime and the library that ran it apart:
``runtime`` is ``onnx`` or ``tflite`` (as in the run's config), ``backend`` is {name: onnxruntime | litert |
tflite-runtime, version, execution_provider (ONNX Runtime) or delegate (TFLite), threads}.
``store.schema.upgrade_summary`` reads a version-1 document (``format`` and a ``runtime`` block).

Why a run is slow, in new keys: ``op_profile`` (a per-operator profile from a phase AFTER the steady state, only when
asked for: ``runtimes.profile``; its ``coverage`` is the sum of operator times over the steady p50), under
``memory``: ``pressure`` (PSI over the steady phase: ``some_pct``, ``full_pct``, ``scope`` cgroup | system),
``major_faults_per_s``, ``refaults_per_s``, ``anon_mb`` and ``file_mb`` (the charged memory's split), and ``energy``
(``mj_per_inference``, ``avg_power_w``, ``source``, ``scope``). A figure that cannot be had is ``{"unavailable":
why}``, never a made-up number. A run's profile phase is left out of every other figure (its telemetry too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import stats
from ..config import RunConfig
from ..runtimes import registry
from ..store.samples import LatencyDigest, digest_arrays, retention_summary
from ..store.schema import SUMMARY_VERSION
from ..telemetry import catalog

# Power sensors that cover the whole board, best first, and the CPU's: (metric, what it measures, scope), from the
# metric catalog.
BOARD_POWER = tuple((f.literal, f.source, f.power_scope) for f in catalog.whole_power(("board", "board rails")))
CPU_POWER = next((f.literal, f.source, f.power_scope) for f in catalog.whole_power(("cpu",)))


@dataclass
class RunFacts:
    """Everything a summary is made of, as plain values.

    ``latency``: (t_ns int64, latency_ns int64, phase code int8) arrays in seq order, or a long run's
    ``store.samples.LatencyDigest`` computed in the store (the same figures, no sample in memory); ``telemetry``: rows (t_ns,
    source, metric, value, unit); ``phases``: (phase, t_ns, reason) events, "load" first; ``memory``: the cap's
    report (``MemoryCap.report``); ``variant``: the resolved file (model, precision, format, path, size_bytes, and
    ``quantization``: what building it changed, ``quantize.quantization_report``) or None when resolving failed;
    ``backend``: ``RuntimeInfo.to_dict()`` from the worker; ``fp32_p50_ms``: the latest FP32
    run of the same model, runtime, threads and device, for the INT8-slower flag; ``cpu_priority``: the worker's CPU
    priority (``CpuPriority.report``: ``{"mechanism", "kind", "note"}`` or ``{"unavailable": why}``).
    """

    run_id: str
    config: RunConfig
    status: str
    reason: str | None
    started_ns: int
    latency: tuple
    telemetry: list = field(default_factory=list)
    phases: list = field(default_factory=list)
    memory: dict = field(default_factory=dict)
    variant: dict | None = None
    backend: dict | None = None
    load_ns: int | None = None
    heavy_modules: list | None = None
    worker_max_rss_mb: float | None = None
    worker_major_faults: int | None = None
    error_detail: str | None = None
    device: dict | None = None
    telemetry_sources: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    fp32_p50_ms: float | None = None
    cpu_priority: dict | None = None
    op_profile: dict | None = None  # the worker's profile document when one was asked for (runtimes.profile)
    memory_pressure: dict | None = None  # MemoryPressureSource.describe(): {"scope", "path"} or {"unavailable"}
    worker_exit_ns: int | None = None  # when the parent saw the worker end (an OOM kill's moment, on the chart)
    prediction: list | None = None  # [(class index, probability), ...] of the first inference, when asked (top_k)


def _mean(values) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _max(values) -> float | None:
    return float(np.max(values)) if len(values) else None


def phase_starts(phases) -> dict:
    """{phase: t_ns of its first event} from (phase, t_ns, reason) events."""
    first: dict = {}
    for p, t, _reason in phases or []:
        first.setdefault(p, t)
    return first


def timings(phases, *, load_ns: int | None = None, first_latency_ns: int | None = None,
            warmup_latency_ms: float | None = None) -> dict:
    """load_ms, first_inference_ms and warmup_ms (None where unknown): the one definition the summary and the live
    view share. Load is the worker's own measurement when given, else the span between the load and first events;
    warm-up is the span from its first event to steady state, else the sum of its latencies (a run stopped in it)."""
    first = phase_starts(phases)
    load = load_ns / 1e6 if load_ns is not None else (
        (first["first"] - first["load"]) / 1e6 if "load" in first and "first" in first else None)
    spanned = "warmup" in first and "steady" in first
    warm = (first["steady"] - first["warmup"]) / 1e6 if spanned else warmup_latency_ms
    return {"load_ms": load, "first_inference_ms": None if first_latency_ns is None else first_latency_ns / 1e6,
            "warmup_ms": warm}


def build_summary(f: RunFacts) -> dict:
    """The result document (see the module docstring) of a run described by ``f``."""
    cfg, status = f.config, f.status
    # int64, int64, int8 codes, in seq order: a long run of a fast model is 10 M samples, so no full-size float copy
    # of the whole run is made, only of the steady latencies
    # a long run's summary comes from the store (store.samples.digest) so no sample reaches Python; a short one's
    # from the arrays in memory: both give the same LatencyDigest
    lat = f.latency if isinstance(f.latency, LatencyDigest) else digest_arrays(*f.latency)
    summary = lat.steady
    phases = f.phases
    warm_reason = next((r for p, _, r in phases if p == "steady"), None)
    steady_s = (lat.steady_t1 + lat.steady_last_ns - lat.steady_t0) / 1e9 if lat.steady_t0 is not None else None
    times = timings(phases, load_ns=f.load_ns, first_latency_ns=lat.first_ns,
                    warmup_latency_ms=lat.warmup_sum_ns / 1e6 if lat.warmup_n else None)

    # telemetry over the steady window (or the whole run if it never got there); a profile phase is no part of it
    profile_at = phase_starts(phases).get("profile")
    tel = f.telemetry if profile_at is None else [r for r in f.telemetry if r[0] < profile_at]
    rows = tel
    if lat.steady_t0 is not None:
        lo, hi = lat.steady_t0, lat.steady_t1
        rows = [r for r in tel if lo <= r[0] <= hi] or tel
    by_metric: dict[str, list[float]] = {}
    for _, _src, metric, value, _unit in rows:
        if isinstance(value, (int, float)):
            by_metric.setdefault(metric, []).append(value)
    all_metric: dict[str, list[float]] = {}
    for _, _src, metric, value, _unit in tel:
        if isinstance(value, (int, float)):
            all_metric.setdefault(metric, []).append(value)

    window = (lat.steady_t0, lat.steady_t1) if lat.steady_t0 is not None else \
        ((lat.t_first, lat.t_last) if lat.n_total else None)
    covered = coverage(tel, window, f.telemetry_sources, f.started_ns, period_ns=int(1e9 / cfg.sample_hz))
    temps = [v for m, vs in all_metric.items() if m.startswith("temp.") for v in vs]
    throttled = any(v for m, vs in all_metric.items() if m.startswith("throttle.") and "occurred" not in m for v in vs)
    rss = all_metric.get("mem.worker_rss_mb", [])
    peak_rss = max([x for x in [_max(rss), f.worker_max_rss_mb] if x is not None], default=None)
    mem = f.memory
    peak_charged = mem.get("peak_charged_mb") or _max(all_metric.get("mem.charged_mb", []))

    device = f.device or {}
    governor = device.get("governor")
    busy, worker = _mean(by_metric.get("cpu.total_pct", [])), _mean(by_metric.get("cpu.worker_pct", []))
    others = max(busy * device["cores"] - worker, 0.0) if busy is not None and worker is not None and device.get("cores") \
        else None
    variant = f.variant or {}
    int8_ratio = (summary.p50 / f.fp32_p50_ms if summary.p50 is not None and f.fp32_p50_ms
                  and str(variant.get("precision", "")).startswith("int8") else None)
    flags = stats.suspect_flags(
        summary, throttled=throttled if any(m.startswith("throttle.") for m in all_metric) else None,
        governor=governor, int8_vs_fp32_ratio=int8_ratio,
        cap_hit=bool(mem.get("oom_kill_count")) if mem.get("mechanism") in ("cgroup1", "cgroup2") else None,
        warmup_capped=warm_reason if warm_reason in ("max_iterations", "max_seconds") else None,
        cpu_others_pct=others, cpu_busy_pct=busy,
    ) if status in ("ok", "stopped") else []  # a stopped run's numbers can be suspect too

    backend = dict(f.backend or {})
    return {
        "summary_version": SUMMARY_VERSION,
        "run_id": f.run_id,
        "status": status,
        "error": f.reason,
        "error_detail": f.error_detail or None,
        "model": variant.get("model") or cfg.model,
        "precision": variant.get("precision", cfg.precision),
        "runtime": variant.get("format", cfg.runtime),
        "model_path": None if variant.get("path") is None else str(variant["path"]),
        "model_size_bytes": variant.get("size_bytes"),
        "quantization": variant.get("quantization"),
        **times,
        "warmup_iterations": lat.warmup_n,
        "warmup_reason": warm_reason,
        "latency_ms": latency_block(summary),
        "retention": retention_summary(getattr(cfg, "retention", "auto"), lat),
        "steady_s": steady_s,
        "throughput_ips": stats.throughput(summary.n, steady_s) if steady_s else None,
        "iterations_total": lat.n_total,
        "worker_exit_s": None if f.worker_exit_ns is None else round((f.worker_exit_ns - f.started_ns) / 1e9, 3),
        "worker_exit_ns": f.worker_exit_ns,  # on the samples' clock (time.monotonic_ns), for charts of stored runs
        "memory": {
            "requested_mb": mem.get("requested_mb"), "mechanism": mem.get("mechanism"),
            "mechanism_note": mem.get("reason"), "peak_charged_mb": peak_charged, "peak_rss_mb": peak_rss,
            "oom_killed": status == "oom_killed", "oom_kill_count": mem.get("oom_kill_count"),
            "major_faults": mem.get("major_faults") if mem.get("major_faults") is not None else f.worker_major_faults,
            "swap_peak_mb": mem.get("swap_peak_mb"),
            **pressure_summary(by_metric, f.memory_pressure),
            **({"profile_phase": mem["profile_phase"]} if any(v is not None for v in
                                                              (mem.get("profile_phase") or {}).values()) else {}),
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
        "cpu_priority": dict(f.cpu_priority) if f.cpu_priority else None,
        **{device: accelerator_summary(device, by_metric, all_metric) for device in catalog.ACCELERATORS},
        "energy": energy_summary(by_metric, steady_s, summary.n, backend, f.telemetry_sources),
        "op_profile": profile_summary(f.op_profile, summary.p50),
        **({"prediction": [{"index": int(i), "probability": float(p)} for i, p in f.prediction]}
           if f.prediction is not None else {}),
        "temp_max_c": _max(temps),
        "throttled": throttled,
        "backend": {"name": backend.get("name"), "version": backend.get("version"),
                    "execution_provider": backend.get("execution_provider"), "delegate": backend.get("delegate"),
                    "threads": backend.get("threads", cfg.threads)},
        "telemetry_sources": list(f.telemetry_sources),
        "telemetry_coverage": covered,
        "notes": list(f.notes),
        "worker_heavy_imports": None if f.heavy_modules is None else list(f.heavy_modules),
        "flags": [fl.message for fl in flags],
        "flag_codes": [fl.code for fl in flags],
        "config": cfg.to_dict(),
        "device": f.device,
    }


def accelerator_summary(device: str, by_metric: dict, all_metric: dict) -> dict | None:
    """The block of an accelerator class (``gpu``, ``npu``: ``catalog.ACCELERATORS``) from the metrics the catalog
    gives that class: ``util_mean_pct`` and ``util_peak_pct`` (steady phase, %), ``mem_peak_mb`` (whole run, MB), and where
    measured ``power_mean_w`` (steady phase, W) and ``temp_max_c`` (whole run, C). None when the run has no
    figure of that class."""
    def values(source: dict, quantity: str) -> list[float]:
        return [v for m in catalog.of_quantity(source, device, quantity) for v in source[m]]

    util, mem = values(by_metric, "utilization"), values(all_metric, "memory")
    power, temp = values(by_metric, "power"), values(all_metric, "temperature")
    if not (util or mem or power or temp):
        return None
    doc = {"util_mean_pct": _mean(util), "util_peak_pct": _max(util),
           "mem_peak_mb": _max(mem)}
    if power:
        doc["power_mean_w"] = _mean(power)
    if temp:
        doc["temp_max_c"] = _max(temp)
    return doc


def pressure_summary(by_metric: dict, described: dict | None) -> dict:
    """The ``memory`` keys on memory pressure over the steady phase: ``pressure`` ({"some_pct", "full_pct", "scope",
    "source"} or {"unavailable": why}), ``major_faults_per_s``, ``refaults_per_s``, ``anon_mb``, ``file_mb`` (means
    over the steady phase; None where not measured). ``described``: the source's ``describe()``."""
    out = {"major_faults_per_s": _mean(by_metric.get("mem.major_faults_per_s", [])),
           "refaults_per_s": _mean(by_metric.get("mem.refaults_per_s", [])),
           "anon_mb": _mean(by_metric.get("mem.anon_mb", [])), "file_mb": _mean(by_metric.get("mem.file_mb", []))}
    described = described or {"unavailable": "not measured (a run stored before edgeprof read memory pressure)"}
    some = by_metric.get("mem.pressure_some_pct", [])
    if "unavailable" in described:
        out["pressure"] = {"unavailable": described["unavailable"]}
    elif not some:
        out["pressure"] = {"unavailable": "no pressure reading fell in the measured phase (it was shorter than two "
                                          "telemetry ticks)"}
    else:
        doc = {"some_pct": _mean(some), "full_pct": _mean(by_metric.get("mem.pressure_full_pct", [])),
               "scope": described.get("scope"), "source": described.get("path")}
        if doc["scope"] == "system":
            doc["note"] = "system-wide: every process on the device counts, not only the worker"
        if described.get("note"):
            doc["note"] = (doc.get("note", "") + "; " if doc.get("note") else "") + described["note"]
        out["pressure"] = doc
    return out


def energy_summary(by_metric: dict, steady_s: float | None, n: int, backend: dict, sources: list) -> dict:
    """Energy per inference over the steady phase: the mean power of the best sensor that covers what the run used,
    times the steady phase's length, over its inferences. {"mj_per_inference" (mJ), "avg_power_w" (W), "source",
    "scope", "readings"} or {"unavailable": why}. The sensor sees everything on its rail (idle power, other
    processes): compare runs on one device, not devices with each other.

    The accelerator the backend ran on (``registry.runs_on``: a GPU, an NPU) adds its own power sensor (a catalog
    family whose power scope is that class) to the CPU's sensor or to the Pi 5 PMIC's rails, which leave out what
    the 5 V input feeds directly (an M.2 HAT's NPU); the board's input rail (``board``) already covers it."""
    if not n or not steady_s:
        return {"unavailable": "the run has no steady phase to divide energy over"}
    ran_on = registry.runs_on(backend)
    accelerators = {d: [(m, by_metric[m]) for m in catalog.power_metrics(by_metric, d) if by_metric[m]]
                    for d in catalog.ACCELERATORS}
    used = accelerators.get(ran_on, [])
    parts: list[tuple[float, str, int]] = []
    scope = None
    for metric, label, where in BOARD_POWER:
        if by_metric.get(metric):
            parts, scope = [(_mean(by_metric[metric]), label, len(by_metric[metric]))], where
            break
    if scope != "board":
        if not parts:
            metric, label, where = CPU_POWER
            if by_metric.get(metric):
                parts.append((_mean(by_metric[metric]), label, len(by_metric[metric])))
                scope = where
        if used:
            parts.extend((_mean(vs), f"{catalog.family(m).source} {m.split('.')[0]} power", len(vs)) for m, vs in used)
            scope = f"{scope} + {ran_on}" if scope else ran_on
    if not parts:
        measured = next((d for d, found in accelerators.items() if found), None)
        if measured is not None:
            name, via = catalog.DEVICE_NAMES[measured], catalog.family(accelerators[measured][0][0]).source
            return {"unavailable": f"only the {name}'s power is measured here ({via}) and this run ran on the "
                                   f"{catalog.DEVICE_NAMES.get(ran_on, ran_on)}, whose power no sensor here reads "
                                   "(Intel RAPL needs root and bare metal)"}
        why = "; ".join(f"{s.get('name')}: {s.get('reason')}" for s in sources or []
                        if s.get("name") in ("rapl", "nvml", "jetson", "rpi", "hailo") and not s.get("available"))
        return {"unavailable": "no power sensor on this device" + (f" ({why})" if why else "")}
    watts = sum(p for p, _, _ in parts)
    doc = {"mj_per_inference": watts * steady_s / n * 1000.0, "avg_power_w": watts,
           "source": " + ".join(label for _, label, _ in parts), "scope": scope,
           "readings": min(k for _, _, k in parts)}
    if scope in catalog.ACCELERATORS:
        doc["note"] = f"the {catalog.DEVICE_NAMES[scope]}'s power only: the CPU's share is not measured here"
    elif scope == "cpu" and ran_on in catalog.ACCELERATORS:
        doc["note"] = f"the CPU's power only: the {catalog.DEVICE_NAMES[ran_on]}'s is not measured here"
    return doc


def profile_summary(profile: dict | None, p50_ms: float | None) -> dict | None:
    """The worker's operator profile with ``coverage``: the sum of operator times over the steady p50 (how much of
    the measured latency the profile accounts for), and ``run_vs_p50``: the profiled inferences' own median over the
    steady p50 (the profiler's overhead and the second session's drift). None when no profile was asked for."""
    if profile is None or "unavailable" in profile:
        return profile
    doc = dict(profile)
    if p50_ms:
        doc["coverage"] = doc.get("op_total_ms", 0.0) / p50_ms
        if doc.get("run_ms"):
            doc["run_vs_p50"] = doc["run_ms"] / p50_ms
    return doc


def _pair(low, high) -> list | None:
    return None if low is None or high is None else [low, high]


def latency_block(summary: stats.LatencySummary) -> dict:
    """The summary's ``latency_ms`` of one run: percentiles and the 95% intervals of p50 and p90 *within this run*
    (``p50_ci``/``p90_ci`` = [low, high], ``ci_scope`` "within-run", ``ci_note`` saying that run-to-run variation is
    not in them). ``median_ci_low``/``median_ci_high`` repeat ``p50_ci`` for readers of summary version 2."""
    out = {k: getattr(summary, k) for k in ("p50", "p90", "p95", "p99", "mean", "std", "cov", "n", "median_ci_low",
                                            "median_ci_high", "min", "max")}
    out.update({
        "p50_ci": _pair(summary.median_ci_low, summary.median_ci_high),
        "p90_ci": _pair(summary.p90_ci_low, summary.p90_ci_high),
        "ci_scope": stats.SCOPE_WITHIN_RUN,
        "ci_method": None if summary.ci_batches is None else
        f"sectioning: {summary.ci_batches} consecutive batches, Student t (valid for autocorrelated samples)",
        "ci_note": "95% intervals within this run only: variation between runs (a new process, another start) is "
                   "not in them; run with --repeat N for an interval between runs"
        if summary.ci_batches else f"too few samples for an interval (fewer than "
                                   f"{stats.MIN_SECTIONS * stats.SECTION_MIN_SAMPLES})",
    })
    return out


def coverage(tel: list, window, statuses: list, started_ns: int, period_ns: int = 0) -> dict:
    """For each source that did not report over the whole measured window (it stopped, or started late): the part
    of the window its figures cover, in seconds after the run started, keyed by source name in alphabetical order.
    Figures from such a source describe only that part. Empty when every source covered the window (the usual case).

    A source sampled every ``period_ns`` that reported within one period (and a half: ticks jitter) of both ends
    covers the window, as its samples cannot come closer (a 1-s run sampled at 10 Hz was covered "90%" by every
    source otherwise)."""
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
    for src in sorted(set(span) | set(stopped)):
        first, last = span.get(src, (None, None))
        share = (last - first) / (hi - lo) if first is not None else 0.0
        whole = first is not None and max(first - lo, hi - last) <= 1.5 * period_ns  # the tick jitters under load
        if src not in stopped and (share >= 0.95 or whole):
            continue
        doc = {"from_s": None if first is None else round((first - started_ns) / 1e9, 3),
               "to_s": None if last is None else round((last - started_ns) / 1e9, 3),
               "window_s": [round((lo - started_ns) / 1e9, 3), round((hi - started_ns) / 1e9, 3)],
               "share": round(share, 3), "of_s": round(length, 3)}
        if src in stopped:
            doc["stopped_s"], doc["reason"] = stopped[src]["stopped_s"], stopped[src].get("reason")
        out[src] = doc
    return out


# ------------------------------------------------------------------------------------------- groups of runs (pure)

GROUP_STATUSES = ("ok", "partial", "failed", "stopped")


def _ok_members(members: list[dict]) -> list[dict]:
    return [m for m in members if m.get("status") == "ok" and (m.get("latency_ms") or {}).get("p50") is not None]


def group_latency(members: list[dict]) -> dict:
    """``latency_ms`` of runs of one configuration made as separate processes: ``p50``/``p90`` the median of the ok
    runs' values, ``p50_ci``/``p90_ci`` 95% intervals between them (``stats.across_runs``; ``ci_scope`` "runs") with
    two or more ok runs; with one, that run's own interval (``ci_scope`` "within-run") and a note that says there is
    no between-run uncertainty. ``run_p50``/``run_p90`` list the runs' values in the order they ran."""
    ok = _ok_members(members)
    p50s = [m["latency_ms"]["p50"] for m in ok]
    p90s = [m["latency_ms"].get("p90") for m in ok]
    p50 = stats.across_runs(p50s)
    p90 = stats.across_runs([v for v in p90s if v is not None])
    if p50.n >= 2:
        scope, ci50, ci90 = stats.SCOPE_RUNS, [p50.low, p50.high], _pair(p90.low, p90.high)
        if ci90 and ci90[0] is not None and p50.low is not None and ci90[0] < p50.low:
            ci90 = [p50.low, ci90[1]]  # a p90 is never below the p50: no lower than the p50's own interval
        method = f"Student t on the logs of the {p50.n} run values ({p50.n - 1} degrees of freedom)"
        note = (f"95% intervals between {p50.n} runs, each its own process with its own load and warm-up, so a rerun "
                "is expected inside them; p50 is the median of the run medians")
    elif p50.n == 1:
        lat = ok[0]["latency_ms"]
        scope, ci50, ci90 = stats.SCOPE_WITHIN_RUN, lat.get("p50_ci"), lat.get("p90_ci")
        method = lat.get("ci_method")
        note = f"{stats.SINGLE_RUN} (one ok run); its interval is within that run only"
    else:
        scope, ci50, ci90, method, note = None, None, None, None, "no run finished ok: no latency"
    return {
        "p50": p50.center, "p90": p90.center, "p50_ci": ci50, "p90_ci": ci90, "ci_scope": scope,
        "median_ci_low": ci50[0] if ci50 else None, "median_ci_high": ci50[1] if ci50 else None,
        "n_runs": p50.n, "run_p50": p50s, "run_p90": p90s,
        "between_run_spread_pct": None if p50.spread is None else 100.0 * p50.spread,
        "ci_method": method, "ci_note": note,
    }


def group_status(members: list[dict], requested: int, stopped: bool = False) -> str:
    """ok: every requested run finished ok; stopped: the user stopped it; failed: no run ok; partial otherwise."""
    ok = len(_ok_members(members))
    if stopped:
        return "stopped"
    if ok == requested and len(members) == requested:
        return "ok"
    return "failed" if ok == 0 else "partial"


def group_summary(group_id: str | None, kind: str, members: list[dict], *, requested: int, stopped: bool = False,
                  error: str | None = None) -> dict:
    """The result document of ``requested`` runs of one configuration (``members``: their summaries, in the order
    they ran): what ``run --repeat N --json`` prints. Each member keeps its own summary under ``runs``; the figures
    on top are across them (:func:`group_latency`)."""
    ok = _ok_members(members)
    first = ok[0] if ok else (members[0] if members else {})
    flags: dict[str, list] = {}  # code -> [first message, runs that raised it]
    for m in members:
        for code, fl in zip(m.get("flag_codes") or [], m.get("flags") or [], strict=False):
            flags.setdefault(code, [fl, 0])[1] += 1
    tput = [m["throughput_ips"] for m in ok if m.get("throughput_ips") is not None]
    return {
        "group_id": group_id, "kind": kind, "status": group_status(members, requested, stopped), "error": error,
        "repeat": requested, "runs_ok": len(ok), "runs_made": len(members),
        "model": first.get("model"), "precision": first.get("precision"), "runtime": first.get("runtime"),
        "backend": first.get("backend"), "config": first.get("config"),
        "latency_ms": group_latency(members),
        "throughput_ips": float(np.median(tput)) if tput else None,
        "flags": [f"{fl} (in {n} of {len(members)} runs)" if len(members) > 1 else fl for fl, n in flags.values()],
        "flag_codes": list(flags),
        "run_ids": [m.get("run_id") for m in members],
        "runs": members,
    }


def comparison_summary(group_id: str | None, a: list[dict], b: list[dict], *, requested: int, stopped: bool = False,
                       error: str | None = None, floor_pct: float | None = None) -> dict:
    """Two configurations run interleaved (A B, B A, A B ...): each side's group result (without its member
    summaries, which are under ``runs`` in the order they ran), and B over A, the ratio of the medians of the run
    medians, with a paired interval between runs (run i of A and run i of B ran side by side, so drift falls on
    both) and a sentence that says whether the difference is distinguishable."""
    side_a = group_summary(None, "compare", a, requested=requested, stopped=stopped)
    side_b = group_summary(None, "compare", b, requested=requested, stopped=stopped)
    pairs = [(x, y) for x, y in zip(a, b, strict=False) if _ok_members([x]) and _ok_members([y])]
    ratio = stats.ratio_across_runs([y["latency_ms"]["p50"] for _, y in pairs],
                                    [x["latency_ms"]["p50"] for x, _ in pairs], paired=True)
    order = [m for pair in zip(a, b, strict=False) for m in pair] + a[len(b):] + b[len(a):]
    statuses = [side_a["status"], side_b["status"]]
    return {
        "group_id": group_id, "kind": "compare",
        "status": "stopped" if stopped else ("ok" if statuses == ["ok", "ok"] else
                                             "failed" if not pairs else "partial"),
        "error": error, "repeat": requested, "pairs": len(pairs),
        "a": {k: v for k, v in side_a.items() if k not in ("runs", "group_id", "kind")},
        "b": {k: v for k, v in side_b.items() if k not in ("runs", "group_id", "kind")},
        "ratio_b_over_a": {"p50": ratio.ratio, "ci": _pair(ratio.low, ratio.high),
                           "ci_scope": ratio.scope, "paired": True},
        "verdict": stats.ratio_words(ratio, floor_pct, subject="B", reference="A"),
        "runs": order,
    }


def noise_floor_summary(group: dict) -> dict:
    """A noise-floor group's result: ``floor_pct`` (``stats.noise_floor_pct`` of the run medians: two single runs
    of one configuration differ by less than this 95% of the time) with the runs it came from."""
    lat = group["latency_ms"]
    floor = stats.noise_floor_pct(lat["run_p50"])
    return {**group, "floor_pct": floor,
            "floor_note": None if floor is None else
            f"differences under {floor:.0f}% are not distinguishable on this device right now "
            f"({lat['n_runs']} runs of {group.get('model')}: medians "
            + ", ".join(f"{v:.3f}" for v in lat["run_p50"]) + " ms)"}
