"""CLI commands for studies: ``study`` (run or resume a grid), ``studies`` (list them), ``report`` (HTML report).

``study --json`` prints exactly one JSON object on stdout at the end, {"study_id", "cells", "done", "failed"};
progress lines go to stderr. Exit codes: 0 every cell has a result; 3 the study stopped before the grid was done
or some cells failed (see docs/studies.md); 2 usage errors; 1 anything else.
"""

from __future__ import annotations

import signal
import sys

from ..stats import fmt_ms, plural
from .run import EXIT_OTHER_STATUS, db_arg, open_store
from .text import duration, print_json


def register(sub) -> None:
    p = sub.add_parser("study", help="run (or resume) a study: a grid of runs with a cooldown between cells",
                       description="Run a grid of models x precisions x runtimes x memory limits x threads x "
                                   "repetitions, one cell after another; an interrupted study resumes with "
                                   "--study-id and never reruns a finished cell. Format: docs/studies.md.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", choices=("quick", "paper"), help="a bundled study (studies/<name>.toml)")
    src.add_argument("--file", metavar="STUDY.toml", help="a study description in TOML")
    p.add_argument("--study-id", metavar="ID", help="resume this study (or give a new study this id)")
    p.add_argument("--allow-path", action="append", default=[], metavar="PATH",
                   help="a model file or folder outside the data directory that the study file (or a resumed "
                        "study's stored settings) may name; repeatable")
    p.add_argument("--duration", type=float, metavar="S", help="steady-state seconds per cell (overrides the study's)")
    p.add_argument("--iterations", type=int, metavar="N", help="minimum steady-state iterations per cell")
    p.add_argument("--cooldown", type=float, metavar="S", help="seconds of rest between cells")
    db_arg(p)
    p.add_argument("--json", action="store_true", help="end with one JSON object on stdout (progress on stderr)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("studies", help="list studies and how far each got",
                       description="List the studies: status, cells done and failed, and whether one can be resumed.")
    db_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.set_defaults(func=cmd_studies)

    p = sub.add_parser("report", help="write a study's HTML report with figures and findings",
                       description="Write index.html (figures embedded) plus the PNG figures, runs.csv and "
                                   "findings.json into --out.")
    p.add_argument("study_id", help="the study's id (see `studies`); with --fleet, its id or name on every device")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    db_arg(p)
    p.add_argument("--fleet", metavar="URL", help="one report for the devices that ran this study, read from the "
                                                  "fleet at URL: claim verdicts per device and latency ratios between "
                                                  "devices per variant (index.html and devices.json)")
    p.add_argument("--baseline", metavar="DEVICE_NAME", help="with --fleet: the device the others are compared with "
                                                             "(default: the first by name)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=cmd_report)


class _Printer:
    def __init__(self, quiet: bool):
        self.quiet = quiet
        self._last_done = -1
        self._last_msg = None

    def __call__(self, p) -> None:
        if self.quiet:
            return
        if p.message and p.message != self._last_msg:
            self._last_msg = p.message
            print(f"  {p.message}", file=sys.stderr, flush=True)
        if p.done != self._last_done and p.last is not None and p.ran_this_session:
            self._last_done = p.done
            last = p.last
            p50 = f" p50 {fmt_ms(last['p50_ms'])}" if last.get("p50_ms") is not None else ""
            print(f"[{p.done:>4}/{p.total}] {last['key']:<50} {last['status']:<10}{p50}   "
                  f"elapsed {duration(p.elapsed_s)}, ~{duration(p.eta_s)} left, {p.failed} failed",
                  file=sys.stderr, flush=True)


def cmd_study(args) -> int:
    from ..study import StudyRunner, resolve_config

    store = open_store(args.db)
    cfg = resolve_config(store, preset=args.preset, file=args.file, study_id=args.study_id,
                         duration_s=args.duration, cooldown_s=args.cooldown, iterations=args.iterations,
                         allowed_paths=args.allow_path)
    runner = StudyRunner(cfg, store, study_id=args.study_id, progress=_Printer(args.quiet))
    if not args.quiet:
        print(f"study {runner.study_id}: {plural(cfg.n_cells, 'cell')} ({plural(len(cfg.variants), 'variant')} x "
              f"{plural(len(cfg.memory_limits), 'memory limit')} x {plural(cfg.repetitions, 'repetition')}), "
              f"about {duration(cfg.estimate_s())} if none is done yet; db {store.path}", file=sys.stderr, flush=True)
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    try:
        summary = runner.run()
    except KeyboardInterrupt:
        print("\nstopping the study...", file=sys.stderr)
        runner.stop()
        summary = runner.progress.summary()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        print_json(summary)
    elif not args.quiet:
        print(f"study {summary['study_id']}: {summary['done']}/{summary['cells']} cells done, "
              f"{summary['failed']} failed")
    if summary["done"] < summary["cells"]:
        print(f"the study stopped before its grid was done; resume it with --study-id {summary['study_id']}",
              file=sys.stderr)
        return EXIT_OTHER_STATUS
    return EXIT_OTHER_STATUS if summary["failed"] else 0


def cmd_studies(args) -> int:
    from ..study import list_studies

    rows = list_studies(open_store(args.db))
    if args.json:
        print_json(rows)
    elif not rows:
        print(f"no studies yet: start one with `{args.prog} study --preset quick`")
    else:
        for r in rows:
            cells = "?" if r["cells"] is None else r["cells"]
            print(f"{r['study_id']:<40} {r['status']:<12} {r['done']}/{cells} done, {r['failed']} failed"
                  + ("  (resumable)" if r["resumable"] else ""))
    return 0


def cmd_report(args) -> int:
    from ..study.report import write_report

    if args.fleet:
        import json

        from ..store.fleet import Fleet
        from ..study.across import write_report as write_across

        with Fleet(args.fleet) as fleet:
            out = write_across(fleet, args.study_id, args.out, baseline=args.baseline)
        if args.json:
            print_json(json.loads((out.parent / "devices.json").read_text()))
        else:
            print(out)
        return 0

    store = open_store(args.db)
    out = write_report(store, args.study_id, args.out)
    if args.json:
        import json

        print_json(json.loads((out.parent / "findings.json").read_text()))
    else:
        print(out)
    return 0
