"""Run bundles: the portable form of runs between devices and Python builds (a folder or a zip of one Parquet or CSV
file per table, plus ``manifest.json``): ``export_runs(store, ...)`` writes one, ``import_bundle(store, ...)`` reads one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import duckdb

from .. import __version__
from ..errors import BundleError, StorageError, UsageError
from ..untrusted import ENV_MAX_MB, MB, Box, Limits, open_box, shown, staging_dir
from . import checks, columns
from .checks import sql_str as _sql_str
from .schema import (
    FILL_BACKEND,
    FILL_BACKEND_OPTIONS,
    FILL_DEVICE_NAME,
    NO_LIMIT_IS_NULL,
    SAMPLE_TABLES,
    SCHEMA_VERSION,
    TABLES,
)
from .store import Store, _listify, _utcnow

BUNDLE_FORMAT = "edgeprof-bundle"
BUNDLE_VERSION = 1
EXPORT_MEMORY = "48MB"  # DuckDB's memory for an export: what does not fit is sorted on disk (bounded, not per sample)
_CSV_NULL = "\\N"  # written unquoted for NULL; a real string "\N" is quoted and read back as a string


def export_runs(store: Store, run_ids: Iterable[str] | None, out_path: str | os.PathLike, fmt: str = "parquet") -> Path:
    """Write the runs (all when ``run_ids`` is None) with their devices, latency, telemetry, studies and study
    cells as a bundle: a directory, or a zip file when ``out_path`` ends in ``.zip``. Each table is one Parquet
    or CSV file, plus ``manifest.json``. ``out_path`` must not exist yet: a path that does, or a run id the store
    lacks, is a UsageError (the CLI exits 2)."""
    if fmt not in ("parquet", "csv"):
        raise UsageError(f"export format {fmt!r} is not one of: parquet, csv.")
    out = Path(out_path).expanduser().absolute()
    if out.exists():
        raise UsageError(f"{out} already exists, and an export never overwrites anything.",
                         "Choose a new path for the export.")
    ids = _listify(run_ids)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".edgeprof-export-", dir=out.parent))
    except OSError as err:
        raise StorageError(f"cannot write the export to {out}: {err.strerror or err}.",
                           "Choose a writable path.") from None
    try:
        counts = {}
        with store._reading() as con:
            if ids is None:
                ids = [r[0] for r in con.execute("SELECT run_id FROM runs ORDER BY run_id").fetchall()]
            found = {r[0] for r in con.execute(
                "SELECT run_id FROM runs WHERE run_id IN (SELECT unnest(?::TEXT[]))", [ids]).fetchall()}
            missing = [i for i in ids if i not in found]
            if missing:
                raise UsageError(f"no run {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} in "
                                   f"{store.path}.", "Check the run ids: `runs` lists them.")
            selects = _export_selects()
            # DuckDB's own writers stream the samples (a 10-M-sample run's sort took 1.3 GB); what the small tables'
            # sorts need beyond EXPORT_MEMORY goes to disk
            con.execute(f"SET memory_limit = '{EXPORT_MEMORY}'")
            con.execute(f"SET temp_directory = '{_sql_str(work.with_suffix('.spill'))}'")
            con.execute("SET threads = 1")
            for table, sql in selects.items():
                target = work / f"{table}.{fmt}"
                options = "FORMAT parquet" if fmt == "parquet" else f"FORMAT csv, HEADER, NULLSTR '{_CSV_NULL}'"
                counts[table] = int(con.execute(f"COPY ({sql}) TO '{_sql_str(target)}' ({options})",
                                                [ids]).fetchone()[0])
            version = store._version(con)
        manifest = {
            "format": BUNDLE_FORMAT, "bundle_version": BUNDLE_VERSION, "schema_version": version,
            "edgeprof_version": __version__, "created_at": _utcnow().isoformat() + "Z", "file_format": fmt,
            "tables": {t: {"file": f"{t}.{fmt}", "rows": counts[t]} for t in selects},
            "run_ids": sorted(ids),
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.suffix.lower() == ".zip":
            tmp_zip = work.with_suffix(".zip.part")
            with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as zf:
                for file in sorted(work.iterdir()):
                    zf.write(file, file.name)
            os.replace(tmp_zip, out)
            shutil.rmtree(work, ignore_errors=True)
        else:
            os.replace(work, out)
    except OSError as err:
        raise StorageError(f"cannot write the export to {out}: {err.strerror or err}.",
                           "Choose a writable path with free space.") from None
    finally:
        for folder in (work, work.with_suffix(".spill")):
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            work.with_suffix(".zip.part").unlink()
    return out

def import_bundle(store: Store, path: str | os.PathLike, limits: Limits | None = None, name: str | None = None) -> list[str]:
    """Add the runs of a bundle made by :meth:`export_runs`; returns the ids of the runs it added.

    Idempotent: runs already present (same id) are skipped with their samples, as are devices, studies and
    cells that exist. Runs keep their ids and devices. Everything lands in one transaction.

    A bundle is data from outside (edgeprof.untrusted): the manifest may name only plain files inside the bundle,
    which are copied into a private folder within ``limits`` (``Limits.from_env()``: 4 GiB, $EDGEPROF_MAX_BUNDLE_MB)
    and checked (store.checks) before anything is stored. Anything else is a BundleError (exit 2) whose one sentence
    names the entry; the database is left as it was. ``name`` is what messages call the bundle (an uploaded file's
    name; the path by default).
    """
    limits = limits or Limits.from_env()
    shown_as = name or str(Path(path).expanduser())
    with open_box(path, limits, label=f"the bundle {shown_as}") as box, staging_dir() as stage:
        manifest = _read_manifest(box, shown_as)
        fmt = manifest["file_format"]
        files = {}
        for table in TABLES:
            entry = manifest["tables"].get(table)
            if entry is not None:
                files[table] = stage / f"{table}.{fmt}"
                box.copy(entry["file"], files[table], what=f"its {table} table is")
        types, required = _table_types(store)
        sources = _check_bundle(box, manifest, files, fmt, types, required, stage, limits)
        with store._writing() as con:
            runs_src = sources["runs"].sql
            new_ids = [r[0] for r in con.execute(
                f"SELECT run_id FROM {runs_src} WHERE run_id NOT IN (SELECT run_id FROM runs) ORDER BY run_id"
            ).fetchall()]
            for table in TABLES:
                if table not in sources:
                    continue
                src = sources[table]
                col_sql = ", ".join(f'"{c}"' for c in src.columns)
                if table in ("runs", *SAMPLE_TABLES):
                    if new_ids:
                        con.execute(f"INSERT INTO {table} ({col_sql}) SELECT {col_sql} FROM {src.sql}"
                                    " WHERE run_id IN (SELECT unnest(?::TEXT[]))", [new_ids])
                else:
                    con.execute(f"INSERT INTO {table} ({col_sql}) SELECT {col_sql} FROM {src.sql}"
                                " ON CONFLICT DO NOTHING")
            if new_ids:  # a bundle from an older schema lacks columns its summaries can fill
                lacks = set(types["runs"]) - set(sources["runs"].columns)
                for sql in columns.refill_sql(lacks):
                    con.execute(sql + " AND run_id IN (SELECT unnest(?::TEXT[]))", [new_ids])
                for sql in NO_LIMIT_IS_NULL:  # a bundle from schema < 5 stored "none" cells with the RAM as limit
                    con.execute(sql + " AND run_id IN (SELECT unnest(?::TEXT[]))", [new_ids])
                con.execute(FILL_DEVICE_NAME + " AND run_id IN (SELECT unnest(?::TEXT[]))", [new_ids])
                for col, sql in (("backend", FILL_BACKEND), ("backend_options", FILL_BACKEND_OPTIONS)):
                    if col in lacks:  # a bundle from before runs.backend
                        con.execute(sql + " AND run_id IN (SELECT unnest(?::TEXT[]))", [new_ids])
    return new_ids


def _table_types(store: Store) -> tuple[dict[str, dict[str, str]], dict[str, set[str]]]:
    """{table: {column: SQL type}} and {table: NOT NULL columns} of the store's tables."""
    with store._reading() as con:
        rows = con.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'main' AND table_catalog = current_database() ORDER BY table_name, ordinal_position"
        ).fetchall()
    types: dict[str, dict[str, str]] = {t: {} for t in TABLES}
    required: dict[str, set[str]] = {t: set() for t in TABLES}
    for table, column, sql_type, nullable in rows:
        if table in types:
            types[table][column] = sql_type
            if nullable == "NO":
                required[table].add(column)
    return types, required


def _check_bundle(box: Box, manifest: dict, files: dict[str, Path], fmt: str, types: dict, required: dict,
                  stage: Path, limits: Limits) -> dict[str, checks.Source]:
    """Every table file read and checked in a private in-memory DuckDB (store.checks); the sources to insert from."""
    con = duckdb.connect(config={"threads": 1})
    try:
        con.execute(f"SET temp_directory = '{_sql_str(stage / 'spill')}'")
        sources = {t: checks.table_source(con, f, fmt, t, types[t], box.refuse, _CSV_NULL) for t, f in files.items()}
        rows = text = 0
        run_ids: list[str] = []
        for table in ("runs", *[t for t in TABLES if t != "runs"]):
            if table not in sources:
                continue
            expected = manifest["tables"][table]["rows"]
            if fmt == "parquet":
                held = checks.parquet_rows(con, files[table], table, box.refuse)
                if held != expected:
                    raise box.refuse(f"its manifest promises {expected} rows of {table} and the file holds {held}")
            if rows + expected > limits.max_rows:
                raise box.refuse(f"it holds more than {limits.max_rows} rows")
            facts = checks.check_table(con, sources[table], types[table], required[table], box.refuse,
                                       expected_rows=expected, belongs=table != "runs")
            if table == "runs":
                run_ids = checks.remember_runs(con, sources[table])
            rows += facts.rows
            text += facts.text_chars
            if text > limits.max_bytes:
                raise box.refuse(f"its tables unpack to more than {limits.max_bytes // MB} MB of text",
                                 f"Set {ENV_MAX_MB} to a larger number of MB to import it.")
        listed = manifest.get("run_ids")
        if listed is not None and sorted(listed) != run_ids:
            raise box.refuse("its manifest lists other runs than its runs table holds")
        return sources
    finally:
        con.close()


def _export_selects() -> dict[str, str]:
    """One SELECT per table for the runs in the list parameter ``?``; ordered (or streamed in stored order) so files
    are deterministic."""
    ids = "(SELECT unnest(?::TEXT[]))"
    return {
        "runs": f"SELECT * FROM runs WHERE run_id IN {ids} ORDER BY run_id",
        "devices": f"SELECT * FROM devices WHERE device_id IN (SELECT device_id FROM runs WHERE run_id IN {ids})"
                   " ORDER BY device_id",
        # the sample tables in the order they were stored (each run's flushes in seq order): a sort of a 10-M-sample
        # run held it all in memory, and one connection on one thread streams rows in a deterministic order
        "latency": f"SELECT * FROM latency WHERE run_id IN {ids}",
        "telemetry": f"SELECT * FROM telemetry WHERE run_id IN {ids}",
        # a reduced run's aggregate rows and reservoir (run.recorder): what its statistics came from
        "latency_seconds": f"SELECT * FROM latency_seconds WHERE run_id IN {ids}",
        "latency_reservoir": f"SELECT * FROM latency_reservoir WHERE run_id IN {ids}",
        "studies": f"SELECT * FROM studies WHERE study_id IN (SELECT study_id FROM runs WHERE run_id IN {ids})"
                   " ORDER BY study_id",
        "study_cells": f"SELECT * FROM study_cells WHERE run_id IN {ids} ORDER BY study_id, cell_key",
        "run_groups": f"SELECT * FROM run_groups WHERE group_id IN (SELECT group_id FROM runs WHERE run_id IN {ids})"
                      " ORDER BY group_id",
    }


def _read_manifest(box: Box, src: str) -> dict:
    """The manifest, checked: its format and versions, a file name and a row count per known table."""
    if not box.exists("manifest.json"):
        raise BundleError(f"{src} is not an edgeprof bundle: it has no manifest.json.",
                          "Pass the directory or .zip made by export.")
    try:
        manifest = json.loads(box.read("manifest.json", what="its manifest is"))
    except (ValueError, RecursionError):
        raise BundleError(f"{src} is not an edgeprof bundle: its manifest.json is not JSON.",
                          "Pass the directory or .zip made by export.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{src} is not an edgeprof bundle.", "Pass the directory or .zip made by export.")
    versions = {k: manifest.get(k) for k in ("bundle_version", "schema_version")}
    for key, value in versions.items():
        if type(value) is not int or value < 1:
            raise box.refuse(f"its manifest has the {key} {shown(value)}, which is not a whole number from 1")
    if versions["bundle_version"] > BUNDLE_VERSION or versions["schema_version"] > SCHEMA_VERSION:
        raise BundleError(f"the bundle {src} was written by a newer edgeprof ({shown(manifest.get('edgeprof_version'))}).",
                          "Upgrade edgeprof to import it.")
    if manifest.get("file_format") not in ("parquet", "csv"):
        raise box.refuse(f"its manifest has the file format {shown(manifest.get('file_format'))}, not parquet or csv")
    tables = manifest.get("tables")
    if not isinstance(tables, dict) or not isinstance(tables.get("runs"), dict):
        raise box.refuse("its manifest lists no runs table")
    for table in TABLES:
        entry = tables.get(table)
        if entry is None:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise box.refuse(f"its manifest gives no file for the {table} table")
        rows = entry.get("rows")
        if type(rows) is not int or rows < 0:
            raise box.refuse(f"its manifest has the row count {shown(rows)} for the {table} table, which is not a "
                             "whole number")
    listed = manifest.get("run_ids")
    if listed is not None and (not isinstance(listed, list) or not all(isinstance(i, str) for i in listed)):
        raise box.refuse("its manifest's run_ids is not a list of run ids")
    return manifest
