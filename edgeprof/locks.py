"""Cross-process ownership: an flock that names its holder, and a pid liveness check.

An ``flock`` is released by the kernel when its holder dies, so a crash never leaves the device or a study "busy";
the lock file's text says who holds it, for the message the second comer sees.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from .errors import EdgeprofError, StorageError, disk_problem

WORK_PREFIX = "work:"  # an owner id of heavy work that is not a run (quantizing, fidelity): "work:<what>"


def pid_alive(pid: int | None) -> bool:
    """True if a process with this pid exists on this host (a pid we may not signal counts as alive)."""
    if pid is None:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class HolderLock:
    """An exclusive, non-blocking flock on ``path`` whose file holds ``"<owner id> (pid N)"`` while held."""

    def __init__(self, path: Path, busy: type[EdgeprofError], what: str):
        self.path = Path(path)
        self._busy = busy
        self._what = what
        self._fd: int | None = None

    def acquire(self, owner_id: str) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:  # a read-only or full data directory: its own sentence, not "unexpected OSError"
            text = f"[Errno {err.errno}] {err.strerror}"
            raise disk_problem(text, f"the data directory {self.path.parent}") or StorageError(
                f"cannot open the lock file {self.path}: {err.strerror or err}.",
                "Check the data directory's permissions, or set EDGEPROF_HOME to a writable folder.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
            os.close(fd)
            what = (f"staff work ({holder[len(WORK_PREFIX):].rsplit(' (pid', 1)[0]})" if holder.startswith(WORK_PREFIX)
                    else f"{self._what} {holder or 'another ' + self._what}")
            exc = self._busy(f"the device is busy with {what}.", "Wait for it to finish or stop it, then start again.")
            exc.holder_id = holder.split(" ", 1)[0] if holder else None  # "<owner id> (pid N)"
            raise exc from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{owner_id} (pid {os.getpid()})".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def holder(self) -> str | None:
        """Who holds the lock now ("ID (pid N)"), or None when nobody does."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
