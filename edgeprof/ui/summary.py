"""A run's result on a page: the headline numbers, the end-of-run block, the "why is it slow" block, two runs'
operators side by side, and the Run form's words (memory-limit help, footprint hint, duration, backend widgets)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from .. import charts
from ..errors import EdgeprofError
from ..run import explain
from ..stats import plural
from ..worker.priority import describe as describe_priority
from .frames import telemetry_frame
from .store import page_link
from .words import fmt, fmt_duration, fmt_ms, fmt_rate, md_text


def headline(figures: dict) -> None:
    """st.metric rows: load, first inference, warm-up / p50, p90, throughput (values may be None while running)."""
    items = [
        ("Load", fmt_ms(figures.get("load_ms"))),
        ("First inference", fmt_ms(figures.get("first_inference_ms"))),
        ("Warm-up", fmt_ms(figures.get("warmup_ms"))),
        ("p50 latency", fmt_ms(figures.get("p50_ms"))),
        ("p90 latency", fmt_ms(figures.get("p90_ms"))),
        ("Throughput", fmt_rate(figures.get("throughput_ips"))),
    ]
    for row in (items[:3], items[3:]):
        for col, (label, value) in zip(st.columns(3), row, strict=True):
            col.metric(label, value)


def summary_figures(result: dict) -> dict:
    lat = result.get("latency_ms") or {}
    return {"load_ms": result.get("load_ms"), "first_inference_ms": result.get("first_inference_ms"),
            "warmup_ms": result.get("warmup_ms"), "p50_ms": lat.get("p50"), "p90_ms": lat.get("p90"),
            "throughput_ips": result.get("throughput_ips")}


STATUS_WORDS = {
    "ok": "finished normally",
    "oom_killed": "was killed for running out of memory under its cap",
    "crashed": "crashed",
    "timed_out": "hit its wall-clock timeout",
    "stopped": "was stopped by a user",
    "failed": "failed",
    "interrupted": "was interrupted (the process running it ended)",
    "running": "is still running",
}


def _figure(v) -> bool:
    """Whether ``v`` is a number to show (not None, not NaN)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def retention_caption(result: dict) -> str | None:
    """The "Samples: ..." line under a run's summary (which samples its statistics came from, ``run.recorder``), or
    None where it has nothing to say: a run with no steady sample."""
    kept = result.get("retention")
    if not isinstance(kept, dict) or not kept.get("statement") or not kept.get("steady_samples"):
        return None
    return f"Samples: {kept['statement']}."


def render_summary(result: dict, *, run_id: str | None = None, link: bool = True) -> None:
    """The end-of-run block: status in words, headline numbers, memory, flags in plain words, a link to Runs (not on
    the Runs page itself: ``link=False``). A line without a figure (a run that failed before it measured anything)
    is left out. A visitor in booth mode reads it without the server's paths (an error or a note may name a file)."""
    from .. import auth

    result = auth.for_viewer(result)
    status = result.get("status")
    rid = run_id or result.get("run_id")
    words = f"Run `{rid}` {STATUS_WORDS.get(status, status)}."
    if status == "ok":
        st.success(words)
    elif status in ("stopped",):
        st.warning(words)
    else:
        error = str(result.get("error") or "").strip()
        st.error(words[:-1] + (f": {md_text(error)}" if error else "."))  # as written: "text.onnx is ..." keeps its name
    figures = summary_figures(result)
    if any(_figure(v) for v in figures.values()):  # a run that failed at load has six dashes to show: none
        headline(figures)
    lat = result.get("latency_ms") or {}
    mem = result.get("memory") or {}
    cpu = result.get("cpu") or {}
    lines = []
    if lat.get("n"):
        lines.append(f"**{lat['n']:,}** steady-state inferences; median {fmt(lat.get('p50'), 3)} ms, "
                     f"p99 {fmt(lat.get('p99'), 3)} ms, CoV {fmt(lat.get('cov'), 3)}.")
        lines.append(interval_words(lat))
    cap = mem.get("requested_mb")
    limit = f"{charts.fmt_mb(cap)} ({mem.get('mechanism')})" if cap else "none"
    peaks = [f"peak {what} {charts.fmt_mb(mem[key])} ({why})" for key, what, why in (
        ("peak_charged_mb", "charged", "the footprint the limit acts on"),
        ("peak_rss_mb", "worker RSS", "also counts shared libraries")) if _figure(mem.get(key))]
    if peaks:  # a run that failed before its worker was measured has none: no line of dashes
        lines.append(f"Memory: {', '.join(peaks)}; limit {limit}.")
    if result.get("cpu_priority"):  # none: an older run, or the worker never started
        lines.append(f"Worker CPU priority: {describe_priority(result.get('cpu_priority'))}.")
    if any(_figure(cpu.get(k)) for k in ("system_mean_pct", "worker_mean_pct")):
        cores = f" of {cpu['cores']} cores" if cpu.get("cores") else ""
        others = f", other processes {fmt(cpu.get('others_mean_pct'), 0, '%')}" if cpu.get("others_mean_pct") is not None else ""
        lines.append(f"CPU: device {fmt(cpu.get('system_mean_pct'), 0, '%')} busy{cores}; worker "
                     f"{fmt(cpu.get('worker_mean_pct'), 0, '%')}{others} (100% = one core).")
    be = result.get("backend") or {}
    if be.get("name"):
        via = (f"execution provider {be['execution_provider']}" if be.get("execution_provider")
               else f"delegate {be['delegate']}" if be.get("delegate") else "default provider")
        lines.append(md_text(f"Runtime: {be.get('name')} {be.get('version') or ''}, {via}, "
                             f"{plural(be.get('threads'), 'thread')}."))
    st.markdown("  \n".join(lines))
    flags = result.get("flags") or []
    if flags:
        st.warning("**Why these numbers may be off:**\n\n" + "\n".join(f"- {md_text(f)}" for f in flags))
    elif status == "ok":
        st.caption("No suspect-run flags: nothing in this run makes its numbers doubtful.")
    notes = [n for n in result.get("notes") or [] if not n.startswith("writes delayed")]
    if notes:
        st.caption("Notes: " + md_text("; ".join(notes)) + ".")
    if rid and link:
        page_link("views/2_Runs.py", label="Open this run in Runs", query={"run_id": rid})


WHY_METRICS = ["mem.pressure_some_pct", "mem.pressure_full_pct", "mem.major_faults_per_s"]


def why_lines(result: dict) -> list[str]:
    """Markdown lines on why a run is slow (``run.explain.why``): each topic in bold, its text escaped."""
    return [f"**{w.topic}**: {md_text(w.text)}" for w in explain.why(result)]


def render_why(result: dict, store=None) -> None:
    """The Run page's "why" block: pressure, energy and operator lines, the operator chart and the pressure over
    time (read back from the store)."""
    lines = why_lines(result)
    if not lines:
        return

    with st.expander("Why is it slow: operators, memory pressure, energy", expanded=True):
        st.markdown("  \n".join(lines))
        prof = result.get("op_profile")
        if isinstance(prof, dict) and "unavailable" not in prof:
            st.plotly_chart(charts.op_profile_figure(prof), key="why_ops", config={"displayModeBar": False})
            st.caption("Each bar: median ms per inference of that operator type over the profiled inferences, and "
                       "its share of the operator total. The profile phase runs after the steady phase, so the "
                       "latencies above were measured without the profiler.")
        elif prof is None:
            st.caption("Tick **Profile operators** (Advanced) before starting a run to see where its time goes.")
        rid = result.get("run_id")
        if store is not None and rid:
            try:
                tel = store.telemetry(rid, metrics=WHY_METRICS)
            except EdgeprofError:
                tel = None
            if tel is not None and not tel.empty:
                t0 = int(tel["t_ns"].min())
                st.plotly_chart(charts.pressure_figure(telemetry_frame(tel, t0)), key="why_pressure",
                                config={"displayModeBar": False})


def op_comparison(store, run_a: str, run_b: str, labels: dict | None = None, key: str = "ops") -> None:
    """Two runs' operator profiles side by side (``ops.compare_profiles``): the chart, the sentence under it, the
    table; an info box that says what to do when a run has no profile."""
    from ..ops import compare_profiles

    try:
        runs = [store.get_run(r) for r in (run_a, run_b)]
        cmp = compare_profiles(*runs)
    except EdgeprofError as exc:
        st.info(str(exc))
        return
    st.plotly_chart(charts.op_compare_figure(cmp.table, cmp.name_a, cmp.name_b), key=f"{key}_chart")
    st.markdown(f"**{md_text(cmp.sentence)}**")
    cov = [f"{name} {100 * c:.0f}%" for name, c in zip((cmp.name_a, cmp.name_b), cmp.coverage, strict=True)
           if c is not None]
    if cov:
        st.caption("Operator times are medians per inference over each run's profile phase (after its steady "
                   f"phase); they add up to {', '.join(cov)} of the steady p50.")
    table = cmp.table.rename(columns={"op_type": "operator", "ms_a": f"ms {cmp.name_a}", "ms_b": f"ms {cmp.name_b}",
                                      "ratio": "ratio", "diff_ms": "difference (ms)",
                                      "share_of_difference": "share of the difference"})
    st.dataframe(table, hide_index=True, key=f"{key}_table",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in table.columns[1:]})


def interval_words(lat: dict) -> str:
    """The run's 95% interval of the median and p90 with what it covers, in words a student can act on."""
    ci50, ci90 = lat.get("p50_ci"), lat.get("p90_ci")
    if not ci50:
        return f"No interval: {lat.get('ci_note') or 'too few samples'}."
    text = f"95% interval of the median {fmt(ci50[0], 3)} to {fmt(ci50[1], 3)} ms" + (
        f" (p90: {fmt(ci90[0], 3)} to {fmt(ci90[1], 3)} ms)" if ci90 else "")
    if lat.get("ci_scope") == "runs":
        return text + f", **between {lat.get('n_runs')} runs**: a rerun is expected inside it."
    return text + (", **within this run only**: the uncertainty from the noise inside this run, had the device kept "
                   "behaving as it did. Another run (a new process) can land outside it; to know how far, repeat the run "
                   "(`--repeat 3`) or compare with `edgeprof compare`.")


MEMORY_LIMIT_HELP = (
    "The most memory the model may use, as the kernel counts it: what the runtime allocates plus the model file's "
    "pages it reads (the memory *charged* to the run). A run that needs more is killed by the kernel (an OOM kill), "
    "which is recorded as a result. With *no limit* the run still measures how much it needed: its footprint.")


def footprint_hint(store, model: str, precision: str | None, runtime: str, threads: int) -> str:
    """What a student needs to choose a memory limit: this variant's footprint here (peak charged memory of its
    newest ok run without a binding limit), which number that is, and why worker RSS can be higher."""
    from ..config import NON_BINDING
    from ..study.runner import charges_memory

    try:
        df = store.list_runs(model=model, precision=precision, status="ok", runtime=runtime, threads=threads,
                             limit=50) if precision else store.list_runs(model=model, status="ok", runtime=runtime,
                                                                           threads=threads, limit=50)
    except EdgeprofError:
        return ""
    if not charges_memory():
        rss = df[df["memory_limit_mb"].isna() & df["peak_rss_mb"].notna()]
        if rss.empty:
            return "Peak memory not measured yet for this variant: run it once with **no limit**."
        return (f"This variant's peak worker RSS here: **{charts.fmt_mb(rss.iloc[0]['peak_rss_mb'])}**. This device has "
                "no memory cgroup, so a limit here bounds address space, which runtimes reserve far more of than they "
                "use: expect a run to fail well above that figure.")
    df = df[df["peak_charged_mb"].notna()]
    free = df[df["memory_limit_mb"].isna() | (df["memory_limit_mb"] >= NON_BINDING * df["peak_charged_mb"])]
    if free.empty:
        return ("Footprint not measured yet for this variant: run it once with **no limit** (it still measures the "
                "memory it needs), then choose a limit relative to that.")
    row = free.iloc[0]
    rss = row.get("peak_rss_mb")
    extra = (f" Worker RSS ({charts.fmt_mb(rss)}) also counts shared libraries that other processes had loaded "
             "already, so it can sit above a limit the run stays within." if rss and np.isfinite(rss)
             and rss > row["peak_charged_mb"] else "")
    return (f"This variant's footprint here: **{charts.fmt_mb(row['peak_charged_mb'])}** charged at its peak (run "
            f"…{str(row['run_id'])[-6:]}, no binding limit). A limit below that will likely OOM-kill the run.{extra}")


def duration_words(store, model: str, precision: str | None, runtime: str, threads: int, preset: str,
                   duration_s: float | None) -> str:
    """How long a run will take, honestly: a preset is a minimum time AND a minimum number of inferences, plus
    warm-up and loading; with this variant's measured latency the estimate says which one dominates."""
    from ..config import RunConfig

    cfg = RunConfig(model=model, preset=preset, duration_s=duration_s or None)
    try:
        df = store.list_runs(model=model, precision=precision, status="ok", runtime=runtime, threads=threads, limit=5) \
            if precision else store.list_runs(model=model, status="ok", runtime=runtime, threads=threads, limit=5)
    except EdgeprofError:
        df = None
    n = cfg.min_iterations
    rule = (f"at least {cfg.min_duration_s:g} s of steady state and {n:,} inference{'' if n == 1 else 's'}, after "
            "loading and warm-up")
    if df is None or df.empty or pd.isna(df.iloc[0]["p50_ms"]):
        return f"A run measures {rule}."
    p50_s = float(df.iloc[0]["p50_ms"]) / 1000
    est = cfg.estimate_seconds(p50_s)
    why = (f": {cfg.min_iterations:,} inferences of ~{fmt_ms(p50_s * 1000)} take longer than {cfg.min_duration_s:g} s"
           if cfg.min_iterations * p50_s > cfg.min_duration_s else "")
    return f"A run measures {rule}: about {fmt_duration(est)} for this variant here{why}."




@st.cache_resource(show_spinner=False)
def _backend_status(name: str):
    from ..runtimes import registry

    return registry.get(name).status()


AUTO = "auto"


def backend_widgets(runtime: str, columns: list, disabled: bool = False) -> tuple[str | None, dict]:
    """The Run page's backend selectbox and one widget per option of the backend it runs on (``runtimes.registry``):
    the first column takes the backend, the next ones its options; an option whose values a build may lack (the
    execution providers) offers only those this build has. Returns (backend or None for the best available,
    {option: value} without the ones left at auto)."""
    from ..runtimes import registry

    readers = registry.for_format(runtime)
    name = columns[0].selectbox(
        "Backend", [AUTO, *(b.name for b in readers)], key=f"backend_{runtime}", disabled=disabled,
        help="What runs the file: " + "; ".join(f"{b.name}: {b.summary}" for b in readers)
             + ". auto: the best available.")
    backend = registry.get(name) if name != AUTO else (readers[0] if readers else None)
    options = {}
    for col, f in zip(columns[1:], backend.option_fields() if backend else [], strict=False):
        choices = list(f.metadata.get("choices") or ())
        built = _backend_status(backend.name).providers
        if built:
            choices = [c for c in choices if c in built] or choices
        value = col.selectbox(f.name.replace("_", " ").capitalize(), [AUTO, *choices], key=f"{backend.name}_{f.name}",
                              disabled=disabled, help=f.metadata.get("help"))
        if value != AUTO:
            options[f.name] = value
    return (None if name == AUTO else name), options
