"""``memory MODEL``: how much memory a model needs on this device (``run.memory``): its footprint, the smallest cap
that completes a run, the curve above it, what the footprint is made of, and in sentences the cliff and any slope.

Exit codes: 0 a curve was measured; 3 no cap up to the footprint completed; 2 usage errors; 1 anything else.
"""

from __future__ import annotations

import sys

from ..config import PRECISIONS, RUNTIMES, check_number
from ..runtimes import registry
from ..stats import fmt_ms, fmt_ms_range
from .run import EXIT_OTHER_STATUS, db_arg, open_store
from .text import print_json


def register(sub) -> None:
    p = sub.add_parser("memory", help="how much memory a model needs here: footprint, minimum cap, curve, breakdown",
                       description="Measure a model's footprint without a cap, find the smallest cap that completes a "
                                   "run (bisection of short capped runs; an OOM kill is a result), run a ladder of "
                                   "caps up to 1.5x the footprint (p50 with its interval, memory pressure, faults, "
                                   "refaults, swap) and split the footprint into runtime, weights and activations. "
                                   "The result is stored and drawn on the Models page.")
    p.add_argument("model", help="a bundled model name (see `models`) or a path to .onnx / .tflite")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS, help="default fp32")
    p.add_argument("--runtime", choices=RUNTIMES, help="default: from the file (bundled models: onnx)")
    p.add_argument("--tflite-interpreter", choices=[b.name for b in registry.for_format("tflite")],
                   help="the backend for a .tflite file (default: the best available)")
    p.add_argument("--threads", default="2", help="intra-op threads (default 2)")
    p.add_argument("--evictable", action="store_true",
                   help="keep the weights in file-backed pages a cap can evict (TFLite without its default XNNPACK "
                        "delegate; refused for ONNX Runtime, with the reason)")
    p.add_argument("--no-swap", action="store_true", help="forbid swap inside the caps where the kernel allows")
    p.add_argument("--resolution", metavar="MB", help="stop the search when fit and kill are this close "
                                                      "(default: 2%% of the footprint, at least 1 MB)")
    p.add_argument("--max-probes", default="8", metavar="N", help="at most this many search probes (default 8)")
    p.add_argument("--budget", default="120", metavar="S", help="time budget of the search in seconds (default 120)")
    p.add_argument("--ladder-seconds", default="2", metavar="S",
                   help="steady seconds of each ladder run (default 2, at least 1)")
    db_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_memory)


def cmd_memory(args) -> int:
    from ..run.memory import Settings, measure_memory

    settings = Settings(resolution_mb=check_number("--resolution", args.resolution, minimum=0.1),
                        max_probes=check_number("--max-probes", args.max_probes, minimum=2, integer=True),
                        budget_s=check_number("--budget", args.budget, minimum=1),
                        ladder_s=check_number("--ladder-seconds", args.ladder_seconds, minimum=1))
    threads = check_number("--threads", args.threads, minimum=1, integer=True)
    step = None if args.quiet else (lambda text: print(f"  {text}", file=sys.stderr, flush=True))
    doc = measure_memory(args.model, args.precision, args.runtime, evictable=args.evictable, swap=not args.no_swap,
                         threads=threads, store=open_store(args.db), settings=settings, on_step=step,
                         tflite_interpreter=args.tflite_interpreter)
    if args.json:
        print_json(doc)
    else:
        print(memory_text(doc))
    return 0 if doc.get("min_cap_mb") is not None else EXIT_OTHER_STATUS


def memory_text(doc: dict) -> str:
    """The curve as a person reads it: the sentences, the curve as a table, the breakdown's sentences."""
    s = doc.get("sentences") or {}
    parts = doc.get("breakdown") or {}
    lines = [f"{doc.get('model')} {doc.get('precision')} ({doc.get('runtime')}): footprint "
             f"{doc.get('footprint_mb') or 0:.1f} MB charged, minimum cap "
             + ("none found" if doc.get("min_cap_mb") is None else f"{doc['min_cap_mb']:g} MB")
             + f" ({len((doc.get('search') or {}).get('probes') or [])} probes, stopped by "
               f"{(doc.get('search') or {}).get('stopped_by')}; {doc.get('seconds')} s in all)",
             *(f"  {s[k]}" for k in ("cliff", "slope", "mechanism") if s.get(k)), "",
             f"{'cap MB':>8} {'status':>10} {'p50':>9} {'95% CI (within run)':>24} {'PSI some/full %':>16} "
             f"{'majflt/s':>9} {'refault/s':>9} {'peak MB':>8}"]

    def num(v, f="{:.3g}"):
        return "-" if v is None else f.format(v)

    for p in doc.get("curve") or []:
        ci = p.get("p50_ci")
        lines.append(f"{'none' if p.get('cap_mb') is None else format(p['cap_mb'], 'g'):>8} {p.get('status'):>10} "
                     f"{fmt_ms(p.get('p50_ms')):>9} {fmt_ms_range(*ci) if ci else '-':>24} "
                     f"{num(p.get('pressure_some_pct'), '{:.1f}') + '/' + num(p.get('pressure_full_pct'), '{:.1f}'):>16} "
                     f"{num(p.get('major_faults_per_s'), '{:.0f}'):>9} {num(p.get('refaults_per_s'), '{:.0f}'):>9} "
                     f"{num(p.get('peak_charged_mb'), '{:.1f}'):>8}")
    lines += ["", *parts.get("sentences", [parts.get("unavailable", "")]),
              f"Swap: {(doc.get('mechanism') or {}).get('swap_note')}. Stored as group {doc.get('group_id')}."]
    return "\n".join(lines)
