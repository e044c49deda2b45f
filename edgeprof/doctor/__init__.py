"""The quantization doctor: which operators cost accuracy, which cost time, and the best mix, measured on this device.

``diagnose`` compares an FP32 ONNX model with its int8-static variant tensor by tensor (in the capped child,
``doctor.child``), ranks the quantized operators by error and by time, builds the variants that keep the k worst
operators in FP32, measures each (latency p50 with its within-run interval, fidelity against FP32, peak charged
memory: one capped process per variant) and names the smallest k that meets the target. ``tradeoff`` measures every
variant of a model (both formats, plus the mixes of the last diagnosis) as latency against fidelity and names the
Pareto front. Both return plain documents; the CLI (``edgeprof doctor``/``tradeoff``) and the Models page draw them.

Every figure says what it is: fidelity is the share of inputs whose top-1 class agrees with the FP32 model of the same
format in the same runtime (accuracy where labels ship; ``output_sqnr_db``, the model output's SQNR against FP32's,
moves where 27 images make agreement jump by 1/27), latency the median of a bare loop on one input in the
variant's own process (``MEASURE_SECONDS``; not a full ``edgeprof run``, whose warm-up detection and telemetry it
lacks), memory the peak the kernel charged to that process's cgroup (interpreter, runtime, model and inputs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import paths
from ..errors import EdgeprofError
from ..stats import fmt_ms, fmt_ms_range, plural
from . import analysis
from .messages import AnalyseSpec, MeasureSpec
from .parent import run_isolated

MEASURE_SECONDS = 2.0
Say = Callable[[str], None]


def _fidelity(ref: dict, got: dict) -> dict:
    from ..models.fidelity import compare_outputs

    m = compare_outputs(ref["outputs"], got["outputs"], got.get("labels"))
    sums = analysis.ErrorSums()
    sums.add(ref["outputs"], got["outputs"])
    return {"top1_agreement": m["top1_agreement"], "accuracy": m["accuracy"], "mean_kl": m["mean_kl"],
            "cosine": m["cosine"], "output_sqnr_db": sums.sqnr_db, "n": len(got["outputs"])}


def _point(label: str, spec: MeasureSpec, doc: dict, report: dict, ref: dict | None) -> dict:
    from ..stats import within_run_interval

    lat = doc["latency_ms"]
    ci = within_run_interval(lat)
    fid = _fidelity(doc if ref is None else ref, doc)
    point = {
        "label": label, "format": spec.runtime, "precision": spec.precision, "keep_fp32": list(spec.keep_fp32),
        "p50_ms": float(np.median(lat)), "p50_ci": list(ci) if ci else None, "ci_scope": "within-run",
        "iterations": int(len(lat)), "peak_mb": report.get("peak_charged_mb"),
        "memory_mechanism": report.get("mechanism"), "size_mb": doc["size_bytes"] / 1e6,
        "top1_agreement": fid.get("top1_agreement"), "accuracy": fid.get("accuracy"),
        "mean_kl": fid.get("mean_kl"), "output_sqnr_db": fid.get("output_sqnr_db"), "n": fid.get("n"),
        "backend": doc.get("backend"), "error": None,
    }
    if ref is None:  # the reference against itself: agreement 1 and an exact output by construction, so not shown
        point.update(reference=True, top1_agreement=None, mean_kl=None, output_sqnr_db=None)
        point["fidelity"] = point["accuracy"] if point["accuracy"] is not None else 1.0
        return point
    point["fidelity"] = point["accuracy"] if point["accuracy"] is not None else point["top1_agreement"]
    return point


def _measure(label: str, spec: MeasureSpec, ref: dict | None, memory_mb, say: Say) -> tuple[dict, dict | None]:
    say(f"measuring {label}")
    try:
        doc, report = run_isolated(spec, memory_mb=memory_mb, timeout_s=300, progress=say, what=f"measuring {label}")
    except EdgeprofError as exc:
        return {"label": label, "format": spec.runtime, "precision": spec.precision, "keep_fp32": list(spec.keep_fp32),
                "p50_ms": None, "fidelity": None, "error": exc.message}, None
    return _point(label, spec, doc, report, ref), doc


def mix_label(keep_fp32) -> str:
    return f"int8-static ({len(keep_fp32)} kept in fp32)" if keep_fp32 else "int8-static"


def diagnose(model: str, *, precision: str = "int8-static", data: str | None = None, shapes: dict | None = None,
             target_agreement: float | None = None, max_accuracy_drop: float | None = None, threads: int = 2,
             mix_sizes=analysis.DEFAULT_MIX_SIZES, memory_mb: float | None = None,
             seconds: float = MEASURE_SECONDS, progress: Say | None = None) -> dict:
    """The doctor's document for ``model`` (a bundled name or an fp32 .onnx path).

    Keys: ``operators`` (rows of ``analysis.operator_rows``, worst error first), ``by_time`` (node names, slowest
    first), ``sentences`` (what a person reads), ``points`` (fp32, the variant and each mix: p50_ms, p50_ci,
    top1_agreement, accuracy, peak_mb), ``chosen`` (the mix meeting the target, or None), ``target``, the
    analysis facts (inputs, data_note, tensors_compared, onnxruntime, seconds). Raises UsageError for a TFLite file
    or another precision, ModelError when the child fails (one sentence; the raw text in ``detail``)."""
    say = progress or (lambda _t: None)
    if target_agreement is None and max_accuracy_drop is None:
        target_agreement = 0.99
    spec = AnalyseSpec(model=model, precision=precision, data=data, input_shapes=dict(shapes or {}), threads=threads,
                       mix_sizes=tuple(mix_sizes))
    from ..models.isolated import run_isolated as prepare

    doc = prepare("edgeprof.doctor.child:analyse_isolated", spec, progress=say, memory_limit_mb=memory_mb,
                  what=f"comparing {Path(model).name} with its {precision} variant tensor by tensor",
                  hint="Give fewer or smaller inputs with --data, or raise the memory cap.")
    common = {"model": model, "data": data, "input_shapes": dict(shapes or {}), "threads": threads,
              "seconds": seconds}
    ref_point, ref = _measure("fp32", MeasureSpec(precision="fp32", path=doc["fp32_path"], **common), None,
                              memory_mb, say)
    points = [ref_point]
    if ref is not None:
        built = [((), doc["variant_path"]), *[(tuple(m["keep_fp32"]), m["path"]) for m in doc["mixes"]]]
        for keep, path in built:
            points.append(_measure(mix_label(keep), MeasureSpec(precision=precision, keep_fp32=keep, path=path,
                                                                **common), ref, memory_mb, say)[0])
    doc["points"] = points
    doc["target"] = {"top1_agreement": target_agreement, "max_accuracy_drop": max_accuracy_drop}
    mixes = [p for p in points[1:] if p.get("error") is None]
    doc["chosen"] = analysis.choose_mix(mixes, target_agreement=target_agreement,
                                        max_accuracy_drop=max_accuracy_drop,
                                        reference_accuracy=ref_point.get("accuracy"))
    doc["by_time"] = [r["node"] for r in analysis.rank_by_time(doc["operators"])]
    doc["sentences"] = sentences(doc)
    _remember(doc)
    return doc


def _target_text(target: dict) -> str:
    parts = []
    if target.get("top1_agreement") is not None:
        parts.append(f"top-1 agreement with fp32 of at least {target['top1_agreement']:.3g}")
    if target.get("max_accuracy_drop") is not None:
        parts.append(f"an accuracy drop of at most {target['max_accuracy_drop']:.1%}")
    return " and ".join(parts)


def _p50(p: dict) -> str:
    if p.get("p50_ms") is None:
        return "no latency"
    ci = p.get("p50_ci")
    return f"p50 {fmt_ms(p['p50_ms'])}" + (f" (95% interval {fmt_ms_range(ci[0], ci[1])})" if ci else "")


def sentences(doc: dict) -> list[str]:
    """What a person reads: where the accuracy goes, where the time goes, and the mix that meets the target."""
    precision = doc["precision"]
    out = [analysis.error_sentence(precision, doc["operators"]),
           analysis.time_sentence(precision, (doc.get("profile_int8") or {}).get("by_type") or [],
                                  (doc.get("profile_fp32") or {}).get("by_type"))]
    points = doc.get("points") or []
    plain = next((p for p in points if p.get("precision") == precision and not p.get("keep_fp32")), None)
    target = _target_text(doc.get("target") or {})
    chosen = doc.get("chosen")
    if plain is not None and chosen is plain:
        out.append(f"{precision} as it is already meets {target} ({_fid(plain)}, {_p50(plain)}).")
    elif chosen is not None:
        keep = chosen["keep_fp32"]
        out.append(f"Keeping {len(keep)} operator{'s' if len(keep) > 1 else ''} in fp32 ({', '.join(keep)}) meets "
                   f"{target}: {_fid(chosen)}, {_p50(chosen)}; run it with `--precision {precision} --keep-fp32 "
                   f"{','.join(keep)}`.")
    elif points and (doc.get("target") or {}).get("max_accuracy_drop") is not None and points[0].get("accuracy") is None:
        out.append("--max-accuracy-drop needs labelled data, and these inputs have no labels: give --data with labels, "
                   "or use --target-agreement.")
    elif points:
        tried = sorted({len(p.get("keep_fp32") or []) for p in points[1:]})
        out.append(f"No mix tried (keeping {', '.join(map(str, tried))} operators in fp32) meets {target}.")
    if doc.get("warning"):
        out.append(f"Note: {doc['warning']}.")
    return out


def _fid(p: dict) -> str:
    if p.get("accuracy") is not None:
        return f"accuracy {p['accuracy']:.3f}, agreement {p['top1_agreement']:.3f}"
    if p.get("top1_agreement") is not None:
        return f"top-1 agreement {p['top1_agreement']:.3f}"
    return "no fidelity"


# --------------------------------------------------------------------------------------------------------- tradeoff


def _memo_path(model: str) -> Path:
    key = hashlib.sha256(str(Path(model).resolve() if Path(model).exists() else model).encode()).hexdigest()[:16]
    return paths.cache_dir() / f"doctor-{key}.json"


def _remember(doc: dict) -> None:
    """The last diagnosis of a model, so ``tradeoff`` shows its mixes too."""
    keep = {k: doc[k] for k in ("model", "precision", "mixes", "chosen") if k in doc}
    _memo_path(doc["model"]).write_text(json.dumps(keep, default=str))


def last_diagnosis(model: str) -> dict | None:
    try:
        return json.loads(_memo_path(model).read_text())
    except (OSError, ValueError):
        return None


def tradeoff(model: str, *, data: str | None = None, threads: int = 2, memory_mb: float | None = None,
             seconds: float = MEASURE_SECONDS, progress: Say | None = None) -> dict:
    """Every variant of ``model`` (ONNX and TFLite; the mixes of the last ``diagnose``) as a point: p50 latency with
    its within-run interval, fidelity against the FP32 file of the same format (accuracy where labels ship, else
    top-1 agreement), peak charged memory. ``front``: the labels on the Pareto front (no other point is both faster
    and more faithful), fastest first; ``sentence`` names them."""
    from ..config import PRECISIONS
    from ..models import catalog

    say = progress or (lambda _t: None)
    common = {"model": model, "data": data, "threads": threads, "seconds": seconds}
    if model in catalog.model_names():
        formats = list(dict.fromkeys(v.format for v in catalog.get_model(model).variants))
        have = {(v.format, v.precision) for v in catalog.get_model(model).variants}
    else:
        v = catalog.resolve_variant(model, None, None, build=False)
        if v.format != "onnx" or v.precision != "fp32":
            return _lone_point(model, v, common, memory_mb, say)
        formats = [v.format]
        have = {(v.format, p) for p in PRECISIONS}
    points = []

    def measure(label: str, precision: str, fmt: str, keep: tuple, ref: dict | None) -> tuple[dict, dict | None]:
        try:  # built first (quantization runs isolated), so the measured process only opens the file
            path = catalog.resolve_variant(model, precision, fmt, build=True, progress=say, keep_fp32=keep,
                                           data=data).path
        except EdgeprofError as exc:
            return {"label": label, "format": fmt, "precision": precision, "keep_fp32": list(keep), "p50_ms": None,
                    "fidelity": None, "error": exc.message}, None
        spec = MeasureSpec(precision=precision, runtime=fmt, keep_fp32=keep, path=str(path), **common)
        return _measure(label, spec, ref, memory_mb, say)

    for fmt in formats:
        ref_point, ref = measure(f"{fmt} fp32", "fp32", fmt, (), None)
        points.append(ref_point)
        for precision in PRECISIONS[1:]:
            if (fmt, precision) in have:
                points.append(measure(f"{fmt} {precision}", precision, fmt, (), ref)[0])
        last = last_diagnosis(model) if fmt == "onnx" else None
        for mix in (last or {}).get("mixes") or []:
            keep = tuple(sorted(mix["keep_fp32"]))
            points.append(measure(f"onnx {mix_label(keep)}", "int8-static", "onnx", keep, ref)[0])
    front = analysis.pareto_front(points)
    axis = "accuracy" if any(p.get("accuracy") is not None for p in points) else "top-1 agreement with fp32"
    names = [p["label"] for p in front]
    sentence = (f"Pareto front (latency against {axis}): {'; '.join(names)}. Every other variant is slower than one "
                "of these and no more faithful." if names else "No variant could be measured.")
    return _tradeoff_doc(model, points, names, axis, sentence, seconds, threads)


def _tradeoff_doc(model, points, front, axis, sentence, seconds, threads) -> dict:
    return {"model": model, "points": points, "front": front, "fidelity_axis": axis, "sentence": sentence,
            "latency": f"median of a {seconds:g}-s bare loop on one input, "
                       f"{plural(threads, 'thread')}, one process per variant",
            "memory": "peak charged to the variant's cgroup (interpreter, runtime, model, inputs)"}


def _lone_point(model: str, v, common: dict, memory_mb, say: Say) -> dict:
    """A compressed file with no fp32 parent here (a .tflite, an int8 .onnx): its latency and memory, no fidelity."""
    label = f"{v.format} {v.precision}"
    point, _ = _measure(label, MeasureSpec(precision=v.precision, runtime=v.format, **common), None, memory_mb, say)
    point.update(reference=False, fidelity=None, accuracy=None)
    name = Path(model).name
    sentence = (f"No Pareto front: {name} is {label} with no fp32 parent here, so its fidelity cannot be measured; it is "
                "one point of latency and memory. Give its fp32 .onnx (or a bundled model name) for the trade-off.")
    return _tradeoff_doc(model, [point], [], "top-1 agreement with fp32", sentence, common["seconds"],
                         common["threads"])
