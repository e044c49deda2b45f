"""The parent side of a run: resolve the model, cap memory, spawn the worker, sample telemetry, decide the status.

``start_run`` checks the request (a usage error stores nothing), then returns a ``RunHandle`` at once; all waiting
happens in the handle's monitor thread, so neither a page nor the CLI ever blocks on the worker. One run at a time
per device: a lock file in the data directory (flock, so a crashed owner releases it) refuses a second start from any
process with ``DeviceBusy``, which names the busy run.

The samples go through the handle's ``Recorder`` (live view, batched writes every five seconds, read back for the
summary); at the end the handle gathers plain facts (``RunFacts``) and ``build_summary`` makes the result document.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import platform
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .. import __version__, heap, paths
from ..config import RunConfig
from ..errors import EdgeprofError, UsageError
from ..locks import WORK_PREFIX, HolderLock
from ..runtimes import registry
from ..store import Store, new_run_id
from ..worker import limits, priority
from ..worker.messages import Batch, Done, Failed, Loaded, MemoryMark, OpProfile, Phase, Prediction, WorkerSpec
from .recorder import Recorder
from .summary import RunFacts, build_summary

STOP_GRACE_S = 3.0
KEEP_FINISHED = 3  # finished handles kept in the registry, for pages that were watching them
_active: dict[str, RunHandle] = {}
_active_lock = threading.Lock()


class DeviceBusy(EdgeprofError):
    """Another run holds the device; ``holder_id`` is its run id (None when the lock file names nobody)."""

    exit_code = 1
    holder_id: str | None = None


class DeviceLock(HolderLock):
    """One run at a time per device, across processes: an flock on ``device.lock`` in the data directory."""

    def __init__(self, path: Path | None = None):
        super().__init__(path or paths.data_dir() / "device.lock", DeviceBusy, "run")


@contextlib.contextmanager
def device_work(what: str) -> Iterator[None]:
    """Hold the device for heavy work that is not a run (``what``: "quantizing digits-cnn to int8-static"), so it
    never overlaps a run on show and two of them never overlap each other. Raises ``DeviceBusy`` (one sentence) when
    a run or other work holds it; a run started meanwhile is refused the same way, naming this work."""
    lock = DeviceLock()
    lock.acquire(f"{WORK_PREFIX}{what}")
    try:
        yield
    finally:
        lock.release()


def software_versions(backend: dict | None = None) -> dict:
    out = {"edgeprof": __version__, "python": platform.python_version(), "numpy": np.__version__}
    if backend:
        out[backend.get("name", "runtime")] = backend.get("version")
    return out


class RunHandle:
    """A run in progress or finished. Thread-safe; cheap to poll from many browser sessions.

    ``status`` starting | running | then a final one (config.STATUSES); ``phase`` preparing | first | warmup |
    steady; ``result`` the summary once finished; ``notes`` plain-word notes (quantizing, guesses made, delays).
    """

    def __init__(self, cfg: RunConfig, store: Store | str | Path | None = None, *, study_id: str | None = None,
                 run_id: str | None = None, lock: bool = True, group_id: str | None = None):
        self.config, self.watched = watched_choice(cfg)
        self.run_id = run_id or new_run_id()
        self.study_id = study_id
        self.group_id = group_id
        self.status = "starting"
        self.phase = "preparing"
        self.reason: str | None = None
        self.result: dict | None = None
        self.notes: list[str] = []
        self.backend: dict | None = None
        self.variant = None
        self.device: dict | None = None
        self.device_id: str | None = None
        self.started_ns = time.monotonic_ns()
        self.started_wall = time.time()
        self._store_arg = store
        self._lock = threading.Lock()
        self._recorder = Recorder(self.run_id, None, on_note=self._note, retention=self.config.retention)
        self._stop_requested = threading.Event()
        self._done = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._error_detail: str | None = None
        self._cap: limits.MemoryCap | None = None
        self._priority: priority.CpuPriority | None = None
        self._sampler = None
        self._killed_for: str | None = None
        self._device_lock = DeviceLock() if lock else None
        self._thread = threading.Thread(target=self._monitor, name=f"edgeprof-run-{self.run_id}", daemon=True)
        self._done_msg: Done | None = None
        self._failed: Failed | None = None
        self._loaded: Loaded | None = None
        self._stderr_tail: deque = deque(maxlen=40)
        self._deadline = float("inf")
        self._psi = None  # the run's MemoryPressureSource
        self._profiling = False  # the worker completed its steady phase and profiles operators now
        self._mem_at_done: dict | None = None  # the cap's report before the profile phase
        self._op_profile: dict | None = None
        self._prediction: list | None = None  # the worker's Prediction.top, when the config asked for top_k
        self._exit_ns: int | None = None
        self.memory_marks: list[MemoryMark] = []  # the cgroup's charge at runtime imported, loaded, first, steady
        self._model_path: str | None = None  # the file the worker opens (an external-data copy for --evictable ONNX)

    # -- public ---------------------------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self._done.is_set()

    @property
    def storage_error(self) -> str | None:
        return self._recorder.storage_error

    def stop(self) -> None:
        """Ask the run to stop: SIGTERM to the worker (it finishes the current inference), SIGKILL after a grace."""
        self._stop_requested.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float | None = None) -> dict | None:
        """The result once the run has finished and been stored (None on timeout)."""
        if self._done.wait(timeout):
            self._thread.join(timeout)
            return self.result
        return None

    def count(self) -> int:
        """Latency samples received so far."""
        return self._recorder.n

    def snapshot(self, since_seq: int = 0, telemetry_since_ns: int = 0) -> dict:
        """Live data for charts (``Recorder.snapshot``: samples with seq >= since_seq, telemetry newer than the time
        given) with the run's state: status, phase, reason, notes, memory limit, result."""
        with self._lock:
            state = {"run_id": self.run_id, "status": self.status, "phase": self.phase, "reason": self.reason,
                     "started_ns": self.started_ns, "backend": self.backend, "notes": list(self.notes),
                     "memory_limit_mb": self.config.memory_limit_mb, "result": self.result}
        return {**state, **self._recorder.snapshot(since_seq, telemetry_since_ns)}

    @property
    def telemetry_status(self) -> list[dict]:
        """Each source: name, available, reason, and for a source that stopped mid-run ``stopped_s`` (seconds after
        the run started) and ``stopped_ns`` (the samples' clock). Live while the run goes on, final once it ended."""
        sampler = self._sampler
        if sampler is None:
            return []
        out = []
        for st in sampler.status():
            doc = {"name": st.name, "available": st.available, "reason": st.reason}
            if st.stopped_ns is not None:
                doc["stopped_s"] = round((st.stopped_ns - self.started_ns) / 1e9, 3)
                doc["stopped_ns"] = st.stopped_ns
            out.append(doc)
        return out

    # -- start ----------------------------------------------------------------------------------------------------
    def start(self) -> RunHandle:
        if self._device_lock is not None:
            self._device_lock.acquire(self.run_id)
        with _active_lock:
            _active[self.run_id] = self
        self._thread.start()
        return self

    # -- the monitor thread -----------------------------------------------------------------------------------------
    def _monitor(self) -> None:
        sampler = None
        writer_stop = threading.Event()
        writer = None
        try:
            store = self._open_store()
            self._prepare(store)
            writer = threading.Thread(target=self._recorder.writer, args=(writer_stop,), daemon=True)
            writer.start()
            self._priority.join_process()
            sampler = self._start_sampler()
            self._spawn()
            sampler.set_worker_pid(self._proc.pid)
            self._pump()
        except EdgeprofError as exc:
            self._error_detail = exc.detail or None  # e.g. a quantizer's traceback from the isolated child
            self._set_status("failed", str(exc))
        except Exception as exc:  # a bug here must still end the run with a status, never a hung page
            self._set_status("failed", f"unexpected {type(exc).__name__}: {exc}")
        finally:
            if sampler is not None:
                sampler.stop()
            self._reap()
            writer_stop.set()
            if writer is not None:
                writer.join()
            self._finish()

    def _open_store(self) -> Store:
        arg = self._store_arg
        store = arg if isinstance(arg, Store) else Store(Path(arg) if arg else paths.default_db())
        self._recorder.store = store
        return store

    def _prepare(self, store: Store) -> None:
        from ..models.catalog import resolve_variant
        from ..telemetry import static_info

        cfg = self.config
        from ..device import identity

        self.device = {**static_info(), **identity()._asdict()}
        self.device_id = store.upsert_device(self.device)
        meta = {"name": cfg.model, "precision": cfg.precision, "runtime": cfg.runtime}
        try:
            variant = resolve_variant(cfg.model, cfg.precision, cfg.runtime, progress=self._note,
                                      shapes=dict(cfg.input_shapes), fills=dict(cfg.input_fills), data=cfg.data,
                                      keep_fp32=cfg.keep_fp32)
        except EdgeprofError:
            store.insert_run(self.run_id, self.device_id, cfg.to_dict(), software_versions(), meta,
                             study_id=self.study_id, owner_pid=os.getpid(), owner_host=platform.node(),
                         group_id=self.group_id)
            raise
        self.variant = variant
        if cfg.keep_fp32:
            self._note(f"int8-static with {len(cfg.keep_fp32)} operator{'s' if len(cfg.keep_fp32) > 1 else ''} kept "
                       f"in fp32: {', '.join(cfg.keep_fp32)} (a mix of `edgeprof doctor`)")
        backend, options = registry.for_config(variant.format, cfg)
        meta = {"name": variant.model or cfg.model, "precision": variant.precision, "runtime": variant.format,
                "path": str(variant.path), "sha256": variant.sha256, "size_bytes": variant.size_bytes,
                "backend": backend, "backend_options": options}
        store.insert_run(self.run_id, self.device_id, cfg.to_dict(), software_versions(), meta,
                         study_id=self.study_id, owner_pid=os.getpid(), owner_host=platform.node(),
                         group_id=self.group_id)
        self._model_path = str(variant.path)
        if cfg.evictable and variant.format == "onnx":  # weights in a mapped file of their own (models.external)
            from ..models.external import external_data_copy

            path, note = external_data_copy(variant.path)
            self._model_path = str(path)
            self._note(note)
        self._cap = limits.create(cfg.memory_limit_mb, self.run_id, swap=cfg.swap, psi=True)
        self._priority = priority.create(self.run_id, self._cap,
                                         factor=priority.weight_factor(watched=self.watched is not None))

    def _note(self, message: str) -> None:
        with self._lock:
            self.notes.append(message)

    def _start_sampler(self):
        from ..telemetry import MemoryPressureSource, Sampler, default_sources

        sources = default_sources()
        cap = self._cap
        if cap is not None and cap.path is not None:
            sources.append(_cgroup_source(cap))
        if cap is not None:
            pressure, stat = cap.pressure_path(), cap.stat_path()
            self._psi = MemoryPressureSource(str(pressure) if pressure else None, str(stat) if stat else None,
                                             cap.mechanism.kind)
            sources.append(self._psi)
        self._sampler = Sampler(sources, hz=self.config.sample_hz, sink=self._recorder.add_telemetry).start()
        return self._sampler

    def _spawn(self) -> None:
        cfg, variant, cap = self.config, self.variant, self._cap
        backend, options = registry.for_config(variant.format, cfg)
        spec = WorkerSpec(
            model_path=self._model_path, runtime=variant.format, precision=variant.precision, threads=cfg.threads,
            backend=backend, backend_options=options, backend_module=registry.get(backend).module if backend else None,
            warmup=cfg.warmup,
            min_duration_s=cfg.min_duration_s, min_iterations=cfg.min_iterations,
            exact_iterations=cfg.iterations is not None and cfg.duration_s is None,
            rlimit_as_bytes=cap.rlimit_bytes(), input_shapes=dict(cfg.input_shapes), input_fills=dict(cfg.input_fills),
            profile_ops=cfg.profile_ops, evictable=cfg.evictable,
            memory_cgroup=str(cap.path) if cap.stat_path() is not None else None, memory_cgroup_kind=cap.mechanism.kind,
            input_file=cfg.input_file, top_k=cfg.top_k,
        )
        read_fd, write_fd = os.pipe()
        from multiprocessing.connection import Connection

        self._conn = Connection(read_fd, writable=False)
        prio = self._priority
        cmd = [*limits.launcher(cap.procs_file(), prio.procs_file()), sys.executable, "-m", "edgeprof.worker.child",
               str(write_fd)]
        env = dict(os.environ)
        pythonpath = paths.worker_pythonpath(env)
        if pythonpath is not None:
            env["PYTHONPATH"] = pythonpath
        env.setdefault("OMP_NUM_THREADS", str(cfg.threads))
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      pass_fds=(write_fd,), env=env, start_new_session=True)
        os.close(write_fd)
        prio.apply(self._proc.pid)  # niceness, where no cgroup weights it: before the spec, so before anything is timed
        why = cap.join_psi(self._proc.pid)  # PSI only: joining a few ms after the start misses nothing measured
        if why and self._psi is not None:
            self._psi.fall_back(why)
        threading.Thread(target=self._read_stderr, daemon=True).start()
        try:
            self._proc.stdin.write(pickle.dumps(spec))
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        self._set_status("running", None)
        self._deadline = time.monotonic() + cfg.effective_timeout_s()

    def _read_stderr(self) -> None:
        for line in iter(self._proc.stderr.readline, b""):
            self._stderr_tail.append(line.decode(errors="replace").rstrip())

    def _pump(self) -> None:
        """Receive messages until the worker exits. Stop (SIGTERM, then SIGKILL after a grace) and the wall-clock
        timeout are checked on every pass, also while batches keep arriving."""
        conn, proc = self._conn, self._proc
        stop_sent_at = None
        eof = False
        while True:
            if eof:
                time.sleep(0.05)
            else:
                try:
                    if conn.poll(0.2):
                        self._on_message(conn.recv())
                except (EOFError, OSError):
                    eof = True  # the worker closed its end: it has exited or is exiting
            if proc.poll() is not None:
                self._exit_ns = time.monotonic_ns()
                with contextlib.suppress(EOFError, OSError):
                    while not eof and conn.poll(0):
                        self._on_message(conn.recv())
                break
            now = time.monotonic()
            if self._stop_requested.is_set():
                if stop_sent_at is None:
                    stop_sent_at = now
                    self._killed_for = self._killed_for or "stop"
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGTERM)
                elif now - stop_sent_at > STOP_GRACE_S:
                    self._kill()
            if now > self._deadline and self._killed_for is None:
                self._killed_for = "timeout"
                self._kill()
        with contextlib.suppress(OSError):
            conn.close()

    def _kill(self) -> None:
        if self._cap is not None and self._cap.path is not None:
            self._cap.kill_all()
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()

    def _on_message(self, msg) -> None:
        if isinstance(msg, Batch):
            self._recorder.add_batch(msg)
        elif isinstance(msg, Phase):
            with self._lock:
                self.phase = msg.phase
            self._recorder.add_phase(msg.phase, msg.t_ns, msg.reason)
        elif isinstance(msg, Loaded):
            with self._lock:
                self._loaded = msg
                self.backend = msg.runtime
                self.notes.extend(msg.notes)
            self._recorder.add_phase("load", msg.t_ns - msg.load_ns, "")
        elif isinstance(msg, Done):
            self._done_msg = msg
            if self.config.profile_ops and msg.reason == "completed":
                self._profiling = True
                if self._cap is not None:
                    self._mem_at_done = self._cap.report()
                with contextlib.suppress(ProcessLookupError):
                    self._proc.send_signal(signal.SIGUSR1)  # the peak is read: the worker may profile now
        elif isinstance(msg, MemoryMark):
            self.memory_marks.append(msg)
        elif isinstance(msg, OpProfile):
            self._op_profile = msg.profile
        elif isinstance(msg, Prediction):
            self._prediction = list(msg.top)
        elif isinstance(msg, Failed):
            self._failed = msg

    def _set_status(self, status: str, reason: str | None) -> None:
        with self._lock:
            self.status = status
            if reason is not None:
                self.reason = reason

    def _reap(self) -> None:
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                self._kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    # -- the end ----------------------------------------------------------------------------------------------------
    def _decide_status(self, mem: dict) -> tuple[str, str | None]:
        if self.status == "failed":
            return "failed", self.reason
        proc = self._proc
        rc = proc.returncode if proc is not None else None
        stopped = self._stop_requested.is_set()
        if self._done_msg is not None:  # a stop, kill or timeout in the profile phase ends only the profile
            if self._done_msg.reason == "stopped" or (stopped and not self._profiling):
                return "stopped", "stopped by the user"
            return "ok", None
        if (mem.get("oom_kill_count") or 0) > 0:
            return "oom_killed", oom_reason(mem)
        if self._killed_for == "timeout":
            return "timed_out", (f"the run exceeded its {self.config.effective_timeout_s():g} s wall-clock timeout "
                                 "(a tight memory cap can make a model thrash on evicted pages); raise --timeout or the limit.")
        if stopped:  # also a worker that died of the SIGTERM before it could install its handler
            return "stopped", "stopped by the user"
        if self._failed is not None:
            f = self._failed
            if f.kind == "memory" and mem.get("mechanism") == "rlimit_as":
                # the worker's own text is about a failed import or mmap (numpy's import advice, a library that
                # could not map): unrelated to the model, so it goes to the details only
                return "failed", (f"out of memory during {f.phase or 'start-up'}: the worker could not get address "
                                  f"space under the {mem.get('requested_mb'):g} MB RLIMIT_AS limit. An address-space "
                                  "limit counts reserved, not resident, memory: runtimes reserve far more than they "
                                  "touch, so raise it well above the model's footprint.")
            if f.kind == "memory":
                limit = (f" under the {mem.get('requested_mb'):g} MB {mem.get('mechanism')} limit"
                         if mem.get("requested_mb") else "")
                return "failed", f"out of memory{limit} during {f.phase}: {f.message.splitlines()[0]}"
            return "failed", f.message
        if rc is not None and rc < 0:
            name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
            return "crashed", f"the worker died from {name}" + self._stderr_hint()
        return "crashed", f"the worker exited with code {rc} without a result" + self._stderr_hint()

    def _stderr_hint(self) -> str:
        tail = [line for line in self._stderr_tail if line.strip()]
        return f" (last output: {tail[-1][:200]})" if tail else ""

    def _facts(self, status: str, reason: str | None, mem: dict) -> RunFacts:
        """The plain facts of this run for ``build_summary`` (the samples are read back from the store as needed)."""
        notes = list(self.notes)
        lat, tel, phases = self._recorder.samples(notes)
        variant = self.variant
        loaded, done, failed = self._loaded, self._done_msg, self._failed
        return RunFacts(
            run_id=self.run_id, config=self.config, status=status, reason=reason, started_ns=self.started_ns,
            latency=lat, telemetry=tel, phases=phases, memory=mem,
            variant=None if variant is None else {"model": variant.model, "precision": variant.precision,
                                                  "format": variant.format, "path": str(variant.path),
                                                  "size_bytes": variant.size_bytes,
                                                  "quantization": variant.quantization},
            backend=self.backend, load_ns=loaded.load_ns if loaded else None,
            heavy_modules=list(loaded.heavy_modules) if loaded else None,
            worker_max_rss_mb=done.max_rss_mb if done else None, worker_major_faults=done.major_faults if done else None,
            error_detail=failed.detail if failed else self._error_detail, device=self.device,
            telemetry_sources=self.telemetry_status, notes=notes, fp32_p50_ms=self._fp32_p50(),
            cpu_priority=self._priority_report(),
            op_profile=self._profile_result(mem) if self.config.profile_ops else None,
            memory_pressure=self._psi.describe() if self._psi is not None else
            {"unavailable": "the run ended before its worker started"},
            worker_exit_ns=self._exit_ns, prediction=self._prediction,
        )

    def _priority_report(self) -> dict | None:
        report = self._priority.report() if self._priority is not None else None
        if report is not None and self.watched is not None:
            report = {**report, "watched": {**self.watched, "factor": self._priority.factor}}
        return report

    def _profile_result(self, mem: dict) -> dict:
        """The worker's profile, or why there is none (the phase never started, or the worker died in it)."""
        if self._op_profile is not None:
            return self._op_profile
        if self._done_msg is None or self._done_msg.reason != "completed":
            return {"unavailable": "the run did not complete its steady phase, so no profile phase ran"}
        final = mem.get("profile_phase") or {}
        if (final.get("oom_kill_count") or 0) > (mem.get("oom_kill_count") or 0):
            return {"unavailable": "the worker was OOM-killed while profiling (the measured run was complete): "
                                   + oom_reason(mem)}
        if self._killed_for == "timeout":
            return {"unavailable": "the run's wall-clock timeout ended the profile phase"}
        if self._stop_requested.is_set():
            return {"unavailable": "stopped during the profile phase"}
        rc = self._proc.returncode if self._proc is not None else None
        return {"unavailable": f"the worker ended during the profile phase (exit status {rc}){self._stderr_hint()}"}

    def _fp32_p50(self) -> float | None:
        """p50 of the latest ok FP32 run of this model, runtime and threads on this device: the INT8 flag's reference."""
        variant, store = self.variant, self._recorder.store
        if variant is None or store is None or not str(variant.precision).startswith("int8"):
            return None
        try:
            ref = store.ok_runs(variant.model or self.config.model, "fp32", variant.format, self.config.threads,
                                device_id=self.device_id)
        except EdgeprofError:
            return None
        ref = ref.dropna(subset=["p50_ms"])
        return None if ref.empty else float(ref.iloc[0]["p50_ms"])

    def _finish(self) -> None:
        try:
            mem = self._cap.report() if self._cap is not None else {
                "requested_mb": self.config.memory_limit_mb, "mechanism": "none", "peak_charged_mb": None,
                "oom_kill_count": None, "major_faults": None, "swap_peak_mb": None, "reason": "not started"}
            if self._mem_at_done is not None:  # the measured run's memory; the profile phase's apart
                mem = {**self._mem_at_done, "profile_phase": {k: mem.get(k) for k in
                                                              ("peak_charged_mb", "oom_kill_count", "major_faults")}}
            status, reason = self._decide_status(mem)
            recorder, store = self._recorder, self._recorder.store
            recorder.flush(final=True)
            if store is not None and recorder.unsaved() and status == "ok":
                status, reason = "failed", unstored_reason(recorder.unsaved(), recorder.storage_error)
            self.result = build_summary(self._facts(status, reason, mem))
            recorder.release()
            if store is not None:
                self._store_result(store, status, reason)
            self._set_status(status, reason)
        except Exception as exc:  # never leave a run without a status, in memory or (where it can be) stored
            self._set_status("failed", f"could not finish the run: {type(exc).__name__}: {exc}")
            if self.result is None:
                self.result = {"run_id": self.run_id, "status": "failed", "error": self.reason}
            if self._recorder.store is not None:
                with contextlib.suppress(EdgeprofError):
                    self._recorder.store.finish_run(self.run_id, "failed", self.reason, self.result)
        finally:
            if self._priority is not None:
                with contextlib.suppress(OSError):
                    self._priority.remove()
            if self._cap is not None:
                with contextlib.suppress(OSError):
                    self._cap.remove()
            if self._device_lock is not None:
                self._device_lock.release()
            self._done.set()
            _prune_finished()

    def _store_result(self, store: Store, status: str, reason: str | None) -> None:
        """The final status and summary, retried (the database may be briefly held by another process); what could
        not be stored is said in the result, and the CLI exits 1 on it."""
        recorder = self._recorder
        unsaved = recorder.unsaved()
        error = recorder.storage_error
        for attempt in range(3):
            try:
                store.finish_run(self.run_id, status, reason, self.result)
                break
            except EdgeprofError as exc:
                error = str(exc)
                if attempt < 2:
                    time.sleep(1)
        if unsaved and error is None:
            error = "some samples could not be written"
        if error:
            self.result["storage_error"] = f"{unsaved} samples and possibly the summary were not stored: {error}"


def oom_reason(mem: dict) -> str:
    """Why the kernel OOM-killed a worker, from its cap's report: its own cap, an enclosing cgroup's limit (a run with
    no cap), or the whole device out of memory (no limit anywhere: the kernel's OOM killer chose the worker)."""
    if mem.get("requested_mb"):
        return (f"the worker was OOM-killed: it needed more than the {mem['requested_mb']:g} MB memory limit "
                f"({mem.get('mechanism')}). Raise the limit to run this model.")
    outer = mem.get("enclosing_limit_mb")
    if outer:
        return (f"the kernel OOM-killed the worker: this run had no memory limit of its own, and the {outer:g} MB "
                "limit of the cgroup that edgeprof runs in was reached. Set a memory limit below it to measure "
                "this model.")
    return ("the kernel OOM-killed the worker: this run had no memory limit and the device ran out of memory, so "
            "the kernel chose the worker to free it. Set a memory limit so that a run cannot take the device's memory.")


def unstored_reason(unsaved: int, error: str | None) -> str:
    """The status reason of a run that measured but whose samples could not all be stored: not ``ok``, whatever its
    summary says, because its latency and telemetry rows are missing."""
    return (f"measured, but {unsaved:,} of its samples could not be stored, so its charts and numbers are incomplete: "
            f"{error or 'the database refused the writes'}")


def _cgroup_source(cap: limits.MemoryCap):
    """Telemetry from the run's own cgroup: the memory charged against the cap, live."""
    from ..telemetry.base import Source

    class CgroupSource(Source):
        name = "cgroup"

        def _probe(self) -> tuple[bool, str]:
            return (cap.current_bytes() is not None, f"{cap.kind} at {cap.path}")

        def read(self, worker_pid: int | None = None) -> list[tuple[str, float, str]]:
            cur = cap.current_bytes()
            return [] if cur is None else [("mem.charged_mb", cur / 2**20, "MB")]

    return CgroupSource()


def check_request(cfg: RunConfig) -> None:
    """Refuse, before anything is stored, what is a usage error rather than a result: a file run with another
    runtime, a backend or backend option that does not exist or cannot read the file, a precision that a user's file
    cannot be run as, --shape/--fill that do not fit the model's inputs.

    A model that cannot be read is not refused here: that is recorded as a failed run (the run says why).
    """
    from ..errors import ModelError
    from ..models.catalog import model_inputs, resolve_variant

    if cfg.data is not None:
        from ..models.data import check_path

        check_path(cfg.data)
    try:
        variant = resolve_variant(cfg.model, cfg.precision, cfg.runtime, build=False, keep_fp32=cfg.keep_fp32)
    except ModelError:
        return
    registry.for_config(variant.format, cfg)  # an unknown backend, option or value; a backend for another format
    if cfg.input_shapes or cfg.input_fills:
        from ..runtimes.inputs import plan_feeds

        try:
            plan_feeds(model_inputs(variant), cfg.input_shapes, cfg.input_fills, resizable=variant.format == "tflite")
        except ModelError:
            return  # a file that cannot be read, or an input type edgeprof cannot feed: the run records that


def device_cores() -> int:
    """The cores this process may run on (its affinity, which a container or ``taskset`` narrows), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def watched_choice(cfg: RunConfig, cores: int | None = None) -> tuple[RunConfig, dict | None]:
    """What a run watched in a browser on the device itself (``cfg.watched``) gives up so that the browser can draw:
    on a board of at most ``priority.WATCHED_MAX_CORES`` cores, one core (``threads`` at most cores - 1, never below
    1) and the smaller ``priority.WATCHED_FACTOR``. Returns the config the run uses and the choice recorded in its
    ``cpu_priority.watched`` (``{"local_viewer": True, "cores", "threads", "requested_threads"}``; the runner adds
    the ``factor`` it got), or ``(cfg, None)`` when nothing changes (not watched on the device, or a bigger board).
    Why: on 2 cores under load, the Run page drew no chart during whole runs (issue 24; bench/bench_scale.py)."""
    cores = device_cores() if cores is None else cores
    if not cfg.watched or cores > priority.WATCHED_MAX_CORES:
        return cfg, None
    threads = min(cfg.threads, max(1, cores - 1))
    choice = {"local_viewer": True, "cores": cores, "threads": threads, "requested_threads": cfg.threads}
    return (cfg.replace(threads=threads) if threads != cfg.threads else cfg), choice


def start_run(cfg: RunConfig, store: Store | str | Path | None = None, **kwargs) -> RunHandle:
    """Start a run in the background and return its handle. ``store`` is a Store, a database path, or None for the
    default database. Raises DeviceBusy if another run holds the device, UsageError (nothing stored) for a request
    that cannot be a run (:func:`check_request`)."""
    if not isinstance(cfg, RunConfig):
        raise UsageError("start_run needs a RunConfig.")
    check_request(cfg)
    heap.tune()
    return RunHandle(cfg, store, **kwargs).start()


def _prune_finished() -> None:
    """Forget all but the newest KEEP_FINISHED finished runs: their data is in the database, and a server that
    runs studies all day must not grow with every run."""
    with _active_lock:
        done = [rid for rid, h in _active.items() if h.finished]
        for rid in done[:-KEEP_FINISHED] if KEEP_FINISHED else done:
            del _active[rid]
    heap.trim()  # glibc keeps what the run's threads freed in their arenas (seen: +60 MB/min in bench_load)


def active_runs() -> list[RunHandle]:
    with _active_lock:
        return [h for h in _active.values() if not h.finished]


def get_handle(run_id: str) -> RunHandle | None:
    with _active_lock:
        return _active.get(run_id)
