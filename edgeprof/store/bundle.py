"""Run bundles: the portable form of runs between devices and Python builds (a folder or a zip of one Parquet or CSV
file per table, plus ``manifest.json``): ``export_runs(store, ...)`` writes one, ``import_bundle(store, ...)`` reads one."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import duckdb

from .. import __version__
from ..errors import StorageError
from .schema import FILL_CPU_OTHERS, NO_LIMIT_IS_NULL, RENAMED_COLUMNS, SCHEMA_VERSION, TABLES
from .store import Store, _listify, _utcnow

BUNDLE_FORMAT = "edgeprof-bundle"
BUNDLE_VERSION = 1
_CSV_NULL = "\\N"  # written unquoted for NULL; a real string "\N" is quoted and read back as a string


def export_runs(store: Store, run_ids: Iterable[str] | None, out_path: str | os.PathLike, fmt: str = "parquet") -> Path:
    """Write the runs (all when ``run_ids`` is None) with their devices, latency, telemetry, studies and study
    cells as a bundle: a directory, or a zip file when ``out_path`` ends in ``.zip``. Each table is one Parquet
    or CSV file, plus ``manifest.json``. ``out_path`` must not exist yet."""
    if fmt not in ("parquet", "csv"):
        raise StorageError(f"export format {fmt!r} is not one of: parquet, csv.")
    out = Path(out_path).expanduser().absolute()
    if out.exists():
        raise StorageError(f"{out} already exists.", "Choose a new path for the export.")
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
                raise StorageError(f"no run {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} in "
                                   f"{store.path}.", "Check the run ids (edgeprof runs list).")
            selects = _export_selects()
            for table, sql in selects.items():
                target = work / f"{table}.{fmt}"
                options = "FORMAT parquet" if fmt == "parquet" else f"FORMAT csv, HEADER, NULLSTR '{_CSV_NULL}'"
                con.execute(f"COPY ({sql}) TO '{_sql_str(target)}' ({options})", [ids])
                counts[table] = con.execute(f"SELECT count(*) FROM ({sql})", [ids]).fetchone()[0]
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
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(OSError):
            work.with_suffix(".zip.part").unlink()
    return out

def import_bundle(store: Store, path: str | os.PathLike) -> list[str]:
    """Add the runs of a bundle made by :meth:`export_runs`; returns the ids of the runs it added.

    Idempotent: runs already present (same id) are skipped with their samples, as are devices, studies and
    cells that exist. Runs keep their ids and devices. Everything lands in one transaction.
    """
    src = Path(path).expanduser()
    if not src.exists():
        raise StorageError(f"there is no bundle at {src}.", "Pass the directory or .zip made by export.")
    with contextlib.ExitStack() as stack:
        if src.is_file():
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgeprof-import-")))
            try:
                with zipfile.ZipFile(src) as zf:
                    zf.extractall(tmp)
            except (zipfile.BadZipFile, OSError) as err:
                raise StorageError(f"{src} is not a readable bundle ({err}).",
                                   "Pass the directory or .zip made by export.") from None
            src_dir = tmp
        else:
            src_dir = src
        manifest = _read_manifest(src_dir, src)
        fmt = manifest["file_format"]
        with store._writing() as con:
            types = {t: dict(con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?"
                " AND table_schema = 'main' AND table_catalog = current_database() ORDER BY ordinal_position",
                [t]).fetchall()) for t in TABLES}
            sources = {}
            for table, entry in manifest["tables"].items():
                if table not in TABLES:
                    continue
                file = src_dir / entry["file"]
                if not file.is_file():
                    raise StorageError(f"the bundle {src} lacks {entry['file']}.", "Export it again.")
                sources[table] = _bundle_source(con, file, fmt, types[table])
            if "runs" not in sources:
                raise StorageError(f"the bundle {src} has no runs table.", "Export it again.")
            runs_src = sources["runs"][1]
            new_ids = [r[0] for r in con.execute(
                f"SELECT run_id FROM {runs_src} WHERE run_id NOT IN (SELECT run_id FROM runs) ORDER BY run_id"
            ).fetchall()]
            for table in TABLES:
                if table not in sources:
                    continue
                cols, source = sources[table]
                col_sql = ", ".join(cols)
                if table in ("runs", "latency", "telemetry"):
                    if new_ids:
                        con.execute(f"INSERT INTO {table} ({col_sql}) SELECT {col_sql} FROM {source}"
                                    " WHERE run_id IN (SELECT unnest(?::TEXT[]))", [new_ids])
                else:
                    con.execute(f"INSERT INTO {table} ({col_sql}) SELECT {col_sql} FROM {source}"
                                " ON CONFLICT DO NOTHING")
            if new_ids:  # a bundle from schema 2 lacks the column its summaries can fill
                con.execute(FILL_CPU_OTHERS + " AND run_id IN (SELECT unnest(?::TEXT[]))", [new_ids])
                for sql in NO_LIMIT_IS_NULL:  # a bundle from schema < 5 stored "none" cells with the RAM as limit
                    con.execute(sql + " AND run_id IN (SELECT unnest(?::TEXT[]))", [new_ids])
    return new_ids



def _sql_str(path: Path) -> str:
    return str(path).replace("'", "''")


def _export_selects() -> dict[str, str]:
    """One SELECT per table for the runs in the list parameter ``?``; ordered so files are deterministic."""
    ids = "(SELECT unnest(?::TEXT[]))"
    return {
        "runs": f"SELECT * FROM runs WHERE run_id IN {ids} ORDER BY run_id",
        "devices": f"SELECT * FROM devices WHERE device_id IN (SELECT device_id FROM runs WHERE run_id IN {ids})"
                   " ORDER BY device_id",
        "latency": f"SELECT * FROM latency WHERE run_id IN {ids} ORDER BY run_id, seq",
        "telemetry": f"SELECT * FROM telemetry WHERE run_id IN {ids} ORDER BY run_id, t_ns, source, metric",
        "studies": f"SELECT * FROM studies WHERE study_id IN (SELECT study_id FROM runs WHERE run_id IN {ids})"
                   " ORDER BY study_id",
        "study_cells": f"SELECT * FROM study_cells WHERE run_id IN {ids} ORDER BY study_id, cell_key",
        "run_groups": f"SELECT * FROM run_groups WHERE group_id IN (SELECT group_id FROM runs WHERE run_id IN {ids})"
                      " ORDER BY group_id",
    }


def _read_manifest(src_dir: Path, src: Path) -> dict:
    try:
        manifest = json.loads((src_dir / "manifest.json").read_text())
    except (OSError, ValueError) as err:
        raise StorageError(f"{src} is not an edgeprof bundle: its manifest.json is missing or unreadable ({err}).",
                           "Pass the directory or .zip made by export.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise StorageError(f"{src} is not an edgeprof bundle.", "Pass the directory or .zip made by export.")
    newer = int(manifest.get("bundle_version", 0)) > BUNDLE_VERSION
    if newer or int(manifest.get("schema_version", 0)) > SCHEMA_VERSION:
        raise StorageError(f"the bundle {src} was written by a newer edgeprof ({manifest.get('edgeprof_version')}).",
                           "Upgrade edgeprof to import it.")
    if manifest.get("file_format") not in ("parquet", "csv"):
        raise StorageError(f"the bundle {src} has an unknown file format {manifest.get('file_format')!r}.")
    return manifest


def _bundle_source(con: duckdb.DuckDBPyConnection, file: Path, fmt: str,
                   types: dict[str, str]) -> tuple[list[str], str]:
    """The columns shared by the file and the table, and a FROM clause that reads the file with the table's types.

    Columns the file lacks (a bundle from an older schema) are left to their defaults; extra ones are ignored.
    """
    if fmt == "parquet":
        names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{_sql_str(file)}')").fetchall()]
        return _columns(names, types, f"read_parquet('{_sql_str(file)}')")
    with open(file, newline="", encoding="utf-8") as fh:
        names = next(csv.reader(fh), [])
    columns = ", ".join(f"'{n}': '{types.get(n, 'VARCHAR')}'" for n in names)
    source = (f"read_csv('{_sql_str(file)}', header = true, auto_detect = false, columns = {{{columns}}},"
              f" nullstr = '{_CSV_NULL}', allow_quoted_nulls = false, quote = '\"', escape = '\"', delim = ',')")
    return _columns(names, types, source)


def _columns(names: list[str], types: dict[str, str], source: str) -> tuple[list[str], str]:
    """The columns to insert and a FROM clause naming them as the table does: a bundle from schema < 4 has
    ``interpreter`` and ``provider`` (RENAMED_COLUMNS), which the select renames."""
    renamed = {old: new for old, new in RENAMED_COLUMNS.items() if old in names and new in types and new not in names}
    if renamed:
        source = f"(SELECT * RENAME ({', '.join(f'{o} AS {n}' for o, n in renamed.items())}) FROM {source})"
        names = [renamed.get(c, c) for c in names]
    return [c for c in names if c in types], source
