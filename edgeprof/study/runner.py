"""Studies: a grid of runs (models x precisions x runtimes x memory limits x threads x repetitions), run one cell
after another with a cooldown between cells, resumable after an interruption.

Resuming: every cell has a key (``r0|digits-cnn|fp32|onnx|t2|1.25x``) stored with ``Store.set_cell``. A cell whose
status is final (``FINAL_STATUSES``) is never rerun. A cell left ``running`` by a killed study has its stale run
marked ``interrupted`` (``Store.mark_interrupted``, via ``run.recover``) and is run again.

Relative memory limits ("2x") are multiples of the variant's footprint: the peak memory the kernel charged to an
ok run of the variant under a non-binding cap on this device. A "none" cell runs under such a cap (the device's whole
RAM) where a memory cgroup exists, so it measures the footprint itself; otherwise a stored run is reused or one
calibration run is made (cell key ``calibrate|model|precision|runtime|tN``, outside the grid).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from .. import paths
from ..config import NON_BINDING, RunConfig
from ..errors import EdgeprofError, UsageError
from ..locks import HolderLock
from .config import MemLimit, StudyConfig, input_names, stored_config
from .plan import FAILED_STATUSES, FINAL_STATUSES, Cell, calibration_key, order_limits, plan, variant_order

BUSY_WAIT_S = 300.0  # how long a cell waits for a device held by another run before the study gives up


class StudyBusy(EdgeprofError):
    exit_code = 1


# ------------------------------------------------------------------------------------------------ study lock

class StudyLock(HolderLock):
    """One study at a time per device, any process: an flock on ``study.lock`` in the data directory."""

    def __init__(self, path: Path | None = None):
        super().__init__(path or paths.data_dir() / "study.lock", StudyBusy, "study")


# ------------------------------------------------------------------------------------------------ footprints

def charges_memory() -> bool:
    """True where runs go into a memory cgroup, so a run without a limit still measures its charged footprint
    (``worker.limits.create``); without one, a "none" cell runs uncapped and the footprint is its peak RSS."""
    from ..worker import limits

    return limits.detect().kind in ("cgroup1", "cgroup2")


def this_device_id() -> str:
    """The data directory's device id (``device.identity``), which every run started here carries."""
    from ..device import identity

    return identity().device_id


def stored_footprint(store, variant: tuple[str, str, str, int], device_id: str | None, *,
                     charged: bool = True, study_id: str | None = None) -> tuple[float, str, str] | None:
    """(MB, run id, kind) from an ok run of ``variant`` on this device without a binding limit (no limit, or a cap at
    least NON_BINDING times the peak it charged), or, without cgroups (``charged=False``), an uncapped run's peak RSS.

    The first such run of ``study_id`` wins (so every repetition and a resumed study use the same footprint), else
    the newest on the device."""
    model, precision, runtime, threads = variant
    df = store.ok_runs(model, precision, runtime, threads, device_id=device_id)
    if charged:
        df = df[df["peak_charged_mb"].notna()]
        df = df[df["memory_limit_mb"].isna() | (df["memory_limit_mb"] >= NON_BINDING * df["peak_charged_mb"])]
        col, kind = "peak_charged_mb", "charged"
    else:
        df = df[df["memory_limit_mb"].isna() & df["peak_rss_mb"].notna()]
        col, kind = "peak_rss_mb", "rss"
    if df.empty:
        return None
    mine = df[df["study_id"] == study_id] if study_id is not None else df.iloc[0:0]
    row = mine.iloc[-1] if len(mine) else df.iloc[0]  # list_runs is newest first
    return float(row[col]), str(row["run_id"]), kind


# ------------------------------------------------------------------------------------------------ running

def new_study_id(name: str) -> str:
    return f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _now() -> float:
    return time.monotonic()


@dataclass
class Progress:
    """What a study reports after each step; also the page's progress bar."""

    study_id: str
    total: int
    done: int = 0
    failed: int = 0
    state: str = "starting"  # starting | running | cooldown | done | stopped | failed
    current: str | None = None
    last: dict | None = None
    started: float = field(default_factory=_now)
    elapsed_s: float = 0.0
    eta_s: float | None = None
    ran_this_session: int = 0
    message: str | None = None
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict:
        return {"study_id": self.study_id, "cells": self.total, "done": self.done, "failed": self.failed}


class _Stopped(Exception):
    pass


class StudyRunner:
    """Runs one study in the calling thread; ``stop()`` from another thread ends it after stopping the current run."""

    def __init__(self, cfg: StudyConfig, store, *, study_id: str | None = None,
                 progress: Callable[[Progress], None] | None = None, lock: StudyLock | None = None,
                 busy_wait_s: float = BUSY_WAIT_S):
        self.cfg = cfg
        self.store = store
        self.study_id = study_id or new_study_id(cfg.name)
        self.progress = Progress(self.study_id, cfg.n_cells)
        self._on_progress = progress
        self._lock = lock
        self._stop = threading.Event()
        self._handle = None
        self._busy_wait_s = busy_wait_s
        self.footprints: dict = {}  # variant -> (MB, run id, kind)

    # -- public ---------------------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        h = self._handle
        if h is not None:
            h.stop()

    def run(self) -> dict:
        """Run (or resume) the study; returns {"study_id", "cells", "done", "failed"}."""
        from ..run import recover

        own_lock = self._lock is None
        lock = self._lock or StudyLock()
        if own_lock:
            lock.acquire(self.study_id)
        try:
            recover(self.store)
            self._open_study()  # a refusal here leaves the stored study as it was
            self._state("running")
            try:
                try:
                    self._run_grid()
                except KeyboardInterrupt:
                    raise _Stopped from None
            except _Stopped:
                self.store.set_study_status(self.study_id, "stopped")
                self._state("stopped", "stopped before the grid was finished; resume it with its id")
                return self.progress.summary()
            except BaseException as exc:
                # keep "running" in the database only for a kill; an error is recorded so the list says so
                with contextlib.suppress(Exception):
                    self.store.set_study_status(self.study_id, "failed")
                self._state("failed", str(exc))
                raise
            final = self.progress.done == self.progress.total
            self.store.set_study_status(self.study_id, "done" if final else "stopped")
            self._state("done" if final else "stopped")
            return self.progress.summary()
        finally:
            if own_lock:
                lock.release()

    # -- steps ----------------------------------------------------------------------------------------------------
    def _open_study(self) -> None:
        store, sid = self.store, self.study_id
        existing = store.list_studies()
        row = existing[existing["study_id"] == sid] if not existing.empty else existing
        doc = {"kind": "edgeprof-study", "version": 1, **self.cfg.to_dict()}
        if len(row):
            stored = stored_config(row.iloc[0]["config"])
            if stored is not None and stored.grid_signature() != self.cfg.grid_signature():
                raise UsageError(f"study {sid} was started with a different grid or run settings "
                                 f"({stored.name}, {stored.n_cells} cells).",
                                 "Resume it with only --study-id (its stored settings are used), or start a new study.")
            store.set_study_status(sid, "running")
        else:
            store.create_study(sid, self.cfg.name, doc, status="running")
        cells = store.cells(sid)
        self._cells = {r.cell_key: (r.run_id, r.status) for r in cells.itertuples()} if not cells.empty else {}
        # a cell left running by a killed study: its run is interrupted now (recover() marked it); run it again
        for key, (run_id, status) in list(self._cells.items()):
            if status == "running":
                run = store.get_run(run_id) if isinstance(run_id, str) else None
                # killed after its run recorded a result but before the cell did: the result stands
                new = run["status"] if run is not None and run["status"] in FINAL_STATUSES else "interrupted"
                store.set_cell(sid, key, run_id, new)
                self._cells[key] = (run_id, new)
        grid = {c.key for c in plan(self.cfg)}
        self.progress.done = sum(1 for k, (_, s) in self._cells.items() if k in grid and s in FINAL_STATUSES)
        self.progress.failed = sum(1 for k, (_, s) in self._cells.items() if k in grid and s in FAILED_STATUSES)

    def _run_grid(self) -> None:
        cfg = self.cfg
        self._charged = charges_memory()
        self._device_id = this_device_id()
        self._ran_any = False
        for rep in range(cfg.repetitions):
            for var in variant_order(cfg, rep):
                todo = [lim for lim in cfg.limits if not self._final(Cell(rep, *var, lim.label).key)]
                if not todo:
                    continue
                # the generous end first: "none" measures the footprint the relative limits need
                for lim in order_limits(tuple(todo), self._footprint_mb(var)):
                    if lim.kind == "factor" and var not in self.footprints:
                        self._calibrate(var, rep)
                    self._run_cell(Cell(rep, *var, lim.label), lim)

    def _before_run(self) -> None:
        """The cooldown between two runs (none before the first run of this session)."""
        if self._ran_any:
            self._cooldown()
        self._ran_any = True

    def _final(self, key: str) -> bool:
        return self._cells.get(key, (None, None))[1] in FINAL_STATUSES

    def _footprint_mb(self, var) -> float | None:
        if var not in self.footprints:
            found = stored_footprint(self.store, var, self._device_id, charged=self._charged,
                                     study_id=self.study_id)
            if found is not None:
                self.footprints[var] = found
        fp = self.footprints.get(var)
        return fp[0] if fp else None

    def _calibrate(self, var, rep: int) -> None:
        """Find or measure the footprint of ``var``: a stored run, else one run under the non-binding cap."""
        if self._footprint_mb(var) is not None:
            return
        # the "none" cell of this variant just ended without a result: a calibration run would fail the same way
        none_cell = Cell(rep, *var, "none").key
        if self._cells.get(none_cell, (None, None))[1] not in (None, "ok"):
            return
        key = calibration_key(var)
        self._before_run()
        self._note(f"calibrating {'/'.join(map(str, var))}: measuring its footprint without a binding limit")
        status, run_id, _ = self._start_and_wait(key, var, None, {"calibration": True})
        if status == "ok":
            self._footprint_mb(var)

    def _run_cell(self, cell: Cell, lim: MemLimit) -> None:
        var = cell.variant
        tags: dict = {"rep": cell.rep, "mem": lim.label}
        if lim.kind == "factor":
            fp = self.footprints.get(var)
            if fp is None:
                self._record(cell.key, None, "error", None,
                             f"no footprint for {'/'.join(map(str, var))}: its uncapped run did not end ok")
                return
            mb = lim.resolve(fp[0])
            tags.update(mem_factor=lim.value, footprint_mb=fp[0], footprint_run_id=fp[1], footprint_kind=fp[2])
        elif lim.kind == "min_factor":
            curve = self._memory_curve(var)
            if curve is None:
                model, precision, runtime, threads = var
                self._record(cell.key, None, "error", None,
                             f"no memory curve for {'/'.join(map(str, var))} on this device, so {lim.label} has no "
                             f"minimum to multiply: measure it with `edgeprof memory {model} --precision {precision} "
                             f"--runtime {runtime} --threads {threads}`")
                return
            mb = lim.resolve(None, curve["min_cap_mb"])
            tags.update(mem_min_factor=lim.value, min_cap_mb=curve["min_cap_mb"],
                        memory_curve_group_id=curve["group_id"])
        elif lim.kind == "mb":
            mb = lim.value
        else:
            mb = None  # no limit; the runner still accounts the charged footprint where a cgroup can be made
        self._before_run()
        self.progress.current = f"{cell.key} ({'none' if lim.kind == 'none' else f'{mb:.1f} MB'})"
        self._emit()
        status, run_id, result = self._start_and_wait(cell.key, var, mb, tags)
        if lim.kind == "none" and status == "ok" and var not in self.footprints:
            self._footprint_mb(var)
        self._record(cell.key, run_id, status, result, None, counted=True)

    def _memory_curve(self, var) -> dict | None:
        """The newest stored memory curve of ``var`` on this device with a minimum cap (``run.memory``)."""
        from ..run.memory import latest_curve

        model, precision, runtime, threads = var
        curve = latest_curve(self.store, model, precision, runtime, evictable=False, device_id=self._device_id,
                             threads=threads)
        return curve if curve is not None and curve.get("min_cap_mb") is not None else None

    def _run_config(self, var, mb: float | None, tags: dict, key: str) -> RunConfig:
        cfg = self.cfg
        model, precision, runtime, threads = var
        given = dict(cfg.inputs.get(model, {}))
        data = given.pop("data", None)
        if given:  # each variant takes the names it has (see _input_names)
            have = input_names(model, precision, runtime) or None
            given = {k: {n: v for n, v in d.items() if have is None or n in have} for k, d in given.items()}
        return RunConfig(model=model, precision=precision, runtime=runtime, threads=threads, memory_limit_mb=mb,
                         duration_s=cfg.duration_s, iterations=cfg.iterations, preset=cfg.run_preset,
                         warmup=cfg.warmup, timeout_s=cfg.timeout_s, sample_hz=cfg.sample_hz,
                         tags={"study_id": self.study_id, "cell": key, **tags},
                         input_shapes=given.get("input_shapes", {}), input_fills=given.get("input_fills", {}),
                         profile_ops=cfg.profile_ops, data=data, retention=cfg.retention)

    def _start_and_wait(self, key: str, var, mb, tags) -> tuple[str, str | None, dict | None]:
        from ..run import DeviceBusy, start_run
        from ..store import new_run_id

        try:
            rc = self._run_config(var, mb, tags, key)
        except EdgeprofError as exc:
            self._note(f"{key}: {exc}")
            return "error", None, None
        deadline = _now() + self._busy_wait_s
        while True:
            if self._stop.is_set():
                raise _Stopped
            run_id = new_run_id()
            # the cell names its run before the run exists: a kill in between leaves a cell to rerun, never a lost run
            self.store.set_cell(self.study_id, key, run_id, "running")
            self._cells[key] = (run_id, "running")
            try:
                self._handle = start_run(rc, self.store, study_id=self.study_id, run_id=run_id)
                break
            except DeviceBusy as exc:
                self.store.set_cell(self.study_id, key, None, "pending")
                self._cells[key] = (None, "pending")
                if _now() > deadline:
                    raise StudyBusy(f"the device stayed busy for {self._busy_wait_s:g} s: {exc}",
                                    f"Resume the study later with --study-id {self.study_id}.") from None
                self.progress.message = f"waiting for the device: {exc}"
                self._emit()
                self._stop.wait(2.0)
            except EdgeprofError as exc:
                self._note(f"{key}: could not start: {exc}")
                return "error", None, None
        handle = self._handle
        try:
            result = handle.wait()
        except KeyboardInterrupt:  # Ctrl-C in the CLI: stop the run in steps, keep the cell for a resume
            handle.stop()
            handle.wait(30)
            self.store.set_cell(self.study_id, key, run_id, "stopped")
            self._cells[key] = (run_id, "stopped")
            raise _Stopped from None
        finally:
            self._handle = None
        status = (result or {}).get("status") or handle.status
        if status == "stopped" or (self._stop.is_set() and status not in FINAL_STATUSES):
            self.store.set_cell(self.study_id, key, run_id, "stopped")
            self._cells[key] = (run_id, "stopped")
            raise _Stopped
        if status not in FINAL_STATUSES:
            status = "failed"
        self.store.set_cell(self.study_id, key, run_id, status)
        self._cells[key] = (run_id, status)
        return status, run_id, result

    def _record(self, key: str, run_id, status: str, result: dict | None, note: str | None,
                counted: bool = True) -> None:
        if status == "error":
            self.store.set_cell(self.study_id, key, run_id, "error")
            self._cells[key] = (run_id, "error")
        if note:
            self._note(f"{key}: {note}")
        p = self.progress
        p.done += 1
        p.ran_this_session += 1
        if status in FAILED_STATUSES:
            p.failed += 1
        lat = (result or {}).get("latency_ms") or {}
        p.last = {"key": key, "run_id": run_id, "status": status, "p50_ms": lat.get("p50"),
                  "error": (result or {}).get("error")}
        p.elapsed_s = _now() - p.started
        left = p.total - p.done
        p.eta_s = left * (p.elapsed_s / p.ran_this_session) if p.ran_this_session else None
        p.current = None
        self._emit()

    def _cooldown(self) -> None:
        if self.cfg.cooldown_s > 0:
            self._state("cooldown")
            if self._stop.wait(self.cfg.cooldown_s):
                raise _Stopped
            self._state("running")
        elif self._stop.is_set():
            raise _Stopped

    def _note(self, text: str) -> None:
        self.progress.notes.append(text)
        self.progress.message = text
        self._emit()

    def _state(self, state: str, message: str | None = None) -> None:
        self.progress.state = state
        if message:
            self.progress.message = message
        self.progress.elapsed_s = _now() - self.progress.started
        self._emit()

    def _emit(self) -> None:
        if self._on_progress is not None:
            with contextlib.suppress(Exception):
                self._on_progress(self.progress)


def run_study(cfg: StudyConfig, store, *, study_id: str | None = None,
              progress: Callable[[Progress], None] | None = None) -> dict:
    """Run or resume a study in this thread; returns {"study_id", "cells", "done", "failed"}."""
    return StudyRunner(cfg, store, study_id=study_id, progress=progress).run()


# ------------------------------------------------------------------------------------------------ background studies

class StudyHandle:
    """A study running in a background thread of this process (the dashboard's server), polled by pages."""

    def __init__(self, runner: StudyRunner, lock: StudyLock):
        self.runner = runner
        self.study_id = runner.study_id
        self.result: dict | None = None
        self.error: str | None = None
        self._lock = lock
        self._mutex = threading.Lock()
        self._progress = runner.progress.to_dict()
        runner._on_progress = self._update
        self._thread = threading.Thread(target=self._main, name=f"edgeprof-study-{self.study_id}", daemon=True)

    def _update(self, p: Progress) -> None:
        with self._mutex:
            self._progress = p.to_dict()

    def _main(self) -> None:
        try:
            self.result = self.runner.run()
        except Exception as exc:
            self.error = str(exc)
        finally:
            self._lock.release()
            self._update(self.runner.progress)

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive() and self._thread.ident is not None

    def progress(self) -> dict:
        with self._mutex:
            return dict(self._progress)

    def stop(self) -> None:
        self.runner.stop()

    def wait(self, timeout: float | None = None) -> dict | None:
        self._thread.join(timeout)
        return self.result


_studies: dict[str, StudyHandle] = {}
_studies_lock = threading.Lock()


def start_study_background(cfg: StudyConfig, store, *, study_id: str | None = None) -> StudyHandle:
    """Start (or resume) a study in a background thread; refuses while another study runs in any process."""
    with _studies_lock:
        busy = [h for h in _studies.values() if not h.finished]
        if busy:
            raise StudyBusy(f"study {busy[0].study_id} is running.", "Wait for it or stop it first.")
        runner = StudyRunner(cfg, store, study_id=study_id, lock=None)
        lock = StudyLock()
        lock.acquire(runner.study_id)
        runner._lock = lock  # held by the thread; released by the handle when the study ends
        handle = StudyHandle(runner, lock)
        _studies[handle.study_id] = handle
        handle._thread.start()
        return handle


def active_study() -> StudyHandle | None:
    with _studies_lock:
        return next((h for h in _studies.values() if not h.finished), None)


def get_study_handle(study_id: str) -> StudyHandle | None:
    with _studies_lock:
        return _studies.get(study_id)


# ------------------------------------------------------------------------------------------------ listing

def list_studies(store) -> list[dict]:
    """Studies, newest first, with their grid size, cells done and failed, and whether they can be resumed.
    A study whose status is still "running" while no study holds the lock was killed: it shows as interrupted."""
    df = store.list_studies()
    holder = StudyLock().holder()
    out = []
    for row in df.itertuples():
        cfg = stored_config(row.config)
        cells = store.cells(row.study_id)
        grid = {c.key for c in plan(cfg)} if cfg else set()
        in_grid = cells[cells["cell_key"].isin(grid)] if not cells.empty else cells
        done = int(in_grid["status"].isin(FINAL_STATUSES).sum()) if len(in_grid) else 0
        failed = int(in_grid["status"].isin(FAILED_STATUSES).sum()) if len(in_grid) else 0
        status = row.status
        if status == "running" and not (holder and holder.startswith(f"{row.study_id} ")):
            status = "interrupted"
        total = cfg.n_cells if cfg else None
        out.append({"study_id": row.study_id, "name": row.name, "created_at": row.created_at, "status": status,
                    "cells": total, "done": done, "failed": failed,
                    "resumable": cfg is not None and total is not None and done < total and status != "running"})
    return out
