"""How far each compressed variant's outputs move from its FP32 parent's, on the same inputs, for every output.

Every variant runs in every available runtime for its format (ONNX: onnxruntime; TFLite: ai-edge-litert and
tflite-runtime each) and is compared with the FP32 file of the same format in the same runtime, so a difference
between interpreters never shows up as a quantization effect.

Every output is compared with the metric that fits it (``output_kind``): class scores or probabilities (``scores``:
top-1 agreement, top-5 overlap, KL, cosine), integer labels (``labels``: agreement), one column or dense outputs
(``regression``/``dense``: relative error, max abs error, SQNR in dB), ZipMap and other sequence outputs (the
probabilities inside them, as ``scores``). A figure that is perfect by construction (top-1 of one column, top-5 of five
or fewer classes) is left out, with the reason in ``omitted``. The row's top-level metrics are those of its
``primary`` output: the first scores output, else the first other float output, else the first.

The inferences run in the isolated, memory-capped child (``models.isolated``), one variant per child, so a variant
that crashes its runtime is a row with an ``error``, not the end of the table. A user's file runs on random inputs made
with ``--shape``/``--fill`` (``data: "random"``; the row's ``note`` says what such figures can and cannot show).

Metrics of a scores output, over n inputs:
- ``top1_agreement``: share of inputs whose arg-max equals the reference's;
- ``top5_overlap``: mean ``|top5 ∩ top5_ref| / 5`` (k = the class count when that is below 5);
- ``mean_kl``: mean KL(softmax(ref) || softmax(variant)); outputs whose rows are already non-negative and sum to ~1
  (a Softmax inside the model, dequantized probabilities) are only renormalised, not softmaxed again;
- ``cosine``: mean cosine similarity of the raw (dequantized) output vectors;
- ``accuracy``: labelled top-1 accuracy where eval labels ship (digits); None otherwise.
A row also has ``n``, ``version`` (of the runtime), ``note`` (e.g. data caveats) and ``error`` (why a variant could not
run in that runtime; then the metrics are None).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from ..config import PRECISIONS
from ..errors import EdgeprofError, UsageError
from ..runtimes import available_runtimes, open_session, registry, synthetic_inputs
from . import catalog
from .preprocess import channels_of, eval_batches, from_output, layout_for, to_feed

METRIC_KEYS = ("top1_agreement", "top5_overlap", "mean_kl", "cosine", "accuracy", "label_agreement", "rel_error",
               "max_abs_error", "sqnr_db")
RANDOM_NOTE = ("{n} random inputs: agreement on noise says whether the variant computes the same function, not how "
               "accurate it is on real data")
SYNTHETIC_INPUTS = 16
_PROB_TOL = 0.05


def to_probs(x: np.ndarray) -> np.ndarray:
    """Rows as probabilities: renormalised if they already are (non-negative, summing to ~1), else softmaxed."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    sums = x.sum(axis=1)
    if x.size and (x >= -1e-6).all() and np.all(np.abs(sums - 1.0) <= _PROB_TOL):
        p = np.clip(x, 0.0, None)
        return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def compare_outputs(ref: np.ndarray, out: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """Fidelity metrics of ``out`` against ``ref`` (both [n, classes], float); pure, for tests and callers."""
    ref = np.asarray(ref, np.float64).reshape(len(ref), -1)
    out = np.asarray(out, np.float64).reshape(len(out), -1)
    if ref.shape != out.shape:
        raise ValueError(f"output shapes differ: {ref.shape} vs {out.shape}")
    n, classes = ref.shape
    k = min(5, classes)
    top1 = float(np.mean(ref.argmax(1) == out.argmax(1)))
    ref_k = np.argsort(-ref, axis=1, kind="stable")[:, :k]
    out_k = np.argsort(-out, axis=1, kind="stable")[:, :k]
    overlap = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ref_k, out_k, strict=False)]))
    p, q = to_probs(ref), to_probs(out)
    eps = 1e-12
    kl = float(np.mean(np.sum(p * (np.log(np.maximum(p, eps)) - np.log(np.maximum(q, eps))), axis=1)))
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cos = float(np.mean(np.sum(ref * out, axis=1) / np.maximum(norms, eps)))
    acc = None
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        acc = float(np.mean(out.argmax(1) == labels[:n]))
    return {"top1_agreement": top1, "top5_overlap": overlap, "mean_kl": max(kl, 0.0), "cosine": cos, "accuracy": acc}



def output_kind(values) -> str:
    """``scores`` (float [n, C>=2]), ``labels`` (integers), ``regression`` (one float column), ``dense`` (any other
    float shape); ZipMap outputs arrive here already as [n, C] probabilities."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        return "labels"
    if arr.dtype.kind != "f":
        return "other"
    per_row = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
    if per_row == 1:
        return "regression"
    if arr.ndim == 2:
        return "scores"
    return "dense"


def error_metrics(ref: np.ndarray, out: np.ndarray) -> dict:
    """Relative error (||out - ref|| / ||ref||), max abs error and SQNR (10 log10 of signal over error power, dB;
    None where the outputs are identical: the ratio is infinite)."""
    ref = np.asarray(ref, np.float64).reshape(-1)
    out = np.asarray(out, np.float64).reshape(-1)
    err = out - ref
    noise = float(np.sum(err * err))
    signal = float(np.sum(ref * ref))
    return {
        "rel_error": float(np.sqrt(noise) / max(np.sqrt(signal), 1e-12)),
        "max_abs_error": float(np.max(np.abs(err))) if err.size else 0.0,
        "sqnr_db": None if noise == 0.0 else float(10.0 * np.log10(max(signal, 1e-300) / noise)),
    }


def compare_output(name: str, ref, out, labels=None) -> dict:
    """One output of a variant against the same output of fp32: ``{"output", "kind", "n", <metrics>, "omitted"}``."""
    kind = output_kind(ref)
    ref_a, out_a = np.asarray(ref), np.asarray(out)
    n = len(ref_a)
    doc: dict = {"output": name, "kind": kind, "n": n, "omitted": {}}
    if ref_a.shape != out_a.shape:
        doc["error"] = f"shapes differ: {ref_a.shape} vs {out_a.shape}"
        return doc
    if kind == "labels":
        doc["label_agreement"] = float(np.mean(ref_a.reshape(n, -1) == out_a.reshape(n, -1)))
        if labels is not None:
            doc["accuracy"] = float(np.mean(out_a.reshape(n, -1)[:, 0] == np.asarray(labels).reshape(-1)[:n]))
        return doc
    if kind == "other":
        doc["omitted"]["all"] = f"{ref_a.dtype} outputs are not compared"
        return doc
    doc.update(error_metrics(ref_a, out_a))
    if kind == "scores":
        m = compare_outputs(ref_a, out_a, labels)
        classes = ref_a.shape[1]
        doc.update({k: m[k] for k in ("top1_agreement", "mean_kl", "cosine")})
        if labels is not None:
            doc["accuracy"] = m["accuracy"]
        if classes > 5:
            doc["top5_overlap"] = m["top5_overlap"]
        else:
            doc["omitted"]["top5_overlap"] = f"{classes} classes: the top 5 hold every class"
    elif kind == "regression":
        doc["omitted"]["top1_agreement"] = "one column: top-1 agrees by construction"
    return doc


def _primary(outputs: list[dict]) -> dict | None:
    for kind in ("scores", "regression", "dense", "labels"):
        for o in outputs:
            if o["kind"] == kind and "error" not in o:
                return o
    return outputs[0] if outputs else None


def _as_arrays(values: list, spec) -> np.ndarray | list:
    """One output over n inputs as an array: ZipMap (a list of {class: probability} per input) becomes [n, classes]
    in sorted class order; a sequence of tensors is stacked; a quantized tensor dequantized."""
    first = values[0]
    if isinstance(first, list) and first and isinstance(first[0], dict):  # ZipMap: seq(map) per batch
        rows = [row for v in values for row in v]
        keys = sorted(rows[0])
        return np.array([[float(r[k]) for k in keys] for r in rows], np.float32)
    if isinstance(first, dict):
        keys = sorted(first)
        return np.array([[float(v[k]) for k in keys] for v in values], np.float32)
    if isinstance(first, list):
        return np.stack([np.concatenate([np.asarray(t, np.float32).reshape(-1) for t in v]) for v in values])
    arr = [from_output(v, spec) if np.asarray(v).dtype.kind == "f" or spec.quantization else np.asarray(v)
           for v in values]
    if all(a.ndim >= 1 and a.shape[1:] == arr[0].shape[1:] for a in arr):
        return np.concatenate(arr)
    size = min(a.size for a in arr)  # outputs whose size varies with the input: compare what all of them have
    return np.stack([a.reshape(-1)[:size] for a in arr])


def outputs_of(path: str, fmt: str, interpreter: str | None, threads: int, source: tuple,
               progress: Callable[[str], None] | None = None) -> dict:
    """Run the model at ``path`` on the inputs ``source`` names and return every output; runs in the isolated child.

    ``source``: ``("bundled", model name)`` (its evaluation data, in the session's layout), ``("data", path,
    (mean, std))`` (the user's ``--data``, ``models.data``) or ``("random", shapes, fills, n)``.
    Returns ``{"version", "outputs": [(name, array [n, ...])], "labels", "note", "data"}``.
    """
    from .isolated import check_synthetic_budget

    sess = open_session(path, runtime=fmt, threads=threads, backend=interpreter)
    try:
        if source[0] == "bundled":
            info = catalog.get_model(source[1])
            data = eval_batches(info, layout_for(sess.inputs[0].shape, channels_of(info.preprocessing)))
            feeds, labels, note, kind = [[x] for x in data.inputs], data.labels, data.note, "bundled"
        elif source[0] == "data":
            from . import data as user_data

            got = user_data.load(source[1], sess.inputs, source[2])
            feeds, labels, note, kind = got.feeds, got.labels, got.description, "data"
        else:
            _, shapes, fills, n = source
            check_synthetic_budget(sess.inputs, shapes, fills, Path(path).name,
                                   fixed_hint="Compare on a few real samples with --data instead.")
            feeds = [synthetic_inputs(sess.inputs, seed=1000 + i, shapes=shapes, fills=fills)[0] for i in range(n)]
            feeds = [[a.astype(np.float32) if getattr(a, "dtype", None) is not None and a.dtype.kind == "f" else a
                      for a in f] for f in feeds]
            labels, note, kind = None, RANDOM_NOTE.format(n=n), "random"
        per_output: list[list] = [[] for _ in sess.outputs]
        for feed in feeds:
            arrays = [to_feed(x, spec) if isinstance(x, np.ndarray) else x
                      for x, spec in zip(feed, sess.inputs, strict=False)]
            for i, y in enumerate(sess.run(arrays)):
                per_output[i].append(y)
        outputs = [(spec.name, _as_arrays(vals, spec)) for spec, vals in zip(sess.outputs, per_output, strict=False)]
        return {"version": sess.info.version, "outputs": outputs, "labels": labels, "note": note, "data": kind}
    finally:
        sess.close()


def fidelity_data(info, variant=None) -> str:
    """Where a bundled model's fidelity figures come from, in words (``models --json``'s ``fidelity_data``; the same
    for every variant of a model: all are compared with fp32 on one set of inputs)."""
    prep = (info.preprocessing or {}).get("kind")
    if prep == "digits":
        return "the bundled digits test split, with labels (accuracy is reported); its first samples calibrate int8-static"
    if prep == "imagenet":
        return (f"the {len(info.images)} bundled images, without labels (agreement with fp32, no accuracy); the same "
                "images calibrate int8-static, so the figures are optimistic for unseen images")
    return f"{SYNTHETIC_INPUTS} random inputs: " + RANDOM_NOTE.format(n=SYNTHETIC_INPUTS).split(": ", 1)[1]


def _compare_all(ref: dict, out: dict) -> list[dict]:
    docs = []
    ref_outs = dict(ref["outputs"])
    for name, values in out["outputs"]:
        if name not in ref_outs:
            docs.append({"output": name, "kind": "other", "n": 0, "omitted": {}, "error": "no such fp32 output"})
            continue
        docs.append(compare_output(name, ref_outs[name], values, ref.get("labels")))
    return docs


def _selected(runtimes: Iterable[str] | None) -> list[str]:
    ok = {s.name: s for s in available_runtimes()}
    if runtimes is None:
        return [r for r in registry.names() if ok.get(r) and ok[r].available]
    chosen: list[str] = []
    for r in runtimes:
        names = [b.name for b in registry.for_format(r)] or [r]  # a format means every backend that reads it
        for name in names:
            if name not in registry.names():
                raise UsageError(f"runtime {r!r} is not one of: "
                                 f"{', '.join((*registry.formats(), *registry.names()))}.")
            if ok.get(name) and ok[name].available and name not in chosen:
                chosen.append(name)
    if not chosen:
        raise UsageError(
            f"none of the runtimes {', '.join(runtimes)} is installed here.",
            "Install them with `pip install -r requirements.txt`.",
        )
    return chosen


def _row(variant, runtime: str, version: str | None, n: int, outputs: list[dict] | None, note=None, error=None,
         data: str | None = None) -> dict:
    row = {"precision": variant.precision, "format": variant.format, "backend": runtime, "version": version, "n": n}
    primary = _primary(outputs or [])
    for key in METRIC_KEYS:
        row[key] = None if primary is None else primary.get(key)
    row["primary"] = None if primary is None else primary["output"]
    row["outputs"] = outputs or []
    row["data"] = data
    row["note"] = note
    row["error"] = error
    return row


def fidelity(
    model_name_or_path: str,
    *,
    runtimes: Iterable[str] | None = None,
    threads: int = 2,
    progress: Callable[[str], None] | None = None,
    shapes: dict | None = None,
    fills: dict | None = None,
    data: str | Path | None = None,
    normalise: tuple[float, float] | None = None,
) -> list[dict]:
    """Rows of fidelity metrics for every variant of a bundled model (or an fp32 ONNX file and its quantized
    variants, on random inputs made with ``shapes``/``fills`` as for a run) in every selected runtime. Missing ONNX
    variants are quantized first (cached). Each row: precision, format, backend, version, n, the primary output's
    metrics (``METRIC_KEYS``), ``primary``, ``outputs`` (one ``compare_output`` document per output), ``data``
    (bundled | data | random), ``note`` and ``error`` (why that variant has no figures, e.g. its runtime crashed).
    ``data``: a user's file is compared on this data instead (``models.data``; images use ``normalise``), which also
    calibrates its int8-static variant; labels in it give ``accuracy``."""
    say = progress or (lambda _msg: None)
    chosen = _selected(runtimes)
    if model_name_or_path in catalog.model_names():
        return _bundled(catalog.get_model(model_name_or_path), chosen, threads, say)
    return _user_file(Path(model_name_or_path), chosen, threads, say, dict(shapes or {}), dict(fills or {}), data,
                      normalise)


def _outputs(v, fmt: str, interp: str | None, threads: int, source: tuple, say) -> dict:
    from .isolated import run_isolated

    name = Path(v.model).name if catalog.is_path_like(v.model) else v.model
    return run_isolated("edgeprof.models.fidelity:outputs_of", str(v.path), fmt, interp, threads, source,
                        what=f"running the {v.precision} {fmt} variant of {name} on the fidelity inputs",
                        tool="ONNX Runtime" if fmt == "onnx" else (interp or "the TFLite interpreter"),
                        hint="this variant does not run here; the other rows are unaffected.", progress=say)


def _bundled(info, chosen: list[str], threads: int, say) -> list[dict]:
    rows: list[dict] = []
    for runtime in chosen:
        fmt = registry.get(runtime).formats[0]
        interp = runtime  # the backend's name
        ref, ref_err, version = None, None, None
        for precision in PRECISIONS:
            try:
                v = catalog.resolve_variant(info.name, precision, fmt, build=True, progress=say)
            except EdgeprofError as exc:
                blank = catalog.Variant(info.name, precision, fmt, Path(), None, None, False, "")
                rows.append(_row(blank, runtime, version, 0, None, error=str(exc)))
                continue
            say(f"{runtime}: {fmt} {v.precision}")
            try:
                got = _outputs(v, fmt, interp, threads, ("bundled", info.name), say)
            except EdgeprofError as exc:
                rows.append(_row(v, runtime, version, 0, None, error=str(exc)))
                if v.precision == "fp32":
                    ref_err = f"the fp32 reference failed in {runtime}: {exc}"
                continue
            version = got["version"]
            if v.precision == "fp32":
                ref = got
            if ref is None:
                rows.append(_row(v, runtime, version, 0, None, error=ref_err or "no fp32 reference output"))
                continue
            n = len(got["outputs"][0][1]) if got["outputs"] else 0
            rows.append(_row(v, runtime, version, n, _compare_all(ref, got), note=got["note"], data=got["data"]))
    return rows


def _user_file(path: Path, chosen: list[str], threads: int, say, shapes: dict, fills: dict, data=None,
               normalise=None) -> list[dict]:
    base = catalog.resolve_variant(str(path), None, None, build=False)
    if base.format != "onnx" or base.precision != "fp32":
        raise UsageError(
            f"{path.name} is {catalog.article(base.precision)} {base.precision} {base.format} file with no fp32 parent to "
            "compare it with.",
            "Run fidelity on a bundled model name, or on an fp32 .onnx file (edgeprof quantizes it).",
        )
    if "onnxruntime" not in chosen:
        raise UsageError(f"{path.name} is an ONNX model; fidelity for it needs the onnxruntime runtime.")
    from . import quantize

    calib = None
    if data is not None:
        from . import data as user_data

        norm = tuple(normalise or user_data.DEFAULT_NORMALISE)
        source = ("data", str(user_data.check_path(data)), norm)
        calib = quantize.data_calibration(data, path, norm)
    else:
        source = ("random", shapes, fills, SYNTHETIC_INPUTS)
    ref = _outputs(base, "onnx", None, threads, source, say)  # the fp32 file itself: without it nothing compares
    version, kind = ref["version"], ref["data"]
    n = len(ref["outputs"][0][1]) if ref["outputs"] else 0
    rows = [_row(base, "onnxruntime", version, n, _compare_all(ref, ref), note=ref["note"], data=kind)]
    for precision in PRECISIONS[1:]:
        say(f"onnxruntime: onnx {precision}")
        try:
            res = quantize.quantize_onnx(path, precision, calib=calib if precision == "int8-static" else None,
                                         progress=say, shapes=shapes, fills=fills)
            v = catalog.Variant(str(path), precision, "onnx", res.path, None, None, False, res.method)
            got = _outputs(v, "onnx", None, threads, source, say)
        except EdgeprofError as exc:
            rows.append({**_row(base, "onnxruntime", version, 0, None), "precision": precision, "error": str(exc)})
            continue
        extra = ""
        if precision == "int8-static":
            extra = ("; int8-static calibrated on the same data" if calib is not None
                     else "; int8-static calibrated on random data: fidelity means little")
        rows.append(_row(v, "onnxruntime", version, n, _compare_all(ref, got), note=ref["note"] + extra, data=kind))
    return rows
