"""One exception hierarchy. Every message says what is wrong and what to do.

The CLI turns an EdgeprofError into one line on stderr and its ``exit_code``; pages show it with st.error.
Exceptions carry only strings so they pickle across the worker boundary.
"""

from __future__ import annotations


class EdgeprofError(Exception):
    """Base class: ``str(err)`` is a complete sentence for the user."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, detail: str = ""):
        self.message = message
        self.hint = hint
        self.detail = detail  # a runtime's raw text: kept for the run's details, never the headline
        super().__init__(message if not hint else f"{message} {hint}")

    def __reduce__(self):
        return (type(self), (self.message, self.hint, self.detail))


class UsageError(EdgeprofError):
    """Bad flag values or an impossible combination of options."""

    exit_code = 2


class ConfigError(UsageError):
    """A RunConfig or StudyConfig that fails validation."""


class BundleError(UsageError):
    """Data from outside that edgeprof refuses to read: a run bundle (folder or zip) or another device's object that
    names a file outside itself, is bigger than the limits, or is not shaped as edgeprof writes it. Nothing of it
    was stored. A usage error (exit 2): the input given is wrong, not this device."""


class ModelError(EdgeprofError):
    """A model file that is missing, unreadable, truncated or unsupported: the command refuses what it was given, so
    the CLI exits 2 as for a usage error (``run`` records such a file as a failed run and exits 3 instead). A tool
    that failed on a file it accepted is ``models.isolated.PreparationFailed`` (exit 1)."""

    exit_code = 2


class InputError(ModelError):
    """The runtime refused the inputs it was fed (shapes or values edgeprof guessed, or the user gave)."""


class RuntimeUnavailable(EdgeprofError):
    """A runtime, interpreter or execution provider that is not installed or cannot run this model."""


class StorageError(EdgeprofError):
    """The database cannot be opened, written or migrated."""


class LimitError(EdgeprofError):
    """A memory cap that cannot be applied."""


def disk_problem(text: str, where: str) -> StorageError | None:
    """The one sentence for a full disk or a read-only file system behind ``text`` (an OSError's or DuckDB's message),
    None for any other problem. ``where``: the file or folder as the reader should see it. What was stored before
    is untouched by either, and the sentence says so."""
    low = text.lower()
    if "no space left" in low or "disk full" in low or "errno 28" in low or "disk quota" in low:
        return StorageError(f"the disk holding {where} is full: nothing more could be written there, and what was "
                            "stored before is intact.",
                            "Free some space on that disk (or pass --db / choose an output on another disk).",
                            detail=text)
    if "read-only file system" in low or "errno 30" in low:
        return StorageError(f"{where} is on a read-only file system, so edgeprof cannot write there.",
                            "Remount it read-write, or set EDGEPROF_HOME to a writable folder (or pass --db).",
                            detail=text)
    return None
