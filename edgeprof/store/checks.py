"""Checks on tables that came from outside (a run bundle now, other devices' objects later) before one row is stored.

Contract: the caller has copied each file into a folder of its own (``untrusted.Box.copy`` into
``untrusted.staging_dir``), so the path put into SQL here is one it made. :func:`table_source` reads such a file as
the store's table (the columns both have, cast to the table's types; a schema-3 bundle's renamed columns mapped), and
:func:`check_table` scans it once, in any DuckDB connection (a private in-memory one keeps the store free), for:

- rows: the count the manifest promised, and no NULL where the table has NOT NULL;
- ids of the shape edgeprof makes (:data:`ID_SHAPES`): run ids and group ids are 32 hex digits (``store.new_run_id``),
  device ids 16 (``store.device_id_for``), study ids what ``study.runner.new_study_id`` makes or a user gives with ``--study-id``;
  keys listed once;
- known values where pages rely on them (``runs.status``, ``latency.phase``, ``run_groups.kind`` and ``status``);
- text of sane length (:func:`text_cap`), and the text of all tables together under the box's byte budget;
- rows that belong: samples, telemetry and study cells only of the bundle's own runs, devices, studies and groups of
  runs only those its runs name (``bundle_runs``, made from the checked runs table by :func:`remember_runs`).

Each failure is the caller's ``refuse(detail)`` (a BundleError naming the box); DuckDB's own text never heads it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ..config import STATUSES
from ..errors import BundleError
from ..untrusted import shown
from .schema import GROUP_KINDS, PHASES, RENAMED_COLUMNS

Refuse = Callable[..., BundleError]

RUN_ID = r"[0-9a-f]{32}"
DEVICE_ID = r"[0-9a-f]{16}"
GROUP_ID = RUN_ID  # store.new_run_id makes both
STUDY_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
COLUMN_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
MAX_COLUMNS = 256
SHORT_TEXT = 1024
LONG_TEXT = 64 * 1024
JSON_TEXT = 4 * 1024 * 1024
_LONG = {"reason", "notes", "model", "model_path", "cpu", "name", "cell_key"}
# the statuses a group of runs is stored with: "running" while it is made, then run.summary.GROUP_STATUSES (a layer
# above, so named here; tests/test_untrusted.py checks that the two agree)
GROUP_STATUSES = ("running", "ok", "partial", "failed", "stopped")
_SHAPE_WORDS = {"run_id": "32 hex digits (a run id)", "group_id": "32 hex digits (a group id)",
                "device_id": "16 hex digits (a device id)",
                "study_id": "1-128 letters, digits, '-', '_' or '.' (a study id)"}  # by column

# table -> column -> pattern; a NULL is judged by the table's NOT NULL, not here
ID_SHAPES: dict[str, dict[str, str]] = {
    "runs": {"run_id": RUN_ID, "device_id": DEVICE_ID, "study_id": STUDY_ID, "group_id": GROUP_ID},
    "devices": {"device_id": DEVICE_ID},
    "studies": {"study_id": STUDY_ID},
    "study_cells": {"study_id": STUDY_ID, "run_id": RUN_ID},
    "latency": {"run_id": RUN_ID},
    "latency_seconds": {"run_id": RUN_ID},
    "latency_reservoir": {"run_id": RUN_ID},
    "telemetry": {"run_id": RUN_ID},
    "run_groups": {"group_id": GROUP_ID, "device_id": DEVICE_ID},
}
KNOWN_VALUES: dict[str, dict[str, tuple[str, ...]]] = {"runs": {"status": STATUSES}, "latency": {"phase": PHASES},
                                                       "latency_seconds": {"phase": PHASES},
                                                       "run_groups": {"kind": GROUP_KINDS, "status": GROUP_STATUSES}}
KEYS = {"runs": ("run_id",), "devices": ("device_id",), "studies": ("study_id",), "study_cells": ("study_id", "cell_key"),
        "run_groups": ("group_id",)}
# values: measured numbers finite and within MAX_MAGNITUDE, non-negative unless SIGNED; times in [EARLIEST, LATEST)
# (a board without a clock may say 1970; pandas cannot hold a time past 2262, and the Runs page filters by time)
EARLIEST, LATEST = "1970-01-01", "2100-01-01"
MAX_MAGNITUDE = 1e15
SIGNED = {("runs", "temp_max_c"), ("telemetry", "value")}  # a temperature, a sensor's reading may be below zero
MAY_BE_NAN = {("telemetry", "value")}  # a sensor reading that failed; pages and stats skip it
# text: no control character but tab, newline and carriage return (ESC, OSC, CSI ...), raw or escaped in JSON
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
JSON_CONTROL = r"\\u00(0[0-8bBcCeEfF]|1[0-9a-fA-F]|7[fF]|[89][0-9a-fA-F])"

# table -> column -> the bundle_runs column it must be found in
BELONGS = {"latency": {"run_id": "run_id"}, "telemetry": {"run_id": "run_id"}, "study_cells": {"run_id": "run_id"},
           "latency_seconds": {"run_id": "run_id"}, "latency_reservoir": {"run_id": "run_id"},
           "devices": {"device_id": "device_id"}, "studies": {"study_id": "study_id"},
           "run_groups": {"group_id": "group_id"}}
ALWAYS = {"study_cells": ("run_id",)}  # columns a bundle's rows must carry although the table allows NULL


def text_cap(column: str, sql_type: str) -> int | None:
    """The longest text a column may hold, in characters: JSON documents 4 MiB, free text (reasons, notes, paths,
    names) 64 KiB, labels 1 KiB; None for a column that is not text."""
    if sql_type == "JSON":
        return JSON_TEXT
    if sql_type != "VARCHAR":
        return None
    return LONG_TEXT if column in _LONG else SHORT_TEXT


@dataclass
class Source:
    """A staged file read as ``table``: ``columns`` (the table's names) and ``sql``, a FROM clause with the casts."""

    table: str
    columns: list[str]
    sql: str
    file_columns: list[str] = field(default_factory=list)


def sql_str(path: Path | str) -> str:
    """A path or text inside a single-quoted SQL string literal (quotes doubled); the one quoting of the store."""
    return str(path).replace("'", "''")


_sql_str = sql_str


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_names(con: duckdb.DuckDBPyConnection, file: Path, fmt: str, table: str, refuse: Refuse) -> list[str]:
    """The column names of a staged Parquet or CSV file, each one a plain lower-case identifier, at most 256."""
    if fmt == "parquet":
        try:
            names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{_sql_str(file)}')").fetchall()]
        except duckdb.Error:
            raise refuse(f"its {table} file is not a readable Parquet file") from None
    else:
        try:
            with open(file, newline="", encoding="utf-8") as fh:
                line = fh.readline(64 * 1024)
        except (OSError, UnicodeDecodeError):
            raise refuse(f"its {table} file is not UTF-8 text") from None
        if not line.endswith("\n"):
            raise refuse(f"its {table} file has no header line (or one over 64 KiB)")
        try:
            names = next(csv.reader([line]), [])
        except csv.Error:
            raise refuse(f"its {table} file has a header that is not CSV") from None
    if not names:
        raise refuse(f"its {table} file has no columns")
    if len(names) > MAX_COLUMNS:
        raise refuse(f"its {table} file has {len(names)} columns, more than {MAX_COLUMNS}")
    for n in names:
        if not COLUMN_NAME.fullmatch(n):
            raise refuse(f"its {table} file has a column named {shown(n)}, which is not a column name edgeprof writes")
    if len(set(names)) != len(names):
        raise refuse(f"its {table} file names a column twice")
    return names


def table_source(con: duckdb.DuckDBPyConnection, file: Path, fmt: str, table: str, types: dict[str, str],
                 refuse: Refuse, csv_null: str = "\\N") -> Source:
    """The columns shared by a staged file and ``table`` (whose ``types`` are {column: SQL type}), and a FROM clause
    that reads the file with the table's names and types. A bundle from schema < 4 has ``interpreter`` and
    ``provider`` (RENAMED_COLUMNS), read as the new names; columns the file lacks are left to the table's defaults,
    extra ones are ignored."""
    names = read_names(con, file, fmt, table, refuse)
    if fmt == "parquet":
        reader = f"read_parquet('{_sql_str(file)}')"
    else:
        cols = ", ".join(f"'{n}': '{types.get(n) or types.get(RENAMED_COLUMNS.get(n, ''), 'VARCHAR')}'" for n in names)
        reader = (f"read_csv('{_sql_str(file)}', header = true, auto_detect = false, columns = {{{cols}}},"
                  f" nullstr = '{csv_null}', allow_quoted_nulls = false, quote = '\"', escape = '\"', delim = ',')")
    mapping = {}
    for n in names:
        target = n if n in types else RENAMED_COLUMNS.get(n)
        if target in types and target not in mapping and not (n != target and target in names):
            mapping[target] = n
    select = ", ".join(f"CAST({_q(src)} AS {types[dst]}) AS {_q(dst)}" for dst, src in mapping.items())
    return Source(table, list(mapping), f"(SELECT {select} FROM {reader})", names)


def parquet_rows(con: duckdb.DuckDBPyConnection, file: Path, table: str, refuse: Refuse) -> int:
    """The rows a staged Parquet file says it holds, from its footer alone (no row is decoded)."""
    try:
        return int(con.execute(
            "SELECT coalesce(sum(n), 0) FROM (SELECT DISTINCT row_group_id, row_group_num_rows AS n "
            f"FROM parquet_metadata('{_sql_str(file)}'))").fetchone()[0])
    except duckdb.Error:
        raise refuse(f"its {table} file is not a readable Parquet file") from None


@dataclass
class Facts:
    rows: int
    text_chars: int


def check_table(con: duckdb.DuckDBPyConnection, src: Source, types: dict[str, str], required: set[str],
                refuse: Refuse, *, expected_rows: int | None = None, belongs: bool = True,
                key: tuple[str, ...] | None = None) -> Facts:
    """One scan of ``src`` that checks everything the module docstring lists; returns its rows and characters of
    text. ``required`` are the table's NOT NULL columns; ``key`` replaces the table's key (:data:`KEYS`), and may
    name a column that only ``src.sql`` has (the fleet's device partition); ``belongs`` needs the ``bundle_runs`` table
    (:func:`remember_runs`) in ``con``."""
    table, cols = src.table, src.columns
    missing = sorted((set(required) | set(ALWAYS.get(table, ()))) - set(cols))
    if missing:
        raise refuse(f"its {table} file lacks the column {missing[0]}")
    exprs: list[str] = ["count(*)"]
    checks: list[Callable[[list], None]] = []

    def add(sql: list[str], judge: Callable[[list], None]) -> None:
        start = len(exprs)
        exprs.extend(sql)
        checks.append(lambda row, s=start, n=len(sql): judge(row[s:s + n]))

    for c in sorted(set(required) | set(ALWAYS.get(table, ()))):
        add([f"count(*) FILTER (WHERE {_q(c)} IS NULL)"],
            lambda v, c=c: _fail(v[0], refuse, f"its {table} table has rows without a {c}"))
    for c, pattern in ID_SHAPES.get(table, {}).items():
        if c in cols:
            bad = f"NOT regexp_full_match({_q(c)}, '{pattern}')"
            add([f"count(*) FILTER (WHERE {bad})", f"min({_q(c)}) FILTER (WHERE {bad})"],
                lambda v, c=c: _fail(v[0], refuse, f"its {table} table has the {c} {shown(v[1])}, which is "
                                                              f"not {_SHAPE_WORDS[c]} as edgeprof makes them"))
    for c, allowed in KNOWN_VALUES.get(table, {}).items():
        if c in cols:
            listed = ", ".join(f"'{a}'" for a in allowed)
            bad = f"{_q(c)} NOT IN ({listed})"
            add([f"count(*) FILTER (WHERE {bad})", f"min({_q(c)}) FILTER (WHERE {bad})"],
                lambda v, c=c, a=allowed: _fail(v[0], refuse, f"its {table} table has the {c} {shown(v[1])}, which is "
                                                              f"not one of: {', '.join(a)}"))
    if belongs:
        for c, runs_col in BELONGS.get(table, {}).items():
            if c in cols:
                bad = f"{_q(c)} NOT IN (SELECT {runs_col} FROM bundle_runs WHERE {runs_col} IS NOT NULL)"
                add([f"count(*) FILTER (WHERE {bad})", f"min({_q(c)}) FILTER (WHERE {bad})"],
                    lambda v, c=c: _fail(v[0], refuse, f"its {table} table has rows of the {c} {shown(v[1])}, which "
                                                       "none of its runs has"))
    for c in cols:
        for bad, words in _value_rules(table, c, types[c]):
            add([f"count(*) FILTER (WHERE {bad})", f"CAST(min({_q(c)}) FILTER (WHERE {bad}) AS VARCHAR)"],
                lambda v, c=c, w=words: _fail(v[0], refuse, f"its {table} table has the {c} {shown(v[1], 80)}, "
                                                            f"{w}"))
    given, key = key is not None, key if key is not None else KEYS.get(table)
    if key and (given or set(key) <= set(cols)):
        distinct = f"count(DISTINCT {_q(key[0])})" if len(key) == 1 else \
            f"count(DISTINCT row({', '.join(_q(k) for k in key)}))"
        add([f"count(*) - {distinct}"],
            lambda v: _fail(v[0], refuse, f"its {table} table lists the same {' and '.join(key)} twice"))
    text_cols = [(c, text_cap(c, types[c])) for c in cols if text_cap(c, types[c]) is not None]
    for c, cap in text_cols:
        add([f"coalesce(max(length(CAST({_q(c)} AS VARCHAR))), 0)"],
            lambda v, c=c, cap=cap: _fail(v[0] > cap, refuse, f"its {table} table has a {c} of {v[0]} characters, "
                                                              f"over the {cap} allowed"))
    total = " + ".join(f"coalesce(sum(length(CAST({_q(c)} AS VARCHAR))), 0)" for c, _ in text_cols) or "0"
    exprs.append(f"CAST({total} AS BIGINT)")
    try:
        row = list(con.execute(f"SELECT {', '.join(exprs)} FROM {src.sql}").fetchone())
    except duckdb.Error as err:
        raise refuse(f"its {table} file does not read as edgeprof's {table} table (a value of the wrong type, or a "
                     "damaged file)", raw=str(err)) from None
    if expected_rows is not None and row[0] != expected_rows:
        raise refuse(f"its manifest promises {expected_rows} rows of {table} and the file holds {row[0]}")
    for judge in checks:
        judge(row)
    return Facts(int(row[0]), int(row[-1]))


def _value_rules(table: str, column: str, sql_type: str) -> list[tuple[str, str]]:
    """(SQL condition of a bad value, why it is refused) for one column, by its type."""
    c = _q(column)
    rules = []
    if sql_type.startswith("TIMESTAMP") or sql_type == "DATE":
        return [(f"({c} < TIMESTAMP '{EARLIEST}' OR {c} >= TIMESTAMP '{LATEST}')", f"outside {EARLIEST} to {LATEST}")]
    if sql_type in ("DOUBLE", "FLOAT", "REAL"):
        nan = "" if (table, column) in MAY_BE_NAN else f"isnan({c}) OR "
        rules.append((f"({nan}isinf({c}) OR abs({c}) > {MAX_MAGNITUDE:g})",
                      f"which is not a finite number up to {MAX_MAGNITUDE:g}"))
    elif sql_type not in ("INTEGER", "BIGINT", "SMALLINT", "HUGEINT"):
        if sql_type in ("VARCHAR", "JSON"):
            rules.append((f"regexp_matches(CAST({c} AS VARCHAR), '{CONTROL}')",
                          "which holds control characters (terminal escapes)"))
        if sql_type == "JSON":
            rules.append((f"regexp_matches(CAST({c} AS VARCHAR), '{JSON_CONTROL}')",
                          "which holds control characters (terminal escapes)"))
        return rules
    if (table, column) not in SIGNED:
        rules.append((f"{c} < 0", "which is negative (a time, size or count is not)"))
    return rules


def remember_runs(con: duckdb.DuckDBPyConnection, runs: Source) -> list[str]:
    """Make the temporary table ``bundle_runs`` (run_id, device_id, study_id, group_id) of a checked runs source; a
    column the runs file lacks (a bundle from an older schema) is NULL. Returns the run ids, sorted."""
    cols = {c: (_q(c) if c in runs.columns else "NULL") for c in ("run_id", "device_id", "study_id", "group_id")}
    con.execute("CREATE OR REPLACE TEMP TABLE bundle_runs AS SELECT "
                + ", ".join(f"CAST({v} AS VARCHAR) AS {k}" for k, v in cols.items()) + f" FROM {runs.sql}")
    return [r[0] for r in con.execute("SELECT run_id FROM bundle_runs ORDER BY run_id").fetchall()]


def _fail(bad, refuse: Refuse, detail: str) -> None:
    if bad:
        raise refuse(detail)
