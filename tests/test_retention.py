"""A long run's retention (``RunConfig.retention``, ``run.recorder``): every sample up to N, beyond it the first part
exact plus per-second aggregates and a seeded uniform reservoir; which samples the statistics came from is said in
the summary, `show`, `runs --json`, the Runs page and carried by bundles. N, the exact seconds and the reservoir size
come from the environment, so a run past N stays short here."""

from __future__ import annotations

import json
import subprocess
import sys
from array import array

import numpy as np
import pytest

from edgeprof.errors import ConfigError
from edgeprof.run.recorder import Recorder, Retention, _Reducer
from edgeprof.store import Store
from edgeprof.store.bundle import export_runs, import_bundle
from edgeprof.worker.messages import Batch
from tests.helpers import ROOT, cli_env

SMALL = {"EDGEPROF_RETENTION_MAX_ALL": "2000", "EDGEPROF_RETENTION_EXACT_S": "0.5",
         "EDGEPROF_RETENTION_RESERVOIR": "400"}


def feed(rec: Recorder, batches: int = 200, flush_every: int = 37, seed: int = 1):
    """Batches as the worker sends them (one first inference, 4 of warm-up, then steady; 100 samples of 50-150 us
    each, back to back): ~2 s of samples. Returns every latency (ns) and its phase."""
    rng = np.random.default_rng(seed)
    seq, t, lats, phases = 0, 1_000_000_000, [], []
    for b in range(batches):
        phase = "first" if b == 0 else "warmup" if b < 5 else "steady"
        k = 1 if b == 0 else 100
        lat = rng.integers(50_000, 150_000, k)
        ts = t + np.concatenate([[0], np.cumsum(lat[:-1] + 10)])
        rec.add_batch(Batch(seq, phase, array("q", ts.tolist()), array("q", lat.tolist())))
        lats.append(lat)
        phases += [phase] * k
        seq, t = seq + k, int(ts[-1] + lat[-1] + 10)
        if b % flush_every == flush_every - 1:
            rec.flush()
    rec.flush(final=True)
    return np.concatenate(lats), np.array(phases)


def stored(store: Store, table: str, run_id: str) -> int:
    with store._reading() as con:
        return con.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", [run_id]).fetchone()[0]


def test_a_run_past_n_stores_its_first_part_exact_and_a_bounded_reservoir(monkeypatch, db_path):
    for k, v in SMALL.items():
        monkeypatch.setenv(k, v)
    store = Store(db_path)
    rid = store.insert_run(None, None, {"model": "m"})
    rec = Recorder(rid, store, retention="auto")
    lat, phase = feed(rec)
    assert rec.reduced and rec.unsaved() == 0
    exact = stored(store, "latency", rid)
    assert 2000 <= exact < len(lat) // 2  # past N and the first 0.5 s: the rest is not stored one by one
    assert stored(store, "latency_reservoir", rid) == 400
    assert stored(store, "latency_seconds", rid) < 20  # a few rows a second, not a row a sample

    dig = rec.samples([])[0]  # the summary's facts, read back from the store as any later reader sees them
    steady = lat[phase == "steady"] / 1e6
    s = dig.steady
    assert dig.n_total == len(lat) and s.n == len(steady) and dig.warmup_n == 400
    assert s.mean == pytest.approx(steady.mean(), rel=1e-12) and s.std == pytest.approx(steady.std(ddof=1), rel=1e-9)
    assert (s.min, s.max) == (steady.min(), steady.max())
    assert 0.4 < np.mean(steady <= s.p50) < 0.6 and 0.85 < np.mean(steady <= s.p90) < 0.95  # an estimate
    assert s.median_ci_low < s.p50 < s.median_ci_high and s.ci_batches == 10
    assert dig.retention == {
        "kept": "reduced", "exact_samples": exact, "steady_samples": len(steady), "reservoir_samples": 400,
        "statement": f"percentiles and their intervals from a uniform reservoir of 400 of {len(steady):,} steady "
                     f"samples; count, mean, std, min and max exact; the first {exact:,} samples stored one by one"}

    line = store.latency_timeline(rid)  # the chart: min, max and mean per stretch of time, every sample counted
    assert line["reduced"] and line["samples"] == len(lat) and line["n"].sum() == len(lat)
    assert line["min_ns"].min() == lat.min() and line["max_ns"].max() == lat.max()
    # the chart's line is each stretch's median: of its stored samples, past them of the reservoir's samples in it
    t_lat = store.latency(rid)
    assert line["exact_t1"] == t_lat["t_ns"].max()
    first = line["t_ns"] <= line["exact_t1"]
    assert np.isfinite(line["median_ns"][first]).all() and np.isfinite(line["median_ns"]).sum() > first.sum()
    assert (line["p05_ns"][first] <= line["median_ns"][first]).all()
    assert (line["median_ns"][first] <= line["p95_ns"][first]).all()
    assert len(store.steady_subsample([rid])[rid]) == 400  # Compare and Correlations draw the reservoir


def test_the_recorder_does_not_hold_a_reduced_run(monkeypatch, db_path):
    """Past the cut nothing waits in the recorder sample by sample: aggregate rows a second, the fixed reservoir."""
    for k, v in SMALL.items():
        monkeypatch.setenv(k, v)
    store = Store(db_path)
    rid = store.insert_run(None, None, {"model": "m"})
    rec = Recorder(rid, store, retention="reduced")
    feed(rec, batches=400, flush_every=10_000)  # never flushed until the end: ~4 s of samples pending
    assert rec._pending_lat == [] and len(rec._pending_rows) == 0
    assert rec._reducer.res.shape == (3, 400)
    assert stored(store, "latency", rid) < 6000  # the first 0.5 s only ('reduced' does not wait for N)


@pytest.mark.parametrize("retention", ["all", "auto"])
def test_every_sample_is_kept_with_all_and_below_n(monkeypatch, db_path, retention):
    monkeypatch.setenv("EDGEPROF_RETENTION_EXACT_S", "0.5")  # N stays 1,000,000: auto keeps this short run whole
    store = Store(db_path)
    rid = store.insert_run(None, None, {"model": "m"})
    rec = Recorder(rid, store, retention=retention)
    lat, _ = feed(rec)
    assert not rec.reduced and stored(store, "latency", rid) == len(lat)
    assert stored(store, "latency_seconds", rid) == stored(store, "latency_reservoir", rid) == 0


def test_the_reservoir_is_a_uniform_sample():
    """Algorithm R, vectorized across a batch: every steady sample lands in the reservoir with probability
    size / n, whichever batch it came in (the first ones fill it, later ones replace at random)."""
    n, size, trials = 60, 12, 3000
    hits = np.zeros(n)
    for seed in range(trials):
        red = _Reducer(Retention("reduced", exact_s=1e9, reservoir=size, seed=seed))
        for b in range(0, n, 7):
            k = min(7, n - b)
            red.take(Batch(b, "steady", array("q", range(b, b + k)), array("q", [1] * k)))
        hits[red.reservoir()[0]] += 1
    share = hits / trials
    assert abs(share.mean() - size / n) < 1e-12  # exactly size slots filled each time
    assert np.all(np.abs(share - size / n) < 0.035), share  # 4.6 binomial standard deviations


def test_retention_is_one_of_its_values():
    from edgeprof.config import RunConfig
    from edgeprof.study.config import StudyConfig

    with pytest.raises(ConfigError, match="retention 'some' is not one of: auto, all, reduced"):
        RunConfig(model="digits-cnn", retention="some")
    with pytest.raises(ConfigError, match="retention 'some' is not one of: auto, all, reduced"):
        StudyConfig(name="s", models=["digits-cnn"], retention="some")
    assert StudyConfig(name="s", models=["digits-cnn"], retention="reduced").retention == "reduced"


def cli(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, env=env,
                          timeout=240)


@pytest.mark.slow
def test_a_reduced_run_says_so_in_show_runs_the_runs_page_and_a_bundle(tmp_path, db_path, monkeypatch):
    """A real run of the bundled model with --retention reduced, as a user types it."""
    monkeypatch.setenv("EDGEPROF_DB", str(db_path))  # the page's database
    env = cli_env(EDGEPROF_RETENTION_EXACT_S="0.3", EDGEPROF_RETENTION_RESERVOIR="500", EDGEPROF_DB=str(db_path))
    run = cli("run", "--model", "digits-cnn", "--threads", "1", "--duration", "1.5", "--retention", "reduced",
              "--json", "--quiet", env=env)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    rid, ret = doc["run_id"], doc["retention"]
    assert ret["requested"] == "reduced" and ret["kept"] == "reduced" and ret["reservoir_samples"] == 500
    steady = doc["latency_ms"]["n"]
    assert ret["steady_samples"] == steady > 500
    sentence = f"percentiles and their intervals from a uniform reservoir of 500 of {steady:,} steady samples"

    show = cli("show", rid, env=env)
    assert show.returncode == 0, show.stderr
    assert f"  samples      {sentence}; count, mean, std, min and max exact" in show.stdout
    runs = cli("runs", "--json", env=env)
    assert [r["retention"] for r in json.loads(runs.stdout)] == ["reduced"]
    assert "samples kept" in cli("runs", env=env).stdout

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "views" / "2_Runs.py"), default_timeout=60)
    at.run()
    at.selectbox(key="show_run").select(rid).run()
    assert not at.exception, at.exception
    assert any(sentence in str(c.value) for c in at.caption), [c.value for c in at.caption]
    from edgeprof import ui

    label = ui.runs_frame(Store(db_path)).set_index("run_id").loc[rid, "label"]  # Compare's and Correlations' pickers
    assert " from a reservoir of its samples] …" in label, label

    bundle = tmp_path / "b.zip"
    export_runs(Store(db_path), [rid], bundle)
    other = Store(tmp_path / "other.duckdb")
    assert import_bundle(other, bundle) == [rid]
    assert other.latency_digest(rid) == Store(db_path).latency_digest(rid)  # the same statistics, the same sentence
    assert other.get_run(rid)["retention"] == "reduced"
