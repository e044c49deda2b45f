"""``doctor`` (which operators cost int8 accuracy and time, and the best mix) and ``tradeoff`` (every variant as
latency against fidelity, with the Pareto front). The work runs in capped child processes (``edgeprof.doctor``)."""

from __future__ import annotations

import sys

from ..errors import UsageError
from ..stats import fmt_ms, fmt_ms_range
from .text import fmt, print_json, table

SHOWN = 10


def register(sub) -> None:
    p = sub.add_parser(
        "doctor",
        help="which operators cost int8 accuracy and time, and the mix that keeps the worst in fp32",
        description="Run the fp32 ONNX model and its int8-static variant on the same inputs in an isolated, "
        "memory-capped process, compare every tensor (SQNR dB), rank the quantized operators by the noise they add and "
        "by time, then build and measure the variants that keep the k worst operators in fp32 and name the smallest "
        "one meeting the target.",
    )
    p.add_argument("model", help="bundled model name or path to an fp32 .onnx file")
    p.add_argument("--precision", default="int8-static", choices=["int8-static"],
                   help="the quantized variant to examine (int8-static: QDQ, compared tensor by tensor)")
    p.add_argument("--data", metavar="PATH", help="inputs to compare on and calibrate with: a folder of images, a .npy "
                   "of samples along the first axis, or a .npz keyed by input name (labels as labels or y); default: "
                   "the model's own data")
    p.add_argument("--shape", action="append", default=[], metavar="NAME=D1xD2...",
                   help="an input's shape for random inputs, e.g. --shape input=1x512 (repeatable)")
    goal = p.add_mutually_exclusive_group()
    goal.add_argument("--target-agreement", type=float, metavar="SHARE",
                      help="top-1 agreement with fp32 the mix must reach (default 0.99)")
    goal.add_argument("--max-accuracy-drop", metavar="PCT",
                      help="accuracy the mix may lose against fp32, e.g. 1%% (needs labelled data)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per variant measured (default 2)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser(
        "tradeoff",
        help="every variant as latency against fidelity, with the Pareto front",
        description="Measure every variant of a model (ONNX and TFLite, and the mixes of the last `doctor`), each in "
        "its own memory-accounted process: p50 latency with its within-run interval, fidelity against the fp32 file "
        "of the same format (accuracy where labels ship), peak charged memory; name the Pareto front.",
    )
    p.add_argument("model", help="bundled model name or path to an fp32 .onnx file")
    p.add_argument("--data", metavar="PATH", help="inputs for fidelity (images, .npy or .npz, as for doctor)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per variant (default 2)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_tradeoff)


def _drop(text: str | None) -> float | None:
    if text is None:
        return None
    raw = text.strip()
    try:
        value = float(raw.rstrip("%")) / (100.0 if raw.endswith("%") else 1.0)
    except ValueError:
        raise UsageError(f"--max-accuracy-drop {text!r} is not a number.", "Write it as 1% or 0.01.") from None
    if not 0.0 <= value < 1.0:
        raise UsageError(f"--max-accuracy-drop {text} is outside 0% to 100%.", "Write it as 1% or 0.01.")
    return value


def _say(args):
    return None if args.json else (lambda text: print(f"  {text}", file=sys.stderr))


def cmd_doctor(args) -> int:
    from ..config import parse_shape
    from ..doctor import diagnose

    if args.seconds <= 0:
        raise UsageError(f"--seconds {args.seconds} must be above 0.")
    if args.target_agreement is not None and not 0.0 < args.target_agreement <= 1.0:
        raise UsageError(f"--target-agreement {args.target_agreement} is outside (0, 1].", "Use e.g. 0.99.")
    shapes = dict(parse_shape(s) for s in args.shape)
    doc = diagnose(args.model, precision=args.precision, data=args.data, shapes=shapes,
                   target_agreement=args.target_agreement, max_accuracy_drop=_drop(args.max_accuracy_drop),
                   threads=args.threads, seconds=args.seconds, progress=_say(args))
    if args.json:
        print_json(doc)
        return 0
    print(doctor_text(doc))
    return 0


def doctor_text(doc: dict) -> str:
    from ..doctor.analysis import DB_LEGEND, MAX_DB, db_text

    ops = doc["operators"]
    lines = [f"{doc['model']}: {doc['precision']} against fp32 on {doc['inputs']} inputs ({doc['data_note']}); "
             f"{doc['tensors_compared']} tensors and {doc['weights_compared']} weights compared, onnxruntime "
             f"{doc['onnxruntime']}", ""]
    lines += [*doc["sentences"], "", f"Operators by the noise they add (worst first; {len(ops)} quantized):"]
    rows = [[r["node"], r["op_type"], r["runs_as"], db_text(r["local_sqnr_db"], added=True), db_text(r["sqnr_db"]),
             db_text(r["weight_sqnr_db"]), fmt(r["relative_error"], "", 3), fmt(r["ms_fp32"], "", 3),
             fmt(r["ms_int8"], "", 3)] for r in ops[:SHOWN]]
    lines.append(table(rows, ["node", "op", "runs as", "added SQNR dB", "output SQNR dB", "weight SQNR dB",
                              "rel. error", "fp32 ms", "int8 ms"]))
    by_node = {r["node"]: r for r in ops}
    lines += ["", "Operators by int8 time (slowest first):"]
    rows = [[n, by_node[n]["runs_as"], fmt(by_node[n]["ms_int8"], "", 3), fmt(by_node[n]["ms_fp32"], "", 3),
             db_text(by_node[n]["local_sqnr_db"], added=True)] for n in doc["by_time"][:SHOWN]]
    lines.append(table(rows, ["node", "runs as", "int8 ms", "fp32 ms", "added SQNR dB"]))
    if any(v is not None and v >= MAX_DB for r in ops for v in (r["local_sqnr_db"], r["sqnr_db"], r["weight_sqnr_db"])):
        lines.append(f"SQNR columns: {DB_LEGEND}.")
    lines += ["", "Variants measured (each in its own process):", points_table(doc["points"])]
    return "\n".join(lines)


def points_table(points: list[dict], front: list[str] | None = None) -> str:
    from ..doctor.analysis import db_text

    rows = []
    for p in points:
        ci = p.get("p50_ci")
        rows.append([p["label"] + (" *" if front and p["label"] in front else ""), fmt_ms(p.get("p50_ms")),
                     fmt_ms_range(*ci) if ci else "-",
                     "reference" if p.get("reference") else fmt(p.get("top1_agreement"), "", 3),
                     fmt(p.get("accuracy"), "", 3), db_text(p.get("output_sqnr_db")), fmt(p.get("peak_mb"), "", 0),
                     p.get("error") or ""])
    return table(rows, ["variant", "p50", "95% CI (within-run)", "agreement", "accuracy", "output SQNR dB",
                        "peak MB", "error"])


def cmd_tradeoff(args) -> int:
    from ..doctor import tradeoff

    if args.seconds <= 0:
        raise UsageError(f"--seconds {args.seconds} must be above 0.")
    doc = tradeoff(args.model, data=args.data, threads=args.threads, seconds=args.seconds, progress=_say(args))
    if args.json:
        print_json(doc)
        return 0
    print(f"{doc['model']}: latency is the {doc['latency']}; memory the {doc['memory']}.")
    print(points_table(doc["points"], doc["front"]))
    print("* on the Pareto front")
    print(doc["sentence"])
    return 0
