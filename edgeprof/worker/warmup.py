"""When warm-up is over: an online stop rule the worker calls after every warm-up inference.

Stdlib only: the worker imports it, and everything the worker imports is charged to its memory cap.
"""

from __future__ import annotations

from collections import deque


class WarmupDetector:
    """Online warm-up stop rule for the worker: call ``update`` after every warm-up inference.

    Steady means the median of the last ``window`` latencies is within ``max(rel_tol * previous,
    abs_tol_ns)`` of the median of the ``window`` before them. Medians ignore the odd spike; comparing two
    adjacent windows needs no idea of the final level. ``abs_tol_ns`` (default 10 us) keeps sub-millisecond
    models, whose timer jitter is a large fraction of the latency, from warming up forever; it is noise
    for a 100 ms model. Warm-up is bounded by ``max_iters`` and ``max_seconds`` (first bound wins), so
    a 0.1 ms model stops by count and a slow model by time. Cost per update: one sort of 2 * window values.

    After it returns True, ``reason`` is "steady", "max_iterations" or "max_seconds" and further updates
    keep returning True.
    """

    def __init__(
        self,
        window: int = 20,
        rel_tol: float = 0.05,
        min_iters: int = 5,
        max_iters: int = 2000,
        max_seconds: float = 30.0,
        *,
        abs_tol_ns: int = 10_000,
        start_ns: int | None = None,
    ) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = int(window)
        self.rel_tol = float(rel_tol)
        self.min_iters = int(min_iters)
        self.max_iters = int(max_iters)
        self.max_seconds = float(max_seconds)
        self.abs_tol_ns = float(abs_tol_ns)
        self._start_ns = start_ns
        self._buf: deque[int] = deque(maxlen=2 * self.window)
        self.iterations = 0
        self.reason: str | None = None

    @property
    def done(self) -> bool:
        return self.reason is not None

    @staticmethod
    def _median(values: list[int]) -> float:
        s = sorted(values)
        m = len(s) // 2
        return float(s[m]) if len(s) % 2 else (s[m - 1] + s[m]) / 2.0

    def update(self, latency_ns: int, t_ns: int) -> bool:
        """Record one warm-up sample (its latency and monotonic timestamp); True once warm-up should stop."""
        if self.reason is not None:
            return True
        if self._start_ns is None:
            self._start_ns = int(t_ns) - int(latency_ns)  # the warm-up began when this first inference did
        self.iterations += 1
        self._buf.append(int(latency_ns))
        if self.iterations >= self.min_iters and len(self._buf) == 2 * self.window:
            buf = list(self._buf)
            prev = self._median(buf[: self.window])
            last = self._median(buf[self.window :])
            if abs(last - prev) <= max(self.rel_tol * prev, self.abs_tol_ns):
                self.reason = "steady"
                return True
        if self.iterations >= self.max_iters:
            self.reason = "max_iterations"
            return True
        if (int(t_ns) - self._start_ns) / 1e9 >= self.max_seconds:
            self.reason = "max_seconds"
            return True
        return False
