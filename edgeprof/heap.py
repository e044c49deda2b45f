"""The server's C heap under glibc: what a thread frees is kept in its arena unless asked back.

A dashboard server runs for days and receives millions of latency samples per run in short-lived arrays. glibc's
dynamic mmap threshold rises to the size of the largest block freed (up to 32 MB), after which blocks of that size come
from the heap and stay there, and every thread that contends gets an arena of its own (up to 8 per core) that keeps its
own free memory: the server's RSS ratchets up run after run. bench/bench_load.py measured the memory the server keeps
at ~370 MB with the threshold pinned and ~340 MB with two arenas as well, flat after warm-up. No-ops without glibc.
"""

from __future__ import annotations

import ctypes
import threading

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 1 << 20  # blocks of 1 MiB or more (a flush's columns, a summary's sort) go back to the OS when freed
ARENA_MAX = 2  # Python threads take turns under the GIL; one arena per thread only multiplies what each one keeps

_libc = None
_tuned = False
_lock = threading.Lock()


def _glibc():
    global _libc
    if _libc is None:
        try:
            lib = ctypes.CDLL("libc.so.6")
            lib.gnu_get_libc_version  # noqa: B018 (raises AttributeError on musl)
            _libc = lib
        except (OSError, AttributeError):
            _libc = False
    return _libc or None


def tune() -> bool:
    """Fix the mmap threshold (which also stops its dynamic rise) and cap the arenas; once per process, as early as
    possible (arenas made before it stay: scripts/app.sh also sets MALLOC_ARENA_MAX). True if glibc took both."""
    global _tuned
    with _lock:
        if not _tuned:
            lib = _glibc()
            _tuned = bool(lib) and all([lib.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD), lib.mallopt(M_ARENA_MAX, ARENA_MAX)])
        return _tuned


def trim() -> None:
    """Hand the free memory at the top of every arena back to the OS (after a run: its samples are gone)."""
    lib = _glibc()
    if lib:
        lib.malloc_trim(0)
