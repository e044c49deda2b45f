"""For each bundled model and precision: what quantization changed (operators, weights by dtype, bytes) and the
fidelity of every output against fp32, measured side by side in one run in a scratch data directory.

Everything runs through the library as users reach it (``quantize.quantize_onnx`` and ``fidelity.fidelity``, so the
builds and the inferences run in the isolated, memory-capped child); the cache starts empty, so build times are real.

    .venv/bin/python bench/bench_quantization.py [--model digits-cnn] [--runtime onnx] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _fmt(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _weights(doc: dict) -> str:
    return ", ".join(f"{k} {v['elements']:,}" for k, v in doc.items())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", help="bundled model (repeatable; default: all)")
    ap.add_argument("--runtime", action="append", help="fidelity runtimes (default: onnx and tflite, where installed)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ["EDGEPROF_HOME"] = tempfile.mkdtemp(prefix="edgeprof-bench-quant-")

    from edgeprof.models import catalog, quantize
    from edgeprof.models.fidelity import fidelity, fidelity_data
    from edgeprof.models.preprocess import calibration_for

    doc = []
    for name in args.model or catalog.model_names():
        info = catalog.get_model(name)
        fp32 = info.variant("fp32", "onnx")
        print(f"== {name}: fidelity on {fidelity_data(info)}", flush=True)
        for precision in quantize.QUANTIZED_PRECISIONS:
            calib = calibration_for(info, fp32.layout or "NCHW") if precision == "int8-static" else None
            t0 = time.perf_counter()
            try:
                res = quantize.quantize_onnx(fp32.path, precision, calib=calib)
            except Exception as exc:  # a bench prints what happened and goes on
                print(f"  {precision:13s} not built: {exc}")
                doc.append({"model": name, "precision": precision, "error": str(exc)})
                continue
            rep = res.quantization or {}
            print(f"  {precision:13s} {quantize.describe_report(rep)}; built in {res.seconds:.2f} s "
                  f"({time.perf_counter() - t0:.2f} s with the child's start)")
            print(f"  {'':13s} weights before: {_weights(rep['weights']['before'])}")
            print(f"  {'':13s} weights after:  {_weights(rep['weights']['after'])}")
            doc.append({"model": name, "precision": precision, "quantization": rep, "seconds": res.seconds})
        rows = fidelity(name, runtimes=args.runtime)
        print("  fidelity per output (against fp32 in the same runtime):")
        for r in rows:
            if r["precision"] == "fp32":
                continue
            if r.get("error"):
                print(f"    {r['backend']:14s} {r['precision']:13s} error: {r['error']}")
                continue
            for o in r["outputs"]:
                print(f"    {r['backend']:14s} {r['precision']:13s} {o['output']} ({o['kind']}, n={o['n']}): "
                      f"top-1 {_fmt(o.get('top1_agreement'))}, top-5 {_fmt(o.get('top5_overlap'))}, "
                      f"KL {_fmt(o.get('mean_kl'), 5)}, rel error {_fmt(o.get('rel_error'), 4)}, "
                      f"SQNR {_fmt(o.get('sqnr_db'), 1)} dB, accuracy {_fmt(o.get('accuracy'))}")
        doc.append({"model": name, "fidelity": rows})
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
