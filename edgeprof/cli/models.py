"""``models``, ``quantize`` and ``fidelity``. Library errors propagate to ``main`` (one line and an exit code)."""

from __future__ import annotations

import argparse
import sys

from ..config import PRECISIONS
from .text import fmt, print_json, size, table


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
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser(
        "fidelity",
        help="compare every variant's outputs with its FP32 parent",
        description="Top-1 agreement, top-5 overlap, KL divergence, cosine similarity and (where labels "
        "ship) accuracy of every variant in every available runtime.",
    )
    p.add_argument("model", help="bundled model name or path to an fp32 .onnx file")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument(
        "--runtime",
        action="append",
        dest="runtimes",
        metavar="NAME",
        help="onnx, tflite, onnxruntime, litert or tflite-runtime (repeatable; default all available)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_fidelity)


def _progress(args):
    if args.json or not sys.stderr.isatty():
        return None
    return lambda msg: print(f"  {msg}", file=sys.stderr, flush=True)


def cmd_models(args: argparse.Namespace) -> int:
    from ..models.catalog import list_models
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
            [v.format, v.precision, size(v.size_bytes), "shipped" if v.shipped else "derived here", v.path] for v in m.variants
        ]
        print(table(rows, ["format", "precision", "size", "origin", "path"]))
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from ..models import catalog, quantize
    from ..models.preprocess import calibration_for
    from ..run import device_work

    with device_work(f"quantizing {args.model} to {args.precision}"):  # never beside a run on show
        if args.model in catalog.model_names():
            info = catalog.get_model(args.model)
            fp32 = info.variant("fp32", "onnx")
            calib = calibration_for(info, fp32.layout or "NCHW") if args.precision == "int8-static" else None
            res = quantize.quantize_onnx(fp32.path, args.precision, calib=calib, progress=_progress(args))
        else:
            catalog.resolve_variant(args.model, None, "onnx", build=False)  # clear errors for bad paths / bad names
            res = quantize.quantize_onnx(args.model, args.precision, calib=None, progress=_progress(args))
    nbytes = res.path.stat().st_size
    if args.json:
        print_json({**res.to_dict(), "size_bytes": nbytes})
        return 0
    state = "cached (built earlier in" if res.cached else "built in"
    print(f"{res.precision}: {res.path}")
    print(f"  {size(nbytes)}, {state} {res.seconds:.2f} s{')' if res.cached else ''}; {res.method}")
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
        rows = fidelity(args.model, runtimes=args.runtimes, threads=args.threads, progress=_progress(args))
    if args.json:
        print_json(rows)
        return 0
    body = [
        [
            r["format"],
            r["backend"],
            r["precision"],
            r["n"],
            fmt(r["top1_agreement"], digits=3),
            fmt(r["top5_overlap"], digits=3),
            fmt(r["mean_kl"], digits=5),
            fmt(r["cosine"], digits=4),
            fmt(r["accuracy"], digits=3),
        ]
        for r in rows
    ]
    print(table(body, ["format", "backend", "precision", "n", "top1 agree", "top5 overlap", "mean KL", "cosine", "accuracy"]))
    notes = sorted({r["note"] for r in rows if r.get("note")})
    for note in notes:
        print(f"data: {note}")
    for r in rows:
        if r.get("error"):
            print(f"{r['backend']} {r['format']} {r['precision']}: {r['error']}")
    return 0
