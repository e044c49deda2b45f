"""Preparation of a model someone else made, in a child process under a memory cap, never in the CLI or the server.

Opening a user's ONNX file is not safe for the process that asks: ONNX Runtime can segfault while loading a
converter's output (the fp16 variant of a legacy-exported LSTM), and a model whose declared input is 1x3x25000x20000
makes naive calibration allocate gigabytes. So quantization (build, calibration, the load check), fidelity's
inferences and input synthesis go through :func:`run_isolated`, which starts ``python -m edgeprof.models.isolated FD``
exactly as the runner starts its worker (``worker.limits.launcher``: the child joins its memory cgroup before Python
starts, so every byte it maps is charged to the cap; one pickled :class:`Task` on stdin; messages back over a
``multiprocessing.connection`` pipe). A signal, an OOM kill, a timeout or an exception there comes back as one
:class:`PreparationFailed` whose message names the tool, the step and the model ("ONNX Runtime crashed (signal 11,
SIGSEGV) while checking that the fp16 variant of an_lstm.onnx loads: ..."); the caller goes on.

Public API (issue 25's quantization doctor and the Models page build on it):
- ``run_isolated(target, *args, what=..., tool=..., hint=..., progress=..., memory_limit_mb=..., timeout_s=...,
  **kwargs)``: call ``target`` ("package.module:function") in the capped child and return what it returns (it must
  pickle). The target receives ``progress=`` (a callable taking one str) when the caller passed one.
- ``stage(what, hint=None, tool=None)``: inside a target, say which step runs now; a crash names that step.
- ``inside()``: True in the child. Nested ``run_isolated`` calls there run in place (one cap, one process).
- ``PreparationFailed`` (a ModelError): ``kind`` is ``crashed``, ``oom_killed``, ``timed_out`` or ``failed``;
  ``signal`` the signal number of a crash; ``detail`` the child's traceback or last stderr lines.

The cap: ``memory_limit_mb``, else ``$EDGEPROF_PREPARE_MEMORY_MB``, else half of the device's RAM (at least 512 MB):
enough for ONNX Runtime's quantizer on the bundled models (peak ~0.4 GB for efficientnet-lite0 int8-static), small
enough that a runaway never takes the server with it. Where no cgroup can be made the child runs uncapped (an
address-space limit fails ONNX Runtime well above its real footprint), and synthetic inputs still have their byte
budget (``runtimes.inputs`` callers check ``SYNTHETIC_BYTE_BUDGET`` here).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import EdgeprofError, ModelError

ENV_MEMORY = "EDGEPROF_PREPARE_MEMORY_MB"
ENV_INSIDE = "EDGEPROF_PREPARING"
DEFAULT_TIMEOUT_S = 1800.0
MIN_MEMORY_MB = 512.0
# Synthetic inputs (calibration, fidelity) for one feed may take this many bytes; a declared input above it is refused
# with a sentence naming it and --shape, before anything is allocated.
SYNTHETIC_BYTE_BUDGET = 256 * 2**20
_GRACE_S = 2.0


class PreparationFailed(ModelError):
    """Preparing a model (quantizing, checking, computing its outputs) ended without a result in the isolated child:
    a failure on this device (exit 1), not a refusal of the file."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, detail: str = "", kind: str = "failed",
                 signal: int | None = None):
        super().__init__(message, hint, detail)
        self.kind = kind
        self.signal = signal

    def __reduce__(self):
        return (type(self), (self.message, self.hint, self.detail, self.kind, self.signal))


@dataclass(frozen=True)
class Task:
    """What the child does: call ``target`` ("module:function") with ``args``/``kwargs``."""

    target: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    progress: bool = False
    rlimit_as_bytes: int | None = None


# ------------------------------------------------------------------------------------------------------ the child

_conn = None


def inside() -> bool:
    """True inside the isolated child (nested preparation then runs in place)."""
    return os.environ.get(ENV_INSIDE) == "1"


def in_child() -> bool:
    """True in the isolated child process itself (not in a process that only runs targets in place)."""
    return _conn is not None


def stage(what: str, hint: str | None = None, tool: str | None = None) -> None:
    """Name the step that runs now (``what``: "checking that the fp16 variant of x.onnx loads"), the advice for when
    it crashes (``hint``) and the tool doing it; a no-op outside the child."""
    if _conn is not None:
        with contextlib.suppress(OSError, ValueError):
            _conn.send(("stage", what, hint, tool))


def _send_progress(message: str) -> None:
    if _conn is not None:
        with contextlib.suppress(OSError, ValueError):
            _conn.send(("progress", str(message)))


def _resolve(target: str) -> Callable:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main(argv: list[str]) -> int:
    global _conn
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with_parent()
    from multiprocessing.connection import Connection

    _conn = Connection(int(argv[0]), readable=False)
    if __name__ == "__main__":  # run as a script: targets import the module by its name, so it needs the pipe too
        from edgeprof.models import isolated

        isolated._conn = _conn
    task: Task = pickle.load(sys.stdin.buffer)
    if task.rlimit_as_bytes:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (task.rlimit_as_bytes, task.rlimit_as_bytes))
    try:
        kwargs = dict(task.kwargs)
        if task.progress:
            kwargs["progress"] = _send_progress
        value = _resolve(task.target)(*task.args, **kwargs)
        _conn.send(("ok", value))
    except EdgeprofError as exc:
        _conn.send(("error", exc))
    except MemoryError:
        _conn.send(("memory", traceback.format_exc()))
    except BaseException as exc:  # everything else is reported; the parent writes the sentence
        _conn.send(("raised", type(exc).__name__, str(exc), traceback.format_exc()))
    return 0


# ------------------------------------------------------------------------------------------------------ the parent


def check_synthetic_budget(specs, shapes: dict | None, fills: dict | None, model: str,
                           budget: int = SYNTHETIC_BYTE_BUDGET, fixed_hint: str = "") -> None:
    """Refuse random inputs for ``specs`` (TensorSpec list) whose one feed would take more than ``budget`` bytes, before
    any is allocated: UsageError naming the biggest input, its size and ``--shape`` where a guessed dimension can be
    set, else ``fixed_hint`` (the model fixes the size, so no --shape can make it smaller)."""
    import numpy as np

    from ..errors import UsageError
    from ..runtimes.inputs import plan_feeds

    plan = plan_feeds(specs, shapes, fills)
    sizes = []
    for f in plan.feeds:
        try:
            item = np.dtype(f.dtype).itemsize
        except TypeError:
            item = 8
        n = int(np.prod(f.shape, dtype=np.float64)) if f.shape else 1
        sizes.append((item * n * (2 if f.kind == "sequence" else 1), f))
    total = sum(b for b, _ in sizes)
    if total <= budget:
        return
    nbytes, big = max(sizes, key=lambda x: x[0])
    dims = "x".join(str(d) for d in big.shape)
    raise UsageError(
        f"input {big.name!r} of {model} is {dims} {big.dtype} ({nbytes / 2**20:,.0f} MB per sample), more than the "
        f"{budget / 2**20:g} MB edgeprof makes random data for.",
        f"Give a realistic size with --shape {big.name}=... (dimensions joined by x)." if big.guessed_dims
        else f"The model fixes that size, so no --shape can shrink it. {fixed_hint}".strip(),
    )


def default_memory_mb() -> float:
    """``$EDGEPROF_PREPARE_MEMORY_MB``, else half of the device's RAM, at least 512 MB."""
    env = os.environ.get(ENV_MEMORY)
    if env:
        try:
            return float(env)
        except ValueError:
            pass
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError):
        total = 2 * MIN_MEMORY_MB
    return max(MIN_MEMORY_MB, total / 2)


def run_isolated(target: str, *args, what: str, tool: str = "ONNX Runtime", hint: str | None = None,
                 progress: Callable[[str], None] | None = None, memory_limit_mb: float | None = None,
                 timeout_s: float | None = None, **kwargs) -> Any:
    """Call ``target`` ("module:function") with ``args``/``kwargs`` in a child process under a memory cap and return
    its (picklable) result.

    ``what`` says what the step does with which model ("building the int8-dynamic variant of x.onnx"), ``tool`` who
    does it, ``hint`` what the user can do when it crashes; the target may refine all three with :func:`stage`.
    EdgeprofErrors raised by the target come back as they are. Raises PreparationFailed for a crash (signal), an OOM
    kill, a MemoryError, the timeout (``timeout_s``, default 30 min) or any other exception (its traceback in
    ``detail``). Inside the child, runs ``target`` in place.
    """
    if inside():
        func = _resolve(target)
        return func(*args, **kwargs, **({"progress": progress} if progress is not None else {}))
    from ..paths import worker_pythonpath
    from ..worker import limits

    mb = memory_limit_mb if memory_limit_mb is not None else default_memory_mb()
    mech = limits.detect()
    cgroup = mech.kind in ("cgroup1", "cgroup2")
    cap = limits.create(mb if cgroup else None, f"prepare-{uuid.uuid4().hex[:12]}", mechanism=mech)
    rlimit = int(mb * 2**20) if (memory_limit_mb is not None and not cgroup and mech.kind == "rlimit_as") else None
    state = {"what": what, "hint": hint, "tool": tool}
    result: list = []
    stderr_tail: deque[str] = deque(maxlen=20)
    proc = None
    killed_for = None
    try:
        read_fd, write_fd = os.pipe()
        from multiprocessing.connection import Connection

        conn = Connection(read_fd, writable=False)
        env = dict(os.environ)
        pythonpath = worker_pythonpath(env)
        if pythonpath is not None:
            env["PYTHONPATH"] = pythonpath
        env[ENV_INSIDE] = "1"
        cmd = [*limits.launcher(cap.procs_file()), sys.executable, "-m", "edgeprof.models.isolated", str(write_fd)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                pass_fds=(write_fd,), env=env, start_new_session=True)
        os.close(write_fd)

        def read_stderr():
            for line in iter(proc.stderr.readline, b""):
                stderr_tail.append(line.decode(errors="replace").rstrip())

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        task = Task(target, tuple(args), dict(kwargs), progress is not None, rlimit)
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(pickle.dumps(task))
            proc.stdin.close()
        deadline = time.monotonic() + (timeout_s or DEFAULT_TIMEOUT_S)
        try:
            while True:
                if time.monotonic() > deadline:
                    killed_for = "timeout"
                    _stop(proc)
                    break
                if not conn.poll(0.2):
                    continue
                try:
                    msg = conn.recv()
                except EOFError:
                    break
                if msg[0] == "progress":
                    if progress is not None:
                        progress(msg[1])
                elif msg[0] == "stage":
                    state.update(what=msg[1], hint=msg[2] if msg[2] is not None else state["hint"],
                                 tool=msg[3] or state["tool"])
                else:
                    result.append(msg)
        except KeyboardInterrupt:
            _stop(proc)
            raise
        finally:
            conn.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        if proc.poll() is None:
            _stop(proc)
        reader.join(timeout=2)
        mem = cap.report()
    finally:
        if proc is not None and proc.poll() is None:
            _stop(proc)
        with contextlib.suppress(OSError):
            cap.remove()
    return _outcome(result, proc, mem, state, killed_for, timeout_s or DEFAULT_TIMEOUT_S, mb, cgroup,
                    list(stderr_tail))


def _stop(proc: subprocess.Popen) -> None:
    """Terminate, wait a grace period, then kill."""
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def _outcome(result: list, proc, mem: dict, state: dict, killed_for, timeout_s: float, mb: float, cgroup: bool,
             stderr: list[str]):
    what, hint, tool = state["what"], state["hint"], state["tool"]
    tail = "\n".join(line for line in stderr if line.strip())
    if result:
        kind, *rest = result[-1]
        if kind == "ok":
            return rest[0]
        if kind == "error":
            raise rest[0]
        if kind == "memory":
            raise PreparationFailed(
                f"{tool} ran out of memory while {what}.",
                hint or f"Give a smaller --shape, or raise {ENV_MEMORY} (now {mb:g} MB).",
                detail=rest[0], kind="oom_killed")
        name, text, tb = rest
        raise PreparationFailed(
            f"{tool} failed ({name}) while {what}.",
            hint or "Run the fp32 file as it is, or try another precision; `--json` output keeps the tool's own text.",
            detail=f"{name}: {text}\n{tb}", kind="failed")
    if (mem.get("oom_kill_count") or 0) > 0:
        raise PreparationFailed(
            f"{tool} needed more than the {mb:g} MB memory cap for preparation while {what}, and was stopped there.",
            f"Give a smaller --shape, or raise {ENV_MEMORY} if the device has the memory.",
            detail=tail, kind="oom_killed")
    if killed_for == "timeout":
        raise PreparationFailed(f"{tool} took longer than {timeout_s:g} s while {what}, and was stopped.",
                                hint, detail=tail, kind="timed_out")
    rc = proc.returncode if proc is not None else None
    if rc is not None and rc < 0:
        sig = -rc
        name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
        if sig == signal.SIGKILL and cgroup:
            cause = "was killed (SIGKILL; no OOM kill was recorded in its cgroup)"
        else:
            cause = f"crashed (signal {sig}, {name})"
        raise PreparationFailed(f"{tool} {cause} while {what}" + (":" if hint and hint[:1].islower() else "."), hint,
                                detail=tail, kind="crashed", signal=sig)
    raise PreparationFailed(f"{tool} exited with code {rc} without a result while {what}.", hint, detail=tail,
                            kind="crashed")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
