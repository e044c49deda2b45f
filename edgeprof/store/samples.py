"""A run's latency samples read in DuckDB, at a cost that does not grow with the run's length.

A fast model measured for ten minutes stores ~15 M samples; loading them into Python costs 17-140 bytes each (the
end-of-run summary, a page, an export). Everything here runs in DuckDB and brings back a bounded result:

- :func:`steady_summary`: the steady phase's ``stats.LatencySummary`` with ``stats.summarize_latency``'s exact
  definitions (linear-interpolation percentiles, ``stats.sections`` consecutive batches for the within-run
  intervals), from :func:`exact_ranks`, which finds order statistics by refining histograms in SQL;
- :func:`digest`: the rest of what the run's summary needs (first latency, warm-up, steady span);
- :func:`timeline`: min, max, mean, median and 5th/95th percentiles per stretch, for a chart that says it is drawn
  from a reduction;
- :func:`steady_subsample`: every k-th steady sample, in time order, at most ``max_samples`` per run.

Each function takes an open DuckDB connection and the name of a table (or view) with the ``latency`` columns
(run_id, seq, t_ns, latency_ns, phase): the store's ``latency`` or a fleet's ``fleet_latency``.

A run the recorder reduced (``RunConfig.retention``, ``run.recorder``) keeps every sample up to its cut in ``latency``,
the rest as aggregate rows in ``latency_seconds`` and a uniform reservoir of all its steady samples in
``latency_reservoir``; each function here reads that too (:func:`is_reduced`) and says what it gives then: count,
mean, std, min and max stay exact (the aggregates), percentiles and their intervals come from the reservoir, a chart
shows min, max and mean per stretch of time (exact) and its median and 5-95% band from the stored samples in it, past
the exact part from the reservoir's, a subsample is the reservoir. A fleet's tables carry no reduction.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .. import stats

#: Buckets per histogram pass: each pass narrows an order statistic's range 2**BITS-fold.
BITS = 10
#: A bucket holding at most this many samples is fetched and sorted rather than refined again.
FETCH_MAX = 4096
#: A stored run of at most this many samples is drawn sample by sample; a longer one from :func:`timeline`.
RAW_MAX = 20_000
#: Buckets on a long run's latency-over-time chart.
TIMELINE_BUCKETS = 1500
#: A chart stretch's centre and band (:func:`timeline`), in one sort per stretch.
_QUANTILES = "quantile_cont(latency_ns, [0.05, 0.5, 0.95])"
_CENTRE = ("mean_ns", "median_ns", "p05_ns", "p95_ns")
#: A reduced run's tables (``store.schema.RETENTION``).
SECONDS_TABLE, RESERVOIR_TABLE = "latency_seconds", "latency_reservoir"
#: Every stored sample and every aggregate row of one run as aggregate rows (a sample is a row of one); two params:
#: the run id twice.
_ROWS = f"""SELECT phase, 1 AS n, seq AS seq_first, seq AS seq_last, t_ns AS t_first, t_ns AS t_last,
        latency_ns AS min_ns, latency_ns AS max_ns, latency_ns AS sum_ns, (latency_ns / 1e6) ** 2 AS sumsq_ms2,
        latency_ns AS last_ns FROM latency WHERE run_id = ?
    UNION ALL SELECT phase, n, seq_first, seq_last, t_first, t_last, min_ns, max_ns, sum_ns, sumsq_ms2, last_ns
        FROM {SECONDS_TABLE} WHERE run_id = ?"""


def append_reduction(con, run_id: str, seconds, reservoir) -> None:
    """Store a reduced run's aggregate rows (a frame of ``schema.SECONDS_COLUMNS``) and its reservoir (a frame of
    ``schema.RESERVOIR_COLUMNS``, replacing the run's stored one) inside the caller's transaction. Either may be
    None. Raises StorageError for a phase that is not one of ``worker.messages.PHASES``."""
    from ..errors import StorageError
    from ..worker.messages import PHASES
    from .schema import RESERVOIR_COLUMNS, SECONDS_COLUMNS

    if seconds is not None and len(seconds):
        bad = set(map(str, seconds["phase"].unique())) - set(PHASES)
        if bad:
            raise StorageError(f"latency phase {sorted(bad)} is not one of: {', '.join(PHASES)}.")
        con.register("_sec", seconds)
        con.execute(f"INSERT INTO {SECONDS_TABLE} SELECT ?, {', '.join(SECONDS_COLUMNS)} FROM _sec", [run_id])
        con.unregister("_sec")
    if reservoir is not None:
        con.execute(f"DELETE FROM {RESERVOIR_TABLE} WHERE run_id = ?", [run_id])
        con.register("_res", reservoir)
        con.execute(f"INSERT INTO {RESERVOIR_TABLE} SELECT ?, {', '.join(RESERVOIR_COLUMNS)} FROM _res", [run_id])
        con.unregister("_res")


def is_reduced(con, run_id: str, table: str = "latency") -> bool:
    """Whether the store keeps run ``run_id`` reduced (it has aggregate rows); False for a fleet's table and where
    the connection has no reduction tables."""
    if table != "latency" or not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                                             [SECONDS_TABLE]).fetchone()[0]:
        return False
    return bool(con.execute(f"SELECT EXISTS (SELECT 1 FROM {SECONDS_TABLE} WHERE run_id = ?)", [run_id]).fetchone()[0])


def retention_of(con, run_id: str) -> dict:
    """What a reduced run kept, for its summary: ``kept`` "reduced", ``exact_samples`` (stored one by one, the first
    ones), ``steady_samples`` (all of them, exact), ``reservoir_samples`` and the ``statement`` a reader sees."""
    exact, steady, res = con.execute(
        f"""SELECT (SELECT count(*) FROM latency WHERE run_id = ?),
                   (SELECT coalesce(sum(n), 0) FROM ({_ROWS}) WHERE phase = 'steady'),
                   (SELECT count(*) FROM {RESERVOIR_TABLE} WHERE run_id = ?)""",
        [run_id, run_id, run_id, run_id]).fetchone()
    return {"kept": "reduced", "exact_samples": int(exact), "steady_samples": int(steady),
            "reservoir_samples": int(res), "statement": reduced_statement(int(res), int(steady), int(exact))}


def reduced_statement(reservoir: int, steady: int, exact: int) -> str:
    """The sentence that says where a reduced run's statistics came from."""
    return (f"percentiles and their intervals from a uniform reservoir of {reservoir:,} of {steady:,} steady samples; "
            f"count, mean, std, min and max exact; the first {exact:,} samples stored one by one")


def retention_summary(requested: str, dig: LatencyDigest) -> dict:
    """The summary's ``retention`` block: what the run asked for (``requested``, ``config.RETENTIONS``), what the store
    kept (``kept``: all or reduced) and the ``statement`` of where its statistics came from."""
    if dig.retention:
        return {"requested": requested, **dig.retention}
    n = dig.steady.n
    return {"requested": requested, "kept": "all", "exact_samples": dig.n_total, "steady_samples": n,
            "reservoir_samples": None, "statement": f"every sample kept: statistics from all {n:,} steady samples"}


@dataclass(frozen=True)
class LatencyDigest:
    """What a run's summary needs from its samples besides the steady percentiles (ns; None where the run has no
    such sample): ``n_total`` samples, ``first_ns`` the first inference's latency, ``warmup_n`` / ``warmup_sum_ns``,
    ``steady_t0``/``steady_t1`` the first and last steady sample's start, ``steady_last_ns`` the last one's latency,
    ``t_first``/``t_last`` the first and last sample's start, ``steady`` the steady phase's summary (ms), and
    ``retention`` what a reduced run kept (:func:`retention_of`; None: every sample)."""

    n_total: int
    first_ns: int | None
    warmup_n: int
    warmup_sum_ns: int
    steady_t0: int | None
    steady_t1: int | None
    steady_last_ns: int | None
    t_first: int | None
    t_last: int | None
    steady: stats.LatencySummary
    retention: dict | None = None


def digest_arrays(t_ns: np.ndarray, lat_ns: np.ndarray, phase: np.ndarray) -> LatencyDigest:
    """:class:`LatencyDigest` of samples in memory (t_ns, latency_ns int64, phase code int8; in seq order)."""
    from ..worker.messages import PHASE_CODES

    is_steady = phase == PHASE_CODES["steady"]
    first = lat_ns[phase == PHASE_CODES["first"]]
    warm = lat_ns[phase == PHASE_CODES["warmup"]]
    idx = np.flatnonzero(is_steady)
    return LatencyDigest(
        n_total=int(len(lat_ns)), first_ns=int(first[0]) if len(first) else None, warmup_n=int(len(warm)),
        warmup_sum_ns=int(warm.sum()), steady_t0=int(t_ns[idx[0]]) if len(idx) else None,
        steady_t1=int(t_ns[idx[-1]]) if len(idx) else None,
        steady_last_ns=int(lat_ns[idx[-1]]) if len(idx) else None,
        t_first=int(t_ns[0]) if len(t_ns) else None, t_last=int(t_ns[-1]) if len(t_ns) else None,
        steady=stats.summarize_latency(lat_ns[is_steady] / 1e6))


def digest(con, run_id: str, table: str = "latency") -> LatencyDigest:
    """:class:`LatencyDigest` of a stored run, computed in DuckDB (a few bounded queries; see the module)."""
    if is_reduced(con, run_id, table):
        row = con.execute(
            f"""SELECT sum(n), arg_min(min_ns, seq_first) FILTER (WHERE phase = 'first'),
                       coalesce(sum(n) FILTER (WHERE phase = 'warmup'), 0),
                       coalesce(sum(sum_ns) FILTER (WHERE phase = 'warmup'), 0),
                       arg_min(t_first, seq_first) FILTER (WHERE phase = 'steady'),
                       arg_max(t_last, seq_last) FILTER (WHERE phase = 'steady'),
                       arg_max(last_ns, seq_last) FILTER (WHERE phase = 'steady'),
                       arg_min(t_first, seq_first), arg_max(t_last, seq_last)
                FROM ({_ROWS})""", [run_id, run_id]).fetchone()
        vals = [None if v is None else int(v) for v in row]
        return LatencyDigest(*vals, steady=steady_summary(con, run_id, table), retention=retention_of(con, run_id))
    row = con.execute(
        f"""SELECT count(*),
                   arg_min(latency_ns, seq) FILTER (WHERE phase = 'first'),
                   count(*) FILTER (WHERE phase = 'warmup'),
                   coalesce(sum(latency_ns) FILTER (WHERE phase = 'warmup'), 0),
                   arg_min(t_ns, seq) FILTER (WHERE phase = 'steady'),
                   arg_max(t_ns, seq) FILTER (WHERE phase = 'steady'),
                   arg_max(latency_ns, seq) FILTER (WHERE phase = 'steady'),
                   arg_min(t_ns, seq), arg_max(t_ns, seq)
            FROM {table} WHERE run_id = ?""", [run_id]).fetchone()
    vals = [None if v is None else int(v) for v in row]
    return LatencyDigest(*vals, steady=steady_summary(con, run_id, table))


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's linear interpolation between neighbours (``np.percentile``'s default method), to the last bit."""
    d = b - a
    return b - d * (1 - t) if t >= 0.5 else a + d * t


def _ranks(n: int, percent: float) -> tuple[int, int, float]:
    h = (n - 1) * percent / 100.0
    j = int(np.floor(h))
    return j, min(j + 1, n - 1), h - j


def steady_summary(con, run_id: str, table: str = "latency") -> stats.LatencySummary:
    """``stats.summarize_latency`` of one stored run's steady samples, in seq order, computed in DuckDB.

    The same definitions, not an approximation: count, min, max, mean and sample std by DuckDB's aggregates;
    p50/p90/p95/p99 and each batch's p50 and p90 (``stats.sections`` consecutive batches of equal size, as
    ``stats._batch_quantiles`` cuts them) as exact order statistics (:func:`exact_ranks`) with numpy's linear
    interpolation. Python holds a few histograms of at most 2**BITS buckets, never the samples.

    A reduced run (:func:`is_reduced`): count, mean, std, min and max exact from its stored samples and aggregate rows
    (std from the sums of squares in ms**2, whose rounding is ~1e-16 of them: far below any latency's spread); the
    percentiles and intervals from its reservoir, taken in seq order like the samples. Those percentiles are
    estimates: the reservoir is a uniform sample of every steady sample, so each is unbiased up to the ~1/reservoir
    rounding of its rank, with sampling error ~sqrt(p(1-p)/reservoir) in rank (0.16% of the samples at p50 for
    100,000). The within-run interval stays honest without a correction: the reservoir in seq order cut into
    ``stats.sections`` consecutive batches gives each batch a uniform subsample of one stretch of the run, so the
    batches' spread, which sectioning turns into the interval, holds both the run's own variation over time and the
    subsampling noise of a batch; the overall percentile, from all the batches' samples together, carries the same
    two sources scaled by 1/batches, which is what the t interval assumes. It is somewhat wider than the exact run's
    interval would be (the subsampling noise adds to it), never narrower. A reduced run whose reservoir is not stored
    yet (it is running) takes its percentiles from its stored samples."""
    src, params = f"SELECT seq, latency_ns AS v FROM {table} WHERE run_id = ? AND phase = 'steady'", [run_id]
    if not is_reduced(con, run_id, table):
        return _summary_of(con, src, params)
    n, lo, hi, total, sq = con.execute(
        f"SELECT sum(n), min(min_ns), max(max_ns), sum(sum_ns), sum(sumsq_ms2) FROM ({_ROWS}) WHERE phase = 'steady'",
        [run_id, run_id]).fetchone()
    if not n:
        return stats.LatencySummary(n=0)
    res = f"SELECT seq, latency_ns AS v FROM {RESERVOIR_TABLE} WHERE run_id = ?"
    has_res = con.execute(f"SELECT EXISTS ({res})", [run_id]).fetchone()[0]
    est = _summary_of(con, res if has_res else src, params)
    n, mean_ms = int(n), float(total) / int(n) / 1e6
    std_ms = math.sqrt(max(float(sq) - n * mean_ms**2, 0.0) / (n - 1)) if n > 1 else None
    return dataclasses.replace(est, n=n, mean=mean_ms, std=std_ms, min=int(lo) / 1e6, max=int(hi) / 1e6,
                               cov=std_ms / mean_ms if std_ms is not None and mean_ms > 0 else None)


def _summary_of(con, src: str, params: list) -> stats.LatencySummary:
    """``stats.summarize_latency`` of the values ``v`` of ``src`` (SQL with columns seq and v) in seq order."""
    n, lo, hi, mean, std, s0, s1 = con.execute(
        f"SELECT count(*), min(v), max(v), avg(v), stddev_samp(v), min(seq), max(seq) FROM ({src})",
        params).fetchone()
    n = int(n)
    if n == 0:
        return stats.LatencySummary(n=0)
    k = stats.sections(n)
    if k:
        # a batch is the i-th steady sample's ((i + 1) k - 1) // n, i.e. edges (b n) // k as in stats._batch_quantiles
        pos = "seq - ?" if s1 - s0 == n - 1 else "row_number() OVER (ORDER BY seq) - 1"
        pos_params = [int(s0)] if s1 - s0 == n - 1 else []
        batched = f"SELECT (({pos} + 1) * {k} - 1) // {n} AS g, v FROM ({src})"
        params = pos_params + params
    else:
        batched = f"SELECT 0 AS g, v FROM ({src})"
    edges = [(b * n) // k for b in range(k + 1)] if k else []
    wanted: dict[tuple[int | None, int], float] = {}
    plan = []  # (key, [(group, j, j1, t)])
    for p in (50.0, 90.0, 95.0, 99.0):
        j, j1, t = _ranks(n, p)
        plan.append((("all", p), None, j, j1, t))
    for b in range(k):
        size = edges[b + 1] - edges[b]
        for p in (50.0, 90.0):
            j, j1, t = _ranks(size, p)
            plan.append((("batch", b, p), b, j, j1, t))
    for _, g, j, j1, _ in plan:
        wanted[(g, j)] = wanted[(g, j1)] = 0.0
    found = exact_ranks(con, batched, params, list(wanted), int(lo), int(hi))
    q = {key: _lerp(found[(g, j)] / 1e6, found[(g, j1)] / 1e6, t) for key, g, j, j1, t in plan}
    p50, p90, p95, p99 = (q[("all", p)] for p in (50.0, 90.0, 95.0, 99.0))
    lo_ms, hi_ms = int(lo) / 1e6, int(hi) / 1e6
    mean_ms = float(mean) / 1e6
    std_ms = None if n < 2 or std is None else float(std) / 1e6
    ci: list[float | None] = [None] * 4
    if k:
        batch_q = np.array([[q[("batch", b, p)] for p in (50.0, 90.0)] for b in range(k)], dtype=float)
        h50, h90 = stats._section_halfwidth(batch_q, 0.95)
        ci = [max(p50 - h50, lo_ms), min(p50 + h50, hi_ms), max(p90 - h90, lo_ms), min(p90 + h90, hi_ms)]
    return stats.LatencySummary(
        n=n, p50=p50, p90=p90, p95=p95, p99=p99, mean=mean_ms, std=std_ms,
        cov=std_ms / mean_ms if std_ms is not None and mean_ms > 0 else None, min=lo_ms, max=hi_ms,
        median_ci_low=ci[0], median_ci_high=ci[1], p90_ci_low=ci[2], p90_ci_high=ci[3], ci_batches=k or None)


def exact_ranks(con, source: str, params: list, targets: list[tuple[int | None, int]], lo: int, hi: int,
                bits: int = BITS, fetch_max: int = FETCH_MAX) -> dict[tuple[int | None, int], int]:
    """The ``rank``-th smallest (0-based) integer ``v`` of group ``g`` (None: of all groups together) for each
    (g, rank) in ``targets``, where ``source`` is SQL yielding columns ``g`` (int) and ``v`` (BIGINT in
    [``lo``, ``hi``]).

    Exact, in bounded memory: each pass counts ``v`` in 2**bits buckets of power-of-two width inside the buckets that
    still hold a target (a GROUP BY in DuckDB, a scan of the run), so the range shrinks 2**bits-fold per pass; a
    bucket of at most ``fetch_max`` values, or of width 1, ends the search. A 10-s range of nanoseconds takes at most
    four passes. Python holds at most (targets x 2**bits) counts and (targets x fetch_max) values."""
    span = max(int(hi) - int(lo), 1)
    shift = max(span.bit_length() - bits, 0)
    # per target: the bucket (key at `shift`) it lies in and how many of its group's values lie below that bucket
    state = {t: (None, 0) for t in targets}  # (coarse key at the previous shift or None, count below)
    prev_shift = None
    out: dict[tuple[int | None, int], int] = {}
    while len(out) < len(targets):
        todo = [t for t in targets if t not in out]
        conds, cparams = [], []
        if prev_shift is not None:
            for key in sorted({(t[0], state[t][0]) for t in todo}, key=str):
                g, c = key
                cond = f"(v - {int(lo)}) >> {prev_shift} = ?"
                cparams.append(c)
                if g is not None:
                    cond += " AND g = ?"
                    cparams.append(g)
                conds.append(f"({cond})")
        where = f" WHERE {' OR '.join(conds)}" if conds else ""
        rows = con.execute(f"SELECT g, (v - {int(lo)}) >> {shift} AS key, count(*) AS n FROM ({source}){where} "
                           f"GROUP BY ALL", params + cparams).fetchnumpy()
        gs, keys, counts = (np.asarray(rows[c], dtype=np.int64) for c in ("g", "key", "n"))
        fetch: dict[tuple, list] = {}
        for t in todo:
            g, rank = t
            coarse, below = state[t]
            sel = np.ones(len(keys), bool) if g is None else gs == g
            if coarse is not None:
                sel &= (keys >> (prev_shift - shift)) == coarse
            kk, cc = keys[sel], counts[sel]
            if g is None and len(kk):  # every group's counts of one bucket together
                kk, inv = np.unique(kk, return_inverse=True)
                cc = np.bincount(inv, weights=cc).astype(np.int64)
            else:
                order = np.argsort(kk)
                kk, cc = kk[order], cc[order]
            cum = np.cumsum(cc)
            i = int(np.searchsorted(cum, rank - below, side="right"))
            new_below = below + (int(cum[i - 1]) if i else 0)
            if shift == 0:
                out[t] = int(lo) + int(kk[i])
            elif cc[i] <= fetch_max:
                fetch.setdefault((g, int(kk[i])), []).append((t, new_below))
            state[t] = (int(kk[i]), new_below)
        for (g, key), waiting in fetch.items():
            cond = f"(v - {int(lo)}) >> {shift} = ?" + ("" if g is None else " AND g = ?")
            vals = con.execute(f"SELECT v FROM ({source}) WHERE {cond}",
                               params + [key] + ([] if g is None else [g])).fetchnumpy()["v"]
            vals = np.sort(np.asarray(vals, dtype=np.int64))
            for t, below in waiting:
                out[t] = int(vals[t[1] - below])
        prev_shift, shift = shift, max(shift - bits, 0)
    return out


def timeline(con, run_id: str, table: str = "latency", buckets: int = TIMELINE_BUCKETS,
             top_ns: int | None = None) -> dict:
    """A run's latency over time reduced to at most ``buckets`` consecutive stretches of equal sample count, in
    seq order: ``t_ns`` (each stretch's first start), ``min_ns``, ``max_ns``, ``mean_ns``, ``median_ns``, ``p05_ns``,
    ``p95_ns`` (DuckDB's ``quantile_cont``, numpy's linear interpolation), ``n`` and ``phase`` (the stretch's first
    sample's phase) arrays; ``samples`` the run's count, ``above`` how many are slower than ``top_ns`` (0 without it),
    ``steady_t0`` and ``warmup_t0`` where those phases began (ns or None). The median, not the mean, is the chart's
    line: a few slow inferences pull a stretch's mean far above what a typical one takes (0.06 ms against a p50 of
    0.017 ms). A run of at most ``buckets`` samples comes back one sample a stretch. A reduced run
    (:func:`is_reduced`) is cut into at most ``buckets`` stretches of equal time instead (its aggregate rows hold a
    second each), with ``reduced`` True and ``exact_t1`` the last sample stored one by one (ns); past it a stretch's
    median and band come from the reservoir's samples in it (NaN where it holds none); its ``above`` counts the
    aggregate rows' samples it knows to be slower (a lower bound past the exact part)."""
    if is_reduced(con, run_id, table):
        return _reduced_timeline(con, run_id, buckets, top_ns)
    n, s0, above, steady_t0, warm_t0 = con.execute(
        f"SELECT count(*), min(seq), count(*) FILTER (WHERE latency_ns > ?), min(t_ns) FILTER (WHERE phase = "
        f"'steady'), min(t_ns) FILTER (WHERE phase = 'warmup') FROM {table} WHERE run_id = ?",
        [top_ns if top_ns is not None else 2**62, run_id]).fetchone()
    if not n:
        empty = np.asarray([], dtype=np.int64)
        return {"t_ns": empty, "min_ns": empty, "max_ns": empty, **{c: empty.astype(float) for c in _CENTRE},
                "n": empty, "phase": np.asarray([], dtype=object), "samples": 0, "above": 0, "steady_t0": None,
                "warmup_t0": None, "reduced": False, "exact_t1": None}
    width = max(1, -(-int(n) // buckets))
    res = con.execute(
        f"""SELECT b, t_ns, min_ns, max_ns, mean_ns, q[1] AS p05_ns, q[2] AS median_ns, q[3] AS p95_ns, n, phase
            FROM (SELECT (seq - ?) // {width} AS b, min(t_ns) AS t_ns, min(latency_ns) AS min_ns,
                         max(latency_ns) AS max_ns, avg(latency_ns) AS mean_ns, {_QUANTILES} AS q, count(*) AS n,
                         arg_min(phase, seq) AS phase
                  FROM {table} WHERE run_id = ? GROUP BY b) ORDER BY b""", [int(s0), run_id]).fetchnumpy()
    out = {c: np.asarray(res[c]) for c in ("t_ns", "min_ns", "max_ns", "n")}
    out.update({c: np.asarray(res[c], dtype=float) for c in _CENTRE})
    out["phase"] = np.asarray(res["phase"], dtype=object)
    out.update(samples=int(n), above=int(above), steady_t0=steady_t0, warmup_t0=warm_t0, reduced=False,
               exact_t1=None)
    return out


def _reduced_timeline(con, run_id: str, buckets: int, top_ns: int | None) -> dict:
    top = top_ns if top_ns is not None else 2**62
    n, t0, t1, above, steady_t0, warm_t0 = con.execute(
        f"""SELECT sum(n), min(t_first), max(t_last),
                   sum(CASE WHEN min_ns > ? THEN n WHEN max_ns > ? THEN 1 ELSE 0 END),
                   min(t_first) FILTER (WHERE phase = 'steady'), min(t_first) FILTER (WHERE phase = 'warmup')
            FROM ({_ROWS})""", [top, top, run_id, run_id]).fetchone()
    width = max(1, -(-(int(t1) - int(t0) + 1) // buckets))
    # each stretch's median and band: its samples stored one by one, past them the reservoir's samples in it
    drawn = f"""SELECT t_ns, latency_ns FROM latency WHERE run_id = ? UNION ALL
                 SELECT t_ns, latency_ns FROM {RESERVOIR_TABLE} WHERE run_id = ?
                     AND seq > (SELECT coalesce(max(seq), -1) FROM latency WHERE run_id = ?)"""
    res = con.execute(
        f"""WITH agg AS (SELECT (t_first - ?) // {width} AS b, min(t_first) AS t_ns, min(min_ns) AS min_ns,
                                max(max_ns) AS max_ns, sum(sum_ns) / sum(n) AS mean_ns, sum(n) AS n,
                                arg_min(phase, seq_first) AS phase FROM ({_ROWS}) GROUP BY b),
                 qs AS (SELECT (t_ns - ?) // {width} AS b, {_QUANTILES} AS q FROM ({drawn}) GROUP BY b)
            SELECT agg.*, qs.q[1] AS p05_ns, qs.q[2] AS median_ns, qs.q[3] AS p95_ns
            FROM agg LEFT JOIN qs USING (b) ORDER BY b""",
        [int(t0), run_id, run_id, int(t0), run_id, run_id, run_id]).fetchnumpy()
    out = {c: np.asarray(res[c]) for c in ("t_ns", "min_ns", "max_ns", "n")}
    out.update({c: np.asarray(res[c], dtype=float) for c in _CENTRE})
    out["phase"] = np.asarray(res["phase"], dtype=object)
    exact_t1 = con.execute("SELECT max(t_ns) FROM latency WHERE run_id = ?", [run_id]).fetchone()[0]
    out.update(samples=int(n), above=int(above), steady_t0=steady_t0, warmup_t0=warm_t0, reduced=True,
               exact_t1=exact_t1)
    return out


def steady_subsample(con, run_ids: list[str], table: str = "latency", max_samples: int = 200_000
                     ) -> dict[str, np.ndarray]:
    """Each run's steady latencies in ms, in time order: every k-th where a run has more than ``max_samples``
    (k = ceil(n / max_samples)), so at most ``max_samples`` a run reach Python. A reduced run gives its reservoir
    (a uniform sample of its steady samples, in seq order), every k-th of it alike."""
    counts = con.execute(f"SELECT run_id, count(*), min(seq) FROM {table} WHERE run_id IN (SELECT unnest(?::TEXT[])) "
                         "AND phase = 'steady' GROUP BY run_id", [list(run_ids)]).fetchall()
    out = {}
    for rid, n, s0 in counts:
        src = f"{table} WHERE run_id = ? AND phase = 'steady'"
        if is_reduced(con, rid, table):
            src = f"{RESERVOIR_TABLE} WHERE run_id = ?"
            n, s0 = con.execute(f"SELECT count(*), min(seq) FROM {src}", [rid]).fetchone()
            if not n:
                continue
        step = max(1, -(-int(n) // max_samples))
        res = con.execute(f"SELECT latency_ns FROM {src} AND (seq - ?) % {step} = 0 ORDER BY seq",
                          [rid, int(s0)]).fetchnumpy()
        out[str(rid)] = np.asarray(res["latency_ns"], dtype=np.int64) / 1e6
    return out


def latency_windows(con, run_id: str, window_s: float, table: str = "latency") -> tuple:
    """One run's steady samples in windows of ``window_s`` from the first: (frame indexed by window number with
    ``n_samples`` and ``latency_ms_median``, t0, t_end) as ``stats.windowed`` cuts them, computed in DuckDB (its
    median is numpy's and pandas' midpoint of the middle two). (empty frame, None, None) without steady samples.
    A reduced run's windows past its exact part take their medians, and ``n_samples``, from its reservoir."""
    import pandas as pd

    src, params = f"{table} WHERE run_id = ? AND phase = 'steady'", [run_id]
    if is_reduced(con, run_id, table):
        src = (f"""(SELECT t_ns, latency_ns FROM latency WHERE run_id = ? AND phase = 'steady' UNION ALL
                    SELECT t_ns, latency_ns FROM {RESERVOIR_TABLE} WHERE run_id = ?
                        AND seq > (SELECT coalesce(max(seq), -1) FROM latency WHERE run_id = ?)) WHERE true""")
        params = [run_id] * 3
    t0, t_end = con.execute(f"SELECT min(t_ns), max(t_ns) FROM {src}", params).fetchone()
    if t0 is None:
        return pd.DataFrame({"n_samples": [], "latency_ms_median": []}), None, None
    res = con.execute(
        f"""SELECT CAST(floor((t_ns - ?) / ?) AS BIGINT) AS w, count(*) AS n_samples,
                   median(latency_ns / 1e6) AS latency_ms_median
            FROM {src} GROUP BY w ORDER BY w""",
        [int(t0), float(window_s) * 1e9, *params]).fetchnumpy()
    frame = pd.DataFrame({"n_samples": np.asarray(res["n_samples"], dtype=np.int64),
                          "latency_ms_median": np.asarray(res["latency_ms_median"], dtype=float)},
                         index=pd.Index(np.asarray(res["w"], dtype=np.int64), name="window"))
    return frame, int(t0), int(t_end)
