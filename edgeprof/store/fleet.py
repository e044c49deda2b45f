"""The fleet: each device pushes its finished runs to one object store (or shared folder) as immutable Parquet files,
and any device reads every device's runs there with DuckDB, in place.

Layout under the fleet URL (``s3://bucket/prefix`` or a folder), one partition per device, so no two devices ever
write the same object and no object is rewritten once written (``device.json`` is rewritten only by its own device)::

    device=<device_id>/device.json                  the device's manifest: id, name, hardware, layout version
    device=<device_id>/latency/<run_id>.parquet     the run's latency samples (table ``latency``)
    device=<device_id>/telemetry/<run_id>.parquet   its telemetry (table ``telemetry``)
    device=<device_id>/study_cells/<run_id>.parquet the study cells it filled (table ``study_cells``; often empty)
    device=<device_id>/studies/<study_id>.parquet   a finished study's row, written once (table ``studies``)
    device=<device_id>/run_groups/<group_id>.parquet a finished group of runs, written once (table ``run_groups``)
    device=<device_id>/runs/<run_id>.parquet        the run's row (table ``runs``): written LAST, the run's marker

A reader lists the prefix once and shows a run only when its marker is there, and the marker is written after every
other object of the run: a push killed half-way leaves objects without a marker, which no reader shows and the next
push writes again (same bytes, same names) before writing the marker. S3 makes an object visible only once its upload
completed; in a folder each file is written under a dot-name and renamed into place. So a push is idempotent (runs
whose marker is there are skipped, found by listing: nothing local is ever marked pushed) and resumable.

Objects there are data from outside (``untrusted.py``): a reader accepts only the names above (anything else under
the prefix is refused, with its name), puts only those names, built here of hex digits, into SQL, and checks the
tables with ``store.checks`` (id shapes, known statuses and phases, text lengths, each row in the file its name says)
before a row is shown.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from .. import __version__
from ..errors import BundleError
from ..untrusted import shown, staging_dir
from . import checks, samples
from .checks import sql_str as _sql_str
from .remote import FleetError, Target, faults, filesystem, fleet_url, parse_url  # noqa: F401  (fleet_url is read from here too)
from .schema import JSON_RUN_COLUMNS, MIGRATIONS, SCHEMA_VERSION, upgrade_summary
from .store import _DERIVED, Store

FLEET_FORMAT = "edgeprof-fleet"
LAYOUT_VERSION = 1
RUN_TABLES = ("latency", "telemetry", "study_cells")  # written before the marker, one file per run
_HEX16, _HEX32 = r"[0-9a-f]{16}", r"[0-9a-f]{32}"
_NAME = re.compile(rf"device=(?P<device>{_HEX16})/(?:(?P<table>runs|latency|telemetry|study_cells)/(?P<run>{_HEX32})"
                   rf"|(?P<once>studies|run_groups)/(?P<key>{checks.STUDY_ID})|(?P<manifest>device))\.(?:parquet|json)")
# tables of one row per key, written once by the device whose runs name them, when they are no longer running
ONCE = {"studies": ("study_id", "SELECT DISTINCT s.study_id FROM runs r JOIN studies s USING (study_id) WHERE "
                                "r.device_id = ? AND r.status <> 'running' AND s.status <> 'running'"),
        "run_groups": ("group_id", "SELECT DISTINCT g.group_id FROM runs r JOIN run_groups g USING (group_id) WHERE "
                                   "r.device_id = ? AND r.status <> 'running' AND g.status <> 'running'")}
_KEY_SHAPE = {"studies": checks.STUDY_ID, "run_groups": _HEX32}
_TEMP = re.compile(rf"device={_HEX16}/(?:[a-z_]+/)?\.[A-Za-z0-9_.=-]+\.part-[0-9]+")
_SELECTS = {
    "runs": "SELECT * FROM runs WHERE run_id = ?",
    "latency": "SELECT * FROM latency WHERE run_id = ? ORDER BY seq",
    "telemetry": "SELECT * FROM telemetry WHERE run_id = ? ORDER BY t_ns, source, metric",
    "study_cells": "SELECT * FROM study_cells WHERE run_id = ? ORDER BY study_id, cell_key",
}


# ---------------------------------------------------------------------------------------------------------------
# Push
# ---------------------------------------------------------------------------------------------------------------


def push(store: Store, url: str, *, on_object: Callable[[str], None] | None = None) -> dict:
    """Push every finished run of ``store`` whose marker is not at ``url`` yet; returns {"pushed": n, "skipped": m,
    "url", "objects", "bytes", "seconds", "run_ids": [pushed ids]}.

    Runs go to their own device's partition (a run imported from another device's bundle goes to that device's).
    ``on_object(name)`` is called after each object is in place (progress; tests inject faults there). Raises
    UsageError for a malformed URL and FleetError (one sentence, what to do) for a store that cannot be reached or
    written; what was in place before stays, and a run without its marker is pushed again next time.
    """
    target = parse_url(url)
    started = time.monotonic()
    with store._reading() as con:
        runs = con.execute("SELECT run_id, device_id FROM runs WHERE status <> 'running' "
                           "AND device_id IS NOT NULL ORDER BY run_id").fetchall()
        once = {(table, d): [r[0] for r in con.execute(sql, [d]).fetchall()
                             if re.fullmatch(_KEY_SHAPE[table], str(r[0]))]
                for d in {r[1] for r in runs} for table, (_key, sql) in ONCE.items()}
        devices = {r[0]: r for r in con.execute(
            "SELECT device_id, device_name, hostname, machine, model, cpu, cores, ram_mb, os FROM devices").fetchall()}
    fs = filesystem(target)
    stats = {"objects": 0, "bytes": 0}
    pushed: list[str] = []
    with faults(target, "push to"):
        _check_root(fs, target)
        by_device: dict[str, list[str]] = {}
        for run_id, device_id in runs:
            by_device.setdefault(device_id, []).append(run_id)
        there: dict[tuple[str, str], set[str]] = {}
        for device_id in by_device:
            names = _ls_names(fs, target.join(f"device={device_id}"))
            for table in ("runs", *ONCE):
                there[table, device_id] = {n[:-8] for n in _ls_names(fs, target.join(f"device={device_id}", table))
                                           if n.endswith(".parquet")} if table in names else set()
            if "device.json" not in names or _manifest_changed(fs, target, device_id, devices.get(device_id)):
                _put_bytes(fs, target, f"device={device_id}/device.json",
                           _manifest(device_id, devices.get(device_id)), stats, on_object)
        with staging_dir() as stage:
            for device_id, items in by_device.items():
                for run_id in items:
                    if run_id in there["runs", device_id]:
                        continue
                    _push_run(store, fs, target, stage, device_id, run_id, stats, on_object)
                    pushed.append(run_id)
                for table, (key, _sql) in ONCE.items():
                    for value in once[table, device_id]:
                        if value not in there[table, device_id]:
                            _push_once(store, fs, target, stage, device_id, table, key, value, stats, on_object)
    return {"pushed": len(pushed), "skipped": len(runs) - len(pushed), "url": target.url, **stats,
            "seconds": round(time.monotonic() - started, 3), "run_ids": pushed}


def _check_root(fs, target: Target) -> None:
    if target.kind == "s3":
        fs.ls(target.bucket, detail=False)  # NoSuchBucket, credentials and the endpoint are judged here
        return
    root = Path(target.root)
    if not root.is_dir():
        if not root.parent.is_dir():
            raise FleetError(f"cannot push to {target.url}: neither the folder nor its parent {root.parent} exists.",
                             "Create the folder (or mount the shared folder) first.")
        root.mkdir(exist_ok=True)


def _ls_names(fs, path: str) -> set[str]:
    try:
        return {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)}
    except FileNotFoundError as err:
        if "bucket" in str(err).lower():
            raise
        return set()


def _manifest(device_id: str, row: tuple | None) -> bytes:
    keys = ("device_id", "device_name", "hostname", "machine", "model", "cpu", "cores", "ram_mb", "os")
    info = dict(zip(keys, row, strict=True)) if row else {"device_id": device_id}
    doc = {"format": FLEET_FORMAT, "layout_version": LAYOUT_VERSION, "schema_version": SCHEMA_VERSION,
           "edgeprof_version": __version__, **info}
    return (json.dumps(doc, indent=2, default=str) + "\n").encode()


def _manifest_changed(fs, target: Target, device_id: str, row: tuple | None) -> bool:
    try:
        old = json.loads(fs.cat_file(target.join(f"device={device_id}", "device.json"))[: 64 * 1024])
    except (ValueError, FileNotFoundError):
        return True
    new = json.loads(_manifest(device_id, row))
    return {k: old.get(k) for k in ("device_name", "layout_version")} != \
        {k: new.get(k) for k in ("device_name", "layout_version")}


def _push_once(store: Store, fs, target: Target, stage: Path, device_id: str, table: str, key: str, value: str,
               stats: dict, on_object) -> None:
    local = stage / f"{table}-{value}.parquet"
    with store._reading() as con:
        con.execute(f"COPY (SELECT * FROM {table} WHERE {key} = ?) TO '{_sql_str(local)}' (FORMAT parquet)", [value])
    _put_file(fs, target, f"device={device_id}/{table}/{value}.parquet", local, stats, on_object)
    local.unlink()


def _push_run(store: Store, fs, target: Target, stage: Path, device_id: str, run_id: str, stats: dict,
              on_object) -> None:
    files: list[tuple[str, Path]] = []
    with store._reading() as con:
        for table in (*RUN_TABLES, "runs"):
            local = stage / f"{table}-{run_id}.parquet"
            con.execute(f"COPY ({_SELECTS[table]}) TO '{_sql_str(local)}' (FORMAT parquet)", [run_id])
            files.append((f"device={device_id}/{table}/{run_id}.parquet", local))
    for name, local in files:  # the runs row last: it is the marker
        _put_file(fs, target, name, local, stats, on_object)
        local.unlink()


def _put_file(fs, target: Target, name: str, local: Path, stats: dict, on_object) -> None:
    remote = target.join(name)
    if target.kind == "s3":
        fs.put_file(str(local), remote)
    else:
        folder = Path(remote).parent
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{Path(remote).name}.part-{os.getpid()}"
        shutil.copyfile(local, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, remote)
    stats["objects"] += 1
    stats["bytes"] += local.stat().st_size
    if on_object:
        on_object(name)


def _put_bytes(fs, target: Target, name: str, data: bytes, stats: dict, on_object) -> None:
    with staging_dir() as stage:
        local = stage / "object"
        local.write_bytes(data)
        _put_file(fs, target, name, local, stats, on_object)


# ---------------------------------------------------------------------------------------------------------------
# Read
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Listing:
    """What is under a fleet prefix: complete runs {run_id: device_id}, studies and groups {table: [(device, key)]},
    device manifests, and how many runs have data without a marker (a push under way or cut off)."""

    runs: dict[str, str] = field(default_factory=dict)
    once: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: {t: [] for t in ONCE})
    devices: list[str] = field(default_factory=list)
    pending: int = 0
    objects: int = 0


class Fleet:
    """Every device's runs at a fleet URL, queried by DuckDB over the Parquet objects.

    ``engine`` says how DuckDB reaches them:

    - ``httpfs``: DuckDB's own S3 reader, in place, where the extension loads (it is never downloaded from here) and
      the credentials are in the AWS variables;
    - ``cache`` (the default without httpfs): s3fs fetches the objects a query needs, many at once, into the cache
      folder (``paths.cache_dir()/fleet/...``), and DuckDB reads those copies. Objects never change once their run's
      marker is there, so a copy of the listed size is the object, and a later read fetches only new ones;
    - ``fsspec`` (``EDGEPROF_FLEET_ENGINE=fsspec``): s3fs registered with DuckDB (``register_filesystem``), in place.
      Measured against the S3 emulator: DuckDB reads files one at a time through it, each open costing several
      HEAD/GET round trips under the GIL: 23x slower to open and 41x slower for a query over every latency
      object than the cache, cold, at 10 devices x 20 runs (bench/bench_fleet.py);
    - ``folder``: a folder path, read in place.

    The views ``fleet_runs``, ``fleet_latency``, ``fleet_telemetry``, ``fleet_studies``, ``fleet_study_cells`` and
    ``fleet_run_groups`` of
    :meth:`sql` cover complete runs only, and each is checked (store.checks) before its first use.
    """

    def __init__(self, url: str, *, engine: str | None = None):
        self.target = parse_url(url)
        self.fs = filesystem(self.target)
        self.con = duckdb.connect(config={"threads": max(1, min(4, os.cpu_count() or 1))})
        self.engine = self._attach(engine or os.environ.get("EDGEPROF_FLEET_ENGINE"))
        self._types, self._required = _schema_types(self.con)
        self._checked: set[str] = set()
        self._viewed: set[str] = set()
        self._sizes: dict[str, int] = {}
        self.cache = _cache_root(self.target) if self.engine == "cache" else None
        with faults(self.target, "read"):
            self.listing = self._list()
        self._view("runs")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- engine and listing -------------------------------------------------------------------------------------

    def _attach(self, wanted: str | None) -> str:
        if self.target.kind == "folder":
            return "folder"
        if wanted != "fsspec" and _httpfs(self.con):
            return "httpfs"
        if wanted == "httpfs":
            raise FleetError("DuckDB's httpfs extension cannot be loaded here.",
                             "Unset EDGEPROF_FLEET_ENGINE to read the fleet through s3fs.")
        if wanted == "fsspec":
            self.con.register_filesystem(self.fs)
            return "fsspec"
        return "cache"

    def _list(self) -> Listing:
        root = self.target.root
        if self.target.kind == "s3":
            self.fs.ls(self.target.bucket, detail=False)
        elif not Path(root).is_dir():
            raise FleetError(f"cannot read {self.target.url}: the folder does not exist.",
                             "Check the path (or mount the shared folder).")
        found = self.fs.find(root, detail=True)
        self._sizes = {p[len(root) + 1:]: int(info.get("size") or 0) for p, info in found.items()
                       if p.startswith(root + "/") and info.get("type") != "directory"}
        names = sorted(self._sizes)
        out = Listing(objects=len(names))
        data: dict[str, set[str]] = {}
        markers: dict[str, str] = {}
        for rel in names:
            m = _NAME.fullmatch(rel)
            if m is None:
                if _TEMP.fullmatch(rel):
                    continue  # a file a push is writing right now (folders only)
                raise BundleError(f"the fleet at {self.target.url} holds {shown(rel)}, which edgeprof does not write "
                                  "there.", "Remove it, or give a prefix that only edgeprof pushes to.")
            if m["manifest"]:
                out.devices.append(m["device"])
            elif m["once"]:
                if m["once"] == "run_groups" and not re.fullmatch(_HEX32, m["key"]):
                    raise BundleError(f"the fleet at {self.target.url} holds {shown(rel)}, which edgeprof does not "
                                      "write there.", "Remove it, or give a prefix that only edgeprof pushes to.")
                out.once[m["once"]].append((m["device"], m["key"]))
            elif m["table"] == "runs":
                if m["run"] in markers:
                    raise BundleError(f"the fleet at {self.target.url} holds the run {m['run']} under two devices.",
                                      "Remove one of device=.../runs/" + m["run"] + ".parquet.")
                markers[m["run"]] = m["device"]
            else:
                data.setdefault(f"{m['device']}/{m['run']}", set()).add(m["table"])
        for run_id, device_id in markers.items():
            have = data.pop(f"{device_id}/{run_id}", set())
            if have != set(RUN_TABLES):
                lacking = sorted(set(RUN_TABLES) - have)[0]
                raise BundleError(f"the fleet at {self.target.url} holds the run {run_id} without its {lacking} "
                                  f"object (device={device_id}/{lacking}/{run_id}.parquet).",
                                  f"Delete device={device_id}/runs/{run_id}.parquet and push again from that device.")
            out.runs[run_id] = device_id
        out.pending = len(data)
        return out

    def _names(self, table: str) -> list[str]:
        """The object names (relative to the prefix) that hold ``table`` for the complete runs."""
        if table in ONCE:
            return [f"device={d}/{table}/{k}.parquet" for d, k in self.listing.once[table]]
        return [f"device={d}/{table}/{r}.parquet" for r, d in sorted(self.listing.runs.items())]

    def _files(self, table: str) -> list[str]:
        """What DuckDB reads for ``table``: the objects themselves (httpfs, fsspec, folder) or their local copies
        (cache), fetched here when missing."""
        names = self._names(table)
        if self.cache is None:
            return [self.target.uri_of(self.target.join(n)) for n in names]
        missing = [n for n in names if not _same_size(self.cache / n, self._sizes.get(n))]
        if missing:
            for n in missing:
                (self.cache / n).parent.mkdir(parents=True, exist_ok=True)
            with faults(self.target, "read"):
                self.fs.get([self.target.join(n) for n in missing], [str(self.cache / n) for n in missing])
        return [str(self.cache / n) for n in names]

    def _view(self, table: str) -> None:
        """Create the views ``fleet_<table>`` (and ``_raw`` with each row's object) once, and check them."""
        if table in self._viewed:
            return
        self._viewed.add(table)
        files = self._files(table)
        cols = self._types[table]
        if not files:
            select = ", ".join(f"CAST(NULL AS {t}) AS \"{c}\"" for c, t in cols.items())
            self.con.execute(f"CREATE OR REPLACE VIEW fleet_{table} AS SELECT {select} WHERE false")
            self._checked.add(table)
            return
        listed = ", ".join(f"'{_sql_str(f)}'" for f in files)
        reader = f"read_parquet([{listed}], union_by_name = true, filename = true)"
        with self._reading(table):
            names = [r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
        for n in names:
            if n != "filename" and not checks.COLUMN_NAME.fullmatch(n):
                raise self._refuse(f"its {table} objects have a column named {shown(n)}, which is not a column "
                                   "name edgeprof writes")
        shared = [c for c in cols if c in names]
        select = ", ".join(f'CAST("{c}" AS {cols[c]}) AS "{c}"' if c in shared else f'CAST(NULL AS {cols[c]}) AS "{c}"'
                           for c in cols)
        self.con.execute(f"CREATE OR REPLACE VIEW fleet_{table}_raw AS SELECT {select}, filename FROM {reader}")
        self.con.execute(f"CREATE OR REPLACE VIEW fleet_{table} AS SELECT * EXCLUDE (filename) "
                         f"FROM fleet_{table}_raw")
        self._check(table)

    def _refuse(self, detail: str, hint: str | None = None, raw: str = "") -> BundleError:
        return BundleError(f"the fleet at {self.target.url} cannot be read: {detail}.",
                           hint or "Delete that device's objects and push again from it, or give another prefix.", raw)

    @contextlib.contextmanager
    def _reading(self, table: str):
        """DuckDB's and the store's errors while reading ``table``'s objects as one sentence; a damaged or
        half-written object is named (found by reading the objects one by one, only on that path)."""
        try:
            yield
        except duckdb.Error as err:
            with faults(self.target, "read"):
                bad = self._first_unreadable(table)
            if bad:
                raise self._refuse(f"the object {shown(bad)} is not a readable Parquet file (half-written or "
                                   "damaged)", "Delete it and push again from its device.", str(err)) from None
            raise self._refuse(f"its {table} objects do not read as edgeprof's {table} table", raw=str(err)) from None

    def _first_unreadable(self, table: str) -> str | None:
        """The first of ``table``'s objects whose Parquet footer pyarrow cannot read, read through the filesystem so
        that a network fault is said as one (``faults``) and not as a damaged object."""
        import pyarrow.lib
        import pyarrow.parquet as pq

        for name in self._names(table):
            path = self.target.join(name)
            try:
                with self.fs.open(path, "rb") as fh:
                    pq.ParquetFile(fh).metadata  # noqa: B018 (reads the footer)
            except (pyarrow.lib.ArrowException, ValueError, OSError) as err:
                if isinstance(err, OSError) and not isinstance(err, pyarrow.lib.ArrowException):
                    raise
                return name
        return None

    def _check(self, table: str) -> None:
        """store.checks on the union of ``table``'s objects, and each row in the object its name gives."""
        if table in self._checked:
            return
        types = self._types[table]
        required = self._required.get(table, set())
        src = checks.Source(table, list(types), f"fleet_{table}")
        unique = None
        if table in ("studies", "study_cells"):  # one study file run on several devices: keys are per device
            unique = ("fleet_device", *checks.KEYS[table])
            src = checks.Source(table, list(types), f"(SELECT * EXCLUDE (filename), regexp_extract(filename, "
                                                    f"'device=([0-9a-f]{{16}})/', 1) AS fleet_device "
                                                    f"FROM fleet_{table}_raw)")
        with self._reading(table):
            key = {"runs": "run_id", "latency": "run_id", "telemetry": "run_id", "study_cells": "run_id",
                   "studies": "study_id", "run_groups": "group_id"}[table]
            wrong = self.con.execute(
                f"SELECT filename, \"{key}\" FROM fleet_{table}_raw WHERE regexp_extract(filename, "
                f"'/([^/]+)\\.parquet$', 1) IS DISTINCT FROM \"{key}\"" + (
                    " OR regexp_extract(filename, 'device=([0-9a-f]{16})/', 1) IS DISTINCT FROM device_id"
                    if table == "runs" else "") + " LIMIT 1").fetchone()
            if table == "runs" and wrong is None:
                extra = self.con.execute("SELECT filename FROM fleet_runs_raw GROUP BY filename HAVING count(*) > 1 "
                                         "LIMIT 1").fetchone()
                if extra:
                    raise self._refuse(f"the object {shown(_rel(extra[0], self.target))} holds more than one run")
        if wrong is not None:
            raise self._refuse(f"the object {shown(_rel(wrong[0], self.target))} holds rows of {shown(wrong[1])}, "
                               "not of the run or device its name gives")
        with self._reading(table):
            checks.check_table(self.con, src, types, required, self._refuse, belongs=False, key=unique)
        self._checked.add(table)

    # -- queries ------------------------------------------------------------------------------------------------

    def sql(self, query: str, params: list | None = None) -> pd.DataFrame:
        """Run ``query`` over the checked views ``fleet_runs``, ``fleet_latency``, ``fleet_telemetry``,
        ``fleet_studies``, ``fleet_study_cells``, ``fleet_run_groups`` (each checked before its first use)."""
        for table in ("runs", *RUN_TABLES, *ONCE):
            if re.search(rf"\bfleet_{table}\b", query):
                self._view(table)
        with self._reading("runs"):
            return self.con.execute(query, params or []).df()

    def runs(self, *, model: str | None = None, status: str | None = None, device: str | None = None,
             limit: int | None = None) -> pd.DataFrame:
        """Every device's complete runs, newest first, as ``Store.list_runs`` gives them (with ``device_name`` and
        the derived ``peak_ram_mb``, ``bits``, ``model_size_mb``)."""
        where, params = [], []
        for column, value in (("model", model), ("status", status)):
            if value is not None:
                where.append(f"r.{column} = ?")
                params.append(value)
        if device is not None:
            where.append("(r.device_id = ? OR r.device_name = ?)")
            params += [device, device]
        sql = f"SELECT r.*, r.device_name AS hostname, {_DERIVED} FROM fleet_runs r"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY r.created_at DESC, r.run_id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.sql(sql, params)

    def latency(self, run_id: str | list[str]) -> pd.DataFrame:
        """Latency samples of one run or several, as ``Store.latency`` gives them (by run and seq)."""
        ids = [run_id] if isinstance(run_id, str) else list(run_id)
        return self.sql("SELECT * FROM fleet_latency WHERE run_id IN (SELECT unnest(?::TEXT[])) ORDER BY run_id, seq",
                        [ids])

    def steady_subsample(self, run_ids: list[str], max_samples: int = 200_000) -> dict:
        """As ``Store.steady_subsample``: each run's steady latencies (ms), every k-th beyond ``max_samples``."""
        self._view("latency")
        with self._reading("runs"):
            return samples.steady_subsample(self.con, list(run_ids), "fleet_latency", max_samples)

    def latency_windows(self, run_id: str, window_s: float) -> tuple:
        """As ``Store.latency_windows``: a run's steady samples per time window."""
        self._view("latency")
        with self._reading("runs"):
            return samples.latency_windows(self.con, run_id, window_s, "fleet_latency")

    def latency_timeline(self, run_id: str, buckets: int = samples.TIMELINE_BUCKETS, top_ns: int | None = None) -> dict:
        """As ``Store.latency_timeline``: a run's latency over time as at most ``buckets`` stretches."""
        self._view("latency")
        with self._reading("runs"):
            return samples.timeline(self.con, run_id, "fleet_latency", buckets, top_ns)

    def telemetry(self, run_id: str | list[str], metrics: str | list[str] | None = None,
                  source: str | list[str] | None = None) -> pd.DataFrame:
        """Telemetry rows of one run or several, optionally only some metrics/sources, as ``Store.telemetry``."""
        sql, params = "SELECT * FROM fleet_telemetry WHERE run_id IN (SELECT unnest(?::TEXT[]))", [
            [run_id] if isinstance(run_id, str) else list(run_id)]
        for column, value in (("metric", metrics), ("source", source)):
            if value is not None:
                sql += f" AND {column} IN (SELECT unnest(?::TEXT[]))"
                params.append([value] if isinstance(value, str) else list(value))
        return self.sql(sql + " ORDER BY run_id, t_ns, source, metric", params)

    def get_run(self, run_id: str) -> dict | None:
        """One run as ``Store.get_run`` gives it (JSON columns parsed, ``device`` with id and name), or None."""
        df = self.sql("SELECT * FROM fleet_runs WHERE run_id = ?", [run_id])
        if df.empty:
            return None
        run = {k: (None if _isna(v) else v) for k, v in df.iloc[0].to_dict().items()}
        for key in JSON_RUN_COLUMNS:
            if isinstance(run.get(key), str):
                run[key] = json.loads(run[key])
        run["summary"] = upgrade_summary(run.get("summary"))
        run["device"] = {"device_id": run.get("device_id"), "device_name": run.get("device_name")}
        return run


def _isna(v) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _rel(filename: str, target: Target) -> str:
    """An object's name under the prefix, from the path DuckDB read (the object or its cached copy)."""
    at = filename.rfind("/device=")
    return filename[at + 1:] if at >= 0 else filename


def _same_size(path: Path, size: int | None) -> bool:
    try:
        return size is not None and path.stat().st_size == size
    except OSError:
        return False


def _cache_root(target: Target) -> Path:
    """Where copies of a fleet's objects are kept: objects are immutable once their run's marker is written, so a
    copy of the listed size is the object."""
    import hashlib

    from ..paths import cache_dir

    return cache_dir() / "fleet" / hashlib.sha256(target.uri.encode()).hexdigest()[:16]


def _schema_types(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, dict[str, str]], dict[str, set[str]]]:
    """{table: {column: SQL type}} and {table: NOT NULL columns} of this edgeprof's schema, made by running
    MIGRATIONS in a scratch schema of ``con``."""
    con.execute("CREATE SCHEMA scratch_schema")
    con.execute("USE scratch_schema")
    for _description, steps in MIGRATIONS:
        if callable(steps):
            steps(con)
        else:
            for sql in steps:
                con.execute(sql)
    rows = con.execute("SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
                       "WHERE table_schema = 'scratch_schema' ORDER BY table_name, ordinal_position").fetchall()
    con.execute("USE main")
    types: dict[str, dict[str, str]] = {}
    required: dict[str, set[str]] = {}
    for table, column, sql_type, nullable in rows:
        types.setdefault(table, {})[column] = sql_type
        if nullable == "NO":
            required.setdefault(table, set()).add(column)
    return types, required


def _httpfs(con: duckdb.DuckDBPyConnection) -> bool:
    """Load DuckDB's httpfs (never installed from here) and give it the standard AWS variables as a secret; False
    where it cannot load or the credentials are only in a profile (then s3fs reads them)."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return False
    try:
        con.execute("LOAD httpfs")
    except duckdb.Error:
        return False
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    parts = [f"KEY_ID '{_sql_str(key)}'", f"SECRET '{_sql_str(secret)}'", f"REGION '{_sql_str(region)}'"]
    if os.environ.get("AWS_SESSION_TOKEN"):
        parts.append(f"SESSION_TOKEN '{_sql_str(os.environ['AWS_SESSION_TOKEN'])}'")
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        parts += [f"ENDPOINT '{_sql_str(host.rstrip('/'))}'", "URL_STYLE 'path'",
                  f"USE_SSL {'true' if scheme == 'https' else 'false'}"]
    try:
        con.execute(f"CREATE SECRET edgeprof_fleet (TYPE s3, {', '.join(parts)})")
    except duckdb.Error:
        return False
    return True


def list_runs(url: str, **filters) -> pd.DataFrame:
    """Every device's runs at ``url`` (``Fleet.runs``), opened and closed in one call (the pages' entry)."""
    with Fleet(url) as fleet:
        return fleet.runs(**filters)



# ---------------------------------------------------------------------------------------------------------------
# Pushing from the dashboard
# ---------------------------------------------------------------------------------------------------------------


class AutoPush:
    """Pushes after runs and studies from a long-lived process (the dashboard, with ``EDGEPROF_FLEET`` set): each
    :meth:`poke` (every page render) pushes in a background thread when a run finished since the last good push,
    and while the store is unreachable keeps that push queued, retried after 30 s doubling up to 10 min. The push
    itself decides what is missing (``push``), so a queued push loses nothing whatever happened meanwhile."""

    RETRY_S, RETRY_MAX_S = 30.0, 600.0

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._thread = None
        self._done: tuple | None = None
        self._retry_at = 0.0
        self._delay = self.RETRY_S
        self.state: dict = {}

    def poke(self, store: Store, url: str) -> dict:
        """Start a push if one is due; returns the state: {} before the first, else {"ok", "at", "pushed" or
        "error", "retry_in_s"}."""
        import threading

        with store._reading() as con:
            key = (url, str(store.path), *con.execute(
                "SELECT count(*), max(finished_at) FROM runs WHERE status <> 'running'").fetchone())
        with self._lock:
            busy = self._thread is not None and self._thread.is_alive()
            if busy or key == self._done or time.monotonic() < self._retry_at or not key[2]:
                return dict(self.state)
            self._thread = threading.Thread(target=self._push, args=(store, url, key), name="edgeprof-fleet-push",
                                            daemon=True)
            self._thread.start()
            return dict(self.state)

    def wait(self, timeout: float | None = None) -> dict:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return dict(self.state)

    def _push(self, store: Store, url: str, key: tuple) -> None:
        from ..errors import EdgeprofError

        try:
            res = push(store, url)
        except EdgeprofError as exc:
            with self._lock:
                self._retry_at = time.monotonic() + self._delay
                self.state = {"ok": False, "at": time.time(), "error": str(exc), "retry_in_s": self._delay}
                self._delay = min(self._delay * 2, self.RETRY_MAX_S)
            return
        with self._lock:
            self._done = key
            self._delay = self.RETRY_S
            self.state = {"ok": True, "at": time.time(), "pushed": res["pushed"], "url": res["url"]}
