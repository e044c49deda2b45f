"""The run history a page shows, filtered and paged in DuckDB: a page costs the same with 20 runs stored or 20,000.

``facets`` gives the values each filter offers (distinct devices, models, ... and the date range); ``page`` one page
of the runs that match, newest first, with the total that matched, and without the per-run JSON documents (summary,
config, software: kilobytes each, which ``Store.list_runs`` reads for every run). Each takes an open DuckDB
connection to the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

#: The filters a history page offers: its key, and the runs column (or expression) it filters on.
FILTERS = {"device": "d.hostname", "model": "r.model", "precision": "r.precision", "runtime": "r.runtime",
           "status": "r.status"}
#: Columns a history page reads: what its table and pickers show, not the JSON documents.
_COLUMNS = ("r.run_id, r.created_at, r.status, r.model, r.precision, r.runtime, r.threads, r.memory_limit_mb, "
            "r.p50_ms, r.p90_ms, r.throughput_ips, r.peak_charged_mb, r.peak_rss_mb, r.group_id, d.hostname")
_FROM = "FROM runs r LEFT JOIN devices d USING (device_id)"


@dataclass
class Query:
    """Which runs a history page asks for: each filter's accepted values (empty: any), ``limits`` as memory limits in
    MB (None: no limit), ``dates`` (first day, last day) in UTC, inclusive."""

    values: dict = field(default_factory=dict)
    limits: list | None = None
    dates: tuple[date, date] | None = None

    def where(self) -> tuple[str, list]:
        parts, params = [], []
        for key, column in FILTERS.items():
            if self.values.get(key):
                parts.append(f"CAST({column} AS TEXT) IN (SELECT unnest(?::TEXT[]))")
                params.append([str(v) for v in self.values[key]])
        if self.limits:
            mbs = [float(v) for v in self.limits if v is not None]
            cond = ["r.memory_limit_mb IS NULL"] if None in self.limits else []
            if mbs:
                cond.append("r.memory_limit_mb IN (SELECT unnest(?::DOUBLE[]))")
                params.append(mbs)
            parts.append("(" + " OR ".join(cond) + ")")
        if self.dates:
            parts.append("r.created_at >= ?")
            params.append(datetime.combine(self.dates[0], datetime.min.time()))
            if self.dates[1] < date.max:  # a stored date in 9999 has no next day
                parts.append("r.created_at < ?")
                params.append(datetime.combine(self.dates[1] + timedelta(days=1), datetime.min.time()))
        return (" WHERE " + " AND ".join(parts)) if parts else "", params


def facets(con) -> dict:
    """{filter key: sorted distinct values} for ``FILTERS``, ``limits`` (MB, None first for no limit), ``dates``
    (first, last day with a run, or None) and ``total`` runs: one pass over the runs table, no run's documents."""
    out = {}
    for key, column in FILTERS.items():
        out[key] = [r[0] for r in con.execute(f"SELECT DISTINCT CAST({column} AS TEXT) AS v {_FROM} WHERE {column} "
                                              "IS NOT NULL ORDER BY v").fetchall()]
    out["limits"] = [r[0] for r in con.execute("SELECT DISTINCT memory_limit_mb FROM runs ORDER BY 1 NULLS FIRST")
                     .fetchall()]
    total, lo, hi = con.execute("SELECT count(*), min(created_at), max(created_at) FROM runs").fetchone()
    out["total"] = int(total)
    out["dates"] = (lo.date(), hi.date()) if lo is not None else None
    return out


def page(con, query: Query, *, offset: int = 0, limit: int = 100, include: str | None = None):
    """(frame of at most ``limit`` matching runs from ``offset``, newest first, with the columns a history page shows;
    how many runs match). ``include``: a run id that is added to the frame even when it is not on this page (a run
    named in a link)."""
    where, params = query.where()
    matched = int(con.execute(f"SELECT count(*) {_FROM}{where}", params).fetchone()[0])
    frame = con.execute(f"SELECT {_COLUMNS} {_FROM}{where} ORDER BY r.created_at DESC, r.run_id DESC "
                        f"LIMIT {int(limit)} OFFSET {int(offset)}", params).df()
    if include and include not in set(frame["run_id"]):
        extra = con.execute(f"SELECT {_COLUMNS} {_FROM} WHERE r.run_id = ?", [include]).df()
        if len(extra):
            import pandas as pd

            frame = pd.concat([frame, extra], ignore_index=True)
    return frame, matched
