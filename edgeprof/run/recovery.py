"""After a crash: runs whose owning process died are marked interrupted, and the memory and cpu cgroups they left
(with any worker still inside) are removed. Every front end calls ``recover`` when it opens the store."""

from __future__ import annotations

from ..worker import limits, priority


def recover(store) -> list[str]:
    """Mark runs whose owner died as interrupted and remove orphaned cgroups; returns the ids marked."""
    limits.sweep_orphans()
    priority.sweep_orphans()
    return store.mark_interrupted()
