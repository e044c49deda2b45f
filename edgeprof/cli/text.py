"""How the CLI writes numbers and tables for people: one formatter for a value with its unit, a duration, a size,
a plain table, the block a run's result prints as, and ``print_json`` (one JSON document, no NaN)."""

from __future__ import annotations

import json
import math
import sys

from ..stats import fmt_ms, fmt_ms_range, plural
from ..untrusted import terminal_safe
from ..worker.priority import describe as describe_priority


def limit_text(mem: dict) -> str:
    """``limit 256 MB via cgroup-v1``, or ``no limit`` (a limit of none has no mechanism to name)."""
    if mem.get("requested_mb") is None:
        return "no limit"
    return f"limit {fmt(mem.get('requested_mb'), ' MB', 0)} via {mem.get('mechanism')}"


def _plain(obj):
    """JSON has no NaN: missing numbers (NaN from pandas, numpy scalars) become null or plain Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (ValueError, TypeError):
            return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class TerminalSafe:
    """A text stream that writes through ``untrusted.terminal_safe``: a model name from a bundle that holds terminal
    escapes (clear the screen, write the clipboard) is printed as visible ``\\u001b`` text, on every line the CLI
    writes (tables, summaries, errors, JSON alike)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(terminal_safe(text))

    def __getattr__(self, name):
        return getattr(self._stream, name)


def print_json(doc) -> None:
    """One JSON document on stdout, built fully before writing so an error never leaves half a document."""
    text = json.dumps(_plain(doc), indent=2, default=str, allow_nan=False)
    sys.stdout.write(text + "\n")


def fmt(value, unit: str = "", digits: int = 2) -> str:
    """``4.5678, " ms", 3`` -> ``4.568 ms``; None or not finite -> ``-``; ints and text as they are."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def duration(seconds: float | None) -> str:
    """``754`` -> ``12m34s``; ``4000`` -> ``1h06m``; None -> ``?``."""
    if seconds is None:
        return "?"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def size(nbytes: int | None) -> str:
    """``18554805`` -> ``18.55 MB``, ``103876`` -> ``103.9 kB`` (``models.inspect.size_text``, the rule the
    quantization report's sizes follow too); None (a variant not built yet) -> ``not built``."""
    if nbytes is None:
        return "not built"
    from ..models.inspect import size_text  # not at the top: every command imports this module

    return size_text(nbytes)


def table(rows: list[list], header: list[str]) -> str:
    """Left-aligned columns under a header and a rule; None cells as ``-``."""
    cells = [[str(c) for c in header]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)




LATENCY_COLUMNS = ("p50_ms", "p90_ms")


def runs_table(rows: list[dict]) -> str:
    """``runs`` for people, from plain rows (``Store.run_rows``): times to the second, "no limit", uploads by the name
    they were uploaded with, files by their name, latencies as ``fmt_ms`` writes them (µs below 1 ms, each with its
    unit), "-" for what was not measured (never NaN or None)."""
    from ..models.catalog import upload_names
    from ..store.columns import RUNS_HEADERS

    names = upload_names()

    def cell(col, v):
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "no limit" if col == "memory_limit_mb" else "-"
        if col == "created_at":
            return str(v)[:19]
        if col == "model":
            return f"{names[v]} (uploaded)" if v in names else (v.rsplit("/", 1)[-1] if "/" in v else v)
        if col == "memory_limit_mb":
            return f"{float(v):g} MB"
        if col in LATENCY_COLUMNS:
            return fmt_ms(float(v))
        if col == "peak_charged_mb":
            return f"{float(v):.1f}"
        return v

    cols = [c for c in RUNS_HEADERS if rows and c in rows[0]]
    body = [[cell(c, r[c]) for c in cols] for r in rows]
    # the latency cells carry their unit (µs or ms), so their header does not
    return table(body, [RUNS_HEADERS[c].removesuffix(" ms") if c in LATENCY_COLUMNS else RUNS_HEADERS[c] for c in cols])


def run_summary(r: dict, details: bool = False) -> str:
    """The human form of a run's result (``run`` and ``show``); ``details`` adds the runtime's own text behind an
    error."""
    from ..run import explain
    from ..telemetry import catalog

    lat = r.get("latency_ms") or {}
    mem = r.get("memory") or {}
    cpu = r.get("cpu") or {}
    be = r.get("backend") or {}
    via = be.get("execution_provider") or be.get("delegate")
    head = [
        f"run {r.get('run_id')}: {r.get('status')}" + (f" ({r['error']})" if r.get("error") else ""),
        "  model        " + " ".join(str(v) for v in (r.get("model"), r.get("precision"), r.get("runtime")) if v)
        + (f"  [{be.get('name')} {be.get('version')}, {via}, {plural(be.get('threads'), 'thread')}]" if be.get("name") else ""),
    ]
    if r.get("status") != "ok" and not lat.get("n") and r.get("load_ms") is None:
        # no latency was measured (the model never loaded, or the worker was killed first): a block of dashes would
        # only hide the reason, but what was measured (memory, pressure, CPU) says why
        if any(mem.get(k) is not None for k in ("peak_charged_mb", "peak_rss_mb", "oom_killed")):
            head.append(memory_line(mem))
        if cpu.get("system_mean_pct") is not None or cpu.get("worker_mean_pct") is not None:
            head.append(cpu_line(cpu))
        head.extend(why_lines(r))
        if r.get("temp_max_c") is not None:
            head.append(f"  temperature  max {r['temp_max_c']:.1f} C" + ("  THROTTLED" if r.get("throttled") else ""))
        head.extend(f"  ! {flag}" for flag in r.get("flags") or [])
        head.extend(f"  note: {note}" for note in r.get("notes") or [])
        if details and r.get("error_detail"):
            head.append("  details (the runtime's own message):")
            head.extend(f"    {line}" for line in str(r["error_detail"]).strip().splitlines()[:40])
        return "\n".join(head)
    lines = [
        *head,
        f"  load         {fmt_ms(r.get('load_ms'))}   first inference {fmt_ms(r.get('first_inference_ms'))}"
        f"   warm-up {fmt_ms(r.get('warmup_ms'))} / {r.get('warmup_iterations')} it"
        f" ({r.get('warmup_reason') or '-'})",
        f"  latency      p50 {fmt_ms(lat.get('p50'))}  p90 {fmt_ms(lat.get('p90'))}"
        f"  p95 {fmt_ms(lat.get('p95'))}  p99 {fmt_ms(lat.get('p99'))}  mean {fmt_ms(lat.get('mean'))}"
        f"  std {fmt_ms(lat.get('std'))}  CoV {fmt(lat.get('cov'), '', 3)}  n {lat.get('n')}",
        f"  interval     {interval_text(lat)}   throughput {fmt(r.get('throughput_ips'), ' inf/s', 1)}",
        *([f"  samples      {r['retention']['statement']}"] if isinstance(r.get("retention"), dict) else []),
        cpu_line(cpu),
        memory_line(mem),
        f"  CPU priority {explain.one_level(describe_priority(r.get('cpu_priority')))}",
    ]
    lines.extend(why_lines(r))
    gpu = r.get("gpu")
    util, gmem = catalog.GPU_UTIL.unit, catalog.GPU_MEM.unit
    lines.append("  GPU          " + (f"util mean {fmt(gpu.get('util_mean_pct'), util, 1)}, memory peak "
                                      f"{fmt(gpu.get('mem_peak_mb'), ' ' + gmem, 0)}" if gpu else
                                      explain.one_level("no GPU telemetry (" + explain.gpu_reason(
                                          r.get("telemetry_sources")) + ")")))
    lines.extend(accelerator_lines(r))
    if r.get("temp_max_c") is not None:
        lines.append(f"  temperature  max {r['temp_max_c']:.1f} C" + ("  THROTTLED" if r.get("throttled") else ""))
    lines.extend(coverage_lines(r.get("telemetry_coverage") or {}))
    for flag in r.get("flags") or []:
        lines.append(f"  ! {flag}")
    for note in r.get("notes") or []:
        lines.append(f"  note: {note}")
    if details and r.get("error_detail"):
        lines.append("  details (the runtime's own message):")
        lines.extend(f"    {line}" for line in str(r["error_detail"]).strip().splitlines()[:40])
    return "\n".join(lines)


def _yes_no(value) -> str:
    return "-" if value is None else "yes" if value else "no"


def cpu_line(cpu: dict) -> str:
    """``  CPU          device busy mean 71.0% peak 100.0% (all cores)   worker mean ...``."""
    return (f"  CPU          device busy mean {fmt(cpu.get('system_mean_pct'), '%', 1)} peak "
            f"{fmt(cpu.get('system_peak_pct'), '%', 1)} (all cores)   worker mean "
            f"{fmt(cpu.get('worker_mean_pct'), '%', 1)} peak {fmt(cpu.get('worker_peak_pct'), '%', 1)}   others mean "
            f"{fmt(cpu.get('others_mean_pct'), '%', 1)} (one core = 100%)")


def memory_line(mem: dict) -> str:
    """``  memory       limit 20 MB via cgroup1   peak charged 20.0 MB   peak worker RSS 42.3 MB   OOM-killed yes ...``
    (the kill as yes or no, never a Python bool)."""
    return (f"  memory       {limit_text(mem)}   peak charged {fmt(mem.get('peak_charged_mb'), ' MB', 1)}   peak worker "
            f"RSS {fmt(mem.get('peak_rss_mb'), ' MB', 1)}   OOM-killed {_yes_no(mem.get('oom_killed'))}"
            f"   major faults {fmt(mem.get('major_faults'), '', 0)}")


def accelerator_lines(r: dict) -> list[str]:
    """One line per accelerator class of the catalog other than the GPU (its line is above) that the run measured:
    ``  NPU          util mean 37.5%, power mean 1.90 W, temperature max 51.2 C``."""
    from ..telemetry.catalog import ACCELERATORS, DEVICE_NAMES

    lines = []
    for device in ACCELERATORS:
        block = r.get(device)
        if device == "gpu" or not isinstance(block, dict):
            continue
        parts = [f"util mean {fmt(block.get('util_mean_pct'), '%', 1)}"]
        if block.get("mem_peak_mb") is not None:
            parts.append(f"memory peak {fmt(block['mem_peak_mb'], ' MB', 0)}")
        if block.get("power_mean_w") is not None:
            parts.append(f"power mean {fmt(block['power_mean_w'], ' W', 2)}")
        if block.get("temp_max_c") is not None:
            parts.append(f"temperature max {fmt(block['temp_max_c'], ' C', 1)}")
        lines.append(f"  {DEVICE_NAMES[device]:<12} " + ", ".join(parts))
    return lines


def coverage_lines(coverage: dict) -> list[str]:
    """One line per distinct gap in the telemetry: sources that cover the same part of the run share the line
    ("cgroup, host and psi figures cover ..."), in the summary's (alphabetical) order."""
    texts: dict[str, list[str]] = {}
    for src, cov in coverage.items():
        part = (f"{cov['from_s']:.1f}-{cov['to_s']:.1f} s" if cov.get("from_s") is not None else "none")
        why = f"; stopped at {cov['stopped_s']:.1f} s: {cov.get('reason')}" if cov.get("stopped_s") is not None else ""
        text = (f"figures cover {part} of the measured {cov['window_s'][0]:.1f}-{cov['window_s'][1]:.1f} s"
                f" ({100 * cov['share']:.0f}%){why}")
        texts.setdefault(text, []).append(src)
    return [f"  ! {', '.join(names[:-1]) + ' and ' + names[-1] if len(names) > 1 else names[0]} {text}"
            for text, names in texts.items()]


def why_lines(r: dict) -> list[str]:
    """The lines on why a run is slow (``run.explain.why``: memory pressure and faults, energy per inference, the
    operator profile), each under its topic in the summary's column."""
    from ..run import explain  # not at the top: edgeprof.run is heavy, and every command imports this module

    return [f"  {w.short:<13}{w.text}" for w in explain.why(r)]


def rate(value) -> str:
    """Events per second, grouped: ``2400.3`` -> ``2,400/s``; None -> ``-``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.0f}/s" if value >= 10 else f"{value:.1f}/s"


def ops_table(cmp, top: int = 15) -> str:
    """``ops``: the sentence, then the operator types side by side (an ``ops.OpComparison``), times as ``fmt_ms``
    writes them (an operator of a fast model takes microseconds)."""
    rows = [[r.op_type, fmt_ms(r.ms_a), fmt_ms(r.ms_b), "-" if r.ratio is None or r.ratio != r.ratio
             else f"{r.ratio:.2f}x", ("+" if r.diff_ms > 0 else "") + fmt_ms(r.diff_ms), "-" if r.share_of_difference is None
             or r.share_of_difference != r.share_of_difference else f"{100 * r.share_of_difference:.0f}%"]
            for r in cmp.table.head(max(1, top)).itertuples()]
    head = [cmp.sentence, ""]
    body = table(rows, ["operator", cmp.name_a, cmp.name_b, "ratio", "difference", "share of diff"])
    cov = [f"{name}: {100 * c:.0f}%" for name, c in zip((cmp.name_a, cmp.name_b), cmp.coverage, strict=True)
           if c is not None]
    foot = [f"(operator times per inference, median over the profiled inferences; they sum to "
            f"{', '.join(cov)} of each run's steady p50)"] if cov else []
    return "\n".join(head + [body] + foot)


SCOPE_TEXT = {"within-run": "within this run only; a rerun can land outside it",
              "runs": "between runs; a rerun is expected inside it"}


def _ci(ci) -> str:
    """An interval of plain numbers (a ratio): ``0.912 to 0.987``."""
    return "-" if not ci or None in ci else f"{ci[0]:.3f} to {ci[1]:.3f}"


def _ms_ci(ci) -> str:
    """An interval of latencies: ``18.2 to 18.4 µs``."""
    return "-" if not ci or None in ci else fmt_ms_range(ci[0], ci[1])


def interval_text(lat: dict) -> str:
    """``p50 95% interval 7.10 to 7.30 ms (within this run only; ...)``: every interval printed with its scope, its
    ends in one unit and told apart (``fmt_ms_range``)."""
    if not lat.get("p50_ci"):
        return f"p50 95% interval - ({lat.get('ci_note') or 'too few samples'})"
    text = f"p50 95% interval {_ms_ci(lat.get('p50_ci'))}, p90 {_ms_ci(lat.get('p90_ci'))}"
    return text + f" ({SCOPE_TEXT.get(lat.get('ci_scope'), lat.get('ci_scope'))})"


def wide_interval_text(lat: dict) -> str | None:
    """Why a between-run interval reaches past every run's own value (few runs: Student t with few degrees of
    freedom), or None when it stays within them."""
    if lat.get("ci_scope") != "runs":
        return None
    p50s = [v for v in lat.get("run_p50") or [] if v is not None]
    p90s = [v for v in lat.get("run_p90") or [] if v is not None]
    ci50, ci90 = lat.get("p50_ci") or [None, None], lat.get("p90_ci") or [None, None]
    past = any(lo is not None and vals and (lo < min(vals) or hi > max(vals))
               for (lo, hi), vals in ((ci50, p50s), (ci90, p90s)))
    if not past:
        return None
    n = len(p50s)
    return (f"{n} runs give Student t {plural(n - 1, 'degree')} of freedom, so the 95% intervals reach past the runs' own "
            f"values (p50 {fmt_ms_range(min(p50s), max(p50s))}"
            + (f", p90 {fmt_ms_range(min(p90s), max(p90s))}" if p90s else "")
            + "): where a rerun may land, not where these runs were; more runs (--repeat 6) narrow them.")


def group_text(doc: dict) -> str:
    """The human form of ``run --repeat N``: one line per run, then the median of the run medians with the interval
    between runs."""
    lat = doc.get("latency_ms") or {}
    lines = [f"group {doc.get('group_id')}: {doc.get('status')}, {doc.get('runs_ok')} of {doc.get('repeat')} runs ok"
             + (f" ({doc['error']})" if doc.get("error") else ""),
             f"  model        {doc.get('model')} {doc.get('precision')} {doc.get('runtime')}"]
    for i, m in enumerate(doc.get("runs") or []):
        ml = m.get("latency_ms") or {}
        lines.append(f"  run {i + 1:<8} {m.get('run_id')}  {m.get('status'):<10} p50 {fmt_ms(ml.get('p50'))}"
                     f"  within-run interval {_ms_ci(ml.get('p50_ci'))}")
    lines.append(f"  latency      p50 {fmt_ms(lat.get('p50'))} (median of {lat.get('n_runs')} run medians)  "
                 f"p90 {fmt_ms(lat.get('p90'))}  between-run spread {fmt(lat.get('between_run_spread_pct'), '%', 1)}")
    lines.append(f"  interval     {interval_text(lat)}")
    wide = wide_interval_text(lat)
    if wide:
        lines.append(f"  why so wide  {wide}")
    for flag in doc.get("flags") or []:
        lines.append(f"  ! {flag}")
    return "\n".join(lines)


def comparison_text(doc: dict) -> str:
    """The human form of ``compare``: each configuration's median of run medians with its interval, B over A with
    its interval, and the verdict."""
    lines = [f"comparison {doc.get('group_id')}: {doc.get('status')}, {doc.get('pairs')} of {doc.get('repeat')} "
             "pairs ok, run interleaved A B, B A, ..." + (f" ({doc['error']})" if doc.get("error") else "")]
    for side in ("a", "b"):
        g = doc.get(side) or {}
        lat = g.get("latency_ms") or {}
        cfg = g.get("config") or {}
        lines.append(f"  {side.upper()}  {g.get('model')} {g.get('precision')} {g.get('runtime')} t{cfg.get('threads')}"
                     f"  p50 {fmt_ms(lat.get('p50'))}  runs {', '.join(fmt_ms(v) for v in lat.get('run_p50') or [])}")
        lines.append(f"     {interval_text(lat)}")
    r = doc.get("ratio_b_over_a") or {}
    lines.append(f"  B/A p50 {fmt(r.get('p50'), '', 3)}  95% interval {_ci(r.get('ci'))}"
                 f" ({'between runs, paired' if r.get('ci_scope') == 'runs' else 'none: single run'})")
    lines.append(f"  verdict: {doc.get('verdict')}")
    return "\n".join(lines)


def noise_floor_text(floor: dict | None, prog: str = "edgeprof") -> str:
    """``noise floor 12% (measured ...)``, or how to measure it."""
    if not floor or floor.get("floor_pct") is None:
        return f"noise floor not measured on this device yet: `{prog} devices --noise-floor` (about 20 s)"
    when = floor.get("measured_at")
    when = when.strftime("%Y-%m-%d %H:%M UTC") if hasattr(when, "strftime") else str(when)
    return (f"noise floor {floor['floor_pct']:.0f}%: differences under it are not distinguishable on this device "
            f"(measured {when}, {(floor.get('latency_ms') or {}).get('n_runs')} runs of {floor.get('model')})")
