"""The Runs page's history filtered and paged in DuckDB (edgeprof.store.history): a page reads one page of runs and
no run's documents, whatever the history's length."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from edgeprof.store import Store
from edgeprof.store.history import Query

ROOT = Path(__file__).resolve().parents[1]


def _history(store: Store, count: int) -> None:
    """``count`` runs: copies of one real row, every third failed, half with a 256-MB limit."""
    from tests.test_store import make_run

    rid = make_run(store)
    with duckdb.connect(str(store.path)) as con:
        con.execute(f"""INSERT INTO runs SELECT runs.* REPLACE (printf('%032x', i) AS run_id,
                            created_at + INTERVAL (i) SECOND AS created_at,
                            CASE WHEN i % 3 = 0 THEN 'failed' ELSE 'ok' END AS status,
                            CASE WHEN i % 2 = 0 THEN NULL ELSE 256.0 END AS memory_limit_mb)
                        FROM runs, range(1, {count}) r(i) WHERE run_id = ?""", [rid])


def test_pages_and_filters_in_the_database(tmp_path):
    store = Store(tmp_path / "runs.duckdb")
    _history(store, 250)
    f = store.run_facets()
    assert f["total"] == 250 and f["status"] == ["failed", "ok"] and f["limits"] == [None, 256.0]
    frame, matched = store.runs_page(Query(), limit=100)
    assert matched == 250 and len(frame) == 100 and "summary" not in frame and frame["created_at"].is_monotonic_decreasing
    last, _ = store.runs_page(Query(), offset=200, limit=100)
    assert len(last) == 50
    ok_unlimited, matched = store.runs_page(Query({"status": ["ok"]}, limits=[None]), limit=1000)
    assert matched == len(ok_unlimited) == sum(1 for i in range(1, 250) if i % 3 and i % 2 == 0)
    named, _ = store.runs_page(Query({"status": ["failed"]}), limit=5, include=last["run_id"].iloc[-1])
    assert len(named) == 6 and named["run_id"].iloc[-1] == last["run_id"].iloc[-1]


@pytest.mark.slow
def test_runs_page_shows_one_page_and_says_which(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    store = Store(tmp_path / "runs.duckdb")
    _history(store, 250)
    monkeypatch.setattr(Store, "list_runs", lambda *a, **k: pytest.fail("the Runs page read every run"))
    at = AppTest.from_file(str(ROOT / "views" / "2_Runs.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    captions = [str(c.value) for c in at.caption]
    assert "250 of 250 runs; this page shows 1 to 100, newest first" in captions, captions
    assert len(at.dataframe[0].value) == 100
    at.number_input(key="runs_page").set_value(3).run()
    assert "250 of 250 runs; this page shows 201 to 250, newest first" in [str(c.value) for c in at.caption]
    assert len(at.dataframe[0].value) == 50
    at.multiselect(key="runs_status").set_value(["failed"]).run()
    at.multiselect(key="runs_limit").set_value(["no limit"]).run()
    assert not at.exception, at.exception
    assert "41 of 250 runs" in [str(c.value) for c in at.caption], [str(c.value) for c in at.caption]
    assert set(at.dataframe[0].value["status"]) == {"failed"}
