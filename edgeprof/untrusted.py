"""Files that came from outside, read without leaving their box: a run bundle (a folder or a zip) today, the objects
other devices push (the fleet) later, and the model paths a study file names.

The rules, and why each one:

- A member is named by a plain relative name (:func:`unsafe_reason`): parts of letters, digits, ``_``, ``-`` and
  ``.``, joined by ``/``; no part is ``.`` or ``..`` or starts with a dot; no leading ``/``, no ``\\``, no ``:`` (so no
  URL scheme and no drive), no ``~``, no glob character. Such a name cannot climb out, cannot be a pattern that DuckDB
  would expand to other files, and cannot be a URL that a DuckDB extension would fetch.
- A folder's members are opened with ``openat``, one part at a time, each with ``O_NOFOLLOW``: a symbolic link anywhere
  below the box's root is refused, and there is no gap between a check and the open for a link to be swapped into.
  Only regular files are read (a FIFO would block, a device would never end).
- A zip is judged by its central directory before one byte is unpacked: the number of members, the sum of the sizes
  they declare (a zip bomb is refused, not extracted), each member's name, no symbolic-link and no encrypted members.
  Unpacking a member then stops at the size it declares, and zipfile checks its CRC at the end.
- Every byte read from a box counts against one budget (``Limits.max_bytes``), so a folder whose files grow while they
  are read is bounded too.
- Nothing from a box reaches DuckDB by name. :meth:`Box.copy` writes a member to a file the caller names inside a
  folder from :func:`staging_dir`, and only that path, made here of plain characters, is put into SQL. (Validating
  the name and then handing DuckDB ``root/name`` would still pass the root, which the user chose and which may hold
  ``[`` or ``*``, to DuckDB's glob expansion.)

Contract for a reader (``store.bundle.import_bundle`` now, a fleet reader later): open the source with
:func:`open_box`, read small documents with :meth:`Box.read`, copy table files with :meth:`Box.copy` into a
:func:`staging_dir`, check the tables with ``edgeprof.store.checks`` and only then store anything. Every refusal is a
:class:`~edgeprof.errors.BundleError` whose message is one sentence naming the box and the entry.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import BundleError, StorageError, UsageError

MB = 1024 * 1024
ENV_MAX_MB = "EDGEPROF_MAX_BUNDLE_MB"
MAX_NAME_CHARS = 255
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_GLOB = set("*?[]{}")
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What one box may make edgeprof read. ``max_bytes`` bounds the bytes read from it (unpacked) and the text its
    tables unpack to; ``max_members`` the entries of a zip (a bundle has 7); ``max_document_bytes`` a manifest;
    ``max_rows`` the rows of all its tables together."""

    max_bytes: int = 4096 * MB
    max_members: int = 64
    max_document_bytes: int = 8 * MB
    max_rows: int = 200_000_000

    @classmethod
    def from_env(cls, env: dict | None = None) -> Limits:
        """The defaults, with ``max_bytes`` from ``$EDGEPROF_MAX_BUNDLE_MB`` when set."""
        env = os.environ if env is None else env
        raw = env.get(ENV_MAX_MB)
        if not raw:
            return cls()
        try:
            mb = float(raw)
        except ValueError:
            mb = -1.0
        if not mb > 0 or mb > 2**40:
            raise UsageError(f"{ENV_MAX_MB}={raw!r} is not a positive number of MB.", f"Unset it or set e.g. {ENV_MAX_MB}=8192.")
        return cls(max_bytes=int(mb * MB))


def shown(value, limit: int = 300) -> str:
    """``repr`` of a value from outside, cut to ``limit`` characters, for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


# C0 controls but tab and newline (ESC starts clear-screen, OSC 52 clipboard writes ...), DEL, C1 (CSI is \x9b) and
# the bidirectional overrides that make a terminal show text in another order than it is
_TERMINAL_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` with every character a terminal would act on written as a visible ``\\uXXXX`` escape (a JSON string
    stays valid JSON with the same value): what the CLI writes, whatever a stored name holds."""
    return _TERMINAL_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def unsafe_reason(name) -> str | None:
    """None when ``name`` is a plain relative member name, else why not, as a clause ("which climbs out with '..'")."""
    if not isinstance(name, str):
        return "which is not a file name"
    if not name:
        return "which is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"which is longer than {MAX_NAME_CHARS} characters"
    if not name.isprintable():
        return "which has control characters"
    if "://" in name or (_SCHEME.match(name) and not name.startswith(("/", "\\"))):
        return "which is a URL, not a file inside it"
    if name.startswith(("/", "\\")):
        return "which is an absolute path, not a file inside it"
    if "\\" in name:
        return "which has a backslash"
    if name.startswith("~"):
        return "which names a home folder, not a file inside it"
    parts = name.split("/")
    if ".." in parts:
        return "which climbs out of it with '..'"
    if _GLOB & set(name):
        return "which is a pattern (* ? [ ] { }), not one file"
    if not all(_PART.fullmatch(p) for p in parts):
        return "which is not a plain name (letters, digits, '_', '-', '.', and '/' between folders)"
    return None


def safe_member(name: str, root: str | os.PathLike, label: str = "the bundle") -> Path:
    """``root / name`` for a plain relative ``name`` (see :func:`unsafe_reason`) whose every part below ``root`` exists
    and is not a symbolic link, and whose last part is a regular file; else a BundleError naming it. For callers that
    need a path; reading through :meth:`Box.copy` also closes the gap between this check and an open."""
    why = unsafe_reason(name)
    if why:
        raise _refusal(label, f"it names {shown(name)}, {why}")
    path = Path(root)
    for i, part in enumerate(name.split("/")):
        path = path / part
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise _refusal(label, f"it lacks {shown(name)}") from None
        if stat.S_ISLNK(st.st_mode):
            raise _refusal(label, f"it names {shown(name)}, which passes through a symbolic link")
        last = i == name.count("/")
        if (last and not stat.S_ISREG(st.st_mode)) or (not last and not stat.S_ISDIR(st.st_mode)):
            raise _refusal(label, f"it names {shown(name)}, which is not a regular file")
    return path


def within(path: str | os.PathLike, roots: Iterable[str | os.PathLike]) -> bool:
    """Whether ``path`` (relative to the working directory), with every symbolic link resolved, is one of ``roots`` or
    lies below one. The lexical test comes first, so a path outside every root is never looked up on disk."""
    real_roots = []
    for r in roots:
        real_roots += [os.path.abspath(r), os.path.realpath(r)]
    lexical = os.path.abspath(path)
    if not any(_below(lexical, r) for r in real_roots):
        return False
    return any(_below(os.path.realpath(path), r) for r in real_roots)


def _below(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _refusal(label: str, detail: str, outcome: str = "nothing was imported", hint: str | None = None,
             raw: str = "") -> BundleError:
    return BundleError(f"{label} is refused: {detail}; {outcome}.", hint, raw)


# ------------------------------------------------------------------------------------------------ boxes


class Box:
    """A folder or a zip from outside. Members are named as in :func:`unsafe_reason`; every read counts against
    ``limits.max_bytes``. Use as a context manager (a zip holds its file open)."""

    def __init__(self, path: Path, limits: Limits, label: str, outcome: str):
        self.path = path
        self.limits = limits
        self.label = label
        self.outcome = outcome
        self.bytes_read = 0

    def refuse(self, detail: str, hint: str | None = None, raw: str = "") -> BundleError:
        """The BundleError for this box: '<label> is refused: <detail>; <outcome>.' (``raw``: a library's own text,
        kept as the error's detail, never its headline)."""
        return _refusal(self.label, detail, self.outcome, hint, raw)

    def check_name(self, name, what: str = "") -> tuple[str, ...]:
        why = unsafe_reason(name)
        if why:
            raise self.refuse(f"{what or 'it names'} {shown(name)}, {why}")
        return tuple(name.split("/"))

    def exists(self, name: str) -> bool:
        """Whether the box has an entry of this plain name (a link counts: opening it is refused)."""
        raise NotImplementedError

    def read(self, name: str, max_bytes: int | None = None, what: str = "") -> bytes:
        """A small member's bytes (a manifest): at most ``max_bytes`` (``limits.max_document_bytes``)."""
        cap = self.limits.max_document_bytes if max_bytes is None else max_bytes
        with self._open(name, what) as fh:
            data = self._read_member(fh, name, cap + 1)
        if len(data) > cap:
            raise self.refuse(f"{shown(name)} is over {cap // 1024} KiB")
        self._charge(len(data))
        return data

    def copy(self, name: str, dest: str | os.PathLike, what: str = "") -> int:
        """Copy member ``name`` to the new file ``dest`` (which must not exist); returns the bytes copied."""
        total = 0
        with self._open(name, what) as fh:
            try:
                out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except OSError as err:
                raise StorageError(f"cannot write {dest}: {err.strerror or err}.", "Set TMPDIR to a writable folder.") from None
            with os.fdopen(out, "wb") as w:
                while True:
                    chunk = self._read_member(fh, name, _CHUNK)
                    if not chunk:
                        break
                    self._charge(len(chunk))
                    total += len(chunk)
                    try:
                        w.write(chunk)
                    except OSError as err:
                        raise StorageError(f"cannot unpack {self.label} into {Path(dest).parent}: "
                                           f"{err.strerror or err}.", "Free some space or set TMPDIR.") from None
        return total

    def _charge(self, n: int) -> None:
        self.bytes_read += n
        if self.bytes_read > self.limits.max_bytes:
            raise self.refuse(f"it holds more than {self.limits.max_bytes // MB} MB",
                              f"Set {ENV_MAX_MB} to a larger number of MB to import it.")

    def _read_member(self, fh, name: str, n: int) -> bytes:
        return fh.read(n)

    def _open(self, name: str, what: str):
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Box:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FolderBox(Box):
    """A folder: members are opened below an fd of the root, part by part, never through a symbolic link."""

    def exists(self, name: str) -> bool:
        self.check_name(name)
        return os.path.lexists(self.path / name)

    @contextlib.contextmanager
    def _open(self, name: str, what: str) -> Iterator:
        parts = self.check_name(name, what)
        try:
            dirfd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            raise self.refuse(f"its folder cannot be opened ({err.strerror or err})") from None
        fd = -1
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_NONBLOCK if last else os.O_DIRECTORY)
                try:
                    fd = os.open(part, flags, dir_fd=dirfd)
                except FileNotFoundError:
                    raise self.refuse(f"it lacks {shown(name)}", "Export it again.") from None
                except OSError as err:
                    raise self.refuse(f"{what or 'it names'} {shown(name)}, {self._why_not(dirfd, part, err)}") from None
                if not last:
                    os.close(dirfd)
                    dirfd, fd = fd, -1
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise self.refuse(f"{what or 'it names'} {shown(name)}, which is not a regular file")
            os.set_blocking(fd, True)
            with os.fdopen(fd, "rb") as fh:
                fd = -1
                yield fh
        finally:
            os.close(dirfd)
            if fd >= 0:
                os.close(fd)

    @staticmethod
    def _why_not(dirfd: int, part: str, err: OSError) -> str:
        try:
            link = stat.S_ISLNK(os.lstat(part, dir_fd=dirfd).st_mode)
        except OSError:
            link = False
        if link or err.errno == errno.ELOOP:
            return "which is a symbolic link (a bundle holds only plain files)"
        if err.errno == errno.ENOTDIR:
            return "which passes through a file as if it were a folder"
        return f"which cannot be opened ({err.strerror or err})"

    def _read_member(self, fh, name: str, n: int) -> bytes:
        try:
            return fh.read(n)
        except OSError as err:
            raise self.refuse(f"{shown(name)} cannot be read ({err.strerror or err})") from None


class ZipBox(Box):
    """A zip file, judged by its central directory when opened (see the module docstring)."""

    _ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, OSError, EOFError, ValueError,
               NotImplementedError, RuntimeError, OverflowError, UnicodeDecodeError, LookupError)

    def __init__(self, path: Path, limits: Limits, label: str, outcome: str):
        super().__init__(path, limits, label, outcome)
        try:
            size = path.stat().st_size
            self.zf = zipfile.ZipFile(path)
        except self._ERRORS as err:
            raise self.refuse(f"it is not a readable zip file ({_short(err)})",
                              "Pass the directory or .zip made by export.") from None
        try:
            self.members = self._judge(self.zf.infolist(), size)
        except BaseException:
            self.zf.close()
            raise

    def _judge(self, infos: list[zipfile.ZipInfo], size: int) -> dict[str, zipfile.ZipInfo]:
        lim = self.limits
        if len(infos) > lim.max_members:
            raise self.refuse(f"it holds {len(infos)} entries, more than the {lim.max_members} a bundle may have")
        declared = sum(i.file_size for i in infos)
        if declared > lim.max_bytes or size > lim.max_bytes:
            raise self.refuse(f"it would unpack to {max(declared, size) / MB:.0f} MB, over the "
                              f"{lim.max_bytes / MB:.0f} MB limit", f"Set {ENV_MAX_MB} to a larger number of MB to "
                                                                    "import it.")
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            folder = info.filename.endswith("/")  # not is_dir(): it raises IndexError on an empty name (fuzzing)
            name = info.filename[:-1] if folder else info.filename
            why = unsafe_reason(name)
            if why:
                raise self.refuse(f"it holds an entry {shown(info.filename)}, {why}")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise self.refuse(f"it holds an entry {shown(info.filename)}, which is a symbolic link")
            if info.flag_bits & 0x1:
                raise self.refuse(f"its entry {shown(info.filename)} is encrypted")
            if name in members:
                raise self.refuse(f"it holds {shown(name)} twice")
            members[name] = info
        return members

    def exists(self, name: str) -> bool:
        return name in self.members

    @contextlib.contextmanager
    def _open(self, name: str, what: str) -> Iterator:
        self.check_name(name, what)
        info = self.members.get(name)
        if info is None or info.filename.endswith("/"):
            raise self.refuse(f"it lacks {shown(name)}", "Export it again.")
        try:
            fh = self.zf.open(info)
        except self._ERRORS as err:
            raise self.refuse(f"its entry {shown(name)} is damaged ({_short(err)})") from None
        with fh:
            yield fh

    def _read_member(self, fh, name: str, n: int) -> bytes:
        try:
            return fh.read(n)
        except self._ERRORS as err:
            raise self.refuse(f"its entry {shown(name)} is damaged ({_short(err)})") from None

    def close(self) -> None:
        self.zf.close()


def open_box(path: str | os.PathLike, limits: Limits | None = None, label: str | None = None,
             outcome: str = "nothing was imported") -> Box:
    """A :class:`FolderBox` for a folder, a :class:`ZipBox` for a file; a BundleError when there is neither."""
    src = Path(path).expanduser()
    limits = limits or Limits.from_env()
    label = label or f"the bundle {src}"
    if src.is_dir():
        return FolderBox(src, limits, label, outcome)
    if src.is_file():
        return ZipBox(src, limits, label, outcome)
    if not src.exists():
        raise BundleError(f"there is no bundle at {src}.", "Pass the directory or .zip made by export.")
    raise _refusal(label, "it is neither a folder nor a file", outcome)


_DUCKDB_UNSAFE = set("*?[]{}'\"\\")


@contextlib.contextmanager
def staging_dir(prefix: str = "edgeprof-import-") -> Iterator[Path]:
    """A private new folder (mode 0700) for copies of members, removed afterwards. Its path is checked to be plain
    (no glob characters or quotes), so that a file in it can be named in SQL as it is."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=prefix))
    except OSError as err:
        raise StorageError(f"cannot make a temporary folder: {err.strerror or err}.",
                           "Set TMPDIR to a writable folder.") from None
    try:
        if _DUCKDB_UNSAFE & set(str(tmp)) or not tmp.is_absolute():
            raise StorageError(f"the temporary folder {tmp} has characters that DuckDB reads as a pattern.",
                               "Set TMPDIR to a folder with a plain name.")
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _short(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."
