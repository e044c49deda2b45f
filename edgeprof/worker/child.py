"""The worker process: load, first inference, warm-up, steady state; nothing else.

Run as ``python -m edgeprof.worker.child FD``: it reads one pickled ``WorkerSpec`` from stdin (never the RunConfig)
and writes messages to pipe FD. It imports only numpy, the runtime it needs and edgeprof's small pure modules (never streamlit,
duckdb, pandas or scipy), because everything it imports is charged to its memory cap.

The measured loop does two clock reads and two list appends per inference; the stop flag and the batch deadline are
checked once per inference with an integer comparison, and a batch is sent at most every ``batch_interval_s``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import time
import traceback
from array import array

_stop = False
_phase = "load"
_go = False  # the parent's SIGUSR1: it has read what the profile phase must not change


def _on_term(signum, frame):
    global _stop
    _stop = True


def _on_go(signum, frame):
    global _go
    _go = True


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG: if the parent is SIGKILLed, the kernel kills the worker too (no orphan keeps the CPU)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)
    except Exception:
        pass


def _set_phase(name: str) -> None:
    global _phase
    _phase = name


def _max_rss_mb() -> float:
    """Peak RSS of this process image: VmHWM belongs to the address space made at exec. ru_maxrss would not do: Linux
    keeps it across fork and exec, so it reports the (much larger) parent's RSS at the moment of the fork."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _major_faults() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_majflt


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _rss_kb() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _mark(spec, conn, name: str) -> None:
    """Send the cgroup's charge as it is now (``MemoryMark``): read here, not by the parent, so a mark is not blurred
    by what the worker does while the parent gets round to reading. Nothing is read inside a timed loop."""
    if not spec.memory_cgroup:
        return
    from .messages import MemoryMark

    try:
        with open(os.path.join(spec.memory_cgroup, "memory.stat")) as f:
            stat = f.read()
    except OSError:
        return
    usage = "memory.current" if spec.memory_cgroup_kind == "cgroup2" else "memory.usage_in_bytes"
    conn.send(MemoryMark(name, time.monotonic_ns(), stat, _read_int(os.path.join(spec.memory_cgroup, usage)),
                         _rss_kb()))


def run(spec, conn) -> None:
    from ..errors import InputError
    from ..runtimes import import_runtime, open_session, registry
    from ..runtimes.inputs import make_feeds, plan_feeds
    from .messages import Batch, Done, Loaded, Phase
    from .warmup import WarmupDetector

    mono = time.monotonic_ns
    t0 = mono()
    if spec.backend_module and spec.backend_module not in registry.MODULES:
        registry.register(spec.backend_module)
    if spec.memory_cgroup:
        import_runtime(spec.runtime, spec.backend)  # apart from loading, so the mark splits them
        _mark(spec, conn, "imported")
    session = open_session(spec.model_path, runtime=spec.runtime, threads=spec.threads, backend=spec.backend,
                           backend_options=spec.backend_options, evictable=spec.evictable)
    plan = plan_feeds(session.inputs, spec.input_shapes, spec.input_fills, resizable=session.resizable)
    try:
        session.prepare(plan.shapes)  # TFLite allocates here: part of loading, and before any inference
    except InputError as exc:
        raise _input_error(plan, exc, "preparing the model") from None
    load_ns = mono() - t0
    _mark(spec, conn, "loaded")
    if spec.input_file:
        feeds = [_tensor_from_file(spec.input_file, session.inputs)]
        notes = [f"input: the tensor in {os.path.basename(spec.input_file)} (real data, the same in every inference)"]
    else:
        feeds = make_feeds(plan)
        notes = ["input: random data of the model's input shape and type unless set with --fill (latency does not "
                 "depend on pixel values)", *plan.notes]
    conn.send(Loaded(mono(), load_ns, session.info.to_dict(), [s.to_dict() for s in session.inputs],
                     [s.to_dict() for s in session.outputs], notes, os.getpid(),
                     sorted(m for m in ("streamlit", "duckdb", "pandas", "scipy") if m in sys.modules)))
    if _stop:
        conn.send(Done(mono(), 0, "stopped", _max_rss_mb(), _major_faults()))
        return

    run_once = session.run
    seq = 0
    _set_phase("first")
    conn.send(Phase("first", mono()))
    t = mono()
    try:
        outputs = run_once(feeds)
    except MemoryError:
        raise
    except Exception as exc:  # the first contact with the inputs: say what was fed and how to change it
        raise _input_error(plan, exc, "the first inference") from None
    conn.send(Batch(0, "first", array("q", [t]), array("q", [mono() - t])))
    if spec.top_k and outputs:
        from ..runtimes.inputs import top_classes
        from .messages import Prediction

        conn.send(Prediction(top_classes(outputs[0], session.outputs[0], spec.top_k)))
    del outputs
    _mark(spec, conn, "first")
    seq = 1
    interval = int(spec.batch_interval_s * 1e9)

    def loop(phase: str, until) -> str:
        """Run inferences until ``until(n_in_phase, latency_ns, t_ns)`` says stop; returns why it stopped."""
        nonlocal seq
        ts, lats = [], []
        seq0 = seq
        n = 0
        next_flush = mono() + interval
        phase_start = mono()
        reason = "stopped"
        while not _stop:
            t = mono()
            run_once(feeds)
            t2 = mono()
            ts.append(t)
            lats.append(t2 - t)
            n += 1
            if until(n, t2 - t, t2 - phase_start):
                reason = "done"
                break
            if t2 >= next_flush:
                conn.send(Batch(seq0, phase, array("q", ts), array("q", lats)))
                seq0 += len(ts)
                ts, lats = [], []
                next_flush = t2 + interval
        if ts:
            conn.send(Batch(seq0, phase, array("q", ts), array("q", lats)))
        seq += n
        return reason

    if _stop:
        conn.send(Done(mono(), seq, "stopped", _max_rss_mb(), _major_faults()))
        return
    _set_phase("warmup")
    conn.send(Phase("warmup", mono()))
    if spec.warmup == "auto":
        detector = WarmupDetector(max_iters=spec.warmup_max_iterations, max_seconds=spec.warmup_max_s)
        why = loop("warmup", lambda n, lat, el: detector.update(lat, el))
        warm_reason = detector.reason or why
    elif int(spec.warmup) > 0:
        target = int(spec.warmup)
        why = loop("warmup", lambda n, lat, el: n >= target)
        warm_reason = f"fixed {target} iterations"
    else:
        why, warm_reason = "done", "no warm-up requested"
    if why == "stopped":
        conn.send(Done(mono(), seq, "stopped", _max_rss_mb(), _major_faults()))
        return

    _set_phase("steady")
    conn.send(Phase("steady", mono(), warm_reason))
    min_n, min_ns = spec.min_iterations, int(spec.min_duration_s * 1e9)
    if spec.exact_iterations:
        why = loop("steady", lambda n, lat, el: n >= min_n)
    else:
        why = loop("steady", lambda n, lat, el: n >= min_n and el >= min_ns)
    _mark(spec, conn, "steady")
    conn.send(Done(mono(), seq, "completed" if why == "done" else "stopped", _max_rss_mb(), _major_faults()))
    if spec.profile_ops and why == "done":
        _profile_phase(session, feeds, conn)


def _tensor_from_file(path: str, specs) -> object:
    """The one input of a one-input model from a .npy float tensor (never unpickled), cast or quantized to what the
    session takes (``runtimes.inputs.to_feed``). A mismatch is an InputError naming both shapes."""
    import numpy as np

    from ..errors import InputError
    from ..runtimes.inputs import to_feed

    if len(specs) != 1:
        raise InputError(f"an input file feeds a model with one input; this one has {len(specs)}.",
                         "Run it without an input file (random inputs).")
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"the input file {os.path.basename(path)} cannot be read as a tensor.",
                         "Give a .npy file written by numpy.save.", detail=str(exc)) from None
    want = tuple(specs[0].shape)
    if len(want) != x.ndim or any(isinstance(d, int) and d != n for d, n in zip(want, x.shape, strict=True)):
        raise InputError(f"the input file holds a tensor of shape {list(x.shape)}; the model takes {list(want)}.",
                         "Prepare the tensor in the model's layout (models.preprocess).")
    return np.ascontiguousarray(to_feed(x.astype(np.float32, copy=False), specs[0]))


def _profile_phase(session, feeds, conn) -> None:
    """Profile operators after everything measured was sent (``runtimes.profile``). A failure here is the profile's,
    not the run's: it becomes ``{"unavailable": why}``."""
    from ..runtimes.profile import ProfileBudget
    from .messages import PROFILE_ACK_WAIT_S, PROFILE_PHASE, OpProfile, Phase

    mono = time.monotonic_ns
    reason = session.profile_unavailable()
    if reason is None:
        deadline = time.monotonic() + PROFILE_ACK_WAIT_S
        while not _go and not _stop and time.monotonic() < deadline:
            time.sleep(0.001)
    if _stop:
        conn.send(OpProfile(mono(), {"unavailable": "the run was stopped before its profile phase"}))
        return
    _set_phase(PROFILE_PHASE)
    conn.send(Phase(PROFILE_PHASE, mono(), "" if _go or reason else "no acknowledgement from the parent"))
    if reason is not None:
        conn.send(OpProfile(mono(), {"unavailable": reason}))
        return
    try:
        doc = session.op_profile(feeds, ProfileBudget(), stop=lambda: _stop)
    except MemoryError:
        doc = {"unavailable": "memory ran out while profiling (the profiling session did not fit)"}
    except Exception as exc:  # the runtime's own error: the profile is unavailable, the measured run stands
        doc = {"unavailable": f"the profiler failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
    conn.send(OpProfile(mono(), doc))


def _is_memory(text: str) -> bool:
    low = text.lower()
    return "bad_alloc" in low or "failed to allocate" in low or "cannot allocate" in low


def _input_error(plan, exc: Exception, what: str):
    """One sentence naming what was fed; the runtime's text goes to ``detail``. A model whose inputs were all fixed
    and given keeps the runtime's (cleaned) cause in the sentence, since there is no guess to blame."""
    from ..errors import EdgeprofError, InputError
    from ..runtimes.inputs import guessed_inputs_failed
    from ..runtimes.onnx import clean_message, locale_in

    raw = getattr(exc, "detail", "") or str(exc)
    if _is_memory(raw):
        return exc
    locale = locale_in(" ".join(raw.split()))
    if locale:
        return InputError(*locale, detail=raw)
    cause = exc.message if isinstance(exc, EdgeprofError) else clean_message(raw)
    if plan.guessed:
        return InputError(guessed_inputs_failed(plan, what, cause), detail=raw)
    if any(f.fill is None for f in plan.feeds):
        return InputError(f"{what} failed on random inputs ({plan.describe()}): {cause.rstrip('.')}.",
                          "If the model needs particular values, set them with --fill NAME=VALUE (on the Run page: the "
                          "Inputs panel).", detail=raw)
    return InputError(f"{what} failed on the inputs given ({plan.describe()}): {cause.rstrip('.')}.",
                      "Check the shapes and values given with --shape and --fill.", detail=raw)


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGUSR1, _on_go)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is the parent's to handle
    _die_with_parent()
    from multiprocessing.connection import Connection

    from .messages import Failed

    conn = Connection(int(argv[0]), readable=False)
    spec = pickle.load(sys.stdin.buffer)
    if spec.rlimit_as_bytes:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (spec.rlimit_as_bytes, spec.rlimit_as_bytes))
    try:
        run(spec, conn)
        return 0
    except MemoryError:
        conn.send(Failed("memory", "memory allocation failed inside the worker (the address-space limit was hit).",
                         traceback.format_exc(), _phase))
    except BaseException as exc:  # report everything; the parent decides the status
        from ..errors import EdgeprofError, InputError, ModelError, RuntimeUnavailable

        kind = ("input" if isinstance(exc, InputError) else "model" if isinstance(exc, ModelError)
                else "runtime" if isinstance(exc, RuntimeUnavailable) else "error")
        message = str(exc) if isinstance(exc, EdgeprofError) else f"{type(exc).__name__}: {exc}"
        detail = getattr(exc, "detail", "") or ("" if isinstance(exc, EdgeprofError) else message)
        if _is_memory(detail or message):
            kind = "memory"
        elif spec.rlimit_as_bytes and isinstance(exc, ImportError):
            kind = "memory"  # under RLIMIT_AS, numpy/OpenBLAS or a runtime fails to map its libraries at import
        with contextlib.suppress(OSError):
            conn.send(Failed(kind, message, traceback.format_exc(), _phase, detail))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
