"""The doctor's work on the user's model, always in a capped child process, never in the CLI or the server.

``analyse`` (the tensor-by-tensor comparison, the profiles, building the mixes) runs through the project's isolated
preparation (``models.isolated.run_isolated``: a crash, OOM kill or timeout there is one sentence naming the step).
``measure`` (one variant's outputs and latency) runs as ``python -m edgeprof.doctor.child FD`` (one pickled
``MeasureSpec`` on stdin; ``Progress`` messages, then one ``Result`` or ``Failed``, over pipe FD; launched by
``doctor.parent`` like the run worker, in a cgroup of its own), because its peak charged memory is one of the figures
it reports and the isolated preparation does not return its cap's report.

It imports numpy, onnx, onnxruntime (its quantization tools) or the TFLite interpreter, and edgeprof's ``models``,
``runtimes`` and this package's pure ``analysis``; never pandas, scipy, duckdb or streamlit.

Why not ``qdq_loss_debug.collect_activations``: it keeps every intermediate tensor of every input in memory
(efficientnet-lite0: ~30 MB per image and model, over 1.5 GB for the 27 bundled images, all charged to the cap). The
library's own pieces are used for the rest: ``modify_model_output_intermediate_tensors`` makes every tensor an output,
``create_activation_matching`` pairs the tensors of one input by name, ``create_weight_matching`` pairs the weights;
the norms are summed input by input (``analysis.ErrorSums``).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import signal
import sys
import time
import traceback

from .messages import AnalyseSpec, Failed, MeasureSpec, Progress, Result

SAVED_SUFFIX = "_ReshapedSavedOutput"  # qdq_loss_debug's name for a tensor it made an output
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# ORT renames the nodes its optimisers touch: "Conv_token_4" (layout transformer), "fused Gemm" (fusions),
# "<output tensor>_nchwc" (the NCHWc transformer names a node after its output); the doctor matches them by name or
# by output tensor.
_RENAMED = re.compile(r"^fused |_token_\d+$|_nchwc$")


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


# ----------------------------------------------------------------------------------------------------------- inputs


def eval_inputs(model: str, data: str | None, session, shapes: dict, limit: int | None = None, src=None):
    """(feeds, labels, note, calibration) for ``session``: the user's --data, else a bundled model's own data (its
    calibration set apart), else random inputs. Calibration is what int8-static is built from."""
    from ..models import catalog
    from ..models.preprocess import calibration_for, channels_of, eval_batches, layout_for
    from ..runtimes import synthetic_inputs

    if data:
        from ..models.data import load

        got = load(data, session.inputs)
        feeds, labels = got.feeds, got.labels
        calib = None
        if src is not None:  # identified as `run --data` identifies it, so both find one cached variant
            from ..models.quantize import data_calibration

            calib = data_calibration(data, src)
        note = f"{got.description}; also used to calibrate int8-static"
    elif model in catalog.model_names():
        info = catalog.get_model(model)
        layout = layout_for(session.inputs[0].shape, channels_of(info.preprocessing))
        ev = eval_batches(info, layout)
        feeds, labels, note = [[x] for x in ev.inputs], ev.labels, ev.note
        calib = calibration_for(info, layout)
    else:
        import numpy as np

        feeds = []
        for i in range(16):
            f = synthetic_inputs(session.inputs, seed=1000 + i, shapes=shapes or None)[0]
            feeds.append([a.astype(np.float32) if a.dtype.kind == "f" else a for a in f])
        labels, note, calib = None, "16 random inputs: no data ships with this file (give some with --data)", None
    if limit is not None:
        feeds = feeds[:limit]
        labels = None if labels is None else labels[:limit]
    return feeds, labels, note, calib


# ---------------------------------------------------------------------------------------------------------- analyse


def _fp32_file(model: str):
    from ..errors import UsageError
    from ..models import catalog

    base = catalog.resolve_variant(model, None, "onnx" if model in catalog.model_names() else None, build=False)
    if base.format != "onnx":
        raise UsageError(
            f"{os.path.basename(str(base.path))} is a TFLite file: TFLite interpreters cannot expose a quantized "
            "model's intermediate tensors by name, so no per-tensor comparison is possible.",
            "Run `edgeprof tradeoff MODEL` for each variant's error, latency and memory, or give the fp32 .onnx file.")
    if base.precision != "fp32":
        raise UsageError(f"{base.path.name} is {catalog.article(base.precision)} {base.precision} file; the doctor "
                         "compares an fp32 ONNX model with its quantized variant.", "Give the fp32 .onnx file.")
    return base


def _ops_of(model) -> list[dict]:
    """The quantized operators of a QDQ graph: nodes fed by a DequantizeLinear, with their output tensors and the
    weights (initializers behind a DequantizeLinear, named as ``create_weight_matching`` names them)."""
    from onnxruntime.quantization.quant_utils import TENSOR_NAME_QUANT_SUFFIX

    inits = {i.name for i in model.graph.initializer}
    dq_of = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    ops = []
    for node in model.graph.node:
        if node.op_type in QDQ_OPS:
            continue
        fed = [dq_of[i] for i in node.input if i in dq_of]
        if not fed:
            continue
        weights = [dq.input[0][: -len(TENSOR_NAME_QUANT_SUFFIX)] for dq in fed
                   if dq.input[0] in inits and dq.input[0].endswith(TENSOR_NAME_QUANT_SUFFIX)]
        inputs = [dq.input[0] for dq in fed if dq.input[0] not in inits]  # the quantized tensor's name
        ops.append({"node": node.name or node.output[0], "op_type": node.op_type, "outputs": list(node.output),
                    "inputs": [_unquantized(dq_of, i) for i in inputs], "weights": weights})
    return ops


def _unquantized(dq_of: dict, name: str) -> str:
    """The float tensor behind a QuantizeLinear output (``X_QuantizeLinear_Output`` -> ``X``), as the matching names
    it."""
    for suffix in ("_QuantizeLinear_Output",):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _profile(path: str, feed: dict, threads: int, seconds: float, folder: str) -> tuple[dict, dict, dict]:
    """(ms per node, kernel per node, the aggregated profile) from ONNX Runtime's profiler; node names lose the
    ``_token_N`` its layout transformer adds."""
    import onnxruntime as ort

    from ..runtimes.profile import ort_profile, read_trace_events

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(folder, "profile")
    sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    warm = 5
    for _ in range(warm):
        sess.run(None, feed)
    n, t0 = 0, time.monotonic()
    while n < 10 or (time.monotonic() - t0 < seconds and n < 100):
        sess.run(None, feed)
        n += 1
    trace = sess.end_profiling()
    doc = ort_profile(read_trace_events(trace), warm, source=f"onnxruntime {ort.__version__} profiler",
                      top_nodes=None)
    with contextlib.suppress(OSError):
        os.unlink(trace)
    ms, kernel = {}, {}
    for row in doc.get("by_node") or []:
        name = _RENAMED.sub("", _RENAMED.sub("", row["node"]))
        ms[name] = ms.get(name, 0.0) + row["ms_per_inference"]
        kernel.setdefault(name, row["op_type"])
    doc.pop("by_node", None)
    return ms, kernel, doc


def analyse_isolated(spec: AnalyseSpec, progress=None) -> dict:
    """``analyse`` as a ``models.isolated`` target (the child passes ``progress``)."""
    return analyse(spec, progress or (lambda _t: None))


def analyse(spec: AnalyseSpec, say) -> dict:
    import tempfile

    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import quant_pre_process
    from onnxruntime.quantization.qdq_loss_debug import (
        create_activation_matching,
        create_weight_matching,
        modify_model_output_intermediate_tensors,
    )

    from ..errors import UsageError
    from ..models import quantize
    from ..runtimes import open_session
    from . import analysis

    if spec.precision != "int8-static":
        raise UsageError(f"the doctor compares tensors of int8-static (QDQ) models, not {spec.precision}.",
                         "Use --precision int8-static; `edgeprof tradeoff MODEL` shows every variant's error.")
    t_start = time.perf_counter()
    base = _fp32_file(spec.model)
    fp32_path = str(base.path)
    session = open_session(fp32_path, runtime="onnx", threads=spec.threads)
    feeds, labels, note, calib = eval_inputs(spec.model, spec.data, session, spec.input_shapes, spec.max_inputs,
                                             src=fp32_path)
    names = [t.name for t in session.inputs]
    session.close()
    say(f"building {spec.precision} ({len(feeds)} inputs to compare: {note})")
    q = quantize.quantize_onnx(fp32_path, spec.precision, calib=calib, progress=say)
    with tempfile.TemporaryDirectory(prefix="edgeprof-doctor-") as tmp, quantize._quiet():
        pre = os.path.join(tmp, "pre.onnx")
        try:  # the graph int8-static was built from: its tensor and node names are the QDQ model's
            quant_pre_process(fp32_path, pre, skip_symbolic_shape=True)
        except Exception:
            pre = fp32_path
        say("saving every intermediate tensor of both models")
        f_aug, q_aug = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "qdq.onnx")
        modify_model_output_intermediate_tensors(pre, f_aug)
        modify_model_output_intermediate_tensors(str(q.path), q_aug)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = spec.threads
        fs = ort.InferenceSession(f_aug, sess_options=opts, providers=["CPUExecutionProvider"])
        qs = ort.InferenceSession(q_aug, sess_options=opts, providers=["CPUExecutionProvider"])
        f_names = [o.name for o in fs.get_outputs()]
        q_names = [o.name for o in qs.get_outputs()]
        cum: dict[str, analysis.ErrorSums] = {}
        act: dict[str, analysis.ErrorSums] = {}
        say(f"comparing tensors on {len(feeds)} inputs")
        for feed in feeds:
            d = dict(zip(names, feed, strict=False))
            fo = {n[: -len(SAVED_SUFFIX)]: [a] for n, a in zip(f_names, fs.run(None, d), strict=True)
                  if n.endswith(SAVED_SUFFIX)}
            qo = {n[: -len(SAVED_SUFFIX)]: [a] for n, a in zip(q_names, qs.run(None, d), strict=True)
                  if n.endswith(SAVED_SUFFIX)}
            for tensor, m in create_activation_matching(qo, fo).items():
                pre_q, post_q, flt = m.get("pre_qdq"), m.get("post_qdq"), m.get("float")
                if pre_q is not None and post_q is not None and pre_q[0] is not None and post_q[0] is not None:
                    act.setdefault(tensor, analysis.ErrorSums()).add(analysis.below_range_clipped(pre_q[0], post_q[0]),
                                                                      post_q[0])
                if flt is not None and post_q is not None and post_q[0] is not None:
                    cum.setdefault(tensor, analysis.ErrorSums()).add(flt[0], post_q[0])
        del fs, qs
        tensors = {t: {"sqnr_db": s.sqnr_db, "relative_error": s.relative_error,
                       "activation_sqnr_db": act[t].sqnr_db if t in act else None} for t, s in cum.items()}
        weights = {}
        for w, m in create_weight_matching(pre, str(q.path)).items():
            ref = np.asarray(m["float"], np.float64)
            deq = np.asarray(m["dequantized"], np.float64).reshape(ref.shape)
            weights[w] = analysis.sqnr_db(float(np.sum(ref * ref)), float(np.sum((ref - deq) ** 2)))
        qmodel = onnx.load(str(q.path))
        operators = _ops_of(qmodel)
        say("profiling both models operator by operator")
        feed0 = dict(zip(names, feeds[0], strict=False))
        ms_f, _, prof_f = _profile(fp32_path, feed0, spec.threads, spec.profile_s, tmp)
        ms_q, kernels, prof_q = _profile(str(q.path), feed0, spec.threads, spec.profile_s, tmp)
    rows = analysis.rank_by_error(analysis.operator_rows(operators, tensors, weights, ms_f, ms_q, kernels))
    measured = [r for r in rows if r["local_sqnr_db"] is not None]
    mixes = []
    for k in analysis.mix_sizes(len(measured), spec.mix_sizes):
        keep = analysis.worst_operators(rows, k)
        say(f"building the mix that keeps {k} operator{'s' if k > 1 else ''} in fp32")
        m = quantize.quantize_onnx(fp32_path, spec.precision, calib=calib, progress=say, keep_fp32=keep)
        mixes.append({"k": k, "keep_fp32": keep, "path": str(m.path)})
    return {
        "model": spec.model,
        "precision": spec.precision,
        "fp32_path": fp32_path,
        "variant_path": str(q.path),
        "method": q.method,
        "warning": q.warning,
        "inputs": len(feeds),
        "data_note": note,
        "labels": labels is not None,
        "tensors_compared": len(tensors),
        "weights_compared": len(weights),
        "operators": rows,
        "profile_fp32": prof_f,
        "profile_int8": prof_q,
        "mixes": mixes,
        "onnxruntime": ort.__version__,
        "seconds": time.perf_counter() - t_start,
    }


# ---------------------------------------------------------------------------------------------------------- measure


def measure(spec: MeasureSpec, say) -> dict:
    """Outputs on every input (float32, [n, -1]) and the latency of the first input, timed like the worker's loop
    (one ``time.perf_counter_ns`` pair per inference, after ``warmup`` inferences left out)."""
    import numpy as np

    from ..models import catalog
    from ..models.preprocess import from_output, to_feed
    from ..runtimes import open_session

    t0 = time.perf_counter()
    if spec.path:
        path = spec.path
    elif spec.runtime == "onnx" and spec.precision == "int8-static":  # built from the same calibration as analyse's
        base = _fp32_file(spec.model)
        from ..models import quantize

        probe = open_session(base.path, runtime="onnx", threads=spec.threads)
        _, _, _, calib = eval_inputs(spec.model, spec.data, probe, spec.input_shapes, src=base.path)
        probe.close()
        path = quantize.cached_path(base.path, spec.precision, calib, keep_fp32=spec.keep_fp32)
        if not path.is_file():  # a cache hit costs a hash, not a parse of the model (its memory would count here)
            path = quantize.quantize_onnx(base.path, spec.precision, calib=calib, progress=say,
                                          keep_fp32=spec.keep_fp32).path
    else:
        path = catalog.resolve_variant(spec.model, spec.precision, spec.runtime, build=True, progress=say).path
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    sess = open_session(path, runtime=spec.runtime, threads=spec.threads, tflite_interpreter=spec.tflite_interpreter)
    load_s = time.perf_counter() - t1
    feeds, labels, note, _ = eval_inputs(spec.model, spec.data, sess, spec.input_shapes)
    outs = []
    for feed in feeds:
        arrays = [to_feed(x, s) for x, s in zip(feed, sess.inputs, strict=False)]
        y = sess.run(arrays)[0]
        outs.append(from_output(y, sess.outputs[0]).reshape(-1))
    first = [to_feed(x, s) for x, s in zip(feeds[0], sess.inputs, strict=False)]
    for _ in range(spec.warmup):
        sess.run(first)
    clock = time.perf_counter_ns
    lat = []
    end = time.monotonic() + spec.seconds
    while len(lat) < spec.min_iterations or time.monotonic() < end:
        a = clock()
        sess.run(first)
        lat.append(clock() - a)
    info = sess.info.to_dict() if hasattr(sess.info, "to_dict") else {}
    sess.close()
    return {"path": str(path), "outputs": np.stack(outs), "labels": labels, "data_note": note,
            "latency_ms": (np.asarray(lat, np.float64) / 1e6), "load_s": load_s, "build_s": build_s,
            "backend": info, "size_bytes": os.path.getsize(path)}


# ------------------------------------------------------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with_parent()
    from multiprocessing.connection import Connection

    conn = Connection(int(argv[0]), readable=False)
    spec = pickle.load(sys.stdin.buffer)
    if spec.rlimit_as_bytes:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (spec.rlimit_as_bytes, spec.rlimit_as_bytes))

    def say(text: str) -> None:
        with contextlib.suppress(OSError):
            conn.send(Progress(text))

    try:
        doc = measure(spec, say)
        conn.send(Result(doc))
        return 0
    except MemoryError:
        conn.send(Failed("memory", "memory ran out inside the doctor's process.", traceback.format_exc()))
    except BaseException as exc:  # everything becomes one message; the parent turns it into a sentence
        from ..errors import EdgeprofError, InputError, ModelError, UsageError
        from ..models.isolated import PreparationFailed

        kind = ("usage" if isinstance(exc, UsageError) else "input" if isinstance(exc, InputError)
                else "error" if isinstance(exc, PreparationFailed) else "model" if isinstance(exc, ModelError)
                else "error")
        message = str(exc) if isinstance(exc, EdgeprofError) else f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        detail = getattr(exc, "detail", "") or traceback.format_exc()
        with contextlib.suppress(OSError):
            conn.send(Failed(kind, message, detail))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
