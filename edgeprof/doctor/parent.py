"""Start the doctor's child (``doctor.child``) inside a memory cap, read its messages, and turn its end into a result
or one sentence. Launched like the run worker (``run.runner``): ``python -m edgeprof.doctor.child FD`` behind
``worker.limits.launcher``, so the interpreter, the runtime and the model are all charged to the cap."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable

from .. import paths
from ..errors import InputError, ModelError, UsageError
from ..models.isolated import PreparationFailed
from ..worker import limits

DEFAULT_TIMEOUT_S = 900.0


def run_isolated(spec, *, memory_mb: float | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 progress: Callable[[str], None] | None = None, what: str = "the doctor") -> tuple[dict, dict]:
    """Run ``spec`` (a ``MeasureSpec``) in its own process under ``memory_mb`` (default: the isolated preparation's
    cap, ``models.isolated.default_memory_mb``). Returns (the child's result document, the cap's report:
    ``peak_charged_mb``, ``mechanism``, ``oom_kill_count``...). Raises an EdgeprofError whose message is one sentence
    when the child fails, is OOM-killed, dies by a signal or runs past ``timeout_s``; its ``detail`` keeps the raw
    text."""
    from ..models.isolated import default_memory_mb
    from .messages import Failed, Progress, Result

    say = progress or (lambda _t: None)
    asked = memory_mb is not None
    memory_mb = memory_mb or default_memory_mb()
    cap = limits.create(memory_mb, "doctor-" + uuid.uuid4().hex[:8])
    if asked and cap.rlimit_bytes():  # as models.isolated: an address-space limit only where one was asked for
        spec = dataclasses.replace(spec, rlimit_as_bytes=cap.rlimit_bytes())
    read_fd, write_fd = os.pipe()
    from multiprocessing.connection import Connection

    conn = Connection(read_fd, writable=False)
    env = dict(os.environ)
    pythonpath = paths.worker_pythonpath(env)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    cmd = [*cap.launcher(), sys.executable, "-m", "edgeprof.doctor.child", str(write_fd)]
    proc = None
    stderr: deque[str] = deque(maxlen=40)
    result, failed = None, None
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                pass_fds=(write_fd,), env=env, start_new_session=True)
        os.close(write_fd)
        write_fd = None

        def drain():
            for line in iter(proc.stderr.readline, b""):
                stderr.append(line.decode(errors="replace").rstrip())

        threading.Thread(target=drain, daemon=True).start()
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(pickle.dumps(spec))
            proc.stdin.close()
        deadline = time.monotonic() + timeout_s
        timed_out = False
        while True:
            try:
                if conn.poll(0.2):
                    msg = conn.recv()
                    if isinstance(msg, Progress):
                        say(msg.text)
                    elif isinstance(msg, Result):
                        result = msg.doc
                    elif isinstance(msg, Failed):
                        failed = msg
                    continue
            except (EOFError, OSError):
                break
            if proc.poll() is not None and not conn.poll(0):
                break
            if time.monotonic() > deadline:
                timed_out = True
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                break
        code = proc.wait()
    finally:
        if write_fd is not None:
            os.close(write_fd)
        conn.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        report = cap.report()
        with contextlib.suppress(OSError):
            cap.remove()
    if result is not None:
        return result, report
    if failed is not None:
        cls = {"usage": UsageError, "input": InputError, "model": ModelError}.get(failed.kind, PreparationFailed)
        if failed.kind == "memory":
            raise PreparationFailed(f"{what} ran out of memory: {failed.message}", _limit_hint(memory_mb),
                                    detail=failed.detail, kind="oom_killed")
        raise cls(failed.message, detail=failed.detail)
    tail = "\n".join(stderr)
    if timed_out:
        raise PreparationFailed(f"{what} ran past its {timeout_s:.0f}-s limit and was stopped.",
                                "Try a smaller model or fewer inputs.", detail=tail, kind="timed_out")
    if report.get("oom_kill_count"):
        raise PreparationFailed(f"{what} was killed by the kernel's OOM killer at the {memory_mb:.0f} MB memory cap.",
                                _limit_hint(memory_mb), detail=tail, kind="oom_killed")
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        raise PreparationFailed(f"{what}'s process was killed by {name} while working on the model (the runtime "
                                "crashed on this file); nothing else was affected.", "Report this with the model file.",
                                detail=tail, kind="crashed", signal=-code)
    raise PreparationFailed(f"{what}'s process ended with exit code {code} without a result.",
                            "Rerun with --debug and report the output.", detail=tail, kind="crashed")


def _limit_hint(memory_mb: float | None) -> str:
    return "Raise it with --memory-limit (e.g. 4096MB), or give fewer inputs." if memory_mb else \
        "Close other programs or give fewer inputs."
