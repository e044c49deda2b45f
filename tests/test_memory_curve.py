"""The memory curve (``edgeprof memory``, ``run.memory``): the search for the smallest cap with fake probes (its
probe count and time budget), the ladder, the sentences and the breakdown from captured memory.stat text; then real
capped workers: a model whose weights are known, a probe that must be OOM-killed below its footprint, file-backed
weights that a tight cap evicts and the worker reads back, and the whole command on a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT, cli_env, requires_cgroup

from edgeprof.config import RunConfig
from edgeprof.errors import UsageError
from edgeprof.run.memory import (
    Probe,
    Settings,
    breakdown,
    describe,
    find_min_cap,
    ladder,
    latest_curve,
    mark_figures,
    measure_memory,
)
from edgeprof.telemetry.memory import swap_total_mb

# ------------------------------------------------------------------------------------------------ the search, pure


class FakeProbes:
    """A model that needs ``need_mb``; each probe takes ``seconds`` on a fake clock."""

    def __init__(self, need_mb: float, seconds: float = 1.0):
        self.need, self.seconds, self.now, self.caps = need_mb, seconds, 0.0, []

    def clock(self) -> float:
        return self.now

    def __call__(self, cap: float) -> Probe:
        self.caps.append(cap)
        self.now += self.seconds
        fits = cap >= self.need
        return Probe(cap, fits, "ok" if fits else "oom_killed", self.seconds)


def test_search_brackets_the_minimum_to_the_resolution_in_few_probes():
    fake = FakeProbes(41.2)
    s = find_min_cap(fake, 20, 60, resolution_mb=1, max_probes=10, budget_s=100, clock=fake.clock)
    assert s.stopped_by == "resolution"
    assert s.fails_at_mb < 41.2 <= s.min_cap_mb and s.min_cap_mb - s.fails_at_mb <= 1
    assert fake.caps[:2] == [60, 20]  # the footprint first, then the floor
    assert len(s.probes) == len(fake.caps) <= 2 + 6  # log2(40 / 1) halvings after the two ends


def test_search_stops_at_its_probe_count_and_time_budget():
    fake = FakeProbes(41.2)
    s = find_min_cap(fake, 20, 60, resolution_mb=0.5, max_probes=4, budget_s=100, clock=fake.clock)
    assert (s.stopped_by, len(s.probes)) == ("probes", 4)
    assert s.fails_at_mb < 41.2 <= s.min_cap_mb  # still a true bracket, only wider

    fake = FakeProbes(41.2, seconds=10)
    s = find_min_cap(fake, 20, 60, resolution_mb=0.5, max_probes=50, budget_s=25, clock=fake.clock)
    assert s.stopped_by == "time" and len(s.probes) == 3 and s.seconds == 30
    assert s.fails_at_mb < 41.2 <= s.min_cap_mb


def test_search_floor_that_fits_and_footprint_that_does_not():
    fake = FakeProbes(10)
    s = find_min_cap(fake, 20, 60, resolution_mb=1, max_probes=10, budget_s=100, clock=fake.clock)
    assert (s.stopped_by, s.min_cap_mb, s.fails_at_mb) == ("floor_fits", 20, None)

    fake = FakeProbes(70)  # a cap at the uncapped peak can still fail: raised by a quarter at a time
    s = find_min_cap(fake, 20, 60, resolution_mb=1, max_probes=10, budget_s=100, clock=fake.clock)
    assert fake.caps[:2] == [60, 75] and s.fails_at_mb < 70 <= s.min_cap_mb

    fake = FakeProbes(1e9)
    s = find_min_cap(fake, 20, 60, resolution_mb=1, max_probes=3, budget_s=100, clock=fake.clock)
    assert (s.stopped_by, s.min_cap_mb, len(s.probes)) == ("nothing_fits", None, 3)


def test_ladder_runs_from_the_minimum_to_one_and_a_half_footprints():
    caps = ladder(41, 50)
    assert len(caps) == 6 and caps[0] == 41 and caps[-1] == 75 and caps == sorted(set(caps))
    assert caps == [41, 44, 47, 50, 62.5, 75]  # half between the minimum and the footprint: where a slope can be
    assert len(ladder(74, 50)) == 6  # a minimum near the top still gets six distinct caps
    assert ladder(47, 46.9) == [47, 52, 56.5, 61.5, 66, 70.5]  # nothing between: evenly above


def test_settings_refuse_a_ladder_too_short_for_an_interval():
    with pytest.raises(Exception, match="ladder time"):
        Settings(ladder_s=0.5)
    with pytest.raises(Exception, match="ladder points"):
        Settings(ladder_points=3)


# ------------------------------------------------------------------------------------------------ sentences, pure


def _pt(cap, p50, status="ok", some=0.0, refaults=0.0):
    return {"cap_mb": cap, "status": status, "p50_ms": p50, "p50_ci": None if p50 is None else [p50 * 0.99, p50 * 1.01],
            "pressure_some_pct": some, "pressure_full_pct": some / 2, "refaults_per_s": refaults,
            "major_faults_per_s": refaults}


def test_describe_says_the_cliff_and_a_flat_curve_and_why_it_can_only_fit_or_kill():
    doc = {"search": {"min_cap_mb": 41, "fails_at_mb": 40.5, "resolution_mb": 1},
           "curve": [_pt(41, 5.05), _pt(45, 5.0), _pt(50, 5.1), _pt(60, 5.0), {"cap_mb": None, "p50_ms": 5}],
           "mechanism": {"evictable": False, "swap_mb": 0.0}}
    s = describe(doc)
    assert s["cliff"].startswith("Below 41 MB the worker is OOM-killed")
    assert s["slope"].startswith("From 41 to 60 MB p50 stays within 2.0% of its value at 60 MB") and not s["slope_seen"]
    assert "can only fit or kill" in s["mechanism"] and "no swap" in s["mechanism"]
    doc["search"]["probes"] = [{"cap_mb": 40.5, "fits": False, "status": "timed_out"}]
    assert describe(doc)["cliff"].startswith("Below 41 MB the worker does not complete (timed_out)")


def test_describe_names_the_slope_with_the_pressure_that_explains_it():
    doc = {"search": {"min_cap_mb": 30, "fails_at_mb": 29, "resolution_mb": 1},
           "curve": [_pt(30, 9.8, some=61, refaults=850), _pt(34, 6.0, some=20, refaults=300), _pt(40, 5.0),
                     _pt(45, 5.02), _pt(50, 5.0)],
           "mechanism": {"evictable": True, "swap_mb": 0.0}, "footprint_mb": 40}
    s = describe(doc)
    assert s["slope_seen"] and s["slope_starts_mb"] == 34
    assert s["slope"].startswith("From 30 to 34 MB p50 rises: 1.96x at 30 MB (9.8 ms against 5 ms at 40 MB and above)")
    assert "From 40 MB up p50 stays within 0% of that" in s["slope"]
    assert "61% of the time some task of the worker stalled on memory" in s["slope"]
    assert "850 evicted pages a second were read back (refaults)" in s["slope"]
    assert "file-backed weights" in s["mechanism"]


def test_describe_counts_a_run_that_thrashed_before_it_ended_as_the_slope():
    doc = {"search": {"min_cap_mb": 26, "fails_at_mb": 25.5, "resolution_mb": 1}, "footprint_mb": 29.4,
           "curve": [{**_pt(26, 288.0, some=32, refaults=85246), "status": "timed_out", "p50_ci": None},
                     _pt(30, 28.4), _pt(33.5, 30.0), _pt(37, 30.5)],
           "mechanism": {"evictable": True, "swap_mb": 0.0}}
    s = describe(doc)
    assert s["slope_seen"] and "did not complete" not in s["cliff"]
    early = {**doc, "curve": [{**doc["curve"][0], "status": "oom_killed", "p50_ms": None}, *doc["curve"][1:]]}
    s2 = describe(early)
    assert not s2["slope_seen"] and ("At 26 MB the worker thrashed before it ended, too early for a steady p50: 32% of "
                                     "the time some task") in s2["cliff"]
    assert ("At 26 MB the worker thrashed before it ran past its timeout: p50 288 ms, 9.6x, while 32% of the time "
            "some task of the worker stalled on memory (16% all of them), 85,246 evicted pages a second") in s["slope"]
    assert s["mechanism"].startswith("Pages were evicted and read back under the tight caps: file-backed weights")


def test_describe_does_not_call_noise_a_slope():
    doc = {"search": {"min_cap_mb": 30, "fails_at_mb": 29, "resolution_mb": 1},
           "curve": [_pt(30, 4.2), _pt(34, 5.1), _pt(40, 2.8), _pt(45, 5.3)],
           "mechanism": {"evictable": False, "swap_mb": 0.0}}
    s = describe(doc)
    assert not s["slope_seen"] and "with no memory pressure behind it: no slope" in s["slope"]
    # a rise with no memory pressure behind it is not the cap's doing
    quiet = {**doc, "curve": [_pt(30, 9.0), _pt(34, 5.0), _pt(40, 5.0), _pt(45, 5.0)]}
    s = describe(quiet)
    assert not s["slope_seen"] and "not the cap" in s["slope"]


# ------------------------------------------------------------------------------------------------ breakdown, pure

STAT_IMPORTED = "cache 4194304\nrss 13631488\nmapped_file 6291456\ntotal_cache 4194304\ntotal_rss 13631488\n"
STAT_LOADED = "cache 4194304\nrss 22020096\ntotal_cache 9437184\ntotal_rss 22020096\n"


def test_breakdown_splits_the_footprint_and_says_which_figure_is_which():
    marks = {"imported": mark_figures(STAT_IMPORTED, 19 * 2**20, 60_000, "cgroup1"),
             "loaded": mark_figures(STAT_LOADED, 32 * 2**20, 64_000, "cgroup1")}
    assert marks["imported"] == {"charged_mb": 19.0, "anon_mb": 13.0, "file_mb": 4.0, "kernel_mb": 2.0,
                                 "rss_mb": pytest.approx(58.59, abs=0.01)}
    b = breakdown(marks, 35.0, 5 * 2**20, "cgroup1")
    assert (b["runtime_mb"], b["weights_mb"], b["weights_anon_mb"], b["weights_file_mb"], b["activations_mb"]) == \
        (19.0, 13.0, 8.0, 5.0, 3.0)
    text = " ".join(b["sentences"])
    assert "35.0 MB at its peak" in text and "for a 5.0 MB model file" in text
    assert "The weights live in anonymous memory" in text and "RSS (VmRSS" in text and "The file size (5.0 MB" in text
    assert "unavailable" in breakdown({}, 35.0, None, "rlimit_as")


def test_swap_total_from_proc_swaps(tmp_path):
    swaps = tmp_path / "swaps"
    swaps.write_text("Filename\tType\tSize\tUsed\tPriority\n")
    assert swap_total_mb(str(swaps)) == 0.0
    swaps.write_text("Filename\tType\tSize\tUsed\tPriority\n/dev/zram0  partition\t1048572\t0\t100\n")
    assert swap_total_mb(str(swaps)) == pytest.approx(1024, abs=0.01)
    assert swap_total_mb(str(tmp_path / "absent")) == 0.0


# ------------------------------------------------------------------------------------------------ real workers

WEIGHT_MB = 32


@pytest.fixture
def heavy_onnx(tmp_path):
    """y = x + W with a 32-MB float32 initializer: its weights are known."""
    from onnx import TensorProto, helper, numpy_helper, save

    n = WEIGHT_MB * 2**20 // 4
    w = numpy_helper.from_array(np.random.default_rng(0).random(n, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "heavy",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n])], [w])
    path = tmp_path / "heavy.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def _run(cfg, db):
    from edgeprof.run import start_run

    handle = start_run(cfg, db)
    return handle, handle.wait(120)


@pytest.mark.slow
@pytest.mark.cgroup
@requires_cgroup
def test_known_weights_are_in_the_breakdown_and_a_cap_below_the_footprint_kills(heavy_onnx, db_path):
    from edgeprof.run.memory import mark_figures

    handle, res = _run(RunConfig(str(heavy_onnx), iterations=3, warmup=1), db_path)
    assert res["status"] == "ok"
    marks = {m.mark: mark_figures(m.stat, m.usage, m.rss_kb, "cgroup1") for m in handle.memory_marks}
    assert list(marks) == ["imported", "loaded", "first", "steady"]
    b = breakdown(marks, res["memory"]["peak_charged_mb"], heavy_onnx.stat().st_size, "cgroup1")
    assert b["weights_mb"] >= WEIGHT_MB * 0.9 and b["weights_anon_mb"] >= WEIGHT_MB * 0.9
    footprint = res["memory"]["peak_charged_mb"]
    assert footprint >= b["runtime_mb"] + WEIGHT_MB
    # a probe below the footprint, above the runtime alone: the weights cannot fit, the worker is killed
    _, res = _run(RunConfig(str(heavy_onnx), iterations=3, warmup=1, memory_limit_mb=b["runtime_mb"] + WEIGHT_MB / 2,
                            timeout_s=60), db_path)
    assert res["status"] == "oom_killed" and "OOM-killed" in res["error"]


@pytest.mark.slow
@pytest.mark.cgroup
@requires_cgroup
def test_evictable_onnx_weights_are_memory_mapped_from_external_data(heavy_onnx, db_path):
    handle, res = _run(RunConfig(str(heavy_onnx), iterations=3, warmup=1, evictable=True), db_path)
    assert res["status"] == "ok", res["error"]
    assert any("saved as external data" in n for n in res["notes"])
    marks = {m.mark: mark_figures(m.stat, m.usage, m.rss_kb, "cgroup1") for m in handle.memory_marks}
    b = breakdown(marks, res["memory"]["peak_charged_mb"], heavy_onnx.stat().st_size, "cgroup1")
    assert b["weights_file_mb"] >= WEIGHT_MB * 0.9 and b["weights_anon_mb"] < WEIGHT_MB / 4
    assert "memory-mapped file (page cache)" in " ".join(b["sentences"])


@pytest.mark.slow
@pytest.mark.cgroup
@requires_cgroup
def test_file_backed_weights_are_evicted_and_read_back_under_a_tight_cap(db_path):
    """efficientnet-lite0 int8-static in LiteRT without XNNPACK keeps its weights in the mapped .tflite file: under a
    cap below its footprint the kernel evicts those pages and the worker faults them back in, and still completes."""
    from edgeprof.models.catalog import resolve_variant
    from edgeprof.models.external import drop_page_cache

    cfg = RunConfig("efficientnet-lite0", precision="int8-static", runtime="tflite", evictable=True, duration_s=1.5,
                    warmup=3)
    path = str(resolve_variant("efficientnet-lite0", "int8-static", "tflite").path)
    drop_page_cache(path)
    _, free = _run(cfg, db_path)
    assert free["status"] == "ok" and "evictable" in free["backend"]["delegate"]
    file_mb = free["memory"]["file_mb"]
    assert file_mb >= 3  # the mapped weights are page cache charged to the worker
    peak = free["memory"]["peak_charged_mb"]
    tight = []
    for below in (1, 2, 3):  # fit-or-kill is a few MB wide here: the caps that complete are the measurement
        drop_page_cache(path)
        _, res = _run(cfg.replace(memory_limit_mb=round(peak - below, 1), timeout_s=90), db_path)
        assert res["status"] in ("ok", "oom_killed")
        if res["status"] == "ok":
            tight.append(res)
    assert tight, "no cap 1 to 3 MB below the footprint completed"
    assert any((res["memory"]["refaults_per_s"] or 0) > 0 and res["memory"]["major_faults"] > 0 for res in tight)
    assert free["memory"]["major_faults"] < max(res["memory"]["major_faults"] for res in tight)


@pytest.mark.slow
@pytest.mark.cgroup
@requires_cgroup
def test_memory_command_end_to_end_on_a_tiny_model(db_path):
    out = subprocess.run([sys.executable, "-m", "edgeprof", "memory", "digits-cnn", "--json", "--quiet", "--db",
                          str(db_path), "--max-probes", "5", "--ladder-seconds", "1"],
                         capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["min_cap_mb"] is not None and len(doc["search"]["probes"]) <= 5
    assert doc["search"]["fails_at_mb"] < doc["min_cap_mb"] <= doc["footprint_mb"] * 1.25
    assert len([p for p in doc["curve"] if p["cap_mb"] is not None]) >= 6
    assert doc["breakdown"]["runtime_mb"] > 0 and doc["sentences"]["cliff"].startswith("Below")
    assert "no swap" in doc["mechanism"]["swap_note"]
    from edgeprof.store import Store

    stored = latest_curve(Store(db_path), "digits-cnn")
    assert stored["group_id"] == doc["group_id"] and stored["curve"] == doc["curve"]


def test_measure_memory_needs_a_cgroup(monkeypatch, db_path):
    monkeypatch.setenv("EDGEPROF_MEMORY_MECHANISM", "rlimit_as")
    with pytest.raises(UsageError, match="needs a memory cgroup"):
        measure_memory("digits-cnn", store=db_path)


# ------------------------------------------------------------------------------------------------ studies: 1.1xmin


def test_memory_limits_relative_to_the_measured_minimum_parse_and_order():
    from edgeprof.study.config import parse_memory_limit
    from edgeprof.study.plan import order_limits

    lim = parse_memory_limit("1.1xmin")
    assert (lim.kind, lim.value, lim.label) == ("min_factor", 1.1, "1.1xmin")
    assert lim.resolve(footprint_mb=80, min_cap_mb=40) == 44.0 and lim.resolve(80) is None
    with pytest.raises(Exception, match="1.0xmin"):
        parse_memory_limit("lots")
    order = order_limits(tuple(parse_memory_limit(x) for x in ("1.0xmin", "none", "2x", "1.1xmin")), 50)
    assert [x.label for x in order] == ["none", "2x", "1.1xmin", "1xmin"]


def _stored_curve(store, min_cap_mb: float, device_id: str) -> str:
    gid = "ab" * 16
    store.create_group(gid, "memory", device_id, {"model": "digits-cnn", "threads": 2})
    store.finish_group(gid, "ok", {"model": "digits-cnn", "precision": "fp32", "runtime": "onnx",
                                   "min_cap_mb": min_cap_mb, "footprint_mb": 29.0, "mechanism": {"evictable": False},
                                   "search": {"min_cap_mb": min_cap_mb, "fails_at_mb": min_cap_mb - 1,
                                              "resolution_mb": 1}, "curve": []}, device_id=device_id)
    return gid


@pytest.mark.slow
@pytest.mark.cgroup
@requires_cgroup
def test_a_study_caps_at_a_multiple_of_the_stored_minimum(tmp_path):
    from edgeprof import study
    from edgeprof.store import Store
    from edgeprof.study.runner import this_device_id

    store = Store(tmp_path / "runs.duckdb")
    cfg = study.StudyConfig(name="min", models=["digits-cnn"], precisions=["fp32"], runtimes=["onnx"],
                            memory_limits=["1.5xmin"], duration_s=0.3, warmup=5, cooldown_s=0)
    out = study.run_study(cfg, store, study_id="min-0")  # no curve yet: the cell says how to measure one
    assert out["failed"] == 1
    gid = _stored_curve(store, 40.0, this_device_id())
    study.run_study(cfg, store, study_id="min-1")
    cell = store.cells("min-1").set_index("cell_key").loc["r0|digits-cnn|fp32|onnx|t2|1.5xmin"]
    run = store.get_run(cell["run_id"])
    assert run["memory_limit_mb"] == pytest.approx(60.0)
    assert run["tags"]["memory_curve_group_id"] == gid and run["tags"]["min_cap_mb"] == 40.0


def test_the_reports_memory_claim_cites_the_curve():
    from edgeprof.study.report import Finding, cite_curves

    f = Finding("memory_latency", "A smaller memory allocation leads to a higher latency.", "not supported",
                "pooled Spearman rho ... .")
    doc = {"search": {"min_cap_mb": 47, "fails_at_mb": 46, "resolution_mb": 1},
           "curve": [_pt(47, 2.43), _pt(52, 2.45), _pt(70.5, 2.44)], "mechanism": {"evictable": False, "swap_mb": 0}}
    curve = {**doc, "sentences": describe(doc), "group_id": "cd" * 16, "measured_at": "2026-12-07 07:00:00"}
    cited = cite_curves(f, {"efficientnet-lite0 int8-static onnx t2": curve})
    assert cited.evidence.startswith("pooled Spearman rho")
    assert ("The memory curve of efficientnet-lite0 int8-static onnx t2 (`edgeprof memory`, measured 2026-12-07 "
            "07:00): Below 47 MB the worker is OOM-killed") in cited.evidence
    assert "can only fit or kill" in cited.evidence
    assert cited.numbers["memory_curves"] == {"efficientnet-lite0 int8-static onnx t2": "cd" * 16}
    assert cite_curves(f, {}) is f


# ------------------------------------------------------------------------------------------------ the Models page


def test_models_page_draws_the_stored_curve_with_its_sentences(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from edgeprof.store import Store

    db = tmp_path / "runs.duckdb"
    monkeypatch.setenv("EDGEPROF_DB", str(db))
    store = Store(db)
    marks = {"imported": mark_figures(STAT_IMPORTED, 19 * 2**20, 60_000, "cgroup1"),
             "loaded": mark_figures(STAT_LOADED, 32 * 2**20, 64_000, "cgroup1")}
    doc = {"model": "efficientnet-lite0", "precision": "int8-static", "runtime": "tflite", "footprint_mb": 35.0,
           "min_cap_mb": 30, "seconds": 45.2,
           "search": {"min_cap_mb": 30, "fails_at_mb": 29, "resolution_mb": 1, "stopped_by": "resolution",
                      "probes": [{"cap_mb": 29, "fits": False}, {"cap_mb": 30, "fits": True}]},
           "curve": [_pt(30, 9.8, some=61, refaults=850), _pt(34, 6.0, some=20, refaults=300), _pt(40, 5.0),
                     _pt(45, 5.02), _pt(52.5, 5.0)],
           "breakdown": breakdown(marks, 35.0, 5 * 2**20, "cgroup1"),
           "mechanism": {"evictable": True, "swap_mb": 0.0, "cap_note": "cgroup v1 memory.limit_in_bytes",
                         "swap_note": "this device has no swap or zram (/proc/swaps lists none)"}}
    doc["sentences"] = describe(doc)
    store.create_group("ef" * 16, "memory", None, {"model": "efficientnet-lite0"})
    store.finish_group("ef" * 16, "ok", doc)

    at = AppTest.from_file(str(ROOT / "views" / "5_Models.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    shown = "\n".join(str(e.value) for kind in ("markdown", "caption", "info") for e in getattr(at, kind))
    assert "Below 30 MB the worker is OOM-killed" in shown
    assert "From 30 to 34 MB p50 rises: 1.96x at 30 MB" in shown
    assert "file-backed weights" in shown and "RSS (VmRSS" in shown and "no swap or zram" in shown
    assert at.selectbox(key="mem_curve").options[0].startswith("efficientnet-lite0 int8-static tflite evictable "
                                                               "(minimum 30 MB")
    figs = [json.loads(e.proto.spec) for e in at.get("plotly_chart")]
    curve = next(f for f in figs if f["layout"]["title"]["text"] == "Latency against the memory cap")
    assert curve["layout"]["xaxis"]["title"]["text"] == "memory cap (MB)"
    assert {t["name"] for t in curve["data"]} >= {"p50 (95% interval within the run)", "stalled on memory, some (%)",
                                                  "did not complete (OOM-killed)"}
    bars = next(f for f in figs if f["layout"]["title"]["text"] == "What the footprint is made of")
    assert [t["name"] for t in bars["data"]] == ["Python and the runtime", "weights, anonymous",
                                                 "weights, file-backed", "activations and arena", "model file"]


def test_memory_text_reads_as_sentences_then_the_table():
    from edgeprof.cli.memory import memory_text

    doc = {"model": "digits-cnn", "precision": "fp32", "runtime": "onnx", "footprint_mb": 28.8, "min_cap_mb": 28.5,
           "seconds": 22.8, "group_id": "ab" * 16,
           "search": {"min_cap_mb": 28.5, "fails_at_mb": 27.5, "resolution_mb": 1, "stopped_by": "resolution",
                      "probes": [{}, {}, {}, {}]},
           "curve": [{**_pt(28.5, None, status="oom_killed"), "p50_ci": None}, _pt(31.5, 0.022), _pt(43.5, 0.018),
                     {**_pt(None, 0.026), "peak_charged_mb": 28.8}],
           "mechanism": {"evictable": False, "swap_mb": 0.0, "swap_note": "this device has no swap or zram"},
           "breakdown": {"sentences": ["Charged memory is what the kernel counts against the cap."]}}
    doc["sentences"] = describe(doc)
    text = memory_text(doc).splitlines()
    assert text[0] == ("digits-cnn fp32 (onnx): footprint 28.8 MB charged, minimum cap 28.5 MB (4 probes, stopped by "
                       "resolution; 22.8 s in all)")
    assert text[1].startswith("  Below 28.5 MB the worker is OOM-killed")
    first = text.index("") + 1
    table = text[first:text.index("", first)]
    assert table[0].split()[:3] == ["cap", "MB", "status"]
    assert table[1].split()[:3] == ["28.5", "oom_killed", "-"] and table[-1].split()[:2] == ["none", "ok"]
    assert text[-1].startswith("Swap: this device has no swap or zram.")


@pytest.mark.slow
@pytest.mark.cgroup
@requires_cgroup
def test_staff_measure_a_curve_on_the_models_page(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    at = AppTest.from_file(str(ROOT / "views" / "5_Models.py"), default_timeout=300)
    at.run()
    assert "No memory curve is stored yet" in "\n".join(str(e.value) for e in at.info)
    at.selectbox(key="mem_model").set_value("digits-cnn")
    at.selectbox(key="mem_runtime").set_value("tflite")
    at.button(key="mem_measure").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="mem_curve").options[0].startswith("digits-cnn fp32 tflite (minimum ")
    assert any(str(e.value).startswith("Below ") for e in at.markdown)


def test_the_memory_section_gives_a_visitor_something_to_do_and_staff_the_command(tmp_path, monkeypatch):
    """A fresh user saw the booth's Models page tell visitors to run `python -m edgeprof memory`: only staff can."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    monkeypatch.setenv("EDGEPROF_PASSWORD", "visitors")
    monkeypatch.setenv("EDGEPROF_ADMIN_PASSWORD", "staff")
    said = {}
    for role in ("visitor", "admin"):
        at = AppTest.from_file(str(ROOT / "views" / "5_Models.py"), default_timeout=60)
        at.session_state["edgeprof_role"] = role
        at.run()
        assert not at.exception, at.exception
        said[role] = "\n".join(str(e.value) for kind in ("markdown", "caption", "info") for e in getattr(at, kind))
    assert "python -m edgeprof" not in said["visitor"]
    assert ("No memory curve is stored yet. Measuring a memory curve is for staff at this booth (it keeps the device "
            "busy for everyone)") in said["visitor"]
    assert "Meanwhile, every run you start on the Run page shows its peak memory." in said["visitor"]
    assert "Command line: `python -m edgeprof memory MODEL`." in said["admin"]
    assert "No memory curve is stored yet: measure one above or with `python -m edgeprof memory digits-cnn`." \
        in said["admin"]
