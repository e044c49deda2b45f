"""The ``Source`` interface every telemetry backend implements, and the status tuple the UI shows.

A source is probed once (find handles, paths, libraries) and read many times (values only). A source that
cannot run says why in its probe reason and is switched off; it never reports made-up zeros. A metric that
cannot be read on a given tick is simply left out of that tick's rows.
"""

from __future__ import annotations

import abc
import contextlib
import os
from typing import NamedTuple

Row = tuple[str, float, str]
"""One reading: (metric, value, unit)."""


class SourceStatus(NamedTuple):
    name: str
    available: bool
    reason: str
    stopped_ns: int | None = None  # monotonic time of the last good reading of a source that stopped mid-run


class SourceStopped(Exception):
    """Raised by ``read`` when a source that worked has stopped (a hung or restarted service, a device gone).

    ``since_ns`` is the monotonic time of its last good reading, when the source knows it; the sampler records it,
    switches the source off and keeps the other sources going.
    """

    def __init__(self, reason: str, since_ns: int | None = None):
        super().__init__(reason)
        self.since_ns = since_ns


class Source(abc.ABC):
    """One telemetry backend (host, nvml, jetson, rpi).

    Subclasses implement ``_probe`` (called at most once, through ``probe``), ``read`` and optionally ``close``.
    ``max_hz`` caps how often the sampler calls ``read`` (None: every tick). ``measures``: the device classes of
    ``catalog.DEVICE_CLASSES`` its metrics describe (what ``devices`` says this device can measure).
    """

    name: str = "source"
    max_hz: float | None = None
    measures: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._probed: tuple[bool, str] | None = None

    def probe(self) -> tuple[bool, str]:
        """(available, reason). Runs the real probe once; later calls return the cached answer."""
        if self._probed is None:
            try:
                available, reason = self._probe()
            except Exception as exc:  # a probe must never take the caller down
                available, reason = False, f"probe failed: {type(exc).__name__}: {exc}"
            self._probed = (bool(available), str(reason))
        return self._probed

    def status(self) -> SourceStatus:
        available, reason = self.probe()
        return SourceStatus(self.name, available, reason)

    @abc.abstractmethod
    def _probe(self) -> tuple[bool, str]:
        """Find what this source needs; return (available, what was found or why not)."""

    @abc.abstractmethod
    def read(self, worker_pid: int | None = None) -> list[Row]:
        """Current values; omit any metric that cannot be read now. Only call after a successful probe."""

    def close(self) -> None:  # noqa: B027 - optional hook, most sources hold nothing
        """Release handles (NVML, jtop). Safe to call more than once."""


def read_text(path: str) -> str | None:
    """The stripped text of a small sysfs/procfs file, or None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip().strip("\x00").strip()
    except OSError:
        return None


def read_number(path: str, scale: float = 1.0) -> float | None:
    """A numeric sysfs file (e.g. millidegrees) times ``scale``, or None."""
    text = read_text(path)
    if text is None:
        return None
    try:
        return float(text.split()[0]) * scale
    except (ValueError, IndexError):
        return None


class HeldFile:
    """A proc/sys file opened once and re-read with ``pread(fd, n, 0)`` on every tick.

    procfs and sysfs regenerate a file's text when it is read from offset 0, so one open per run replaces one
    open+close per tick: on a VM that halves the CPU cost of a tick's reads. ``read`` returns None once the file
    is gone (for /proc/<pid>/stat: the process exited, even if its pid was reused since).
    """

    __slots__ = ("path", "_fd")

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))

    def read(self, size: int = 65536) -> str | None:
        fd = self._fd
        if fd is None:
            return None
        try:
            chunks = [os.pread(fd, size, 0)]
            offset = len(chunks[0])
            while len(chunks[-1]) == size:  # larger than the buffer: read on
                chunks.append(os.pread(fd, size, offset))
                offset += len(chunks[-1])
        except OSError:
            return None
        return b"".join(chunks).decode("utf-8", "replace")

    def number(self, scale: float = 1.0) -> float | None:
        text = self.read(64)
        if not text:
            return None
        try:
            return float(text.split()[0]) * scale
        except (ValueError, IndexError):
            return None

    def close(self) -> None:
        fd, self._fd = getattr(self, "_fd", None), None  # _fd is unset when os.open failed in __init__
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        self.close()


def hold(path: str) -> HeldFile | None:
    """HeldFile(path), or None when it cannot be opened."""
    try:
        return HeldFile(path)
    except OSError:
        return None
