"""The parent side of a run: resolve the model, cap memory, spawn the worker, sample telemetry, record, summarise.

``start_run`` returns a ``RunHandle`` at once; all waiting happens in the handle's monitor thread, so neither a page
nor the CLI ever blocks on the worker. One run at a time per device: a lock file in the data directory (flock, so a
crashed owner releases it) refuses a second start from any process with a message naming the busy run.

A run's rows reach DuckDB in batches, every five seconds, through short-lived connections (see store.py); the live view
(``snapshot``) is served from memory, so a browser sees points well under a second after the worker sent them.
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
from array import array
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__, heap, paths
from .config import RunConfig
from .errors import EdgeprofError, UsageError
from .locks import HolderLock
from .store import new_run_id
from .worker import limits
from .worker.messages import Batch, Done, Failed, Loaded, Phase, WorkerSpec

FLUSH_INTERVAL_S = 5.0  # each flush costs ~25 ms of CPU the measured worker competes for
SNAPSHOT_MAX = 200_000  # latency samples handed to a session that attaches late
STOP_GRACE_S = 3.0
_active: dict[str, RunHandle] = {}
_active_lock = threading.Lock()


class DeviceBusy(EdgeprofError):
    exit_code = 1


class DeviceLock(HolderLock):
    """One run at a time per device, across processes: an flock on ``device.lock`` in the data directory."""

    def __init__(self, path: Path | None = None):
        super().__init__(path or paths.data_dir() / "device.lock", DeviceBusy, "run")


def software_versions(runtime_info: dict | None = None) -> dict:
    out = {"edgeprof": __version__, "python": platform.python_version(), "numpy": np.__version__}
    if runtime_info:
        out[runtime_info.get("name", "runtime")] = runtime_info.get("version")
    return out


PHASES = ("first", "warmup", "steady")
PHASE_CODES = {name: i for i, name in enumerate(PHASES)}
KEEP_FINISHED = 3  # finished handles kept in the registry, for pages that were watching them


@dataclass
class _Live:
    """What the monitor thread accumulates; read by snapshot() under the handle's lock.

    Latency samples live in typed arrays (17 bytes a sample, not ~100 as Python ints in lists): a digits-cnn run makes
    15,000 samples a second, and a server keeps a few finished runs for the pages that watched them. Sequence numbers
    are not stored: they are contiguous from 0, so sample n sits at index n - base.
    """

    t_ns: array = field(default_factory=lambda: array("q"))
    latency_ns: array = field(default_factory=lambda: array("q"))
    phase: array = field(default_factory=lambda: array("b"))  # PHASE_CODES
    telemetry: deque = field(default_factory=lambda: deque(maxlen=100_000))
    phases: list = field(default_factory=list)  # (phase, t_ns, reason)
    base: int = 0  # samples dropped from the front once stored: memory holds seq >= base
    stored: int = 0  # samples seq < stored are in the database

    @property
    def n(self) -> int:
        return self.base + len(self.t_ns)

    def trim(self) -> None:
        """Keep the newest SNAPSHOT_MAX samples and every one not yet stored; cut in big steps (amortized O(1)).
        A long run of a fast model makes ~45,000 samples a second (17 B each): without this a 10-min run holds
        460 MB in the server, and the summary reads the dropped ones back from the database."""
        if len(self.t_ns) <= 2 * SNAPSHOT_MAX:
            return
        cut = min(self.stored, self.n - SNAPSHOT_MAX) - self.base
        if cut > 0:
            del self.t_ns[:cut], self.latency_ns[:cut], self.phase[:cut]
            self.base += cut


class RunHandle:
    """A run in progress or finished. Thread-safe; cheap to poll from many browser sessions."""

    def __init__(self, cfg: RunConfig, db: Path | str | None, *, study_id: str | None = None, run_id: str | None = None,
                 store=None, lock: bool = True):
        self.config = cfg
        self.run_id = run_id or new_run_id()
        self.db = Path(db) if db else paths.default_db()
        self.study_id = study_id
        self.status = "starting"
        self.phase = "preparing"
        self.reason: str | None = None
        self.result: dict | None = None
        self.notes: list[str] = []
        self.storage_error: str | None = None
        self.runtime: dict | None = None
        self.variant = None
        self.started_ns = time.monotonic_ns()
        self.started_wall = time.time()
        self._lock = threading.Lock()
        self._live = _Live()
        self._pending_lat: list[Batch] = []  # received, not yet stored: the worker's compact batches as they came
        self._pending_tel: list = []
        self._stop_requested = threading.Event()
        self._done = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._cap: limits.MemoryCap | None = None
        self._killed_for: str | None = None
        self._store = store
        self._device_lock = DeviceLock() if lock else None
        self._thread = threading.Thread(target=self._monitor, name=f"edgeprof-run-{self.run_id}", daemon=True)
        self._done_msg: Done | None = None
        self._failed: Failed | None = None
        self._loaded: Loaded | None = None
        self._stderr_tail: deque = deque(maxlen=40)

    # -- public ---------------------------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self._done.is_set()

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

    def snapshot(self, since_seq: int = 0, telemetry_since_ns: int = 0) -> dict:
        """Live data for charts: latency samples with seq >= since_seq and telemetry rows newer than the given time.

        ``seq`` is a range, ``t_ns`` / ``latency_ns`` int64 arrays and ``phase_code`` int8 codes (PHASE_CODES).
        """
        with self._lock:
            live = self._live
            n = live.n
            idx = max(min(since_seq, n), n - SNAPSHOT_MAX, live.base)
            cut = idx - live.base
            t_ns = np.frombuffer(live.t_ns[cut:], dtype=np.int64)
            latency_ns = np.frombuffer(live.latency_ns[cut:], dtype=np.int64)
            phase_code = np.frombuffer(live.phase[cut:], dtype=np.int8)
            tel = []
            for row in reversed(live.telemetry):  # newest first: stop at the first row the caller already has
                if row[0] <= telemetry_since_ns:
                    break
                tel.append(row)
            tel.reverse()
            return {
                "run_id": self.run_id, "status": self.status, "phase": self.phase, "reason": self.reason,
                "seq": range(idx, n), "t_ns": t_ns, "latency_ns": latency_ns, "phase_code": phase_code,
                "telemetry": tel, "phases": list(live.phases),
                "started_ns": self.started_ns, "runtime": self.runtime, "notes": list(self.notes),
                "memory_limit_mb": self.config.memory_limit_mb, "result": self.result,
            }

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
            writer = threading.Thread(target=self._writer, args=(store, writer_stop), daemon=True)
            writer.start()
            sampler = self._start_sampler()
            self._spawn()
            if sampler is not None:
                sampler.set_worker_pid(self._proc.pid)
            self._pump()
        except EdgeprofError as exc:
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

    def _open_store(self):
        if self._store is None:
            from .store import Store

            self._store = Store(self.db)
        return self._store

    def _prepare(self, store) -> None:
        from .models.catalog import resolve_variant
        from .telemetry import static_info

        cfg = self.config
        self.device = static_info()
        self.device_id = store.upsert_device(self.device)
        meta = {"name": cfg.model, "precision": cfg.precision, "runtime": cfg.runtime}
        try:
            variant = resolve_variant(cfg.model, cfg.precision, cfg.runtime, progress=self._progress)
        except EdgeprofError as exc:
            store.insert_run(self.run_id, self.device_id, cfg.to_dict(), software_versions(), meta,
                             study_id=self.study_id, owner_pid=os.getpid(), owner_host=platform.node())
            raise exc
        self.variant = variant
        meta = {"name": getattr(variant, "model", None) or cfg.model, "precision": variant.precision,
                "runtime": variant.format, "path": str(variant.path), "sha256": variant.sha256,
                "size_bytes": variant.size_bytes}
        store.insert_run(self.run_id, self.device_id, cfg.to_dict(), software_versions(), meta,
                         study_id=self.study_id, owner_pid=os.getpid(), owner_host=platform.node())
        self._cap = limits.create(cfg.memory_limit_mb, self.run_id, swap=cfg.swap)

    def _progress(self, message: str) -> None:
        with self._lock:
            self.notes.append(message)

    def _start_sampler(self):
        from .telemetry import Sampler, default_sources

        sources = default_sources()
        if self._cap is not None and self._cap.path is not None:
            sources.append(_cgroup_source(self._cap))
        sampler = Sampler(sources, hz=self.config.sample_hz, sink=self._on_telemetry)
        sampler.start()
        self._sampler = sampler
        return sampler

    @property
    def telemetry_status(self) -> list[dict]:
        """Each source: name, available, reason, and ``stopped_s`` (seconds after the run started) for a source
        that stopped mid-run. Live while the run goes on; final once the sampler has stopped."""
        sampler = getattr(self, "_sampler", None)
        if sampler is None:
            return []
        out = []
        for st in sampler.status():
            doc = {"name": st.name, "available": st.available, "reason": st.reason}
            if st.stopped_ns is not None:
                doc["stopped_s"] = round((st.stopped_ns - self.started_ns) / 1e9, 3)
                doc["stopped_ns"] = st.stopped_ns  # on the samples' clock (time.monotonic_ns)
            out.append(doc)
        return out

    def _spawn(self) -> None:
        cfg, variant, cap = self.config, self.variant, self._cap
        spec = WorkerSpec(
            model_path=str(variant.path), runtime=variant.format, precision=variant.precision, threads=cfg.threads,
            interpreter=cfg.tflite_interpreter, provider=cfg.execution_provider, warmup=cfg.warmup,
            min_duration_s=cfg.min_duration_s, min_iterations=cfg.min_iterations,
            exact_iterations=cfg.iterations is not None and cfg.duration_s is None,
            rlimit_as_bytes=cap.rlimit_bytes(), input_shapes=dict(cfg.input_shapes), input_fills=dict(cfg.input_fills),
        )
        read_fd, write_fd = os.pipe()
        from multiprocessing.connection import Connection

        self._conn = Connection(read_fd, writable=False)
        cmd = [*cap.launcher(), sys.executable, "-m", "edgeprof.worker.child", str(write_fd)]
        env = dict(os.environ)
        pythonpath = paths.worker_pythonpath(env)
        if pythonpath is not None:
            env["PYTHONPATH"] = pythonpath
        env.setdefault("OMP_NUM_THREADS", str(cfg.threads))
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      pass_fds=(write_fd,), env=env, start_new_session=True)
        os.close(write_fd)
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
            with self._lock:
                live = self._live
                live.t_ns.extend(msg.t_ns)
                live.latency_ns.extend(msg.latency_ns)
                live.phase.frombytes(bytes((PHASE_CODES[msg.phase],)) * len(msg.t_ns))
                live.trim()
                self._pending_lat.append(msg)
        elif isinstance(msg, Phase):
            with self._lock:
                self.phase = msg.phase
                self._live.phases.append((msg.phase, msg.t_ns, msg.reason))
        elif isinstance(msg, Loaded):
            with self._lock:
                self._loaded = msg
                self.runtime = msg.runtime
                self.notes.extend(msg.notes)
                self._live.phases.append(("load", msg.t_ns - msg.load_ns, ""))
        elif isinstance(msg, Done):
            self._done_msg = msg
        elif isinstance(msg, Failed):
            self._failed = msg

    def _on_telemetry(self, rows: list) -> None:
        with self._lock:
            self._live.telemetry.extend(rows)
            self._pending_tel.extend(rows)

    def _writer(self, store, stop: threading.Event) -> None:
        while not stop.wait(FLUSH_INTERVAL_S):
            self._flush(store)

    def _flush(self, store) -> None:
        with self._lock:
            lat, self._pending_lat = self._pending_lat, []
            tel, self._pending_tel = self._pending_tel, []
        try:
            if lat or tel:
                store.append_samples(self.run_id, _latency_frame(lat) if lat else None, tel or None)
        except EdgeprofError as exc:  # keep the rows for the next try; the database may be busy or full
            with self._lock:
                self._pending_lat[:0] = lat
                self._pending_tel[:0] = tel
                if self.storage_error is None:
                    self.notes.append(f"writes delayed: {exc}")
                self.storage_error = str(exc)
            return
        self.storage_error = None
        if lat:
            with self._lock:
                self._live.stored = max(self._live.stored, lat[-1].seq0 + len(lat[-1].t_ns))

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

    def _all_latency(self, store, base: int, lat: tuple) -> tuple:
        """Every latency sample for the summary: the ones memory dropped (seq < base) come back from the database.
        With every sample stored (the usual case) the whole run is read back in one piece, no concatenated copy."""
        if not base:
            return lat
        whole = not self._pending_lat
        try:
            older = store.latency_arrays(self.run_id, below_seq=None if whole else base)
        except EdgeprofError as exc:
            self.notes.append(f"summary over the newest {len(lat[0]):,} samples only: the older {base:,} could not be "
                              f"read back ({exc})")
            return lat
        if whole and len(older[0]) == base + len(lat[0]):
            return older
        older = tuple(a[:base] for a in older)
        return tuple(np.concatenate([a, b]) for a, b in zip(older, lat, strict=True))

    def _all_telemetry(self, store, tel: list) -> list:
        """The whole run's telemetry for the summary: memory keeps only the newest rows (a long run outgrows it)."""
        if store is None or self.storage_error or len(tel) < (self._live.telemetry.maxlen or 0):
            return tel
        try:
            df = store.telemetry(self.run_id)
        except EdgeprofError:
            return tel
        return list(df[["t_ns", "source", "metric", "value", "unit"]].itertuples(index=False, name=None))

    def count(self) -> int:
        """Latency samples received so far."""
        with self._lock:
            return self._live.n

    def _decide_status(self, mem: dict) -> tuple[str, str | None]:
        if self.status == "failed":
            return "failed", self.reason
        proc = self._proc
        rc = proc.returncode if proc is not None else None
        stopped = self._stop_requested.is_set()
        if self._done_msg is not None:
            if self._done_msg.reason == "stopped" or stopped:
                return "stopped", "stopped by the user"
            return "ok", None
        if (mem.get("oom_kill_count") or 0) > 0:
            return "oom_killed", (f"the worker was OOM-killed: it needed more than the {mem['requested_mb']:g} MB "
                                  f"memory limit ({mem['mechanism']}). Raise the limit to run this model.")
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

    def _finish(self) -> None:
        from .summary import build_summary

        try:
            mem = self._cap.report() if self._cap is not None else {
                "requested_mb": self.config.memory_limit_mb, "mechanism": "none", "peak_charged_mb": None,
                "oom_kill_count": None, "major_faults": None, "swap_peak_mb": None, "reason": "not started"}
            status, reason = self._decide_status(mem)
            store = self._store
            if store is not None:
                self._flush(store)
            with self._lock:
                live = self._live
                lat = (np.frombuffer(live.t_ns, dtype=np.int64).copy(), np.frombuffer(live.latency_ns, dtype=np.int64).copy(),
                       np.frombuffer(live.phase, dtype=np.int8).copy())
                base = live.base
                tel = list(live.telemetry)
                phases = list(live.phases)
            lat = self._all_latency(store, base, lat)
            tel = self._all_telemetry(store, tel)
            self.result = build_summary(self, status, reason, mem, lat, tel, phases)
            del lat
            with self._lock:
                self._live.trim()  # a finished run kept for the pages keeps only its stored tail
            if store is not None:
                unsaved = sum(len(b.t_ns) for b in self._pending_lat) + len(self._pending_tel)
                for attempt in range(3):
                    try:
                        store.finish_run(self.run_id, status, reason, self.result)
                        break
                    except EdgeprofError as exc:
                        self.storage_error = str(exc)
                        if attempt < 2:
                            time.sleep(1)
                if unsaved and self.storage_error is None:
                    self.storage_error = "some samples could not be written"
                if self.storage_error:
                    self.result["storage_error"] = (f"{unsaved} samples and possibly the summary were not stored: "
                                                    f"{self.storage_error}")
            self._set_status(status, reason)
        except Exception as exc:  # never leave a run without a status in memory
            self._set_status("failed", f"could not finish the run: {type(exc).__name__}: {exc}")
            if self.result is None:
                self.result = {"run_id": self.run_id, "status": "failed", "error": self.reason}
        finally:
            if self._cap is not None:
                with contextlib.suppress(OSError):
                    self._cap.remove()
            if self._device_lock is not None:
                self._device_lock.release()
            self._done.set()
            _prune_finished()


def _latency_frame(batches: list[Batch]) -> pd.DataFrame:
    """Batches as one latency frame of typed columns (17 bytes a sample, phase a Categorical): a flush of a fast
    model holds ~225,000 samples, which as Python tuples cost ~160 bytes each in a long-running server."""
    counts = [len(b.t_ns) for b in batches]
    seq = np.concatenate([np.arange(b.seq0, b.seq0 + k, dtype=np.int64) for b, k in zip(batches, counts, strict=True)])
    t_ns = np.concatenate([np.frombuffer(b.t_ns, dtype=np.int64) for b in batches])
    latency_ns = np.concatenate([np.frombuffer(b.latency_ns, dtype=np.int64) for b in batches])
    codes = np.repeat(np.array([PHASE_CODES[b.phase] for b in batches], dtype=np.int8), counts)
    phase = pd.Categorical.from_codes(codes, categories=list(PHASES))
    return pd.DataFrame({"seq": seq, "t_ns": t_ns, "latency_ns": latency_ns, "phase": phase})


def _cgroup_source(cap: limits.MemoryCap):
    """Telemetry from the run's own cgroup: the memory charged against the cap, live."""
    from .telemetry.base import Source

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
    runtime, a precision that a user's file cannot be run as, --shape/--fill that do not fit the model's inputs.

    A model that cannot be read is not refused here: that is recorded as a failed run (the run says why).
    """
    from .errors import ModelError
    from .models.catalog import model_inputs, resolve_variant

    try:
        variant = resolve_variant(cfg.model, cfg.precision, cfg.runtime, build=False)
    except ModelError:
        return
    if cfg.input_shapes or cfg.input_fills:
        from .runtimes.inputs import plan_feeds

        try:
            specs = model_inputs(variant)
        except ModelError:
            return
        try:
            plan_feeds(specs, cfg.input_shapes, cfg.input_fills, resizable=variant.format == "tflite")
        except ModelError:
            return  # an input type edgeprof cannot feed: the run records that


def start_run(cfg: RunConfig, db: Path | str | None = None, **kwargs) -> RunHandle:
    """Start a run in the background and return its handle. Raises DeviceBusy if another run holds the device,
    UsageError (nothing stored) for a request that cannot be a run (:func:`check_request`)."""
    if not isinstance(cfg, RunConfig):
        raise UsageError("start_run needs a RunConfig.")
    check_request(cfg)
    heap.tune()
    return RunHandle(cfg, db, **kwargs).start()


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
