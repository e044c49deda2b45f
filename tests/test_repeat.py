"""Runs made together, end to end with real worker processes and a real DuckDB file: ``run --repeat N``,
``compare`` (two configurations interleaved), the noise floor (``devices --noise-floor``), and what the store, the
bundles and the Compare page do with them."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from helpers import ROOT, cli_env, requires_cgroup
from streamlit.testing.v1 import AppTest

from edgeprof import compare
from edgeprof.store import Store
from edgeprof.store.bundle import export_runs, import_bundle
from edgeprof.store.schema import OLD_CI_METHOD, upgrade_summary


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, timeout=600,
                          env=cli_env(), cwd=ROOT)


def test_run_repeat_json_is_one_document_with_the_group_and_each_run(db_path):
    r = cli("run", "--model", "digits-cnn", "--duration", "1", "--repeat", "3", "--db", str(db_path), "--json",
            "--quiet")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    lat = doc["latency_ms"]
    assert doc["status"] == "ok" and doc["repeat"] == 3 and len(doc["runs"]) == 3
    assert lat["ci_scope"] == "runs" and lat["n_runs"] == 3
    low, high = lat["p50_ci"]
    assert low <= lat["p50"] <= high and [lat["median_ci_low"], lat["median_ci_high"]] == lat["p50_ci"]
    assert sorted(lat["run_p50"])[1] == lat["p50"]  # the median of the run medians
    for m in doc["runs"]:
        assert m["latency_ms"]["ci_scope"] == "within-run" and len(m["latency_ms"]["p50_ci"]) == 2
    store = Store(db_path)
    runs = store.list_runs()
    assert len(runs) == 3 and set(runs["group_id"]) == {doc["group_id"]}
    group = store.get_group(doc["group_id"])
    assert group["kind"] == "repeat" and group["status"] == "ok" and group["run_ids"] == doc["run_ids"]
    assert group["result"]["latency_ms"]["p50_ci"] == lat["p50_ci"] and "runs" not in group["result"]
    # each run is also a run of its own: `show` gives its within-run interval, labelled as such
    r = cli("show", doc["run_ids"][0], "--db", str(db_path))
    assert "within this run only; a rerun can land outside it" in r.stdout


def test_run_repeat_text_says_what_each_interval_covers(db_path):
    r = cli("run", "--model", "digits-cnn", "--duration", "1", "--repeat", "2", "--db", str(db_path), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "median of 2 run medians" in r.stdout and "between runs; a rerun is expected inside it" in r.stdout
    assert r.stdout.count("within-run interval") == 2


@requires_cgroup
def test_run_repeat_exits_3_when_runs_end_with_another_status(db_path):
    r = cli("run", "--model", "efficientnet-lite0", "--memory-limit", "48", "--iterations", "20", "--repeat", "2",
            "--db", str(db_path), "--json", "--quiet")
    assert r.returncode == 3, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "failed" and doc["runs_ok"] == 0 and doc["latency_ms"]["p50"] is None
    assert [m["status"] for m in doc["runs"]] == ["oom_killed", "oom_killed"] and "Traceback" not in r.stderr


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_run_repeat_refuses_a_bad_count_before_storing_anything(db_path, value):
    r = cli("run", "--model", "digits-cnn", "--repeat", value, "--db", str(db_path))
    assert r.returncode == 2 and "repeat" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not db_path.exists() or Store(db_path).list_runs().empty


def test_compare_interleaves_and_says_whether_the_difference_is_distinguishable(db_path):
    r = cli("compare", "--model", "digits-cnn", "--duration", "1", "--vs", "threads=1", "--repeat", "2",
            "--db", str(db_path), "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["kind"] == "compare" and doc["pairs"] == 2 and doc["status"] == "ok"
    threads = [m["config"]["threads"] for m in doc["runs"]]
    store = Store(db_path)
    made = store.list_runs().sort_values("created_at")
    assert list(made["threads"]) == [2, 1, 1, 2]  # A B, B A: drift falls on both
    assert sorted(threads) == [1, 1, 2, 2]
    ratio = doc["ratio_b_over_a"]
    assert ratio["ci_scope"] == "runs" and ratio["paired"] and ratio["ci"][0] <= ratio["p50"] <= ratio["ci"][1]
    # within 0.5% of each other the sentence says "the same time per inference as A"
    assert re.search(r"B takes .*time per inference (than|as) A", doc["verdict"]), doc["verdict"]
    assert doc["a"]["latency_ms"]["ci_scope"] == doc["b"]["latency_ms"]["ci_scope"] == "runs"
    r = cli("compare", "--model", "digits-cnn", "--vs", "colour=blue", "--db", str(db_path))
    assert r.returncode == 2 and "KEY one of" in r.stderr
    r = cli("compare", "--model", "digits-cnn", "--vs", "threads=2", "--db", str(db_path))
    assert r.returncode == 2 and "the same" in r.stderr


def test_noise_floor_is_measured_stored_and_shown(db_path):
    r = cli("devices", "--db", str(db_path))
    assert r.returncode == 0 and "noise floor not measured on this device yet" in r.stdout
    r = cli("devices", "--noise-floor", "--db", str(db_path))
    assert r.returncode == 0, r.stderr
    assert "noise floor" in r.stdout and "not distinguishable on this device" in r.stdout
    r = cli("devices", "--json", "--db", str(db_path))
    floor = json.loads(r.stdout)["noise_floor"]
    assert floor["floor_pct"] > 0 and floor["latency_ms"]["n_runs"] == 5 and floor["model"] == "digits-cnn"
    store = Store(db_path)
    assert compare.noise_floor(store)["floor_pct"] == floor["floor_pct"]
    words = compare.noise_floor_words(compare.noise_floor(store))
    assert f"Differences under {floor['floor_pct']:.0f}% are not distinguishable on this device right now" in words
    runs = store.list_runs()
    assert len(runs) == 5 and runs["tags"].str.contains("noise_floor").all()


def test_groups_travel_in_bundles_and_go_with_their_runs(db_path, tmp_path):
    r = cli("run", "--model", "digits-cnn", "--duration", "1", "--repeat", "2", "--db", str(db_path), "--json",
            "--quiet")
    doc = json.loads(r.stdout)
    out = export_runs(Store(db_path), None, tmp_path / "b.zip")
    other = Store(tmp_path / "other.duckdb")
    assert sorted(import_bundle(other, out)) == sorted(doc["run_ids"])
    assert other.get_group(doc["group_id"])["result"]["latency_ms"]["p50_ci"] == doc["latency_ms"]["p50_ci"]
    other.delete_runs(doc["run_ids"][:1])
    assert other.get_group(doc["group_id"]) is not None  # one run left
    other.delete_runs(doc["run_ids"][1:])
    assert other.get_group(doc["group_id"]) is None


def test_a_summary_stored_before_scoped_intervals_reads_with_its_method():
    old = {"summary_version": 2, "latency_ms": {"p50": 7.0, "median_ci_low": 6.9, "median_ci_high": 7.1}}
    lat = upgrade_summary(old)["latency_ms"]
    assert lat["p50_ci"] == [6.9, 7.1] and lat["ci_scope"] == "within-run" and lat["ci_method"] == OLD_CI_METHOD
    assert "independent" in lat["ci_note"] and "ci_scope" not in old["latency_ms"]


def test_compare_page_compares_repeated_runs_and_measures_the_noise_floor(db_path, monkeypatch):
    monkeypatch.setenv("EDGEPROF_DB", str(db_path))
    for threads in ("1", "2"):
        r = cli("run", "--model", "digits-cnn", "--duration", "1", "--threads", threads, "--repeat", "2",
                "--db", str(db_path), "--quiet")
        assert r.returncode == 0, r.stderr
    at = AppTest.from_file(str(ROOT / "views" / "4_Compare.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value  # single runs: within these runs only
    assert set(table["interval covers"]) == {"within these runs only (single run: no between-run uncertainty)"}
    assert "unknown: single runs (no noise floor measured)" in set(table["difference"])
    text = " ".join(str(c.value) for c in at.caption)
    assert "noise floor has not been measured yet" in text and "within these runs only" in text
    at.radio(key="cmp_mode").set_value("repeated runs (--repeat)").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["runs"]) == [2, 2]
    assert set(table["interval covers"]) == {"between runs: a rerun is expected inside it"}
    assert table["difference"].iloc[0] == "baseline"
    assert table["difference"].iloc[1] in ("distinguishable", "not distinguishable")
    sentences = " ".join(m.value for m in at.markdown)
    assert "95% interval between runs" in sentences
    at.button(key="cmp_noise_floor").click().run()
    assert not at.exception, at.exception
    assert any("Measured: differences under" in s.value for s in at.success)
    text = " ".join(str(c.value) for c in at.caption)
    assert "are not distinguishable on this device right now" in text


def test_a_few_runs_interval_never_puts_p90_below_p50_and_says_why_it_is_wide():
    """Three runs (the issue's case): Student t with 2 degrees of freedom reached below the runs' p50 for p90."""
    from edgeprof.cli.text import group_text
    from edgeprof.run.summary import group_latency

    members = [{"status": "ok", "latency_ms": {"p50": p50, "p90": p90}}
               for p50, p90 in ((0.041, 0.044), (0.043, 0.060), (0.046, 0.049))]
    lat = group_latency(members)
    assert lat["ci_scope"] == "runs"
    assert lat["p90_ci"][0] >= lat["p50_ci"][0]  # a p90 is never below the p50
    text = group_text({"group_id": "g", "status": "ok", "runs_ok": 3, "repeat": 3, "latency_ms": lat, "runs": []})
    assert "why so wide  3 runs give Student t 2 degrees of freedom" in text
    assert "p50 41.0 to 46.0 µs, p90 44.0 to 60.0 µs" in text
