"""How much memory a model needs here: its footprint, the smallest cap that completes a run, the curve above it and
what the footprint is made of (``edgeprof memory MODEL``; the Models page's Memory view draws the stored result).

1. **Footprint**: one run without a cap, in a cgroup of its own with no limit (``worker.limits.create``): its peak
   charged memory. The worker reads its cgroup's charge itself at four marks (runtime imported, model loaded, first
   inference, end of the steady phase: ``worker.messages.MEMORY_MARKS``), which ``breakdown`` turns into runtime and
   Python / weights (anonymous or file-backed) / activations and arena.
2. **Minimum cap**: ``find_min_cap`` bisects between a floor (the charge once the runtime was imported: nothing runs
   below the interpreter and its runtime) and the footprint. Each probe is a short capped run; an OOM kill, a timeout
   or an allocation failure is a probe result ("does not fit"), never an error. It stops at a stated resolution, a
   number of probes or a time budget, whichever comes first, and says which.
3. **Curve**: a ladder of caps from the minimum to ``LADDER_TOP`` x the footprint, each run long enough for a
   within-run interval of p50, with memory pressure (PSI some/full), major faults, refaults and swap.
4. **Sentences** (``describe``): the cliff, any slope and the pressure that explains it, or why the cap can only fit
   or kill here (weights in anonymous memory and no swap).

cgroup v1 charges a page to the cgroup that first touched it. So that the model file's pages count against the
worker's cap (and can be evicted by it), its page cache is dropped before every run (``posix_fadvise`` DONTNEED);
shared libraries already cached by another process are not charged to the worker (its RSS counts them).

The result is a group of runs (``run_groups`` kind ``memory``): every probe and ladder run is stored as itself, linked
by the group id, and the group's result document is the curve. A curve is one measurement made of many runs, which is
what a group is; a table of its own would repeat the runs' columns, and the page reads the document as the CLI prints
it (``latest_curve``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..config import RunConfig
from ..errors import EdgeprofError, UsageError
from ..models.external import drop_page_cache
from ..store import Store
from ..telemetry.memory import parse_memory_stat, stat_figures, swap_total_mb
from .repeat import _Group, _store

KIND = "memory"
LADDER_TOP = 1.5  # the ladder's highest cap, times the footprint
LADDER_POINTS = 6
LADDER_MIN_ITERATIONS = 50  # stats.within_run_interval needs >= 5 sections of 10 samples, also for a slow point
LADDER_TIMEOUT_S = 60.0  # plus 3x the steady time: a thrashing point (300 ms an inference here) must still finish
FLAT_PCT = 3.0  # p50 within this much of the top of the ladder: no slope (widened to the intervals when they are wider)
_MB = 1024.0 * 1024.0


@dataclass(frozen=True)
class Settings:
    """How long the measurement may take. ``resolution_mb``: the search stops when the cap that fits and the one
    that does not are this close (None: 2% of the footprint, at least 1 MB); ``max_probes`` and ``budget_s`` bound
    the search (the footprint run not counted; no probe starts after the budget, and one in flight ends within
    ``probe_timeout_s``); ``probe_s`` / ``ladder_s`` the steady phase of a probe / a ladder
    run (a ladder run needs >= 1 s: the interval is made of 10 batches of 0.1 s)."""

    resolution_mb: float | None = None
    max_probes: int = 8
    budget_s: float = 120.0
    probe_s: float = 0.3
    ladder_s: float = 2.0
    ladder_points: int = LADDER_POINTS
    probe_timeout_s: float = 30.0

    def __post_init__(self):
        from ..config import check_number

        check_number("resolution (MB)", self.resolution_mb, minimum=0.1)
        check_number("probes", self.max_probes, minimum=2, integer=True, allow_none=False)
        check_number("time budget (s)", self.budget_s, minimum=1, allow_none=False)
        check_number("probe time (s)", self.probe_s, minimum=0.05, allow_none=False)
        check_number("ladder time (s)", self.ladder_s, minimum=1.0, allow_none=False)
        check_number("ladder points", self.ladder_points, minimum=6, integer=True, allow_none=False)


@dataclass(frozen=True)
class Probe:
    """One capped run of the search: ``fits`` when it completed (status ok)."""

    cap_mb: float
    fits: bool
    status: str
    seconds: float
    run_id: str | None = None
    peak_charged_mb: float | None = None


@dataclass
class Search:
    """The bisection's outcome: ``min_cap_mb`` the smallest cap that completed (None: not even the footprint did),
    ``fails_at_mb`` the largest that did not (None: the floor already fitted), ``stopped_by`` resolution | probes |
    time | floor_fits | nothing_fits."""

    min_cap_mb: float | None
    fails_at_mb: float | None
    resolution_mb: float
    stopped_by: str
    probes: list[Probe] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "probes": [asdict(p) for p in self.probes]}


def _round(mb: float) -> float:
    return math.ceil(mb * 2) / 2  # caps in half-MB steps


def find_min_cap(probe: Callable[[float], Probe], floor_mb: float, footprint_mb: float, *,
                 resolution_mb: float, max_probes: int, budget_s: float,
                 clock: Callable[[], float] = time.monotonic) -> Search:
    """The smallest cap in MB at which ``probe(cap)`` fits, by bisection between ``floor_mb`` and ``footprint_mb``.

    The footprint is probed first (raised by a quarter at a time while it does not fit: a cap at the peak can still
    fail on page cache), then the floor; then halves until the caps that fit and fail are within ``resolution_mb``,
    ``max_probes`` probes were made, or ``budget_s`` seconds (by ``clock``) have passed. Pure but for ``probe``."""
    start = clock()
    probes: list[Probe] = []

    def out_of(reason: str | None = None) -> str | None:
        if len(probes) >= max_probes:
            return "probes"
        if clock() - start >= budget_s:
            return "time"
        return reason

    def done(min_cap, fails_at, why) -> Search:
        return Search(min_cap, fails_at, resolution_mb, why, probes, round(clock() - start, 3))

    hi = _round(footprint_mb)
    lo = min(_round(floor_mb), hi)
    while True:
        p = probe(hi)
        probes.append(p)
        if p.fits:
            break
        lo = hi
        if out_of():
            return done(None, lo, "nothing_fits")
        hi = _round(hi * 1.25)
    if lo < hi and not out_of():
        p = probe(lo)
        probes.append(p)
        if p.fits:
            return done(lo, None, "floor_fits")
    while True:
        if hi - lo <= resolution_mb:
            return done(hi, lo, "resolution")
        why = out_of()
        if why:
            return done(hi, lo, why)
        mid = _round((lo + hi) / 2)
        if mid >= hi or mid <= lo:
            return done(hi, lo, "resolution")
        p = probe(mid)
        probes.append(p)
        if p.fits:
            hi = mid
        else:
            lo = mid


def ladder(min_cap_mb: float, footprint_mb: float, points: int = LADDER_POINTS, top: float = LADDER_TOP) -> list[float]:
    """``points`` caps (MB, half-MB steps, ascending, distinct) from the minimum cap to ``top`` x footprint. Where
    the minimum lies well below the footprint (pages could be evicted there: that is where a slope can be), half the
    points go between the two, so the narrow band in which a worker slows down instead of being killed is not
    stepped over; the rest evenly above."""
    high = max(top * footprint_mb, min_cap_mb * 1.2)
    below = points // 2 if footprint_mb - min_cap_mb >= points // 2 else 0
    caps = {_round(min_cap_mb + i * (footprint_mb - min_cap_mb) / below) for i in range(below)}
    start = footprint_mb if below else min_cap_mb
    rest = points - len(caps)
    caps |= {_round(start + i * (high - start) / (rest - 1)) for i in range(rest)}
    if len(caps) < points:  # half-MB rounding merged some: evenly over the whole range
        step = (high - min_cap_mb) / (points - 1)
        caps = {_round(min_cap_mb + i * step) for i in range(points)}
    return sorted(caps)


# ---------------------------------------------------------------------------------------------------- breakdown


def mark_figures(stat_text: str, usage: int | None, rss_kb: int | None, kind: str) -> dict:
    """One mark's figures in MB: ``charged`` (the cgroup's usage), ``anon``, ``file`` (page cache), ``kernel`` (the
    charge neither anon nor file: page tables, slab, stacks), ``rss`` (the worker's VmRSS)."""
    fig = stat_figures(parse_memory_stat(stat_text), kind)
    anon = None if fig["anon"] is None else fig["anon"] / _MB
    file = None if fig["file"] is None else fig["file"] / _MB
    charged = None if usage is None else usage / _MB
    kernel = None if None in (charged, anon, file) else max(0.0, charged - anon - file)
    return {"charged_mb": charged, "anon_mb": anon, "file_mb": file, "kernel_mb": kernel,
            "rss_mb": None if rss_kb is None else rss_kb / 1024.0}


def breakdown(marks: dict[str, dict], peak_charged_mb: float | None, file_size_bytes: int | None,
              kind: str | None) -> dict:
    """What the footprint is made of, from the charged memory at each mark (``mark_figures`` per mark name):
    ``runtime_mb`` (Python, numpy and the runtime: the charge once the runtime was imported), ``weights_anon_mb`` and
    ``weights_file_mb`` (what loading the model added, anonymous and file-backed), ``activations_mb`` (the peak
    above the loaded model: arena, activations, thread stacks), with ``sentences`` that say which figure is which."""
    imp, loaded = marks.get("imported"), marks.get("loaded")
    out: dict = {"marks": marks, "peak_charged_mb": peak_charged_mb,
                 "file_size_mb": None if file_size_bytes is None else file_size_bytes / _MB, "mechanism": kind}
    if not imp or not loaded or imp.get("charged_mb") is None or loaded.get("charged_mb") is None:
        out["unavailable"] = ("the worker's charged memory could not be read at each phase (no memory cgroup here: "
                              f"{kind or 'none'})")
        return out

    later = [m for name, m in marks.items() if name != "imported"]
    runtime = imp["charged_mb"]
    w_anon = None if imp.get("anon_mb") is None or loaded.get("anon_mb") is None else \
        max(0.0, loaded["anon_mb"] - imp["anon_mb"])
    files = [m["file_mb"] for m in later if m.get("file_mb") is not None]
    w_file = None if imp.get("file_mb") is None or not files else max(0.0, max(files) - imp["file_mb"])
    weights = (w_anon or 0.0) + (w_file or 0.0) if w_anon is not None or w_file is not None else \
        max(0.0, loaded["charged_mb"] - runtime)
    top = max(x for x in (peak_charged_mb, *(m.get("charged_mb") for m in marks.values())) if x is not None)
    act = max(0.0, top - runtime - weights)
    out.update({"runtime_mb": runtime, "weights_mb": weights, "weights_anon_mb": w_anon, "weights_file_mb": w_file,
                "activations_mb": act, "total_mb": top})
    size = out["file_size_mb"]
    rss = (marks.get("steady") or marks.get("first") or loaded).get("rss_mb")
    source = "memory.stat and memory.usage_in_bytes" if kind == "cgroup1" else "memory.stat and memory.current"
    s = [f"Charged memory is what the kernel counts against the cap ({kind} {source} of the worker's own cgroup, "
         f"read by the worker at each phase): {top:.1f} MB at its peak."]
    s.append(f"Of it, {runtime:.1f} MB were charged once Python and the runtime were imported, before the model; "
             f"the weights took {weights:.1f} MB ({w_anon or 0:.1f} MB anonymous memory added by loading the model, "
             f"{w_file or 0:.1f} MB of file-backed page cache charged by the end of the run, the mapped model "
             "among it)" + (f", for a {size:.1f} MB model file" if size is not None else "") + "; "
             f"the rest, {act:.1f} MB, came with the first inference and the steady phase (activations, the "
             "runtime's arena, thread stacks).")
    if w_anon is not None and size and w_anon >= 0.5 * size:
        s.append("The weights live in anonymous memory (the runtime copied or repacked them), so a cap cannot evict "
                 "them: without swap, they either fit or the worker is killed.")
    elif w_file is not None and size and w_file >= 0.5 * size:
        s.append("The weights stay in the model's memory-mapped file (page cache): a tight cap can evict them and "
                 "the worker reads them back (refaults), which costs time instead of a kill.")
    if rss is not None:
        s.append(f"RSS (VmRSS of the worker, /proc/<pid>/status) was {rss:.1f} MB: it also counts shared libraries "
                 "that another process brought into the page cache, which cgroup v1 charges to that process, and it "
                 "leaves out page cache the worker read but did not map." if kind == "cgroup1" else
                 f"RSS (VmRSS of the worker, /proc/<pid>/status) was {rss:.1f} MB: it counts mapped pages the worker "
                 "touched, charged or not, and leaves out page cache it read without mapping.")
    if size is not None:
        s.append(f"The file size ({size:.1f} MB, on disk) is what the weights take when stored, not what the "
                 "runtime holds: a runtime may repack them larger, or map them and touch only part.")
    out["sentences"] = s
    return out


# ---------------------------------------------------------------------------------------------------- the curve


def _point(cap: float | None, result: dict) -> dict:
    mem = result.get("memory") or {}
    lat = result.get("latency_ms") or {}
    pressure = mem.get("pressure") or {}
    return {"cap_mb": cap, "status": result.get("status"), "run_id": result.get("run_id"),
            "p50_ms": lat.get("p50"), "p50_ci": lat.get("p50_ci"), "n": lat.get("n"),
            "peak_charged_mb": mem.get("peak_charged_mb"), "peak_rss_mb": mem.get("peak_rss_mb"),
            "pressure_some_pct": pressure.get("some_pct"), "pressure_full_pct": pressure.get("full_pct"),
            "pressure_scope": pressure.get("scope"),
            "major_faults_per_s": mem.get("major_faults_per_s"), "refaults_per_s": mem.get("refaults_per_s"),
            "swap_peak_mb": mem.get("swap_peak_mb"), "anon_mb": mem.get("anon_mb"), "file_mb": mem.get("file_mb")}


def _fmt(mb: float) -> str:
    return f"{mb:.1f}".rstrip("0").rstrip(".")


def describe(doc: dict) -> dict:
    """The curve in sentences: ``cliff`` (below which the worker is killed), ``slope`` (where p50 rises, with the
    pressure that explains it, or that it stays flat), ``mechanism`` (what can be evicted here, or why a cap can only
    fit or kill), and ``slope_seen``. Pure: the document in, sentences out."""
    search, curve = doc.get("search") or {}, [p for p in doc.get("curve") or [] if p.get("cap_mb") is not None]
    min_cap, fails_at = search.get("min_cap_mb"), search.get("fails_at_mb")
    out: dict = {"slope_seen": False}
    if min_cap is None:
        out["cliff"] = (f"The run did not complete under any cap up to {_fmt(fails_at or 0)} MB: it was OOM-killed "
                        "(or timed out) at every probe.")
        return out
    if fails_at is None:
        out["cliff"] = f"The run completed even at the search's floor of {_fmt(min_cap)} MB."
    else:
        status = next((p.get("status") for p in search.get("probes") or [] if p.get("cap_mb") == fails_at), None)
        fate = "is OOM-killed" if status in (None, "oom_killed") else f"does not complete ({status})"
        out["cliff"] = (f"Below {_fmt(min_cap)} MB the worker {fate} (the search found {_fmt(fails_at)} MB "
                        f"too small, to a resolution of {_fmt(search.get('resolution_mb') or 0)} MB).")
    ok = sorted((p for p in curve if p.get("status") == "ok" and p.get("p50_ms")), key=lambda p: p["cap_mb"])
    thrash = sorted((p for p in curve if p.get("status") != "ok" and p.get("p50_ms") and _pressed(p)),
                    key=lambda p: p["cap_mb"])
    killed = sorted((p for p in curve if p.get("status") != "ok" and p not in thrash), key=lambda p: p["cap_mb"])
    if killed:
        out["cliff"] += (" The longer ladder runs at " + ", ".join(f"{_fmt(p['cap_mb'])} MB ({p['status']})"
                                                                  for p in killed)
                         + " did not complete: a longer run touches a little more than a short probe, so a cap this "
                           "close to the minimum can go either way.")
        for p in (p for p in killed if _pressed(p)):
            out["cliff"] += (f" At {_fmt(p['cap_mb'])} MB the worker thrashed before it ended, too early for a steady "
                             "p50: " + ", ".join(_why(p)) + ".")
    if len(ok) >= 2:
        out.update(_slope(ok, doc.get("footprint_mb")))
    if thrash and ok:
        ref = out.get("slope_reference_ms") or ok[-1]["p50_ms"]
        out["slope_seen"] = True
        out["slope"] = " ".join(x for x in (out.get("slope"), *(_thrash_words(p, ref) for p in thrash)) if x)
    mech = doc.get("mechanism") or {}
    evictable, swap = mech.get("evictable"), mech.get("swap_mb")
    if out["slope_seen"]:
        out["mechanism"] = ("Pages were evicted and read back under the tight caps: "
                            + ("file-backed weights (--evictable)" if evictable else "the worker's file pages")
                            + (f" and swap ({_fmt(swap)} MB on this device)" if swap else "") + ".")
    elif not evictable and not swap:
        out["mechanism"] = ("Here a cap can only fit or kill: the weights are in anonymous memory and this device has "
                            "no swap or zram, so nothing the worker holds can be evicted and read back; below the "
                            "minimum the kernel kills the worker instead of slowing it. "
                            + "File-backed weights (--evictable) can show a slope.")
    else:
        out["mechanism"] = ("Evictable pages were possible ("
                            + ", ".join(x for x in ("file-backed weights" if evictable else "",
                                                    f"{_fmt(swap)} MB swap" if swap else "") if x)
                            + ") but the ladder showed no slope: the pages the model needs fit above the minimum, and "
                              "below it the worker was killed.")
    return out


def _why(p: dict) -> list[str]:
    """The pressure figures of one point, as phrases."""
    why = []
    if p.get("pressure_some_pct") is not None:
        why.append(f"{p['pressure_some_pct']:.0f}% of the time some task of the worker stalled on memory "
                   f"({p.get('pressure_full_pct') or 0:.0f}% all of them)")
    if p.get("refaults_per_s") is not None:
        why.append(f"{p['refaults_per_s']:,.0f} evicted pages a second were read back (refaults)")
    if p.get("major_faults_per_s") is not None:
        why.append(f"{p['major_faults_per_s']:,.0f} major faults a second")
    return why


def _thrash_words(p: dict, ref_ms: float) -> str:
    """A run that slowed under memory pressure and then did not complete (killed, or past its timeout)."""
    end = "was OOM-killed" if p["status"] == "oom_killed" else \
        "ran past its timeout" if p["status"] == "timed_out" else f"ended {p['status']}"
    return (f"At {_fmt(p['cap_mb'])} MB the worker thrashed before it {end}: p50 {p['p50_ms']:.3g} ms, "
            f"{p['p50_ms'] / ref_ms:.1f}x, while " + ", ".join(_why(p)) + ".")


def _pressed(p: dict) -> bool:
    """Whether memory pressure stood behind a run: stalls or pages read back."""
    return (p.get("pressure_some_pct") or 0) >= 1 or (p.get("refaults_per_s") or 0) >= 1


def _slope(ok: list[dict], footprint_mb: float | None) -> dict:
    """``slope`` and ``slope_seen`` from the ok ladder points (ascending caps). The reference is the median p50 of
    the caps at or above the footprint (nothing there is short of memory; the top cap alone where none is); their
    spread, at least FLAT_PCT, is the runs' noise. A point above that noise is a slope only with memory pressure
    behind it (stalls or refaults); one without is said to be noise."""
    top = [p for p in ok if footprint_mb is not None and p["cap_mb"] >= footprint_mb] or ok[-1:]
    ref = float(np.median([p["p50_ms"] for p in top]))
    dev = {p["cap_mb"]: 100.0 * (p["p50_ms"] / ref - 1) for p in ok}
    tol = max([FLAT_PCT] + [abs(dev[p["cap_mb"]]) for p in top])
    span = f"{_fmt(top[0]['cap_mb'])} MB and above" if len(top) > 1 else f"{_fmt(top[0]['cap_mb'])} MB"
    rises = [p for p in ok if dev[p["cap_mb"]] > tol and p not in top]
    memory = [p for p in rises if _pressed(p)]
    if memory:
        start = max(p["cap_mb"] for p in memory)
        low = ok[0]
        why = _why(low)
        where = (f"At {_fmt(start)} MB" if start == low["cap_mb"] else f"From {_fmt(low['cap_mb'])} to {_fmt(start)} MB")
        above = [p for p in ok if p["cap_mb"] > start]
        text = (f"{where} p50 rises: {low['p50_ms'] / ref:.2f}x at {_fmt(low['cap_mb'])} MB ({low['p50_ms']:.3g} ms "
                f"against {ref:.3g} ms at {span})" + (", while " + ", ".join(why) if why else "") + ".")
        if above:
            text += (f" From {_fmt(above[0]['cap_mb'])} MB up p50 stays within "
                     f"{max(abs(dev[p['cap_mb']]) for p in above):.0f}% of that.")
        return {"slope": text, "slope_seen": True, "slope_starts_mb": start, "slope_reference_ms": ref}
    spread = max(abs(d) for d in dev.values())
    if spread <= tol:
        return {"slope": f"From {_fmt(ok[0]['cap_mb'])} to {_fmt(ok[-1]['cap_mb'])} MB p50 stays within "
                         f"{max(spread, 0.1):.1f}% of its value at {span} ({ref:.3g} ms): no slope.",
                "slope_seen": False, "slope_reference_ms": ref}
    return {"slope": (f"From {_fmt(ok[0]['cap_mb'])} to {_fmt(ok[-1]['cap_mb'])} MB p50 moves between "
                      f"{min(dev.values()):+.0f}% and {max(dev.values()):+.0f}% of its value at {span} "
                      f"({ref:.3g} ms) with no memory pressure behind it: no slope; that spread is the runs' own noise "
                      "(other processes' CPU), not the cap."), "slope_seen": False, "slope_reference_ms": ref}


def measure_memory(model: str, precision: str = "fp32", runtime: str | None = None, *, evictable: bool = False,
                   swap: bool = True, threads: int = 2, store: Store | str | Path | None = None,
                   settings: Settings | None = None, on_step: Callable[[str], None] | None = None,
                   tflite_interpreter: str | None = None) -> dict:
    """Footprint, minimum cap, curve and breakdown of one variant on this device (module docstring), stored as a
    group of kind ``memory``; returns its document. Raises UsageError for a request that cannot run (also
    ``--evictable`` for ONNX), EdgeprofError when the footprint run itself fails (its run says why)."""
    from ..worker.limits import detect

    settings = settings or Settings()
    say = on_step or (lambda text: None)
    st = _store(store)
    mech = detect()
    if mech.kind not in ("cgroup1", "cgroup2"):
        raise UsageError(f"the memory curve needs a memory cgroup to cap and measure the worker; here: {mech.reason}.",
                         "Run as root on a device with the memory cgroup controller enabled (see `edgeprof devices`).")
    base = RunConfig(model, precision=precision, runtime=runtime, threads=threads, swap=swap, evictable=evictable,
                     tflite_interpreter=tflite_interpreter, duration_s=settings.ladder_s,
                     iterations=LADDER_MIN_ITERATIONS, warmup=10)
    t0 = time.monotonic()
    group = _Group(st, KIND, {"model": model, "precision": precision, "runtime": runtime, "evictable": evictable,
                              "swap": swap, "threads": threads, "settings": asdict(settings)}, None)
    handles: dict = {}

    def watch(i, handle) -> None:  # the handle of the run in progress: its memory marks
        handles["last"] = handle

    group.on_run = watch

    def one(cfg: RunConfig) -> dict:
        for path in handles.get("paths", []):
            drop_page_cache(str(path))
        result = group.run(cfg)
        if result is None:
            raise EdgeprofError(group.error or "a run of the memory curve could not start.")
        return result

    from ..models.catalog import resolve_variant

    variant = resolve_variant(model, precision, runtime, progress=say)
    handles["paths"] = [variant.path]
    if evictable and variant.format == "onnx":
        from ..models.external import external_data_copy

        copy, _ = external_data_copy(variant.path)
        handles["paths"] = [copy, *copy.parent.glob("*.data")]
    say("footprint: one run without a cap")
    foot = one(base)
    handle = handles.get("last")
    if foot.get("status") != "ok":
        doc = {"status": "failed", "error": f"the run without a cap did not complete ({foot.get('status')}: "
                                           f"{foot.get('error')}); see `show {foot.get('run_id')}`."}
        group.finish(doc)
        raise EdgeprofError(doc["error"])
    footprint = (foot.get("memory") or {}).get("peak_charged_mb")
    if not footprint:
        doc = {"status": "failed", "error": "the run without a cap gave no peak charged memory (the kernel keeps no "
                                           "peak for this cgroup: memory.peak needs Linux 5.19 under cgroup v2)."}
        group.finish(doc)
        raise EdgeprofError(doc["error"], "Update the kernel, or read the footprint of a run with `show RUN_ID`.")
    kind = foot["memory"].get("mechanism")
    marks = {m.mark: mark_figures(m.stat, m.usage, m.rss_kb, kind if kind in ("cgroup1", "cgroup2") else mech.kind)
             for m in (handle.memory_marks if handle is not None else [])}
    parts = breakdown(marks, footprint, foot.get("model_size_bytes"), mech.kind)
    floor = (marks.get("imported") or {}).get("charged_mb") or footprint / 4
    resolution = settings.resolution_mb or max(1.0, round(0.02 * footprint, 1))

    def probe(cap: float) -> Probe:
        say(f"probe: {cap:g} MB")
        t = time.monotonic()
        r = one(base.replace(memory_limit_mb=cap, duration_s=settings.probe_s, iterations=5, warmup=3,
                             timeout_s=settings.probe_timeout_s))
        return Probe(cap, r.get("status") == "ok", r.get("status"), round(time.monotonic() - t, 2), r.get("run_id"),
                     (r.get("memory") or {}).get("peak_charged_mb"))

    search = find_min_cap(probe, floor, footprint, resolution_mb=resolution, max_probes=settings.max_probes,
                          budget_s=settings.budget_s)
    curve = []
    if search.min_cap_mb is not None:
        for cap in ladder(search.min_cap_mb, footprint, settings.ladder_points):
            say(f"ladder: {cap:g} MB")
            curve.append(_point(cap, one(base.replace(memory_limit_mb=cap, timeout_s=LADDER_TIMEOUT_S
                                                      + 3 * settings.ladder_s))))
    curve.append(_point(None, foot))
    swap_mb = swap_total_mb()
    backend = foot.get("backend") or {}
    doc = {
        "status": "ok" if search.min_cap_mb is not None else "partial",
        "model": foot.get("model"), "precision": foot.get("precision"), "runtime": foot.get("runtime"),
        "model_size_bytes": foot.get("model_size_bytes"), "backend": backend,
        "footprint_mb": footprint, "footprint_run_id": foot.get("run_id"), "min_cap_mb": search.min_cap_mb,
        "search": search.to_dict(), "curve": curve, "breakdown": parts,
        "mechanism": {"cap": mech.kind, "cap_note": mech.reason, "evictable": evictable, "swap_allowed": swap,
                      "swap_mb": swap_mb if swap else 0.0,
                      "swap_note": ("this device has no swap or zram (/proc/swaps lists none)" if not swap_mb else
                                    f"{_fmt(swap_mb)} MB of swap or zram here" + ("" if swap else
                                                                                  ", not allowed inside the cap (--no-swap)")),
                      "page_cache": "the model file's page cache is dropped before every run, so its pages are "
                                    "charged to the worker's cgroup"},
        "seconds": round(time.monotonic() - t0, 1),
    }
    doc["sentences"] = describe(doc)
    group.finish(doc)
    doc["group_id"] = group.group_id
    return doc


def latest_curve(store: Store, model: str | None = None, precision: str | None = None, runtime: str | None = None,
                 *, evictable: bool | None = None, device_id: str | None = None,
                 threads: int | None = None) -> dict | None:
    """The newest stored curve (``measure_memory``'s document with ``group_id`` and ``measured_at``) of a model,
    precision, runtime and thread count (any where None) on a device (any where None); None if there is none."""
    groups = store.list_groups(kind=KIND, device_id=device_id)
    for _, row in groups.iterrows():
        if row.get("status") not in ("ok", "partial"):
            continue
        group = store.get_group(row["group_id"])
        doc = (group or {}).get("result") or {}
        if any(want is not None and doc.get(key) != want for key, want in
               (("model", model), ("precision", precision), ("runtime", runtime))):
            continue
        if evictable is not None and bool((doc.get("mechanism") or {}).get("evictable")) != evictable:
            continue
        if threads is not None and (group.get("config") or {}).get("threads") not in (None, threads):
            continue
        return {**doc, "group_id": row["group_id"], "measured_at": group.get("finished_at")}
    return None


def list_curves(store: Store, device_id: str | None = None) -> list[dict]:
    """The stored curves, newest first: ``group_id``, ``measured_at``, ``label`` (model, precision, runtime, and
    whether the weights were evictable), ``min_cap_mb``, ``footprint_mb``; no curve: an empty list."""
    out = []
    groups = store.list_groups(kind=KIND, device_id=device_id)
    for _, row in groups.iterrows():
        if row.get("status") not in ("ok", "partial") or row.get("result") is None:
            continue
        doc = json.loads(row["result"]) if isinstance(row["result"], str) else row["result"]
        evict = (doc.get("mechanism") or {}).get("evictable")
        label = f"{doc.get('model')} {doc.get('precision')} {doc.get('runtime')}" + (" evictable" if evict else "")
        out.append({"group_id": row["group_id"], "measured_at": row.get("finished_at"), "label": label,
                    "min_cap_mb": doc.get("min_cap_mb"), "footprint_mb": doc.get("footprint_mb")})
    return out
