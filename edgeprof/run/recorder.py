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
* What the store keeps is the run's retention (``RunConfig.retention``, :class:`Retention`): every sample, or past the
  first minute (and, under ``auto``, past ``RETENTION_MAX_ALL`` samples) a reduction made here as batches arrive,
  so neither the recorder nor the store grows with the run: each second's samples become one aggregate row per phase
  (count, first and last seq and start, min, max, sum, sum of squares, last latency: exact count, mean, std, min and
  max survive) and every steady sample of the run, exact part included, passes through a fixed-size uniform reservoir
  (Vitter's algorithm R, seeded by the run id), written when the run ends. Percentiles come from the reservoir, so
  they stay unbiased estimates of the steady phase's (``store.samples.steady_summary`` says how the interval stays
  honest). Measured with ``bench/bench_scale.py --retention-only`` (README, "Long runs on a small board"): 4.6-7
  bytes a stored sample, so ``all`` costs 0.4-0.7 GB an hour for a model at 26,000 inferences a second; reduced, the
  same run's database stayed at 9.2 MB from 90 s to 270 s (the first minute's samples, the reservoir, a row a
  second).
"""

from __future__ import annotations

import os
import threading
import zlib
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config import RETENTION_MAX_ALL
from ..errors import EdgeprofError
from ..store.schema import SECONDS_COLUMNS
from ..worker.messages import PHASE_CODES, PHASES, Batch

FLUSH_INTERVAL_S = 5.0  # each flush costs ~25 ms of CPU the measured worker competes for
SNAPSHOT_MAX = 200_000  # latency samples handed to a session that attaches late, and kept once stored
TELEMETRY_KEEP = 100_000  # telemetry rows kept for the live view (10 Hz x ~30 metrics: about 5 minutes)

#: The reduction keeps every sample of the run's first this many seconds (warm-up and the start of steady state
#: stay exact). Environment: ``EDGEPROF_RETENTION_EXACT_S``.
RETENTION_EXACT_S = 60.0
#: Steady samples in a reduced run's reservoir: 2.4 MB in memory, ~1 MB stored; a percentile's sampling error is
#: then ~0.3% of the samples' spread around it. Environment: ``EDGEPROF_RETENTION_RESERVOIR``.
RESERVOIR_SIZE = 100_000


@dataclass(frozen=True)
class Retention:
    """A run's retention policy: ``requested`` (``config.RETENTIONS``), every sample up to ``max_all`` samples
    (``auto`` only) and ``exact_s`` seconds from the first sample, then a reservoir of ``reservoir`` steady samples
    drawn with ``seed``. The environment overrides the module's numbers (a small board, a short test)."""

    requested: str = "auto"
    max_all: int = RETENTION_MAX_ALL
    exact_s: float = RETENTION_EXACT_S
    reservoir: int = RESERVOIR_SIZE
    seed: int = 0

    @classmethod
    def for_run(cls, requested: str, run_id: str, environ=None) -> Retention:
        """The policy of run ``run_id``; its seed is the CRC-32 of the id, so a run's reservoir is reproducible."""
        env = os.environ if environ is None else environ

        def num(name, default, kind):
            text = env.get(name)
            try:
                value = kind(text) if text else default
            except ValueError:
                value = default
            return value if value > 0 else default

        return cls(requested, num("EDGEPROF_RETENTION_MAX_ALL", RETENTION_MAX_ALL, int),
                   num("EDGEPROF_RETENTION_EXACT_S", RETENTION_EXACT_S, float),
                   num("EDGEPROF_RETENTION_RESERVOIR", RESERVOIR_SIZE, int), zlib.crc32(run_id.encode()))


class _Reducer:
    """A run's reduction as batches arrive (see the module): where it starts (``cut``, the first seq not stored one
    by one), the aggregate rows not stored yet and the reservoir. Memory: the reservoir (24 bytes a slot) and a few
    rows a second; never the run's samples."""

    def __init__(self, policy: Retention):
        self.policy = policy
        self.cut: int | None = None
        self.t0: int | None = None
        self.steady_seen = 0
        self.rows: list[list] = []  # SECONDS_COLUMNS, plus the (second, phase) key last
        self.res: np.ndarray | None = None  # (3, reservoir): seq, t_ns, latency_ns
        self._rng = np.random.default_rng(policy.seed)

    @property
    def reduced(self) -> bool:
        return self.cut is not None

    def take(self, msg: Batch) -> Batch | None:
        """Feed one batch; what of it the store keeps one by one (None: nothing)."""
        pol = self.policy
        if pol.requested == "all" or not len(msg.t_ns):
            return msg
        t = np.frombuffer(msg.t_ns, dtype=np.int64)
        lat = np.frombuffer(msg.latency_ns, dtype=np.int64)
        if self.t0 is None:
            self.t0 = int(t[0])
        if msg.phase == "steady":
            self._sample(msg.seq0, t, lat)
        if self.cut is None:
            i0 = max((pol.max_all if pol.requested == "auto" else 0) - msg.seq0, 0)
            if i0 < len(t):
                i = i0 + int(np.searchsorted(t[i0:], self.t0 + int(pol.exact_s * 1e9), side="left"))
                if i < len(t):
                    self.cut = msg.seq0 + i
        if self.cut is None or msg.seq0 + len(t) <= self.cut:
            return msg
        k = max(self.cut - msg.seq0, 0)
        self._aggregate(msg.phase, msg.seq0 + k, t[k:], lat[k:])
        return Batch(msg.seq0, msg.phase, msg.t_ns[:k], msg.latency_ns[:k]) if k else None

    def _sample(self, seq0: int, t: np.ndarray, lat: np.ndarray) -> None:
        """Algorithm R, vectorized: the i-th steady sample (0-based) replaces a uniform slot j in [0, i] when j <
        size; within a batch a later sample wins its slot, as one by one."""
        size = self.policy.reservoir
        if self.res is None:
            self.res = np.zeros((3, size), dtype=np.int64)
        i = self.steady_seen + np.arange(len(t), dtype=np.int64)
        self.steady_seen += len(t)
        fill = int(np.count_nonzero(i < size))
        if fill:
            self.res[:, i[:fill]] = (seq0 + np.arange(fill), t[:fill], lat[:fill])
        if fill < len(t):
            j = self._rng.integers(0, i[fill:] + 1)
            hit = np.flatnonzero(j < size)
            slot, pos = j[hit][::-1], (fill + hit)[::-1]
            slot, first = np.unique(slot, return_index=True)
            pos = pos[first]
            self.res[:, slot] = (seq0 + pos, t[pos], lat[pos])

    def _aggregate(self, phase: str, seq0: int, t: np.ndarray, lat: np.ndarray) -> None:
        """Samples past the cut as one row per second and phase; a second split across batches grows its last row."""
        sec = (t - self.t0) // 1_000_000_000
        starts = np.concatenate([[0], np.flatnonzero(np.diff(sec)) + 1])
        ends = np.concatenate([starts[1:], [len(t)]])
        lo, hi = np.minimum.reduceat(lat, starts), np.maximum.reduceat(lat, starts)
        total, sq = np.add.reduceat(lat, starts), np.add.reduceat(np.square(lat / 1e6), starts)
        for r, (a, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            b, key = e - 1, (int(sec[a]), phase)
            last = self.rows[-1] if self.rows else None
            if last is not None and last[-1] == key:
                last[1] += e - a
                last[3], last[5], last[10] = seq0 + b, int(t[b]), int(lat[b])
                last[6], last[7] = min(last[6], int(lo[r])), max(last[7], int(hi[r]))
                last[8] += int(total[r])
                last[9] += float(sq[r])
            else:
                self.rows.append([phase, e - a, seq0 + a, seq0 + b, int(t[a]), int(t[b]), int(lo[r]), int(hi[r]),
                                  int(total[r]), float(sq[r]), int(lat[b]), key])

    def take_rows(self) -> list[list]:
        rows, self.rows = self.rows, []
        return rows

    def reservoir(self) -> np.ndarray:
        """The reservoir's filled slots as (3, k) int64 (seq, t_ns, latency_ns), in seq order."""
        if self.res is None:
            return np.zeros((3, 0), dtype=np.int64)
        res = self.res[:, :min(self.steady_seen, self.policy.reservoir)]
        return res[:, np.argsort(res[0], kind="stable")]


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
    ``on_note`` receives a sentence when writes are first delayed. ``retention``: ``config.RETENTIONS`` (the
    numbers from :meth:`Retention.for_run`).
    """

    def __init__(self, run_id: str, store, on_note: Callable[[str], None] | None = None, retention: str = "auto"):
        self.run_id = run_id
        self.store = store
        self.lock = threading.Lock()
        self.storage_error: str | None = None
        self._live = _Live()
        self._pending_lat: list[Batch] = []
        self._pending_tel: list = []
        self._pending_rows: list[list] = []  # aggregate rows a failed flush kept
        self._upto = 0  # samples seq < _upto were handed to the store's pending writes
        self._reducer = _Reducer(Retention.for_run(retention, run_id))
        self._reservoir_due = False  # the run ended reduced: its reservoir must be stored
        self._on_note = on_note or (lambda text: None)

    # -- in ---------------------------------------------------------------------------------------------------------
    def add_batch(self, msg: Batch) -> None:
        with self.lock:
            live = self._live
            live.t_ns.extend(msg.t_ns)
            live.latency_ns.extend(msg.latency_ns)
            live.phase.frombytes(bytes((PHASE_CODES[msg.phase],)) * len(msg.t_ns))
            live.trim()
            kept = self._reducer.take(msg)
            if kept is not None:
                self._pending_lat.append(kept)
            self._upto = msg.seq0 + len(msg.t_ns)

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

    def flush(self, final: bool = False) -> None:
        """Write what is pending in one transaction; on failure keep it for the next flush and say so once.
        ``final``: the run has ended, so a reduced run's reservoir is written too."""
        if self.store is None:
            return
        with self.lock:
            lat, self._pending_lat = self._pending_lat, []
            tel, self._pending_tel = self._pending_tel, []
            rows, self._pending_rows = self._pending_rows + self._reducer.take_rows(), []
            upto = self._upto
            self._reservoir_due |= final and self._reducer.reduced
            res = self._reducer.reservoir() if self._reservoir_due else None
        try:
            if lat or tel or rows or res is not None:
                self.store.append_samples(self.run_id, latency_frame(lat) if lat else None, tel or None,
                                          seconds=seconds_frame(rows) if rows else None,
                                          reservoir=None if res is None else reservoir_frame(res))
        except EdgeprofError as exc:  # the database may be busy or full
            with self.lock:
                self._pending_lat[:0] = lat
                self._pending_tel[:0] = tel
                self._pending_rows[:0] = rows
                first = self.storage_error is None
                self.storage_error = str(exc)
            if first:
                self._on_note(f"writes delayed: {exc}")
            return
        self.storage_error = None
        with self.lock:
            self._live.stored = max(self._live.stored, upto)
            if res is not None:
                self._reservoir_due = False

    def unsaved(self) -> int:
        """Rows that could not be stored (latency samples, those in aggregate rows and a reduced run's reservoir,
        plus telemetry rows)."""
        with self.lock:
            return (sum(len(b.t_ns) for b in self._pending_lat) + len(self._pending_tel)
                    + sum(r[1] for r in self._pending_rows)
                    + (self._reducer.reservoir().shape[1] if self._reservoir_due else 0))

    @property
    def reduced(self) -> bool:
        """Whether the store keeps this run reduced (past its cut) rather than sample by sample."""
        with self.lock:
            return self._reducer.reduced

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
            reduced = self._reducer.reduced
        if reduced:
            return self._reduced_latency(lat, notes), self._all_telemetry(tel), phases
        return self._all_latency(base, lat, whole, notes), self._all_telemetry(tel), phases

    def _reduced_latency(self, lat: tuple, notes: list[str]):
        """A reduced run is summarized from what the store keeps (``Store.latency_digest``), as every later reader
        sees it, even where memory still holds every sample; where the reduction could not be stored, from memory."""
        problem = self.storage_error or "no database"
        if self.store is not None and not self.unsaved():
            try:
                return self.store.latency_digest(self.run_id)
            except EdgeprofError as exc:
                problem = str(exc)
        notes.append(f"summary over the newest {len(lat[0]):,} samples only: the run's reduced samples could not "
                     f"be stored or read back ({problem})")
        return lat

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


def seconds_frame(rows: list[list]) -> pd.DataFrame:
    """Aggregate rows (``store.schema.SECONDS_COLUMNS``) as a frame of typed columns."""
    frame = pd.DataFrame([r[:len(SECONDS_COLUMNS)] for r in rows], columns=list(SECONDS_COLUMNS))
    return frame.astype({c: "int64" for c in SECONDS_COLUMNS if c not in ("phase", "sumsq_ms2")})


def reservoir_frame(res: np.ndarray) -> pd.DataFrame:
    """A reservoir's (3, k) int64 array as the ``latency_reservoir`` columns (seq, t_ns, latency_ns)."""
    return pd.DataFrame({"seq": res[0], "t_ns": res[1], "latency_ns": res[2]})


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
