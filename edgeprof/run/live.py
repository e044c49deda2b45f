"""A run's live view in the dashboard's server: one ``LiveBuffer`` per run, shared by every session watching it,
grown incrementally from ``RunHandle.snapshot`` (plain numpy: no Streamlit here, so tests and benchmarks use it)."""

from __future__ import annotations

import numpy as np

from ..worker.messages import PHASE_CODES
from .summary import timings

STEADY = PHASE_CODES["steady"]


class _Tail:
    """The newest points of three columns, appended in place. A refresh adds its new points without copying the ones
    held (re-concatenating a million points per build, 4 builds a second, was ~70 MB/s of copies in the server).
    Storage grows up to twice the points kept; then the newest move to a fresh array, so views handed out earlier
    never change under their holder. Amortized O(1) per point."""

    DTYPES = (np.int64, np.int64, np.int8)

    def __init__(self):
        self.cols = [np.empty(0, d) for d in self.DTYPES]
        self.start = self.end = 0

    def append(self, parts, keep: int) -> None:
        parts = [np.asarray(p, dtype=d)[-keep:] for p, d in zip(parts, self.DTYPES, strict=True)]
        k = parts[0].size
        if not k:
            return
        if self.end + k > self.cols[0].size:
            carry = min(self.end - self.start, keep - k)
            cap = max(min(2 * keep, 2 * (carry + k)), carry + k, 1024)
            new = [np.empty(cap, d) for d in self.DTYPES]
            for a, old in zip(new, self.cols, strict=True):
                a[:carry] = old[self.end - carry:self.end]
            self.cols, self.start, self.end = new, 0, carry
        for a, p in zip(self.cols, parts, strict=True):
            a[self.end:self.end + k] = p
        self.end += k
        self.start = max(self.start, self.end - keep)

    def view(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = tuple(a[self.start:self.end] for a in self.cols)
        for a in out:
            a.flags.writeable = False
        return out


class LiveBuffer:
    """A run's live data in the server (one per run, shared by its viewers), grown incrementally from
    ``RunHandle.snapshot``.

    The cursors (``next_seq``, ``tel_since_ns``) make every refresh fetch only the points that are new since the
    last one; the newest ``MAX_KEEP`` points stay in memory so the live and final views need no database read.
    """

    MAX_KEEP = 1_000_000  # points per session (~17 MB); a longer run keeps its newest million for the chart

    def __init__(self, run_id: str, started_ns: int, started_wall: float):
        self.run_id = run_id
        self.started_ns = int(started_ns)
        self.started_wall = float(started_wall)
        self.next_seq = 0
        self.tel_since_ns = 0
        self._tail = _Tail()
        self.tel_rows: list = []
        self.phases: list = []
        self.status = "starting"
        self.phase = "preparing"
        self.reason = None
        self.result = None
        self.notes: list = []
        self.memory_limit_mb = None
        self.refreshes = 0
        self.first_latency_ns: int | None = None

    def update(self, snap: dict) -> int:
        """Add a snapshot taken with this buffer's cursors; returns how many latency points were new."""
        seqs = snap.get("seq")
        seqs = seqs if seqs is not None and len(seqs) else []
        new = 0
        if seqs:
            # a snapshot may overlap the cursor (it returns seq >= since); keep only what is new
            start = max(0, self.next_seq - seqs[0])
            if start < len(seqs):
                self._tail.append((snap["t_ns"][start:], snap["latency_ns"][start:], snap["phase_code"][start:]),
                                  self.MAX_KEEP)
                new = len(seqs) - start
                if self.first_latency_ns is None and seqs[start] == 0:
                    self.first_latency_ns = int(snap["latency_ns"][start])
                self.next_seq = seqs[-1] + 1
        tel = snap.get("telemetry") or []
        if tel:
            self.tel_rows.extend(tel)
            self.tel_since_ns = max(self.tel_since_ns, max(r[0] for r in tel))
        self.phases = snap.get("phases") or self.phases
        self.status, self.phase, self.reason = snap.get("status"), snap.get("phase"), snap.get("reason")
        self.result = snap.get("result")
        self.notes = snap.get("notes") or []
        self.memory_limit_mb = snap.get("memory_limit_mb")
        self.refreshes += 1
        return new

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t_ns, latency_ns, phase code) of the newest MAX_KEEP points: read-only views that later updates never
        change."""
        return self._tail.view()

    @property
    def n(self) -> int:
        return self.next_seq

    def newest_wall(self) -> float | None:
        """Wall-clock time (s since the epoch) of the newest inference shown: its start plus its latency."""
        t, lat, _ = self.arrays()
        if t.size == 0:
            return None
        return self.started_wall + (int(t[-1]) + int(lat[-1]) - self.started_ns) / 1e9

    def figures(self) -> dict:
        """Headline numbers from the points so far (steady state only for percentiles and throughput)."""
        t, lat, ph = self.arrays()
        out = {k: v for k, v in timings(self.phases, first_latency_ns=self.first_latency_ns).items() if v is not None}
        if ph.size and ph[-1] == STEADY:  # steady comes last and runs to the end: slices, no full-size masked copies
            i0 = int(np.argmax(ph == STEADY))
            ls = lat[max(i0, lat.size - 200_000):] / 1e6
            out["p50_ms"], out["p90_ms"] = (float(v) for v in np.percentile(ls, [50, 90]))
            span = (t[-1] + lat[-1] - t[i0]) / 1e9
            out["throughput_ips"] = float(t.size - i0) / span if span > 0 else None
        return out
