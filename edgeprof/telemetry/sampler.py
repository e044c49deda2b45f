"""The sampler thread: every tick, read each available source and hand the rows to a sink.

* One timestamp per tick, ``time.monotonic_ns()``: the clock the worker stamps its batches with.
* Absolute deadlines: tick k is due at ``start + k * period``; a slow tick does not shift later ones, and ticks
  missed entirely are skipped (counted in ``overruns``) rather than run back to back.
* Nothing escapes the thread: a source whose ``read`` raises is closed and disabled with the error as its reason
  and the time it stopped (``SourceStopped.since_ns`` when the source knows its last good reading, else the tick);
  a sink that raises is counted and the sampler carries on.
* A source returns rows only for new readings: a tick where it has nothing new adds nothing (no repeated values).
* A source with ``max_hz`` (jtop: 2 Hz) is read only when its own period has passed.
* ``cpu_s`` is the thread's own CPU time (``time.thread_time``), so the sampler's cost can be reported.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable

from .base import Source, SourceStatus, SourceStopped

log = logging.getLogger(__name__)

SampleRow = tuple[int, str, str, float, str]
"""(t_ns, source, metric, value, unit)"""


class Sampler:
    def __init__(
        self,
        sources: Iterable[Source],
        hz: float = 10.0,
        sink: Callable[[list[SampleRow]], None] | None = None,
        worker_pid: int | None = None,
    ):
        if not hz > 0:
            raise ValueError(f"hz must be > 0, got {hz!r}")
        self.sources = list(sources)
        self.hz = float(hz)
        self.sink = sink or (lambda rows: None)
        self._worker_pid = worker_pid
        self._disabled: dict[str, str] = {}
        self._stopped_ns: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.overruns = 0
        self.sink_errors = 0
        self.last_sink_error: str | None = None
        self.cpu_s = 0.0
        self._cpu0 = 0.0

    # ----- control -----

    def start(self) -> Sampler:
        """Probe every source (once; cached by Source.probe) and start the daemon thread."""
        if self._thread is not None:
            raise RuntimeError("Sampler already started")
        for src in self.sources:
            src.probe()
        self._thread = threading.Thread(target=self._run, name="edgeprof-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread, join it, close the sources. Returns within about ``timeout`` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for src in self.sources:
            try:
                src.close()
            except Exception:
                log.debug("closing %s failed", src.name, exc_info=True)

    def set_worker_pid(self, pid: int | None) -> None:
        self._worker_pid = pid

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> list[SourceStatus]:
        out = []
        for src in self.sources:
            available, reason = src.probe()
            if src.name in self._disabled:
                available, reason = False, self._disabled[src.name]
            out.append(SourceStatus(src.name, available, reason, self._stopped_ns.get(src.name)))
        return out

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----- thread -----

    def _run(self) -> None:
        self._cpu0 = time.thread_time()
        try:
            self._loop()
        except BaseException:  # the loop guards each call; this is the last line of defence
            log.exception("sampler thread stopped unexpectedly")
        finally:
            self.cpu_s = time.thread_time() - self._cpu0

    def _loop(self) -> None:
        period_ns = int(round(1e9 / self.hz))
        active = [s for s in self.sources if s.probe()[0]]
        due = {id(s): 0 for s in active}
        next_ns = time.monotonic_ns()
        while not self._stop.is_set():
            t_ns = time.monotonic_ns()
            pid = self._worker_pid
            rows: list[SampleRow] = []
            for src in list(active):
                if src.max_hz and t_ns < due[id(src)]:
                    continue
                try:
                    for metric, value, unit in src.read(pid):
                        rows.append((t_ns, src.name, metric, float(value), unit))
                except Exception as exc:
                    active.remove(src)
                    if isinstance(exc, SourceStopped):
                        self._disabled[src.name] = f"stopped: {exc}"
                        self._stopped_ns[src.name] = exc.since_ns or t_ns
                    else:
                        self._disabled[src.name] = f"stopped after a read failed: {type(exc).__name__}: {exc}"
                        self._stopped_ns[src.name] = t_ns
                    log.warning("telemetry source %s disabled: %s", src.name, exc)
                    with contextlib.suppress(Exception):
                        src.close()
                    continue
                if src.max_hz:
                    due[id(src)] = t_ns + int(1e9 / src.max_hz) - period_ns // 2
            try:
                self.sink(rows)
            except Exception as exc:
                self.sink_errors += 1
                self.last_sink_error = f"{type(exc).__name__}: {exc}"
            self.ticks += 1
            self.cpu_s = time.thread_time() - self._cpu0
            next_ns += period_ns
            now = time.monotonic_ns()
            if next_ns <= now:  # fell behind: skip the missed ticks, keep the phase
                missed = (now - next_ns) // period_ns + 1
                self.overruns += missed
                next_ns += missed * period_ns
            self._stop.wait((next_ns - now) / 1e9)
