"""``models``, ``quantize`` and ``fidelity``. Library errors propagate to ``main`` (one line and an exit code)."""

from __future__ import annotations

import argparse
import sys

from ..config import PRECISIONS
from ..runtimes import registry
from .text import fmt, print_json, size, table


def _or(names) -> str:
    """``("a", "b", "c")`` -> ``a, b or c``."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


def register(sub) -> None:
    p = sub.add_parser(
        "models",
        help="list bundled models and their variants",
        description="List the bundled models and every variant (ONNX variants not built yet show no size).",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "quantize",
        help="build and cache an ONNX fp16 / int8 variant",
        description="Quantize a bundled model's (or an fp32 .onnx file's) ONNX model on this device; "
        "the result is cached and the time it took is reported.",
    )
    p.add_argument("model", help="bundled model name or path to an fp32 .onnx file")
    p.add_argument("--precision", required=True, choices=[x for x in PRECISIONS if x != "fp32"],
                   help="the precision to build: fp16, int8-dynamic or int8-static")
    _input_flags(p, "int8-static calibrates on random inputs of this shape")
    _data_flags(p, "int8-static calibration (a fp32 file of your own)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser(
        "fidelity",
        help="compare every variant's outputs with its FP32 parent",
        description="Every output of every variant against fp32, in every available runtime, with the metric "
        "that fits it: class scores (top-1 agreement, top-5 overlap, KL divergence, cosine), labels (agreement), "
        "regression and dense outputs (relative error, max abs error, SQNR dB); accuracy where labels ship.",
    )
    p.add_argument("model", help="bundled model name or path to an fp32 .onnx file")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument(
        "--runtime",
        action="append",
        dest="runtimes",
        metavar="NAME",
        help=f"{_or(registry.formats() + registry.names())} (repeatable; default all available)",
    )
    _input_flags(p, "a user's file is compared on random inputs of this shape")
    _data_flags(p, "comparing a file of your own (also calibrates its int8-static variant)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_fidelity)


def _input_flags(p, why: str) -> None:
    p.add_argument("--shape", action="append", default=[], metavar="NAME=D1xD2...",
                   help=f"an input's shape, e.g. --shape input=1x512 (repeatable; {why}), as for run")
    p.add_argument("--fill", action="append", default=[], metavar="NAME=VALUE",
                   help="set every element of an input, e.g. --fill sr=16000 (repeatable), as for run")


def _data_flags(p, what: str) -> None:
    p.add_argument("--data", metavar="PATH",
                   help=f"your data for {what}: a folder of images (labels from class folders or labels.txt) or a "
                        ".npz of arrays keyed by input name (labels: 'labels')")
    p.add_argument("--normalise", metavar="MEAN,STD",
                   help="images become (pixel - MEAN) / STD, pixels 0..255 (default 0,255)")


def _inputs(args) -> tuple[dict, dict]:
    from ..config import parse_fill, parse_shape
    from .run import _pairs

    return _pairs(args.shape, parse_shape), _pairs(args.fill, parse_fill)


def _progress(args):
    if args.json or not sys.stderr.isatty():
        return None
    return lambda msg: print(f"  {msg}", file=sys.stderr, flush=True)


def cmd_models(args: argparse.Namespace) -> int:
    from ..models.catalog import list_models
    from ..models.fidelity import fidelity_data
    from ..paths import MANIFEST

    models = list_models()
    if args.json:
        print_json(
            [
                {
                    "name": m.name,
                    "task": m.task,
                    "variants": [
                        {
                            "precision": v.precision,
                            "format": v.format,
                            "path": str(v.path),
                            "size_bytes": v.size_bytes,
                            "shipped": v.shipped,
                            "built_with": v.built_with,
                            "quantization": v.quantization,
                            "fidelity_data": fidelity_data(m, v),
                        }
                        for v in m.variants
                    ],
                }
                for m in models
            ]
        )
        return 0
    if not models:
        print(f"no bundled models ({MANIFEST} is missing); pass a path to a .onnx or .tflite file instead.")
        return 0
    for i, m in enumerate(models):
        if i:
            print()
        print(f"{m.name}  ({m.task}, {m.licence})")
        rows = [
            [v.format, v.precision, size(v.size_bytes), "shipped" if v.shipped else "derived here",
             _changed(v), v.path] for v in m.variants
        ]
        print(table(rows, ["format", "precision", "size", "origin", "what quantization changed", "path"]))
        print(f"fidelity data: {fidelity_data(m, None)}")
    return 0


def _changed(v) -> str:
    from ..models.quantize import describe_report

    if v.precision == "fp32" or v.shipped:
        return "-" if v.precision == "fp32" else "shipped as built"
    if v.quantization is None:
        return "not built yet" if not v.built else describe_report(None)
    return describe_report(v.quantization).split(";")[0]


def cmd_quantize(args: argparse.Namespace) -> int:
    from ..models import catalog, quantize
    from ..models.preprocess import calibration_for
    from ..run import device_work

    if args.data:
        from ..errors import UsageError
        from ..models.data import check_path

        if args.model in catalog.model_names():
            raise UsageError(f"--data is for a file of your own; {args.model} calibrates on its bundled data.",
                             "Leave --data out, or pass the path of an fp32 .onnx file.")
        if args.precision != "int8-static":
            raise UsageError(f"--data calibrates int8-static; {args.precision} uses no data.",
                             "Leave --data out, or ask for --precision int8-static.")
        check_path(args.data)
    with device_work(f"quantizing {args.model} to {args.precision}"):  # never beside a run on show
        if args.model in catalog.model_names():
            info = catalog.get_model(args.model)
            fp32 = info.variant("fp32", "onnx")
            calib = calibration_for(info, fp32.layout or "NCHW") if args.precision == "int8-static" else None
            res = quantize.quantize_onnx(fp32.path, args.precision, calib=calib, progress=_progress(args))
        else:
            catalog.resolve_variant(args.model, None, "onnx", build=False)  # clear errors for bad paths / bad names
            shapes, fills = _inputs(args)
            calib = None
            if args.data:
                from ..models.data import parse_normalise

                calib = quantize.data_calibration(args.data, args.model, parse_normalise(args.normalise))
            res = quantize.quantize_onnx(args.model, args.precision, calib=calib, progress=_progress(args), shapes=shapes,
                                         fills=fills)
    nbytes = res.path.stat().st_size
    if args.json:
        print_json({**res.to_dict(), "size_bytes": nbytes})
        return 0
    state = "cached (built earlier in" if res.cached else "built in"
    print(f"{res.precision}: {res.path}")
    print(f"  {size(nbytes)}, {state} {res.seconds:.2f} s{')' if res.cached else ''}; {res.method}")
    print(f"  {quantize.describe_report(res.quantization)}")
    if res.warning:
        print(f"  warning: {res.warning}")
    return 0


def cmd_fidelity(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..models.fidelity import fidelity
    from ..run import device_work

    if args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}.")
    with device_work(f"computing the fidelity of {args.model}"):  # never beside a run on show
        from ..models.catalog import model_names
        from ..models.data import parse_normalise

        shapes, fills = _inputs(args)
        if args.model in model_names():
            for flag, given in (("--data", args.data), ("--shape", shapes), ("--fill", fills)):
                if given:
                    raise UsageError(f"{flag} is for a file of your own; {args.model} is compared on its bundled data.",
                                     f"Leave {flag} out, or pass the path of an fp32 .onnx file.")
        rows = fidelity(args.model, runtimes=args.runtimes, threads=args.threads, progress=_progress(args), shapes=shapes,
                        fills=fills, data=args.data, normalise=parse_normalise(args.normalise))
    if args.json:
        print_json(rows)
        return 0
    body = [
        [
            r["format"],
            r["backend"],
            r["precision"],
            r["n"],
            r.get("primary") or "",
            fmt(r["top1_agreement"], digits=3),
            fmt(r["top5_overlap"], digits=3),
            fmt(r["mean_kl"], digits=5),
            fmt(r["rel_error"], digits=4),
            fmt(r["sqnr_db"], digits=1),
            fmt(r["accuracy"], digits=3),
        ]
        for r in rows
    ]
    print(table(body, ["format", "backend", "precision", "n", "output", "top1 agree", "top5 overlap", "mean KL",
                       "rel error", "SQNR dB", "accuracy"]))
    for r in rows:
        others = [o for o in r.get("outputs", []) if o["output"] != r.get("primary")]
        if r["precision"] != "fp32" and others:
            print(f"{r['backend']} {r['precision']}, other outputs: " + "; ".join(_describe_output(o) for o in others))
    omitted = {f"{o['output']} {k}: {why}" for r in rows for o in r.get("outputs", []) for k, why in o["omitted"].items()}
    for line in sorted(omitted):
        print(f"left out: {line}")
    notes = sorted({r["note"] for r in rows if r.get("note")})
    for note in [n for n in notes if not any(o != n and o.startswith(n) for o in notes)]:  # said once, fullest
        print(f"data: {note}")
    for r in rows:
        if r.get("error"):
            print(f"{r['backend']} {r['format']} {r['precision']}: {r['error']}")
    return 0


def _describe_output(o: dict) -> str:
    names = {"label_agreement": "agreement", "top1_agreement": "top-1", "rel_error": "rel error",
             "max_abs_error": "max abs error", "sqnr_db": "SQNR dB", "mean_kl": "KL", "accuracy": "accuracy"}
    parts = [f"{label} {fmt(o[k], digits=4)}" for k, label in names.items() if o.get(k) is not None]
    return f"{o['output']} ({o['kind']}) " + ", ".join(parts)
