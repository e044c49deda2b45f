"""The live view of a running run, built once per refresh in the server and shared by every session watching it."""

from __future__ import annotations

import threading
import time as _time

from ..run.live import LiveBuffer

_SHARED: dict[str, dict] = {}
_SHARED_LOCK = threading.Lock()
_SHARED_KEEP = 3


def shared_view(handle, build, *, max_age_s: float) -> dict:
    """The live view of a run, shared by every browser session that watches it.

    One LiveBuffer per run in the server (not per session) and figures rebuilt at most every ``max_age_s``: four
    visitors watching a run cost one build per refresh, not four, which is what keeps a 2-core board refreshing
    every session. A finished run gets one last build with all its points, then it is served as it is and its
    points are let go (up to 34 MB each for the last ``_SHARED_KEEP`` runs, which made the server's level depend on
    how fast the last few study cells were).
    """
    with _SHARED_LOCK:
        entry = _SHARED.get(handle.run_id)
        if entry is None:
            entry = _SHARED[handle.run_id] = {"buf": LiveBuffer(handle.run_id, handle.started_ns, handle.started_wall),
                                              "lock": threading.Lock(), "view": None, "at": 0.0, "final": False}
            for old in list(_SHARED)[:-_SHARED_KEEP]:
                del _SHARED[old]
    with entry["lock"]:
        now = _time.monotonic()
        fresh = entry["view"] is not None and (entry["final"] or now - entry["at"] < max_age_s)
        if not fresh:
            finished = handle.finished
            buf = entry["buf"]
            buf.update(handle.snapshot(buf.next_seq, buf.tel_since_ns))
            entry["view"], entry["at"], entry["final"] = build(handle, buf, entry["view"]), now, finished
            if finished:  # the final view holds its (decimated) figures; the points behind them are not needed
                entry["buf"] = None
        return entry["view"]
