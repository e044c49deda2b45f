"""How far each compressed variant's outputs move from its FP32 parent's, on the same inputs.

Every variant runs in every available runtime for its format (ONNX: onnxruntime; TFLite: ai-edge-litert and
tflite-runtime each) and is compared with the FP32 file of the same format in the same runtime, so a difference
between interpreters never shows up as a quantization effect.

Metrics per variant, over n inputs:
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

METRIC_KEYS = ("top1_agreement", "top5_overlap", "mean_kl", "cosine", "accuracy")
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


def _run_all(session, inputs: list[list[np.ndarray]]) -> np.ndarray:
    """First output of every input, dequantized to float32, stacked to [n, -1]."""
    rows = []
    for feed in inputs:
        arrays = [to_feed(x, spec) for x, spec in zip(feed, session.inputs, strict=False)]
        y = session.run(arrays)[0]
        rows.append(from_output(y, session.outputs[0]).reshape(-1))
    return np.stack(rows)


def _row(variant, runtime: str, version: str | None, n: int, metrics: dict | None, note=None, error=None) -> dict:
    row = {"precision": variant.precision, "format": variant.format, "backend": runtime, "version": version, "n": n}
    for key in METRIC_KEYS:
        row[key] = None if metrics is None else metrics[key]
    row["note"] = note
    row["error"] = error
    return row


def fidelity(
    model_name_or_path: str,
    *,
    runtimes: Iterable[str] | None = None,
    threads: int = 2,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Rows of fidelity metrics for every variant of a bundled model (or an fp32 ONNX file and its quantized
    variants, on random inputs) in every selected runtime. Missing ONNX variants are quantized first (cached)."""
    say = progress or (lambda _msg: None)
    chosen = _selected(runtimes)
    if model_name_or_path in catalog.model_names():
        return _bundled(catalog.get_model(model_name_or_path), chosen, threads, say)
    return _user_file(Path(model_name_or_path), chosen, threads, say)


def _bundled(info, chosen: list[str], threads: int, say) -> list[dict]:
    rows: list[dict] = []
    evals: dict[str, object] = {}
    channels = channels_of(info.preprocessing)

    def data_for(session):
        layout = layout_for(session.inputs[0].shape, channels)
        if layout not in evals:
            evals[layout] = eval_batches(info, layout)
        return evals[layout]

    for runtime in chosen:
        fmt = registry.get(runtime).formats[0]
        variants = []
        for precision in PRECISIONS:
            try:
                variants.append(catalog.resolve_variant(info.name, precision, fmt, build=True, progress=say))
            except EdgeprofError as exc:
                variants.append((precision, str(exc)))
        ref_out, ref_err, version = None, None, None
        for v in variants:
            if isinstance(v, tuple):
                precision, err = v
                rows.append(
                    {
                        **_row(
                            catalog.Variant(info.name, precision, fmt, Path(), None, None, False, ""), runtime, version, 0, None
                        ),
                        "error": err,
                    }
                )
                continue
            say(f"{runtime}: {fmt} {v.precision}")
            try:
                sess = open_session(v.path, runtime=fmt, threads=threads, backend=runtime)
            except EdgeprofError as exc:
                rows.append(_row(v, runtime, version, 0, None, error=str(exc)))
                if v.precision == "fp32":
                    ref_err = f"the fp32 reference failed in {runtime}: {exc}"
                continue
            version = sess.info.version
            try:
                data = data_for(sess)
                out = _run_all(sess, [[x] for x in data.inputs])
            except EdgeprofError as exc:
                rows.append(_row(v, runtime, version, 0, None, error=str(exc)))
                continue
            except Exception as exc:  # an interpreter failing on invoke: report it in the row, go on
                rows.append(_row(v, runtime, version, 0, None, error=f"{type(exc).__name__}: {str(exc)[:200]}"))
                continue
            finally:
                sess.close()
            if v.precision == "fp32":
                ref_out = out
            if ref_out is None:
                rows.append(_row(v, runtime, version, len(out), None, error=ref_err or "no fp32 reference output"))
                continue
            metrics = compare_outputs(ref_out, out, data.labels)
            rows.append(_row(v, runtime, version, len(out), metrics, note=data.note))
    return rows


def _user_file(path: Path, chosen: list[str], threads: int, say) -> list[dict]:
    base = catalog.resolve_variant(str(path), None, None, build=False)
    if base.format != "onnx" or base.precision != "fp32":
        raise UsageError(
            f"{path.name} is {catalog.article(base.precision)} {base.precision} {base.format} file with no fp32 parent to "
            "compare it with.",
            "Run fidelity on a bundled model name, or on an fp32 .onnx file (edgeprof quantizes it).",
        )
    if "onnxruntime" not in chosen:
        raise UsageError(f"{path.name} is an ONNX model; fidelity for it needs the onnxruntime runtime.")
    rows: list[dict] = []
    ref_sess = open_session(path, runtime="onnx", threads=threads)
    feeds = [synthetic_inputs(ref_sess.inputs, seed=1000 + i)[0] for i in range(SYNTHETIC_INPUTS)]
    feeds = [[a.astype(np.float32) if a.dtype.kind == "f" else a for a in f] for f in feeds]
    note = f"{SYNTHETIC_INPUTS} random inputs: no data ships with this file"
    ref_out = _run_all(ref_sess, feeds)
    version = ref_sess.info.version
    ref_sess.close()
    rows.append(_row(base, "onnxruntime", version, len(ref_out), compare_outputs(ref_out, ref_out), note=note))
    for precision in PRECISIONS[1:]:
        say(f"onnxruntime: onnx {precision}")
        try:
            v = catalog.resolve_variant(str(path), precision, "onnx", build=True, progress=say)
            sess = open_session(v.path, runtime="onnx", threads=threads)
            out = _run_all(sess, feeds)
            sess.close()
        except EdgeprofError as exc:
            rows.append({**_row(base, "onnxruntime", version, 0, None), "precision": precision, "error": str(exc)})
            continue
        extra = "; int8-static calibrated on random data: fidelity means little" if precision == "int8-static" else ""
        rows.append(_row(v, "onnxruntime", version, len(out), compare_outputs(ref_out, out), note=note + extra))
    return rows
