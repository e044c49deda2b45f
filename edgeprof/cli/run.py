"""CLI commands for runs: ``run``, ``runs`` (also ``--fleet``), ``show``, ``devices`` (also ``--name``), ``export``, ``import``.

Exit codes: 0 the run finished ok; 3 the run was recorded with another status; 2 usage errors; 1 anything else.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from .. import paths
from ..config import (
    NOISE_FLOOR_MODEL,
    NOISE_FLOOR_RUNS,
    PRECISIONS,
    PRESETS,
    RETENTION_MAX_ALL,
    RETENTIONS,
    RUNTIMES,
    RunConfig,
)
from ..errors import UsageError
from ..runtimes import registry
from ..stats import fmt_ms, plural
from .text import comparison_text, group_text, noise_floor_text, print_json, run_summary, runs_table

EXIT_OTHER_STATUS = 3
#: The settings ``compare --vs KEY=VALUE`` may change for B, and the RunConfig field each sets.
VS_KEYS = {"model": "model", "precision": "precision", "runtime": "runtime", "threads": "threads",
           "memory-limit": "memory_limit_mb", "execution-provider": "execution_provider",
           "tflite-interpreter": "tflite_interpreter", "backend": "backend"}

PREPARING_EVERY_S = 5.0  # while a run prepares (a quantized variant is built), how often to say it still does


def db_arg(p) -> None:
    p.add_argument("--db", metavar="PATH", help="DuckDB file (default: $EDGEPROF_DB, else runs.duckdb in the data "
                                                "directory)")


def _run_options(p) -> None:
    """The options that describe one run configuration (``run`` and ``compare``)."""
    p.add_argument("--model", required=True, help="a bundled model name (see `models`) or a path to .onnx / .tflite")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="fp32 (default), fp16, int8-dynamic or int8-static; a file of your own runs as it is unless "
                        "it is an fp32 ONNX file, which is quantized on the device")
    p.add_argument("--runtime", choices=RUNTIMES, help="default: from the file (bundled models: onnx)")
    p.add_argument("--backend", choices=registry.names(),
                   help="what runs the file: " + "; ".join(f"{b.name} ({b.summary}; {', '.join(b.formats)} files)"
                                                          for b in registry.backends())
                        + " (default: the best available for the file)")
    p.add_argument("--backend-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the backend, repeatable: " + "; ".join(
                       f"{b.name}: {f.name} ({'|'.join(f.metadata['choices'])}) {f.metadata['help']}"
                       for b in registry.backends() for f in b.option_fields()))
    p.add_argument("--tflite-interpreter", choices=[b.name for b in registry.for_format("tflite")],
                   help="the backend for a .tflite file (default: the best available)")
    p.add_argument("--execution-provider", choices=registry.option_choices("execution_provider"),
                   help="the ONNX Runtime execution provider (--backend-option execution_provider=...; default: the "
                        "best available)")
    p.add_argument("--threads", default="2", help="intra-op threads (default 2)")
    p.add_argument("--memory-limit", default="0", metavar="MB", help="memory cap in MB (0 or absent: none)")
    p.add_argument("--duration", metavar="S", help="minimum steady-state seconds")
    p.add_argument("--iterations", metavar="N", help="steady-state iterations (exact when no --duration)")
    p.add_argument("--preset", choices=tuple(PRESETS), help="duration preset: quick ~10 s, standard ~60 s, long >= 600 s")
    p.add_argument("--warmup", default="auto", help="'auto' (until latency is steady) or a number of iterations")
    p.add_argument("--timeout", metavar="S", help="wall-clock timeout for the whole run")
    p.add_argument("--sample-hz", default="10", help="telemetry sampling rate (default 10)")
    p.add_argument("--no-swap", action="store_true", help="forbid swap inside the memory cap where the kernel allows")
    p.add_argument("--evictable", action="store_true",
                   help="keep the weights in file-backed pages a cap can evict and read back (TFLite without XNNPACK; "
                        "ONNX Runtime from external data, no pre-packing): slower per inference (see `memory`)")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=D1xD2...",
                   help="an input's shape, e.g. --shape input=1x512 (repeatable; dynamic dimensions are guessed "
                        "otherwise, and a symbolic dimension takes one value across all inputs)")
    p.add_argument("--data", metavar="PATH",
                   help="a folder of images or a .npz keyed by input name: what int8-static of an fp32 .onnx file "
                        "of your own calibrates on (random inputs otherwise)")
    p.add_argument("--fill", action="append", default=[], metavar="NAME=VALUE",
                   help="set every element of an input, e.g. --fill sr=16000 (repeatable; random data otherwise)")
    p.add_argument("--keep-fp32", metavar="NODE,NODE", default=None,
                   help="with --precision int8-static: leave these operators in fp32 (a mix `edgeprof doctor` names)")
    p.add_argument("--profile-ops", action="store_true",
                   help="after the measured steady phase, profile a separate phase of inferences per operator "
                        "(ONNX Runtime's profiler; the measured latencies are not touched)")
    p.add_argument("--retention", choices=RETENTIONS, default="auto",
                   help="what the store keeps of the samples: all; reduced (every sample of the first minute, then "
                        "a uniform reservoir and per-second count, mean, min, max); auto (default): all up to "
                        f"{RETENTION_MAX_ALL:,} samples, reduced beyond")
    db_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def register(sub) -> None:
    p = sub.add_parser("run", help="run one model under a memory cap and record it",
                       description="Run a model in an isolated worker under an optional memory cap, measure load, "
                                   "first inference, warm-up and steady-state latency with hardware telemetry, and "
                                   "store the run. With --repeat N, make N runs one after another, each its own "
                                   "process with its own load and warm-up, and report the median of the run medians "
                                   "with a 95% interval between runs (a single run's interval covers only that "
                                   "run).")
    _run_options(p)
    p.add_argument("--repeat", default="1", metavar="N",
                   help="make N separate runs (each stored, linked by a group id) and report the median of their "
                        "medians with a 95%% interval between runs; --json then prints one document with the group "
                        "result and each run under `runs` (default 1)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("compare", help="compare two configurations, runs interleaved",
                       description="Run configuration A (the run options) and B (A with the --vs changes) N times "
                                   "each, interleaved A B, B A, A B, ... so a drift of the machine's speed falls on "
                                   "both, and report B over A (ratio of the medians of the run medians) with a 95% "
                                   "interval between runs and whether the difference is distinguishable. Exits 0 "
                                   "when every run finished ok, 3 otherwise.")
    _run_options(p)
    p.add_argument("--vs", action="append", default=[], metavar="KEY=VALUE", required=True,
                   help="what B changes, repeatable: " + ", ".join(VS_KEYS) + " (e.g. --vs precision=fp16)")
    p.add_argument("--repeat", default="3", metavar="N", help="runs of each configuration (default 3)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("runs", help="list stored runs",
                       description="List the stored runs, newest first: status, model, precision, runtime, threads, "
                                   "memory limit, p50/p90 latency and peak charged memory.")
    db_arg(p)
    p.add_argument("--model", help="only runs of this model (a bundled name or the path a run used)")
    p.add_argument("--status", help="only runs with this status (ok, oom_killed, failed, ...)")
    p.add_argument("--limit", type=int, default=50, help="at most this many runs (default 50)")
    p.add_argument("--fleet", metavar="URL", help="list every device's runs pushed to URL (s3://BUCKET/PREFIX or a "
                                                  "folder) instead of this database's")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("show", help="show one stored run",
                       description="Show one stored run: its result, the notes on what it was fed, its flags and, for "
                                   "a run that failed, the runtime's own message.")
    p.add_argument("run_id", help="the run's id (see `runs`)")
    db_arg(p)
    p.add_argument("--fleet", metavar="URL", help="read the run from the fleet at URL instead of this database")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("ops", help="two runs' per-operator profiles side by side",
                       description="Set two runs' operator profiles (made with `run --profile-ops`) side by side by "
                                   "operator type: ms per inference in each, their ratio and each operator's share of "
                                   "the difference, with one sentence that says why RUN_B is slower or faster.")
    p.add_argument("run_a", metavar="RUN_A", help="the reference run (e.g. the fp32 one)")
    p.add_argument("run_b", metavar="RUN_B", help="the run to explain (e.g. the int8 one)")
    p.add_argument("--top", type=int, default=15, help="at most this many operator types in the table (default 15)")
    db_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.set_defaults(func=cmd_ops)

    p = sub.add_parser("devices", help="what this device is and what it can measure; its name",
                       description="Say which device this is (its fleet id and name), what it is, which runtimes and "
                                   "execution providers a run will use, which telemetry sources work (or why not), "
                                   "how memory is capped, and its latest noise floor: how far apart two runs of the "
                                   "same thing land here (--noise-floor measures it now).")
    p.add_argument("--name", help="set this device's name (default: the hostname); runs made from now on carry it")
    p.add_argument("--fleet", metavar="URL", help="also say how DuckDB reads the fleet at URL (httpfs, or copies "
                                                  "fetched by s3fs) and how many devices and runs it holds (default: "
                                                  "$EDGEPROF_FLEET)")
    db_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.add_argument("--noise-floor", action="store_true",
                   help=f"measure the noise floor now: {NOISE_FLOOR_RUNS} short runs of "
                        f"{NOISE_FLOOR_MODEL} (about {NOISE_FLOOR_RUNS * 4} s), stored for the Compare page and reports")
    p.set_defaults(func=cmd_devices)

    p = sub.add_parser("export", help="export runs as a Parquet or CSV bundle",
                       description="Write runs with their samples, telemetry, devices and studies as a bundle (a folder, "
                                   "or a .zip) that `import` reads on another device.")
    p.add_argument("run_ids", nargs="*", help="runs to export (default: all)")
    p.add_argument("--out", required=True, help="bundle path (a .zip or a directory)")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="file format of the tables "
                   "(default parquet)")
    db_arg(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="import a bundle exported on another device",
                       description="Add the runs of a bundle made by `export` (runs already here are skipped).")
    p.add_argument("bundle")
    db_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    p.set_defaults(func=cmd_import)


def open_store(db: str | None):
    """Open (create, migrate) the database and recover from any crash before this start."""
    from ..run import recover
    from ..store import Store

    store = Store(Path(db) if db else paths.default_db())
    recover(store)
    return store


def _pairs(values: list[str], parse) -> dict:
    out = {}
    for text in values:
        name, value = parse(text)
        out[name] = value
    return out


def _option_pair(text: str) -> tuple[str, object]:
    from ..config import parse_value

    name, sep, value = str(text).partition("=")
    if not sep or not name.strip():
        raise UsageError(f"--backend-option {text!r} is not KEY=VALUE (e.g. --backend-option execution_provider=cpu).")
    return name.strip(), parse_value(value.strip())


def config_from_args(args) -> RunConfig:
    from ..config import parse_fill, parse_shape

    cfg = RunConfig(
        model=args.model, precision=args.precision, runtime=args.runtime, tflite_interpreter=args.tflite_interpreter,
        execution_provider=args.execution_provider, threads=args.threads, memory_limit_mb=args.memory_limit,
        duration_s=args.duration, iterations=args.iterations, warmup=args.warmup, timeout_s=args.timeout,
        preset=args.preset, sample_hz=args.sample_hz, swap=not args.no_swap,
        input_shapes=_pairs(args.shape, parse_shape), input_fills=_pairs(args.fill, parse_fill),
        profile_ops=bool(args.profile_ops), backend=args.backend,
        backend_options=_pairs(args.backend_option, _option_pair), data=getattr(args, "data", None),
        evictable=bool(getattr(args, "evictable", False)), keep_fp32=args.keep_fp32 or (),
        retention=getattr(args, "retention", "auto"),
    )
    if cfg.timeout_s is not None and cfg.timeout_s <= cfg.min_duration_s:
        raise UsageError(f"--timeout {cfg.timeout_s:g} is not longer than the {cfg.min_duration_s:g} s of steady state "
                         "the run measures, so it would always time out.",
                         "Raise --timeout (it also covers loading and warm-up) or leave it out.")
    return cfg


def _check_model_arg(model: str) -> None:
    """A name that is neither bundled nor an existing path is a usage error: nothing is stored for it."""
    from ..models.catalog import list_models

    names = [m.name for m in list_models()]
    if model in names:
        return
    p = Path(model)
    if p.suffix.lower() in (".onnx", ".tflite") or "/" in model:
        if not p.exists():
            raise UsageError(f"model file {model} does not exist.", "Check the path; bundled models: " + ", ".join(names))
        return
    raise UsageError(f"{model!r} is not a bundled model ({', '.join(names)}) or a path to a .onnx or .tflite file.")


def _repeat_arg(text: str, option: str = "--repeat") -> int:
    from ..config import check_number

    return int(check_number(option, text, 1, integer=True))


def _watch(args, total: int, label=None):
    """``on_run`` for a group of runs: a progress header per run, the run followed as a single run is, and Ctrl-C
    (or SIGTERM) stopping the run in progress and the runs after it."""
    def on_run(i: int, handle) -> bool:
        if not args.quiet:
            what = f" ({label(i)})" if label else ""
            print(f"run {i + 1}/{total}{what}: {handle.run_id}", file=sys.stderr, flush=True)
        return _follow_stoppable(handle, quiet=args.quiet or False)
    return on_run


def _follow_stoppable(handle, quiet: bool) -> bool:
    """Follow a run; True when the user stopped it (Ctrl-C or SIGTERM), so no further run starts."""
    stopped = []
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: (stopped.append(True), handle.stop()))
    try:
        _follow(handle, quiet=quiet)
    except KeyboardInterrupt:
        print("\nstopping...", file=sys.stderr)
        stopped.append(True)
        handle.stop()
        handle.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return bool(stopped)


def cmd_run(args) -> int:
    from ..run import run_repeated, start_run

    cfg = config_from_args(args)
    repeat = _repeat_arg(args.repeat)
    _check_model_arg(cfg.model)
    store = open_store(args.db)
    if repeat > 1:
        doc = run_repeated(cfg, store, repeat, on_run=_watch(args, repeat))
        if args.json:
            print_json(doc)
        else:
            print(group_text(doc))
        return _group_exit(doc, args)
    handle = start_run(cfg, store)
    _follow_stoppable(handle, quiet=args.quiet or False)
    result = handle.result or {"run_id": handle.run_id, "status": handle.status, "error": handle.reason}
    if args.json:
        print_json(result)
    else:
        print(run_summary(result))
    return _run_exit(result, args)


def _run_exit(result: dict, args) -> int:
    if result.get("storage_error"):
        print(f"error: run {result.get('run_id')} ended {result.get('status')} but was not fully stored: "
              f"{result['storage_error']}", file=sys.stderr)
        return 1
    if result.get("status") != "ok":
        more = f" (details: {args.prog} show {result.get('run_id')})" if result.get("error_detail") else ""
        print(f"error: run {result.get('run_id')} ended {result.get('status')}: {result.get('error')}{more}",
              file=sys.stderr)
        return EXIT_OTHER_STATUS
    return 0


def _group_exit(doc: dict, args) -> int:
    """0 when every run finished ok; 1 when a run was not fully stored or a later run could not start (the device
    was taken between runs); 3 when a run ended with another status or the user stopped the group."""
    codes = [_run_exit(m, args) for m in doc.get("runs") or []]
    if doc.get("error"):
        print(f"error: group {doc.get('group_id')} ended {doc.get('status')} after {plural(len(codes), 'run')}: "
              f"{doc['error']}", file=sys.stderr)
        return 1
    if 1 in codes:
        return 1
    return 0 if doc.get("status") == "ok" else EXIT_OTHER_STATUS


def _vs_config(cfg: RunConfig, pairs: list[str]) -> RunConfig:
    """B of a comparison: A with the ``--vs KEY=VALUE`` changes, validated as a RunConfig."""
    import dataclasses

    changes = {}
    for text in pairs:
        key, sep, value = text.partition("=")
        if not sep or key.strip() not in VS_KEYS:
            raise UsageError(f"--vs {text!r} is not KEY=VALUE with KEY one of: {', '.join(VS_KEYS)}.",
                             "For example --vs precision=fp16.")
        changes[VS_KEYS[key.strip()]] = value.strip() or None
    return dataclasses.replace(cfg, **changes)


def cmd_compare(args) -> int:
    from ..run import run_interleaved

    cfg_a = config_from_args(args)
    cfg_b = _vs_config(cfg_a, args.vs)
    repeat = _repeat_arg(args.repeat)
    for cfg in (cfg_a, cfg_b):
        _check_model_arg(cfg.model)
    store = open_store(args.db)
    order = [s for pair in range(repeat) for s in (("A", "B") if pair % 2 == 0 else ("B", "A"))]
    doc = run_interleaved(cfg_a, cfg_b, store, repeat,
                          on_run=_watch(args, 2 * repeat, label=lambda i: order[i] if i < len(order) else "?"))
    if args.json:
        print_json(doc)
    else:
        print(comparison_text(doc))
    return _group_exit(doc, args)


def _follow(handle, quiet: bool) -> None:
    """A progress line a second while the worker measures; before it starts (a quantized variant being built, a
    file being read) what is being done, once, and then every PREPARING_EVERY_S: no "n=0" line a second."""
    import numpy as np

    last, said, said_at = 0.0, None, 0.0
    while handle.wait(0.25) is None:
        now = time.monotonic()
        if quiet or now - last < 1.0:
            continue
        last = now
        elapsed = (time.monotonic_ns() - handle.started_ns) / 1e9
        n = handle.count()
        snap = handle.snapshot(since_seq=max(0, n - 200))
        if n == 0 and snap["status"] == "starting":
            doing = (snap.get("notes") or ["preparing the model"])[-1]
            if doing != said or now - said_at >= PREPARING_EVERY_S:
                still = " (still)" if doing == said else ""
                print(f"[{elapsed:6.1f}s] preparing: {doing}{still}", file=sys.stderr, flush=True)
                said, said_at = doing, now
            continue
        lat = snap["latency_ns"]
        p50 = float(np.median(lat)) / 1e6 if len(lat) else None
        line = f"[{elapsed:6.1f}s] {snap['status']:<8} {snap['phase']:<9} n={n:<7}"
        if p50 is not None:
            line += f" p50(last 200)={fmt_ms(p50)}"
        print(line, file=sys.stderr, flush=True)


def cmd_runs(args) -> int:
    from ..store.columns import RUNS_LIST

    if args.fleet:
        from ..store.fleet import list_runs

        df = list_runs(args.fleet, model=args.model, status=args.status, limit=args.limit)
        df = df[[c for c in RUNS_LIST if c in df.columns]]
        rows = df.astype(object).where(df.notna(), None).to_dict(orient="records")
    else:
        store = open_store(args.db)
        rows = store.run_rows(model=args.model, status=args.status, limit=args.limit, columns=RUNS_LIST)
    if args.json:
        print_json(rows)
    elif not rows and args.fleet:
        print(f"no runs at {args.fleet} yet: push this device's with `{args.prog} push {args.fleet}`")
    elif not rows:
        print(f"no runs stored yet: start one with `{args.prog} run --model digits-cnn`")
    else:
        print(runs_table(rows))
    return 0


def cmd_show(args) -> int:
    if args.fleet:
        from ..store.fleet import Fleet

        with Fleet(args.fleet) as fleet:
            run = fleet.get_run(args.run_id)
        if run is None:
            raise UsageError(f"there is no run {args.run_id} at {args.fleet}.",
                             f"List them with `{args.prog} runs --fleet {args.fleet}`.")
    else:
        store = open_store(args.db)
        run = store.get_run(args.run_id)
        if run is None:
            raise UsageError(f"there is no run {args.run_id} in {store.path}.", f"List runs with `{args.prog} runs`.")
    if args.json:
        print_json(run)
    else:
        summary = run.get("summary") or {"run_id": run["run_id"], "status": run["status"], "error": run.get("reason")}
        print(run_summary(summary, details=True))
    return 0


def cmd_ops(args) -> int:
    from ..ops import compare_profiles
    from .text import ops_table

    store = open_store(args.db)
    runs = []
    for rid in (args.run_a, args.run_b):
        run = store.get_run(rid)
        if run is None:
            raise UsageError(f"there is no run {rid} in {store.path}.", f"List runs with `{args.prog} runs`.")
        runs.append(run)
    cmp = compare_profiles(*runs, prog=args.prog)
    if args.json:
        print_json({"run_a": args.run_a, "run_b": args.run_b, "name_a": cmp.name_a, "name_b": cmp.name_b,
                    "sentence": cmp.sentence, "coverage": {"a": cmp.coverage[0], "b": cmp.coverage[1]},
                    "by_type": cmp.table.to_dict(orient="records")})
    else:
        print(ops_table(cmp, top=args.top))
    return 0


def cmd_devices(args) -> int:
    from ..device import device_report, identity, set_name
    from ..errors import EdgeprofError
    from ..telemetry.catalog import DEVICE_NAMES

    ident = set_name(args.name) if args.name else identity()
    if args.noise_floor:
        from ..run import measure_noise_floor

        args.quiet = args.json
        doc = measure_noise_floor(open_store(args.db), on_run=_watch(args, NOISE_FLOOR_RUNS))
        if doc.get("floor_pct") is None:
            print(f"error: the noise floor could not be measured: {doc.get('runs_ok')} of {doc.get('repeat')} runs "
                  f"finished ok{' (' + doc['error'] + ')' if doc.get('error') else ''}; it needs 3.", file=sys.stderr)
            return EXIT_OTHER_STATUS
    rep = {"identity": ident._asdict(), **device_report()}
    rep["noise_floor"] = None
    if args.noise_floor or (Path(args.db) if args.db else paths.default_db()).exists():
        try:  # a database this build cannot open must not hide what the device is
            rep["noise_floor"] = open_store(args.db).latest_noise_floor(ident.device_id)
        except EdgeprofError as exc:
            print(f"note: the noise floor cannot be read: {exc}", file=sys.stderr)
    fleet = _fleet_facts(args.fleet)
    if fleet:
        rep["fleet"] = fleet
    if args.json:
        print_json(rep)
        return 0
    print(f"name     {ident.device_name} (device id {ident.device_id})"
          + ("" if args.name else f"; rename with `{args.prog} devices --name NAME`"))
    if fleet:
        print(f"fleet    {fleet['url']}: {plural(fleet['devices'], 'device')}, {plural(fleet['runs'], 'run')}, read by "
              f"DuckDB through {fleet['engine']}"
              + (f"; {plural(fleet['pending'], 'run')} still being pushed" if fleet["pending"] else ""))
    d = rep["device"]
    board = d.get("model") or f"{d.get('hostname')} (no board or product name readable)"
    print(f"device   {board} ({d.get('machine')}), {d.get('cpu_model') or d.get('cpu')}, "
          f"{d.get('cores') or d.get('cpu_count')} cores, {d.get('os')}")
    for r in rep["runtimes"]:
        extra = f" providers: {', '.join(r['execution_providers'])}" if r["execution_providers"] else ""
        print(f"runtime  {r['name']:<15} {'yes' if r['available'] else 'no ':<4} {r['version'] or ''}{extra}"
              + ("" if r["available"] else f"  ({r['reason']})"))
    ep = rep["onnx_providers"]
    if ep["chain"]:
        extra = f"; on request: {', '.join(ep['on_request'])} (--execution-provider)" if ep["on_request"] else ""
        print(f"providers onnxruntime runs on {', then '.join(ep['chain'])}{extra}")
    if ep["hint"]:
        seen = "a Jetson GPU" if ep["gpu"] == "jetson" else "an NVIDIA GPU"
        print(f"gpu      {seen} is present but ONNX Runtime has only the CPU provider: {ep['hint']}")
    for t in rep["telemetry"]:
        print(f"telemetry {t['name']:<14} {'yes' if t['available'] else 'no ':<4} {t['reason']}")
    print("measures " + "; ".join(f"{DEVICE_NAMES[d]} ({', '.join(names)})" for d, names in rep["measures"].items()))
    m = rep["memory_cap"]
    print(f"memory cap {m['kind']}: {m['reason']}")
    c = rep["cpu_priority"]
    print(f"cpu priority {c['kind']}: {c['reason']}")
    p = rep["memory_pressure"]
    print(f"memory pressure {p['scope']}: {p['where']}" if "scope" in p else f"memory pressure unavailable: "
          f"{p['unavailable']}")
    print(noise_floor_text(rep["noise_floor"], args.prog))
    return 0


def _fleet_facts(url: str | None) -> dict | None:
    """What ``devices`` says about the fleet: how DuckDB reads it (httpfs, fsspec or folder) and what it holds."""
    from ..store.remote import fleet_url

    url = fleet_url(url)
    if not url:
        return None
    from ..store.fleet import Fleet

    with Fleet(url) as fleet:
        lst = fleet.listing
        return {"url": url, "engine": fleet.engine, "devices": len(set(lst.runs.values()) | set(lst.devices)),
                "runs": len(lst.runs), "pending": lst.pending}


def cmd_export(args) -> int:
    store = open_store(args.db)
    from ..store.bundle import export_runs

    out = export_runs(store, args.run_ids or None, args.out, fmt=args.format)
    print(f"exported {plural(_exported_runs(out), 'run')} to {out}")
    return 0


def _exported_runs(bundle: Path) -> int:
    """How many runs the bundle just written holds: its manifest's run ids (what was written, not what was asked)."""
    import json
    import zipfile

    if bundle.suffix.lower() == ".zip":
        with zipfile.ZipFile(bundle) as zf:
            manifest = json.loads(zf.read("manifest.json"))
    else:
        manifest = json.loads((bundle / "manifest.json").read_text())
    return len(manifest.get("run_ids") or [])


def cmd_import(args) -> int:
    store = open_store(args.db)
    from ..store.bundle import import_bundle

    ids = import_bundle(store, args.bundle)
    if args.json:
        print_json({"imported": ids})
    else:
        print(f"imported {plural(len(ids), 'run')} into {store.path}")
    return 0
