"""A run's samples between the worker and the store: kept for the live view, written in batches, read back whole.

* Latency samples arrive as the worker's batches (``array('q')`` columns per phase). They go into typed arrays for
  ``snapshot`` (17 bytes a sample, not ~100 as Python ints in lists: a digits-cnn run makes 15,000 samples a second,
  and a server keeps a few finished runs for the pages that watched them), and stay as the batches they came in until
  stored. Sequence numbers are not kept: they are contiguous from 0, so sample n sits at index n - base.
* Telemetry rows (t_ns, source, metric, value, unit) go into a bounded deque for the live view and a pending list.
* A writer thread flushes what is pending every ``FLUSH_INTERVAL_S`` seconds, latency and telemetry in one connection
  and one transaction (``Store.append_samples``): each flush costs ~25 ms of CPU that the measured worker competes
  for on a small board. A flush that fails keeps its rows for the next one.
* Memory keeps only the newest stored samples (``SNAPSHOT_MAX``) plus what is not stored yet: a 10-minute run of a
  fast model is ~27 M samples. The summary reads the whole run back from the store (``samples``).
"""

from __future__ import annotations

import threading
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import EdgeprofError
from ..worker.messages import PHASE_CODES, PHASES, Batch

FLUSH_INTERVAL_S = 5.0  # each flush costs ~25 ms of CPU the measured worker competes for
SNAPSHOT_MAX = 200_000  # latency samples handed to a session that attaches late, and kept once stored
TELEMETRY_KEEP = 100_000  # telemetry rows kept for the live view (10 Hz x ~30 metrics: about 5 minutes)


@dataclass
class _Live:
    t_ns: array = field(default_factory=lambda: array("q"))
    latency_ns: array = field(default_factory=lambda: array("q"))
    phase: array = field(default_factory=lambda: array("b"))  # PHASE_CODES
    telemetry: deque = field(default_factory=lambda: deque(maxlen=TELEMETRY_KEEP))
    phases: list = field(default_factory=list)  # (phase, t_ns, reason); "load" first, then PHASES
    base: int = 0  # samples dropped from the front once stored: memory holds seq >= base
    stored: int = 0  # samples seq < stored are in the database

    @property
    def n(self) -> int:
        return self.base + len(self.t_ns)

    def trim(self) -> None:
        """Keep the newest SNAPSHOT_MAX samples and every one not yet stored; cut in big steps (amortized O(1))."""
        if len(self.t_ns) <= 2 * SNAPSHOT_MAX:
            return
        cut = min(self.stored, self.n - SNAPSHOT_MAX) - self.base
        if cut > 0:
            del self.t_ns[:cut], self.latency_ns[:cut], self.phase[:cut]
            self.base += cut


class Recorder:
    """The samples of one run. Thread-safe: the monitor thread adds, the writer thread flushes, pages snapshot.

    ``store`` may be None (nothing is written: a run that could not open its database still runs and says so).
    ``on_note`` receives a sentence when writes are first delayed.
    """

    def __init__(self, run_id: str, store, on_note: Callable[[str], None] | None = None):
        self.run_id = run_id
        self.store = store
        self.lock = threading.Lock()
        self.storage_error: str | None = None
        self._live = _Live()
        self._pending_lat: list[Batch] = []
        self._pending_tel: list = []
        self._on_note = on_note or (lambda text: None)

    # -- in ---------------------------------------------------------------------------------------------------------
    def add_batch(self, msg: Batch) -> None:
        with self.lock:
            live = self._live
            live.t_ns.extend(msg.t_ns)
            live.latency_ns.extend(msg.latency_ns)
            live.phase.frombytes(bytes((PHASE_CODES[msg.phase],)) * len(msg.t_ns))
            live.trim()
            self._pending_lat.append(msg)

    def add_phase(self, phase: str, t_ns: int, reason: str = "") -> None:
        with self.lock:
            self._live.phases.append((phase, t_ns, reason))

    def add_telemetry(self, rows: list) -> None:
        with self.lock:
            self._live.telemetry.extend(rows)
            self._pending_tel.extend(rows)

    # -- out ----------------------------------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Latency samples received so far."""
        with self.lock:
            return self._live.n

    @property
    def phases(self) -> list:
        with self.lock:
            return list(self._live.phases)

    def snapshot(self, since_seq: int = 0, telemetry_since_ns: int = 0) -> dict:
        """Samples with seq >= since_seq (at most the newest SNAPSHOT_MAX) and telemetry rows newer than the time given:
        ``seq`` a range, ``t_ns``/``latency_ns`` int64 arrays, ``phase_code`` int8 (``PHASE_CODES``), ``telemetry``
        rows, ``phases`` events."""
        with self.lock:
            live = self._live
            n = live.n
            idx = max(min(since_seq, n), n - SNAPSHOT_MAX, live.base)
            cut = idx - live.base
            tel = []
            for row in reversed(live.telemetry):  # newest first: stop at the first row the caller already has
                if row[0] <= telemetry_since_ns:
                    break
                tel.append(row)
            tel.reverse()
            return {"seq": range(idx, n), "t_ns": np.frombuffer(live.t_ns[cut:], dtype=np.int64),
                    "latency_ns": np.frombuffer(live.latency_ns[cut:], dtype=np.int64),
                    "phase_code": np.frombuffer(live.phase[cut:], dtype=np.int8), "telemetry": tel,
                    "phases": list(live.phases)}

    # -- to the store -------------------------------------------------------------------------------------------------
    def writer(self, stop: threading.Event) -> None:
        """The writer thread's loop: a flush every FLUSH_INTERVAL_S until ``stop`` is set."""
        while not stop.wait(FLUSH_INTERVAL_S):
            self.flush()

    def flush(self) -> None:
        """Write what is pending in one transaction; on failure keep it for the next flush and say so once."""
        if self.store is None:
            return
        with self.lock:
            lat, self._pending_lat = self._pending_lat, []
            tel, self._pending_tel = self._pending_tel, []
        try:
            if lat or tel:
                self.store.append_samples(self.run_id, latency_frame(lat) if lat else None, tel or None)
        except EdgeprofError as exc:  # the database may be busy or full
            with self.lock:
                self._pending_lat[:0] = lat
                self._pending_tel[:0] = tel
                first = self.storage_error is None
                self.storage_error = str(exc)
            if first:
                self._on_note(f"writes delayed: {exc}")
            return
        self.storage_error = None
        if lat:
            with self.lock:
                self._live.stored = max(self._live.stored, lat[-1].seq0 + len(lat[-1].t_ns))

    def unsaved(self) -> int:
        """Rows that could not be stored (latency samples plus telemetry rows)."""
        with self.lock:
            return sum(len(b.t_ns) for b in self._pending_lat) + len(self._pending_tel)

    # -- for the summary ----------------------------------------------------------------------------------------------
    def samples(self, notes: list[str]) -> tuple:
        """Every latency sample (t_ns, latency_ns, phase code arrays, in seq order; or, for a run longer than memory
        keeps, its ``LatencyDigest`` from the store), every telemetry row and the phase events, for the summary.
        What memory let go is read from the store; if that fails, the summary covers what memory holds and ``notes``
        says so."""
        with self.lock:
            live = self._live
            lat = (np.frombuffer(live.t_ns, dtype=np.int64).copy(), np.frombuffer(live.latency_ns, dtype=np.int64).copy(),
                   np.frombuffer(live.phase, dtype=np.int8).copy())
            base, tel, phases = live.base, list(live.telemetry), list(live.phases)
            whole = not self._pending_lat
        return self._all_latency(base, lat, whole, notes), self._all_telemetry(tel), phases

    def _all_latency(self, base: int, lat: tuple, whole: bool, notes: list[str]):
        """A run that outgrew memory with every sample stored (the usual long run) is summarized in the store
        (``Store.latency_digest``: no sample reaches Python); one with samples not stored is read back and joined
        to what memory holds (17 bytes a sample)."""
        if not base:
            return lat
        try:
            if whole:
                return self.store.latency_digest(self.run_id)
            older = self.store.latency_arrays(self.run_id, below_seq=base)
        except EdgeprofError as exc:
            notes.append(f"summary over the newest {len(lat[0]):,} samples only: the older {base:,} could not be "
                         f"read back ({exc})")
            return lat
        older = tuple(a[:base] for a in older)
        return tuple(np.concatenate([a, b]) for a, b in zip(older, lat, strict=True))

    def _all_telemetry(self, tel: list) -> list:
        """Memory keeps only the newest rows (a long run outgrows it): then the store has the whole run."""
        if self.store is None or self.storage_error or len(tel) < TELEMETRY_KEEP:
            return tel
        try:
            df = self.store.telemetry(self.run_id)
        except EdgeprofError:
            return tel
        return list(df[["t_ns", "source", "metric", "value", "unit"]].itertuples(index=False, name=None))

    def release(self) -> None:
        """A finished run kept for the pages that watched it keeps only its stored tail."""
        with self.lock:
            self._live.trim()


def latency_frame(batches: list[Batch]) -> pd.DataFrame:
    """Batches as one latency frame of typed columns (17 bytes a sample, phase a Categorical): a flush of a fast
    model holds ~225,000 samples, which as Python tuples cost ~160 bytes each in a long-running server."""
    counts = [len(b.t_ns) for b in batches]
    seq = np.concatenate([np.arange(b.seq0, b.seq0 + k, dtype=np.int64) for b, k in zip(batches, counts, strict=True)])
    t_ns = np.concatenate([np.frombuffer(b.t_ns, dtype=np.int64) for b in batches])
    latency_ns = np.concatenate([np.frombuffer(b.latency_ns, dtype=np.int64) for b in batches])
    codes = np.repeat(np.array([PHASE_CODES[b.phase] for b in batches], dtype=np.int8), counts)
    phase = pd.Categorical.from_codes(codes, categories=list(PHASES))
    return pd.DataFrame({"seq": seq, "t_ns": t_ns, "latency_ns": latency_ns, "phase": phase})
