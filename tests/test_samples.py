"""A run's samples reduced in DuckDB (edgeprof.store.samples): the same statistics as the in-memory definitions, and
reads whose size in Python does not grow with the run's length."""

from __future__ import annotations

import tracemalloc

import duckdb
import numpy as np
import pandas as pd
import pytest

from edgeprof import stats
from edgeprof.config import RunConfig
from edgeprof.run.summary import RunFacts, build_summary
from edgeprof.store import Store
from edgeprof.store import samples as S
from edgeprof.worker.messages import PHASE_CODES

FIELDS = [f for f in stats.LatencySummary.__dataclass_fields__]


def _table(con, lat: np.ndarray, phase: np.ndarray, seq: np.ndarray | None = None, run_id: str = "r") -> None:
    con.execute("CREATE TABLE IF NOT EXISTS latency (run_id TEXT, seq INTEGER, t_ns BIGINT, latency_ns BIGINT, "
                "phase TEXT)")
    seq = np.arange(len(lat)) if seq is None else seq
    con.register("batch", pd.DataFrame({"run_id": run_id, "seq": seq, "t_ns": 10**9 + np.cumsum(lat) - lat,
                                        "latency_ns": lat, "phase": phase}))
    con.execute("INSERT INTO latency SELECT * FROM batch")
    con.unregister("batch")


def _phases(n: int) -> np.ndarray:
    return np.array((["first"] + ["warmup"] * 5 + ["steady"] * n)[:n])


def _same(a: stats.LatencySummary, b: stats.LatencySummary) -> None:
    for f in FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert (x is None) == (y is None), f
        if x is not None:
            assert x == pytest.approx(y, rel=1e-12, abs=0), f


@pytest.mark.parametrize("n", [0, 1, 2, 30, 55, 56, 57, 137, 5_003, 300_001])
def test_steady_summary_is_summarize_latency_in_sql(n):
    """Every figure, the within-run intervals' batch percentiles included, equals the in-memory definition."""
    rng = np.random.default_rng(n)
    lat = rng.lognormal(np.log(4e6), 0.4, n).astype(np.int64)
    lat[::7] = 4_000_000  # ties
    if n > 100:
        lat[n // 3] = 9_000_000_000  # one 9-s stall: a wide range to refine
    phase = _phases(n)
    con = duckdb.connect()
    _table(con, lat, phase)
    _same(S.steady_summary(con, "r"), stats.summarize_latency(lat[phase == "steady"] / 1e6))


def test_steady_summary_with_a_gap_in_seq_and_other_runs_beside():
    """Samples lost to a failed write leave a gap: batches are then cut by position, as in memory."""
    rng = np.random.default_rng(3)
    lat = rng.integers(1_000_000, 3_000_000, 20_000)
    phase = _phases(20_000)
    seq = np.arange(20_000)
    seq[12_000:] += 500
    con = duckdb.connect()
    _table(con, lat, phase, seq)
    _table(con, lat[::-1].copy(), phase, run_id="other")
    _same(S.steady_summary(con, "r"), stats.summarize_latency(lat[phase == "steady"] / 1e6))


def test_exact_ranks_with_one_value_everywhere_and_small_fetches():
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT (i % 3)::INT AS g, CASE WHEN i % 11 = 0 THEN 7 ELSE 5 END::BIGINT AS v "
                "FROM range(50000) r(i)")
    values = con.execute("SELECT g, v FROM t").fetchnumpy()
    targets = [(None, 0), (None, 49_999), (None, 40_000), (0, 100), (2, 16_665)]
    got = S.exact_ranks(con, "SELECT g, v FROM t", [], targets, 5, 7, bits=1, fetch_max=3)
    for g, rank in targets:
        v = values["v"] if g is None else values["v"][values["g"] == g]
        assert got[(g, rank)] == np.sort(v)[rank]


def test_a_summary_from_the_store_is_the_summary_from_memory():
    """The end of a long run summarizes in the store: the document is the one the arrays in memory give."""
    rng = np.random.default_rng(7)
    n = 40_000
    lat = rng.integers(2_000_000, 6_000_000, n)
    phase = _phases(n)
    con = duckdb.connect()
    _table(con, lat, phase)
    t_ns = 10**9 + np.cumsum(lat) - lat
    codes = np.array([PHASE_CODES[p] for p in phase], dtype=np.int8)
    facts = dict(run_id="r", config=RunConfig(model="digits-cnn", duration_s=5), status="ok", reason=None,
                 started_ns=10**9 - 5, phases=[("load", 10**9 - 5, None), ("steady", int(t_ns[6]), "stable")])
    from_memory = build_summary(RunFacts(latency=(t_ns, lat, codes), **facts))
    from_store = build_summary(RunFacts(latency=S.digest(con, "r"), **facts))
    for key in ("iterations_total", "warmup_iterations", "steady_s", "throughput_ips", "first_inference_ms",
                "warmup_ms"):
        assert from_store[key] == pytest.approx(from_memory[key], rel=1e-12), key
    for key, value in from_memory["latency_ms"].items():
        assert from_store["latency_ms"][key] == (pytest.approx(value, rel=1e-12) if isinstance(value, (float, list))
                                                 else value), key


def _long_run(store: Store, n: int) -> str:
    """A run of ``n`` synthetic samples written straight into the store's file (what a 10-minute run of a fast
    model leaves), 2 to 6 ms with a slow stretch in the middle."""
    from tests.test_store import CONFIG, DEVICE, META, SOFTWARE

    run_id = store.insert_run(None, store.upsert_device(DEVICE), CONFIG, SOFTWARE, META)
    with duckdb.connect(str(store.path)) as con:
        con.execute(f"""INSERT INTO latency SELECT ?, i, 1000000000 + i * 4000000,
                            2000000 + hash(i) % 4000000 + CASE WHEN i BETWEEN {n // 2} AND {n // 2 + 999}
                            THEN 30000000 ELSE 0 END,
                            CASE WHEN i = 0 THEN 'first' WHEN i < 50 THEN 'warmup' ELSE 'steady' END
                        FROM range({n}) r(i)""", [run_id])
    return run_id


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_a_long_run_back_costs_the_same_at_any_length(tmp_path):
    """Summary, chart and Compare's distributions of a 3-M-sample run: Python holds a bounded result (numpy's and
    Python's allocations traced), not the samples; the reduction keeps the count and the slow stretch."""
    store = Store(tmp_path / "runs.duckdb")
    short, long = _long_run(store, 30_000), _long_run(store, 3_000_000)

    def read(rid):
        d = store.latency_digest(rid)
        tl = store.latency_timeline(rid)
        sub = store.steady_subsample([rid], max_samples=50_000)
        return d, tl, sub

    read(short)  # first use: imports and caches out of the measurement
    peaks = {rid: _peak(lambda rid=rid: read(rid)) for rid in (short, long)}
    assert peaks[long] < 3_000_000 * 8 / 6, peaks  # a sixth of ONE int64 copy of its samples (the subsample's 50k)
    d, tl, sub = read(long)
    assert d.n_total == 3_000_000 and d.steady.n == 3_000_000 - 50 and d.steady.ci_batches == 10
    assert len(tl["t_ns"]) <= S.TIMELINE_BUCKETS and tl["samples"] == 3_000_000 and int(tl["n"].sum()) == 3_000_000
    assert tl["max_ns"].max() >= 32_000_000  # the slow stretch survives the reduction
    assert 40_000 < len(sub[long]) <= 50_000 and sub[long].min() >= 2.0 and sub[long].max() < 36.0


def test_windows_in_the_database_are_stats_windowed():
    """Correlations over time cut a long run into windows in DuckDB: the same windows, counts and medians."""
    rng = np.random.default_rng(11)
    n = 30_000
    lat = rng.integers(1_000_000, 9_000_000, n)
    phase = _phases(n)
    con = duckdb.connect()
    _table(con, lat, phase)
    t_ns = 10**9 + np.cumsum(lat) - lat
    steady = pd.DataFrame({"t_ns": t_ns, "latency_ns": lat})[phase == "steady"]
    tel = pd.DataFrame({"t_ns": np.arange(10**9, int(t_ns[-1]), 10**8), "metric": "cpu.total_pct"})
    tel["value"] = np.arange(len(tel)) % 13 * 1.0
    frame, t0, t_end = S.latency_windows(con, "r", 0.75)
    got = stats.windowed_telemetry(frame, t0, t_end, tel, 0.75)
    want = stats.windowed(steady, tel, 0.75)
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-12)


@pytest.mark.slow
def test_pages_draw_a_long_run_from_its_reduction(tmp_path, monkeypatch):
    """Runs, Compare and Correlations over two 400,000-sample runs: the latency chart says what each point stands
    for and that it is a reduction, and no page reads every sample (``Store.latency`` is never called)."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from tests.test_store import SUMMARY

    db = tmp_path / "runs.duckdb"
    monkeypatch.setenv("EDGEPROF_DB", str(db))
    store = Store(db)
    ids = [_long_run(store, 400_000) for _ in range(2)]
    for rid in ids:
        store.append_telemetry(rid, [(10**9 + i * 10**9, "host", "cpu.total_pct", float(i % 17), "%")
                                     for i in range(1600)])
        d = store.latency_digest(rid)
        store.finish_run(rid, "ok", None, {**SUMMARY, "latency_ms": {"p50": d.steady.p50, "p99": d.steady.p99,
                                                                     "n": d.steady.n}})
    monkeypatch.setattr(Store, "latency", lambda *a, **k: pytest.fail("a page read every sample of a run"))
    pages = Path(__file__).resolve().parents[1] / "views"
    at = AppTest.from_file(str(pages / "2_Runs.py"), default_timeout=120)
    at.query_params["run_id"] = ids[0]
    at.run()
    assert not at.exception, at.exception
    import json

    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    title = fig["layout"]["title"]["text"]
    assert "400,000 inferences, drawn as the median of every 267 (statistics use every sample)" in title, title
    assert [t.get("name") for t in fig["data"] if t.get("showlegend", True)] == [
        "slowest of each 267", "5-95% of each 267", "median of each 267"]
    assert len(fig["data"][0]["x"]) <= S.TIMELINE_BUCKETS
    assert any("stretches above the axis" in a["text"] for a in fig["layout"]["annotations"])  # the 30-ms stretch
    assert fig["layout"]["yaxis"]["range"][1] < 10  # from the 2-6 ms band, not the 30-ms stretch

    at = AppTest.from_file(str(pages / "4_Compare.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert "Latency distribution" in json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["title"]["text"]

    at = AppTest.from_file(str(pages / "3_Correlations.py"), default_timeout=120)
    at.run()
    at.radio(key="corr_mode").set_value(at.radio(key="corr_mode").options[-1]).run()
    assert not at.exception, at.exception
    assert any("**54 windows** of 30 s over the steady state" in str(m.value) for m in at.markdown), \
        [str(m.value) for m in at.markdown]


@pytest.mark.slow
def test_export_of_a_long_run_streams_within_its_memory(tmp_path):
    """Export is DuckDB's COPY on one thread under ``EXPORT_MEMORY``: a 2.5-M-sample run stored out of order (no
    sort could hold it there) is written whole, reads back identical, and no spill folder is left."""
    from edgeprof.store import bundle

    store = Store(tmp_path / "runs.duckdb")
    rid = _long_run(store, 2_500_000)
    with duckdb.connect(str(store.path)) as con:
        con.execute("CREATE TABLE shuffled AS SELECT * FROM latency ORDER BY hash(seq)")
        con.execute("DELETE FROM latency")
        con.execute("INSERT INTO latency SELECT * FROM shuffled")
        con.execute("DROP TABLE shuffled")
    out = bundle.export_runs(store, [rid], tmp_path / "out.zip", fmt="parquet")
    assert out.exists() and not [p.name for p in tmp_path.iterdir() if p.name.startswith(".edgeprof-")]
    other = Store(tmp_path / "other" / "runs.duckdb")
    assert bundle.import_bundle(other, out) == [rid]
    for a, b in zip(store.latency_arrays(rid), other.latency_arrays(rid), strict=True):
        np.testing.assert_array_equal(a, b)


def test_timeline_line_is_each_stretch_median():
    """The long-run chart's line is each stretch's median and its band the 5th-95th percentiles (numpy's linear
    interpolation), not the mean a few slow inferences pull far above the run's p50."""
    rng = np.random.default_rng(5)
    n = 30_000
    lat = rng.integers(15_000, 20_000, n)
    lat[::50] = 2_000_000  # a slow one in fifty: each stretch's mean far above its median
    con = duckdb.connect()
    _table(con, lat, _phases(n))
    line = S.timeline(con, "r", buckets=100)
    width = n // 100
    parts = lat.reshape(100, width)
    np.testing.assert_allclose(line["median_ns"], np.median(parts, axis=1))
    np.testing.assert_allclose(line["p05_ns"], np.percentile(parts, 5, axis=1))
    np.testing.assert_allclose(line["p95_ns"], np.percentile(parts, 95, axis=1))
    assert (line["mean_ns"] > 2 * line["median_ns"]).all() and line["exact_t1"] is None
