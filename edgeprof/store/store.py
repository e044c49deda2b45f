"""The run database: a DuckDB file (schema in ``schema.py``), short-lived connections, writes and queries.

Schema
    Declared once in ``schema.py`` and migrated forward on open; a file newer than this edgeprof is refused.

Concurrency (DuckDB's rules, https://duckdb.org/docs/current/connect/concurrency)
    One process may open a file read-write, and while it holds it no other process can open it at all, not even
    read-only; several processes may open it read-only when nobody writes. A CLI run writes while a dashboard
    reads, from another process, so every connection here is short-lived (open, do one thing, close) and an open
    that meets a lock ("Could not set lock on file ... Conflicting lock is held in <exe> (PID n)") is retried
    with jittered exponential backoff (5 ms growing to 250 ms) for up to ``timeout_s`` (10 s by default); then
    a ``StorageError`` names the process that holds the file. Reads open ``read_only=True``.
    Inside one process DuckDB refuses a read-only and a read-write connection to the same file at the same time
    ("different configuration"), so connections to one path are also serialised by a per-path lock in this
    module; that error is retried as well in case some other code holds a connection.

Transactions
    Every public write is one transaction: a crash, a full disk or a bad row leaves the file as it was before
    that call. Writer connections use one DuckDB thread so a write does not steal cores from a measurement.

Types
    Timestamps are naive ``TIMESTAMP`` in UTC. JSON documents are stored as ``JSON``; NaN and infinities, which
    JSON cannot hold, are stored as null (a value that could not be measured is ``None``, never a sentinel).

Versions
    The Python 3.11+ build uses DuckDB 2.0, whose files DuckDB 1.5.6 (the last release for Python 3.10, JetPack 6)
    cannot open ("Trying to read a database file with version number 69, but we can only read versions between 64
    and 68"): that becomes a StorageError that says to move runs with export/import. Bundles (Parquet or CSV) are the
    portable format in both directions (tests/test_portability.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np

from .. import __version__
from ..config import PRECISION_BITS, STATUSES
from ..errors import StorageError, disk_problem
from ..locks import pid_alive
from . import columns
from . import history as _history
from . import samples as _samples
from .samples import LatencyDigest
from .schema import (
    FILL_DEVICE_NAME,
    GROUP_KINDS,
    JSON_RUN_COLUMNS,
    LATENCY_COLUMNS,
    MIGRATIONS,
    PHASES,
    SAMPLE_TABLES,
    SCHEMA_VERSION,
    TELEMETRY_COLUMNS,
    phase_code_sql,
    upgrade_summary,
)

if TYPE_CHECKING:
    import pandas as pd  # loaded where a frame is made (DuckDB's .df() too): `runs` and `show` read plain rows

# ---------------------------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------------------------

# DuckDB's file header carries these bytes at offset 8; anything else is not a DuckDB database.
_DUCKDB_MAGIC = b"DUCK"
_LOCK_RE = re.compile(
    r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)(?: by user (?P<user>\S+?))?\.?(?:\s|$)")

# ---------------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------------


def new_run_id() -> str:
    """32 hex digits: 12 of milliseconds since the epoch, then 20 random, so ids sort by creation time."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def device_id_for(info: dict) -> str:
    """A stable id for a device: a hash of hostname, machine and board/CPU model."""
    import hashlib

    key = "|".join(str(info.get(k) or "") for k in ("hostname", "machine", "model"))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def local_owner_alive(pid: int | None, host: str | None) -> bool:
    """Default ``is_alive`` for :meth:`Store.mark_interrupted`.

    A run owned by another host is assumed alive (this process cannot tell). A recycled pid makes a dead owner
    look alive; that errs on the safe side (a run is never marked interrupted while its process might live).
    """
    if host and host != socket.gethostname():
        return True
    return pid_alive(pid)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _as_utc(value: datetime | date | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    elif not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def jsonable(obj: Any) -> Any:
    """Make ``obj`` JSON-safe: numpy scalars/arrays to Python, NaN/inf to None, paths and datetimes to strings. The
    one JSON cleaner of stored documents and reports."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy scalar or array
        return jsonable(obj.tolist())
    if hasattr(obj, "item"):
        return jsonable(obj.item())
    if hasattr(obj, "to_dict"):
        return jsonable(obj.to_dict())
    return str(obj)


def _json(obj: Any) -> str | None:
    return None if obj is None else json.dumps(jsonable(obj), sort_keys=False)


_clean = jsonable  # its name before it was the one cleaner


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    try:
        num = float(value)
    except (TypeError, ValueError):
        return None
    return num if math.isfinite(num) else None


def _int(value: Any) -> int | None:
    num = _num(value)
    return None if num is None else int(num)


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _listify(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _duck_reason(err: BaseException) -> str:
    """DuckDB's message without its "IO Error: " prefix and the query excerpt it appends."""
    msg = str(err).split("\n")[0].strip()
    msg = re.sub(r"^[A-Za-z ]*Error: ", "", msg)
    return msg.rstrip(".")


def _is_lock_conflict(err: BaseException) -> bool:
    text = str(err)
    return "Could not set lock" in text or "Conflicting lock" in text or "different configuration" in text


_DERIVED = ("coalesce(r.peak_charged_mb, r.peak_rss_mb) AS peak_ram_mb, "
            "CAST(CASE r.precision " + " ".join(f"WHEN '{p}' THEN {b}" for p, b in PRECISION_BITS.items())
            + " END AS DOUBLE) AS bits, r.model_size_bytes / 1e6 AS model_size_mb")

_PATH_LOCKS: dict[str, threading.RLock] = {}
_PATH_LOCKS_GUARD = threading.Lock()


def _path_lock(path: Path) -> threading.RLock:
    key = str(path)
    with _PATH_LOCKS_GUARD:
        lock = _PATH_LOCKS.get(key)
        if lock is None:
            lock = _PATH_LOCKS[key] = threading.RLock()
        return lock


# ---------------------------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------------------------


def _one_row(con, sql: str, params: list) -> dict | None:
    """The first row of a query as {column: value}, None when there is none."""
    cur = con.execute(sql, params)
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))


class Store:
    """The run database at ``path``; created or migrated to :data:`SCHEMA_VERSION` on construction.

    Holds no connection between calls. ``timeout_s`` bounds how long one call waits for another process's lock.
    """

    def __init__(self, path: str | os.PathLike, *, timeout_s: float = 10.0):
        if str(path) in ("", ":memory:"):
            raise StorageError("the run database needs a file path, not an in-memory database.",
                               "Pass --db with a file path.")
        self.path = Path(path).expanduser().absolute()
        self.timeout_s = float(timeout_s)
        self._ensure_schema()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- connections --------------------------------------------------------------------------------------------

    def _cannot_write(self, reason: str) -> StorageError:
        disk = disk_problem(reason, f"the database at {self.path}")
        if disk is not None:
            return disk
        return StorageError(f"cannot write the database at {self.path}: {reason};", "pass --db with a writable path.")

    def _not_duckdb(self, what: str) -> StorageError:
        return StorageError(f"{self.path} {what}, so edgeprof left it untouched;",
                            "pass --db with another path (a new file is created).")

    @property
    def _intent(self) -> Path:
        """A flag file a blocked writer keeps fresh; readers that see it step aside (cf. SQLite's PENDING lock).

        Without it a reader that polls in a loop can re-open the file within microseconds of closing it, and a
        writer that retries every few ms starves (measured: 3 batches in 2 s instead of dozens).
        """
        return self.path.with_name(self.path.name + ".write-wanted")

    def _writer_waiting(self) -> bool:
        try:
            age = time.time() - self._intent.stat().st_mtime
        except OSError:
            return False
        return age < 1.0  # a writer refreshes it on every retry; an older one was left by a crash

    def _open(self, *, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.timeout_s
        delay = 0.005
        config = {"allocator_flush_threshold": "8MB"} if read_only else {"threads": 1, "allocator_flush_threshold": "8MB"}
        flagged = False
        try:
            if read_only:
                yield_until = time.monotonic() + 0.5
                while self._writer_waiting() and time.monotonic() < yield_until:
                    time.sleep(0.01)
            while True:
                try:
                    return duckdb.connect(str(self.path), read_only=read_only, config=config)
                except (duckdb.IOException, duckdb.ConnectionException) as err:
                    if not _is_lock_conflict(err):
                        raise self._open_error(err, read_only) from None
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise self._busy_error(err) from None
                except duckdb.Error as err:
                    raise self._open_error(err, read_only) from None
                if not read_only:
                    with contextlib.suppress(OSError):
                        self._intent.touch()
                        flagged = True
                # Jitter keeps a polling reader and a batching writer from falling into lockstep.
                time.sleep(min(delay * random.uniform(0.5, 1.5), remaining))
                delay = min(delay * 1.6, 0.05 if not read_only else 0.25)
        finally:
            if flagged:
                with contextlib.suppress(OSError):
                    self._intent.unlink()

    def _busy_error(self, err: BaseException) -> StorageError:
        match = _LOCK_RE.search(str(err))
        if match:
            holder = f"process {match['pid']} ({match['exe']}"
            holder += f", user {match['user']})" if match["user"] else ")"
        elif "different configuration" in str(err):
            holder = "another connection in this process"
        else:
            holder = "another process"
        return StorageError(
            f"the database at {self.path} is busy: {holder} has held it for more than {self.timeout_s:g} s.",
            "An edgeprof run holds it only for short writes, so wait for that process to finish or close it "
            "(DuckDB lets one process write a file and nobody else open it meanwhile), or pass --db with another path.",
        )

    def _open_error(self, err: BaseException, read_only: bool) -> StorageError:
        reason = _duck_reason(err)
        if "created with a newer version of DuckDB" in str(err) or "with version number" in reason:
            return StorageError(
                f"{self.path} was written by a newer DuckDB than the {duckdb.__version__} installed here (DuckDB 2 "
                "files do not open in DuckDB 1.5, the last release for Python 3.10).",
                "Open it with an edgeprof on Python 3.11 or newer, or move its runs with `export` there and `import` "
                "here, or pass --db with another path.",
            )
        if "not a valid DuckDB database" in reason:
            return self._not_duckdb("is not a DuckDB database")
        if "database does not exist" in reason:
            return StorageError(f"there is no database at {self.path}.", "Pass --db with an existing database.")
        if read_only:
            return StorageError(f"cannot read the database at {self.path}: {reason}.",
                                "Check the file, or pass --db with another path.")
        return self._cannot_write(reason)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with _path_lock(self.path):
            con = self._open(read_only=True)
            try:
                yield con
            except duckdb.Error as err:  # an export writes from a reading connection: a full disk is not a read error
                reason = _duck_reason(err)
                raise disk_problem(reason, "the output") or StorageError(
                    f"cannot read the database at {self.path}: {reason}.") from None
            finally:
                con.close()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One read-write connection and one transaction: all of the block lands, or none of it."""
        with _path_lock(self.path):
            con = self._open(read_only=False)
            try:
                con.begin()
                try:
                    yield con
                    con.commit()
                except BaseException:
                    with contextlib.suppress(duckdb.Error):
                        con.rollback()
                    raise
            except duckdb.Error as err:
                raise self._cannot_write(_duck_reason(err)) from None
            finally:
                con.close()

    # -- schema -------------------------------------------------------------------------------------------------

    @staticmethod
    def _version(con: duckdb.DuckDBPyConnection) -> int | None:
        """The schema version, 0 for an empty database, None for a database that edgeprof did not make."""
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            " AND table_catalog = current_database()").fetchall()}
        if not tables:
            return 0
        if "schema_version" not in tables:
            return None
        return con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]

    def _check_version(self, version: int | None) -> int:
        if version is None:
            raise self._not_duckdb("is a DuckDB database that edgeprof did not create (it has no schema_version)")
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"the database at {self.path} has schema version {version}, newer than this edgeprof "
                f"({__version__}) knows ({SCHEMA_VERSION}).", "Upgrade edgeprof, or pass --db with another path.")
        return version

    def _ensure_schema(self) -> None:
        path = self.path
        if path.is_dir():
            raise self._cannot_write("it is a directory")
        if path.exists():
            try:
                with open(path, "rb") as fh:
                    head = fh.read(16)
            except OSError as err:
                raise StorageError(f"cannot read the database at {path}: {err.strerror or err}.",
                                   "Check its permissions, or pass --db with another path.") from None
            if not head:
                raise self._not_duckdb("is an empty file, not a DuckDB database")
            if head[8:12] != _DUCKDB_MAGIC:
                raise self._not_duckdb("is not a DuckDB database")
            with self._reading() as con:
                if self._check_version(self._version(con)) == SCHEMA_VERSION:
                    return
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise self._cannot_write(f"cannot create {path.parent} ({err.strerror or err})") from None
        self._migrate()

    def _migrate(self) -> None:
        with _path_lock(self.path):
            con = self._open(read_only=False)
            try:
                # Another process may have migrated between our read and this write: ask again.
                version = self._check_version(self._version(con))
                for number in range(version + 1, SCHEMA_VERSION + 1):
                    description, steps = MIGRATIONS[number - 1]
                    con.begin()
                    try:
                        if callable(steps):
                            steps(con)
                        else:
                            for sql in steps:
                                con.execute(sql)
                        con.execute("INSERT INTO schema_version VALUES (?, ?, ?)", [number, _utcnow(), description])
                        con.commit()
                    except BaseException:
                        with contextlib.suppress(duckdb.Error):
                            con.rollback()
                        raise
            except duckdb.Error as err:
                raise self._cannot_write(f"migrating the schema failed ({_duck_reason(err)})") from None
            finally:
                con.close()

    def schema_version(self) -> int:
        with self._reading() as con:
            return self._version(con) or 0

    # -- devices and runs ---------------------------------------------------------------------------------------

    def upsert_device(self, info: dict) -> str:
        """Record (or refresh) a device; ``info`` holds hostname, machine, model, cpu, cores, ram_mb, os, kernel,
        device_name (default the hostname) and anything else (kept whole in ``info``). Returns its ``device_id``
        (``info['device_id']`` if given)."""
        device_id = str(info.get("device_id") or device_id_for(info))
        now = _utcnow()
        row = [device_id, info.get("hostname"), info.get("machine"), info.get("model"), info.get("cpu"),
               _int(info.get("cores")), _num(info.get("ram_mb")), info.get("os"), info.get("kernel"), _json(info),
               now, now, info.get("device_name") or info.get("hostname")]
        with self._writing() as con:
            con.execute(
                """INSERT INTO devices (device_id, hostname, machine, model, cpu, cores, ram_mb, os, kernel, info,
                   first_seen, last_seen, device_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (device_id) DO UPDATE SET hostname = excluded.hostname, machine = excluded.machine,
                   model = excluded.model, cpu = excluded.cpu, cores = excluded.cores, ram_mb = excluded.ram_mb,
                   os = excluded.os, kernel = excluded.kernel, info = excluded.info, last_seen = excluded.last_seen,
                   device_name = excluded.device_name""",
                row)
        return device_id

    def insert_run(self, run_id: str | None, device_id: str | None, config: dict, software: dict | None = None,
                   model_meta: dict | None = None, *, study_id: str | None = None, owner_pid: int | None = None,
                   owner_host: str | None = None, created_at: datetime | None = None,
                   group_id: str | None = None) -> str:
        """Create a run with status ``running``; returns its id (a new time-sortable one when ``run_id`` is None).
        ``group_id`` links it to the runs made with it (:meth:`create_group`).

        ``config`` is ``RunConfig.to_dict()``; ``model_meta`` is what was resolved when the run started: path, sha256,
        size_bytes, runtime, backend, backend_options (each falls back to the config). ``owner_pid``/``owner_host``
        default to this process, and let :meth:`mark_interrupted` find runs whose process died.
        """
        run_id = run_id or new_run_id()
        meta = model_meta or {}
        cfg = config or {}
        row = {
            "run_id": run_id, "device_id": device_id, "created_at": _as_utc(created_at) or _utcnow(),
            "status": "running", "model": meta.get("name") or cfg.get("model"),
            "precision": meta.get("precision") or cfg.get("precision"),
            "runtime": meta.get("runtime") or cfg.get("runtime"),
            "tflite_interpreter": meta.get("tflite_interpreter") or cfg.get("tflite_interpreter"),
            "execution_provider": meta.get("execution_provider") or cfg.get("execution_provider"),
            "backend": meta.get("backend") or cfg.get("backend"),
            "backend_options": _json(meta.get("backend_options") or cfg.get("backend_options") or None),
            "threads": _int(cfg.get("threads")), "memory_limit_mb": _num(cfg.get("memory_limit_mb")),
            "model_path": None if meta.get("path") is None else str(meta.get("path")),
            "model_sha256": meta.get("sha256"), "model_size_bytes": _int(meta.get("size_bytes")),
            "study_id": study_id, "config": _json(cfg), "software": _json(software or {}),
            "owner_pid": os.getpid() if owner_pid is None else int(owner_pid),
            "owner_host": owner_host or socket.gethostname(),
            "tags": _json(cfg.get("tags")) if cfg.get("tags") is not None else None,
            "group_id": group_id,
        }
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._writing() as con:
            if con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone():
                raise StorageError(f"a run with id {run_id} already exists in {self.path}.",
                                   "Use a new run id (edgeprof.store.new_run_id()).")
            con.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", list(row.values()))
            con.execute(FILL_DEVICE_NAME + " AND run_id = ?", [run_id])
        return run_id

    def append_latency(self, run_id: str, rows: Sequence[tuple] | pd.DataFrame) -> int:
        """Append latency samples ``(seq, t_ns, latency_ns, phase)`` in one transaction; returns the row count."""
        return self.append_samples(run_id, latency=rows)[0]

    def append_telemetry(self, run_id: str, rows: Sequence[tuple] | pd.DataFrame) -> int:
        """Append telemetry rows ``(t_ns, source, metric, value, unit)`` in one transaction; returns the row count."""
        return self.append_samples(run_id, telemetry=rows)[1]

    def append_samples(self, run_id: str, latency: Sequence[tuple] | pd.DataFrame | None = None,
                       telemetry: Sequence[tuple] | pd.DataFrame | None = None, *,
                       seconds: pd.DataFrame | None = None, reservoir: pd.DataFrame | None = None) -> tuple[int, int]:
        """Latency and telemetry rows in ONE connection and transaction: the recorder's flush, every 5 s.

        Opening and committing costs ~20 ms of CPU whatever the batch size, CPU the measured worker competes for on a
        small board, so the runner pays it once per flush, not once per table. A reduced run's ``seconds`` (aggregate
        rows, ``SECONDS_COLUMNS``) and, when it ends, its ``reservoir`` (``RESERVOIR_COLUMNS``, replacing any stored
        one) go in the same transaction (``run.recorder``).
        """
        lat = _frame(latency, LATENCY_COLUMNS) if latency is not None else None
        tel = _frame(telemetry, TELEMETRY_COLUMNS) if telemetry is not None else None
        if lat is not None:
            bad = set(lat["phase"].unique()) - set(PHASES)
            if bad:
                raise StorageError(f"latency phase {sorted(map(str, bad))} is not one of: {', '.join(PHASES)}.")
        if tel is not None:
            import pandas as pd

            tel["value"] = pd.to_numeric(tel["value"], errors="coerce").astype("float64")
        if lat is None and tel is None and seconds is None and reservoir is None:
            return 0, 0
        with self._writing() as con:
            _samples.append_reduction(con, run_id, seconds, reservoir)
            if lat is not None:
                con.register("_lat", lat)
                con.execute(
                    "INSERT INTO latency SELECT ?, CAST(seq AS INTEGER), CAST(t_ns AS BIGINT), CAST(latency_ns AS BIGINT),"
                    " CAST(phase AS TEXT) FROM _lat", [run_id])
                con.unregister("_lat")
            if tel is not None:
                con.register("_tel", tel)
                con.execute(
                    "INSERT INTO telemetry SELECT ?, CAST(t_ns AS BIGINT), CAST(source AS TEXT), CAST(metric AS TEXT),"
                    " CAST(value AS DOUBLE), CAST(unit AS TEXT) FROM _tel", [run_id])
                con.unregister("_tel")
        return (0 if lat is None else len(lat)), (0 if tel is None else len(tel))

    def finish_run(self, run_id: str, status: str, reason: str | None = None, summary: dict | None = None, *,
                   finished_at: datetime | None = None) -> None:
        """Set the final status, reason and summary document, and fill the flattened columns from the summary."""
        if status not in STATUSES:
            raise StorageError(f"run status {status!r} is not one of: {', '.join(STATUSES)}.")
        values = {"status": status, "reason": reason, "finished_at": _as_utc(finished_at) or _utcnow(),
                  "summary": _json(summary), **_flatten_summary(summary or {})}
        sets = ", ".join(f"{k} = ?" for k in values)
        with self._writing() as con:
            if not con.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone():
                raise StorageError(f"there is no run {run_id} in {self.path}.")
            con.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", [*values.values(), run_id])

    def set_notes(self, run_id: str, notes: str | None) -> None:
        with self._writing() as con:
            con.execute("UPDATE runs SET notes = ? WHERE run_id = ?", [notes, run_id])

    def mark_interrupted(self, is_alive: Callable[[int | None, str | None], bool] = local_owner_alive) -> list[str]:
        """Mark runs still ``running`` whose owner process is gone as ``interrupted``; returns their ids.

        ``is_alive(pid, host)`` decides; the default checks pids on this host and trusts other hosts.
        """
        with self._reading() as con:
            running = con.execute(
                "SELECT run_id, owner_pid, owner_host FROM runs WHERE status = 'running' ORDER BY run_id").fetchall()
        dead = [(rid, pid, host) for rid, pid, host in running if not is_alive(pid, host)]
        if not dead:
            return []
        done = []
        with self._writing() as con:
            for rid, pid, host in dead:
                reason = f"the process that ran it (pid {pid} on {host}) ended without recording a result"
                # status = 'running' again: the run may have finished between the read and this write.
                hit = con.execute(
                    "UPDATE runs SET status = 'interrupted', reason = ? WHERE run_id = ? AND status = 'running'"
                    " RETURNING run_id", [reason, rid]).fetchall()
                done.extend(r[0] for r in hit)
        return done

    def delete_runs(self, run_ids: Iterable[str]) -> int:
        """Delete runs with their samples, telemetry and study cells, and the finished groups left without runs;
        returns how many runs were deleted."""
        ids = _listify(run_ids) or []
        if not ids:
            return 0
        with self._writing() as con:
            for table in (*SAMPLE_TABLES, "study_cells"):
                con.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT unnest(?::TEXT[]))", [ids])
            n = len(con.execute("DELETE FROM runs WHERE run_id IN (SELECT unnest(?::TEXT[])) RETURNING run_id",
                                [ids]).fetchall())
            con.execute("DELETE FROM run_groups WHERE status <> 'running' AND group_id NOT IN "
                        "(SELECT group_id FROM runs WHERE group_id IS NOT NULL)")
            return n

    # -- queries ------------------------------------------------------------------------------------------------

    def list_runs(self, device: str | None = None, model: str | Iterable[str] | None = None,
                  precision: str | Iterable[str] | None = None, status: str | Iterable[str] | None = None,
                  since: datetime | str | None = None, until: datetime | str | None = None,
                  study_id: str | None = None, limit: int | None = None, runtime: str | None = None,
                  threads: int | None = None) -> pd.DataFrame:
        """Runs, newest first, with the device's ``hostname`` and the derived columns every page uses: ``peak_ram_mb``
        (charged memory where a cgroup measured it, else the worker's peak RSS), ``bits`` (of the precision) and
        ``model_size_mb``. ``device`` matches a device id, a hostname or a device name; ``model``, ``precision`` and ``status``
        take one value or several; ``since``/``until`` bound ``created_at`` (UTC; an aware datetime is converted).
        The rows of :meth:`run_rows` as a DataFrame (DuckDB's own conversion: one query, the same SQL)."""
        sql, params = _runs_query(device=device, model=model, precision=precision, status=status, since=since,
                                  until=until, study_id=study_id, limit=limit, runtime=runtime, threads=threads)
        with self._reading() as con:
            return con.execute(sql, params).df()

    def run_rows(self, device: str | None = None, model: str | Iterable[str] | None = None,
                 precision: str | Iterable[str] | None = None, status: str | Iterable[str] | None = None,
                 since: datetime | str | None = None, until: datetime | str | None = None,
                 study_id: str | None = None, limit: int | None = None, runtime: str | None = None,
                 threads: int | None = None, columns: Sequence[str] | None = None) -> list[dict]:
        """:meth:`list_runs` as plain rows, ``{column: value}`` newest first, with None for what is missing (Python
        ``datetime``, ``int``, ``float``, ``str``; JSON columns as their text), optionally only ``columns`` (names of
        ``list_runs``' columns, in that order; an unknown name is a ``StorageError``). Needs neither pandas nor
        numpy: what the ``runs`` command reads."""
        sql, params = _runs_query(device=device, model=model, precision=precision, status=status, since=since,
                                  until=until, study_id=study_id, limit=limit, runtime=runtime, threads=threads)
        if columns is not None:
            sql = f"SELECT {', '.join(_quoted(c) for c in columns)} FROM ({sql})"
        with self._reading() as con:
            cur = con.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def ok_runs(self, model: str, precision: str, runtime: str, threads: int, *,
                device_id: str | None = None) -> pd.DataFrame:
        """The ok runs of one variant (model, precision, runtime, threads), newest first, optionally on one device:
        the footprint of a study's relative limits, the FP32 reference of the INT8 flag and the Run page's hint."""
        df = self.list_runs(model=model, precision=precision, status="ok", runtime=runtime, threads=threads)
        return df[df["device_id"] == device_id] if device_id is not None else df

    def get_run(self, run_id: str) -> dict | None:
        """One run as a dict, its JSON columns parsed, with its device under ``device``; None if there is none."""
        with self._reading() as con:
            run = _one_row(con, "SELECT * FROM runs WHERE run_id = ?", [run_id])
            if run is None:
                return None
            device = _one_row(con, "SELECT * FROM devices WHERE device_id = ?", [run["device_id"]])
        for key in JSON_RUN_COLUMNS:
            if run.get(key) is not None:
                run[key] = json.loads(run[key])
        run["summary"] = upgrade_summary(run.get("summary"))
        if device and device.get("info") is not None:
            device["info"] = json.loads(device["info"])
        run["device"] = device
        return run

    def latency(self, run_id: str | Iterable[str]) -> pd.DataFrame:
        """Latency samples of one run (or several) ordered by run and ``seq``; ``run_id`` and ``phase`` are
        categorical (see :func:`_categorical_df`)."""
        with self._reading() as con:
            return _categorical_df(con, "SELECT * FROM latency WHERE run_id IN (SELECT unnest(?::TEXT[]))",
                                   [_listify(run_id)], ("run_id", "phase"), "run_id, seq")

    def latency_arrays(self, run_id: str, below_seq: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t_ns, latency_ns, phase code) int64/int64/int8 arrays of one run in ``seq`` order, optionally only
        ``seq < below_seq``: 17 bytes a sample, for a summary over more samples than the runner keeps in memory.

        A run's seq is 0..n-1 (the runner stores every sample), so each chunk of an unordered scan is put in place
        by its seq: no ORDER BY, whose sort and materialized result held ~4x the arrays (120 MB for a 1.6 M-sample
        run of a fast model, in the dashboard's server); this holds ~2x. A run with gaps is read sorted."""
        cols = f"seq, t_ns, latency_ns, {phase_code_sql()} AS code"
        where, params = "run_id = ?", [run_id]
        if below_seq is not None:
            where += " AND seq < ?"
            params.append(int(below_seq))
        with self._reading() as con:
            n, lo, hi = con.execute(f"SELECT count(*), min(seq), max(seq) FROM latency WHERE {where}", params).fetchone()
            out = (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int8))
            if not n:
                return out
            contiguous = lo == 0 and hi == n - 1
            res = con.execute(f"SELECT {cols} FROM latency WHERE {where}" + ("" if contiguous else " ORDER BY seq"),
                              params)
            at = 0
            while True:
                chunk = res.fetch_df_chunk(64)  # 64 vectors: ~130,000 rows
                if chunk.empty:
                    break
                k = len(chunk)
                place = chunk["seq"].to_numpy() if contiguous else slice(at, at + k)
                for arr, col in zip(out, ("t_ns", "latency_ns", "code"), strict=True):
                    arr[place] = chunk[col].to_numpy()
                at += k
        return out

    # -- the history a page shows, filtered and paged in DuckDB (store.history) ---------------------------------------
    def run_facets(self) -> dict:
        """The values each history filter offers and the number of runs (``history.facets``)."""
        with self._reading() as con:
            return _history.facets(con)

    def runs_page(self, query: _history.Query, *, offset: int = 0, limit: int = 100,
                  include: str | None = None) -> tuple[pd.DataFrame, int]:
        """One page of the runs ``query`` matches, newest first, and how many match (``history.page``)."""
        with self._reading() as con:
            return _history.page(con, query, offset=offset, limit=limit, include=include)

    # -- a run's samples reduced in DuckDB (store.samples): the cost does not grow with the run's length ------------
    def latency_digest(self, run_id: str) -> LatencyDigest:
        """What a run's summary needs from its samples (``samples.digest``), computed in DuckDB."""
        with self._reading() as con:
            return _samples.digest(con, run_id)

    def latency_timeline(self, run_id: str, buckets: int = _samples.TIMELINE_BUCKETS, top_ns: int | None = None) -> dict:
        """A run's latency over time as at most ``buckets`` stretches (``samples.timeline``)."""
        with self._reading() as con:
            return _samples.timeline(con, run_id, buckets=buckets, top_ns=top_ns)

    def latency_windows(self, run_id: str, window_s: float) -> tuple:
        """A run's steady samples per time window in the database (``samples.latency_windows``)."""
        with self._reading() as con:
            return _samples.latency_windows(con, run_id, window_s)

    def steady_subsample(self, run_ids: Iterable[str], max_samples: int = 200_000) -> dict[str, np.ndarray]:
        """Each run's steady latencies (ms, time order), every k-th beyond ``max_samples`` (``samples.steady_subsample``)."""
        with self._reading() as con:
            return _samples.steady_subsample(con, list(run_ids), max_samples=max_samples)

    def telemetry(self, run_id: str | Iterable[str], metrics: str | Iterable[str] | None = None,
                  source: str | Iterable[str] | None = None) -> pd.DataFrame:
        """Telemetry rows (long form) of one run (or several), optionally only some metrics/sources, by time;
        the text columns are categorical."""
        sql = "SELECT * FROM telemetry WHERE run_id IN (SELECT unnest(?::TEXT[]))"
        params: list = [_listify(run_id)]
        for column, value in (("metric", metrics), ("source", source)):
            values = _listify(value)
            if values is not None:
                sql += f" AND {column} IN (SELECT unnest(?::TEXT[]))"
                params.append(values)
        with self._reading() as con:
            return _categorical_df(con, sql, params, ("run_id", "source", "metric", "unit"),
                                   "run_id, t_ns, source, metric")

    def devices(self) -> pd.DataFrame:
        with self._reading() as con:
            return con.execute("SELECT * FROM devices ORDER BY last_seen DESC").df()

    # -- studies ------------------------------------------------------------------------------------------------

    def create_study(self, study_id: str, name: str | None = None, config: dict | None = None,
                     status: str = "running") -> str:
        """Record a study; a study that already exists is left as it is (so a resumed study can call this again)."""
        with self._writing() as con:
            con.execute("INSERT INTO studies VALUES (?, ?, ?, ?, ?) ON CONFLICT (study_id) DO NOTHING",
                        [study_id, name, _utcnow(), _json(config), status])
        return study_id

    def set_study_status(self, study_id: str, status: str) -> None:
        with self._writing() as con:
            con.execute("UPDATE studies SET status = ? WHERE study_id = ?", [status, study_id])

    def set_cell(self, study_id: str, cell_key: str, run_id: str | None, status: str) -> None:
        """Create or update one cell of a study's grid."""
        with self._writing() as con:
            con.execute("""INSERT INTO study_cells VALUES (?, ?, ?, ?) ON CONFLICT (study_id, cell_key)
                           DO UPDATE SET run_id = excluded.run_id, status = excluded.status""",
                        [study_id, cell_key, run_id, status])

    def cells(self, study_id: str) -> pd.DataFrame:
        with self._reading() as con:
            return con.execute("SELECT * FROM study_cells WHERE study_id = ? ORDER BY cell_key", [study_id]).df()

    def list_studies(self) -> pd.DataFrame:
        """Studies, newest first, with ``n_cells`` and ``n_ok`` (cells whose status is ok)."""
        with self._reading() as con:
            return con.execute(
                """SELECT s.*, count(c.cell_key) AS n_cells, count(c.cell_key) FILTER (WHERE c.status = 'ok') AS n_ok
                   FROM studies s LEFT JOIN study_cells c USING (study_id)
                   GROUP BY ALL ORDER BY s.created_at DESC, s.study_id""").df()


    # -- groups of runs -----------------------------------------------------------------------------------------

    def create_group(self, group_id: str, kind: str, device_id: str | None = None, config: dict | None = None) -> str:
        """Record a group of runs made as one measurement (``kind``: repeat | compare | noise_floor), status
        ``running``; its runs name it in ``insert_run(group_id=...)``."""
        if kind not in GROUP_KINDS:
            raise StorageError(f"group kind {kind!r} is not one of: {', '.join(GROUP_KINDS)}.")
        with self._writing() as con:
            con.execute("INSERT INTO run_groups VALUES (?, ?, ?, ?, NULL, 'running', ?, NULL)",
                        [group_id, kind, device_id, _utcnow(), _json(config)])
        return group_id

    def finish_group(self, group_id: str, status: str, result: dict | None, *, device_id: str | None = None) -> None:
        """Store a group's result document, final status (ok | partial | failed | stopped) and the device its runs
        ran on."""
        with self._writing() as con:
            con.execute("UPDATE run_groups SET status = ?, result = ?, finished_at = ?,"
                        " device_id = coalesce(?, device_id) WHERE group_id = ?",
                        [status, _json(result), _utcnow(), device_id, group_id])

    def get_group(self, group_id: str) -> dict | None:
        """One group as a dict (config and result parsed) with ``run_ids``, its runs in the order they were made;
        None if there is none."""
        with self._reading() as con:
            group = _one_row(con, "SELECT * FROM run_groups WHERE group_id = ?", [group_id])
            if group is None:
                return None
            group["run_ids"] = [r[0] for r in con.execute(
                "SELECT run_id FROM runs WHERE group_id = ? ORDER BY created_at, run_id", [group_id]).fetchall()]
        for key in ("config", "result"):
            if group.get(key) is not None:
                group[key] = json.loads(group[key])
        return group

    def list_groups(self, kind: str | None = None, device_id: str | None = None) -> pd.DataFrame:
        """Groups of runs, newest first, with ``n_runs``; optionally of one kind and one device."""
        where, params = [], []
        if kind is not None:
            where.append("g.kind = ?")
            params.append(kind)
        if device_id is not None:
            where.append("g.device_id = ?")
            params.append(device_id)
        sql = ("SELECT g.*, count(r.run_id) AS n_runs FROM run_groups g LEFT JOIN runs r USING (group_id)"
               + (" WHERE " + " AND ".join(where) if where else "") +
               " GROUP BY ALL ORDER BY g.created_at DESC, g.group_id DESC")
        with self._reading() as con:
            return con.execute(sql, params).df()

    def latest_noise_floor(self, device_id: str | None = None) -> dict | None:
        """The newest noise-floor measurement that gave a floor (of ``device_id``, else of any device): its result
        document (``floor_pct``, ``latency_ms.run_p50``, ``model``, ...) with ``measured_at`` (UTC) and ``device_id``;
        None if none."""
        where = "kind = 'noise_floor' AND result IS NOT NULL"
        params: list = []
        if device_id is not None:
            where += " AND device_id = ?"
            params.append(device_id)
        with self._reading() as con:
            rows = con.execute(f"SELECT result, finished_at, device_id FROM run_groups WHERE {where}"
                               " ORDER BY finished_at DESC LIMIT 20", params).fetchall()
        for result, finished, device in rows:  # the newest with a floor (a run or two may have failed)
            doc = json.loads(result)
            if doc.get("floor_pct") is not None:
                return {**doc, "measured_at": finished, "device_id": device}
        return None


# ---------------------------------------------------------------------------------------------------------------
# Module helpers
# ---------------------------------------------------------------------------------------------------------------


def _frame(rows: Sequence[tuple] | pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame | None:
    import pandas as pd

    if isinstance(rows, pd.DataFrame):
        missing = [c for c in columns if c not in rows.columns]
        if missing:
            raise StorageError(f"the batch lacks column(s) {', '.join(missing)}; expected {', '.join(columns)}.")
        frame = rows.loc[:, list(columns)].copy()
    else:
        rows = list(rows)
        if rows and any(len(r) != len(columns) for r in rows):
            raise StorageError(f"each row of the batch must be ({', '.join(columns)}).")
        frame = pd.DataFrame.from_records(rows, columns=list(columns))
    return None if frame.empty else frame


def _categorical_df(con: duckdb.DuckDBPyConnection, sql: str, params: list, columns: Sequence[str],
                    order_by: str) -> pd.DataFrame:
    """Run ``sql`` and return text ``columns`` as pandas Categoricals.

    Without a working pyarrow, DuckDB turns each VARCHAR value into a Python str: 600k latency samples take
    ~700 ms that way and ~50 ms when the repeated run ids and phases come back as an ENUM (a Categorical).
    """
    replace = []
    for col in columns:
        values = [r[0] for r in con.execute(
            f"SELECT DISTINCT {col} FROM ({sql}) WHERE {col} IS NOT NULL ORDER BY 1", params).fetchall()]
        if values:
            literal = ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
            replace.append(f"CAST({col} AS ENUM({literal})) AS {col}")
    if replace:
        sql = f"SELECT * REPLACE ({', '.join(replace)}) FROM ({sql})"
    return con.execute(f"{sql} ORDER BY {order_by}", params).df()


def _runs_query(*, device, model, precision, status, since, until, study_id, limit, runtime,
                threads) -> tuple[str, list]:
    """The one query behind :meth:`Store.list_runs` and :meth:`Store.run_rows`: (sql, params)."""
    where, params = [], []
    if device is not None:
        where.append("(r.device_id = ? OR d.hostname = ? OR r.device_name = ?)")
        params += [device, device, device]
    for column, value in (("model", model), ("precision", precision), ("status", status)):
        values = _listify(value)
        if values is not None:
            where.append(f"r.{column} IN (SELECT unnest(?::TEXT[]))")
            params.append(values)
    if since is not None:
        where.append("r.created_at >= ?")
        params.append(_as_utc(since))
    if until is not None:
        where.append("r.created_at < ?")
        params.append(_as_utc(until))
    if study_id is not None:
        where.append("r.study_id = ?")
        params.append(study_id)
    if runtime is not None:
        where.append("r.runtime = ?")
        params.append(runtime)
    if threads is not None:
        where.append("r.threads = ?")
        params.append(int(threads))
    sql = f"SELECT r.*, d.hostname, {_DERIVED} FROM runs r LEFT JOIN devices d USING (device_id)"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY r.created_at DESC, r.run_id DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, params


def _quoted(column: str) -> str:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", str(column)):
        raise StorageError(f"{column!r} is not a column of the runs table.")
    return f'"{column}"'


_CONVERT = {"DOUBLE": _num, "INTEGER": _int, "BIGINT": _int, "TEXT": lambda v: v,
            "BOOLEAN": lambda v: None if v is None else bool(v),
            "JSON": lambda v: _json(v) if isinstance(v, (dict, list)) else None}


def _flatten_summary(s: dict) -> dict:
    """The runs columns a summary fills (``columns.FROM_SUMMARY``), converted to their SQL types."""
    s = upgrade_summary(s) or {}
    out = {}
    for col in columns.FROM_SUMMARY:
        value = _CONVERT[col.type](next((v for v in (_get(s, *p) for p in col.paths) if v is not None), None))
        if value is not None or not col.only_present:
            out[col.name] = value
    if _tflite_interpreter(s) is not None:
        out["tflite_interpreter"] = _tflite_interpreter(s)
    return out


def _tflite_interpreter(s: dict) -> str | None:
    """The old column: the backend of a .tflite file (runs.backend says it for every run)."""
    return _get(s, "backend", "name") if s.get("runtime") == "tflite" else None


