"""Figure builders on small frames: pure functions, no Streamlit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from edgeprof import charts, stats


def tel_frame() -> pd.DataFrame:
    rows = []
    for i in range(20):
        t = i * 0.1
        rows += [(t, "cpu.total_pct", 50 + i), (t, "cpu.core0_pct", 40.0), (t, "cpu.core1_pct", 60.0),
                 (t, "cpu.worker_pct", 100.0), (t, "mem.used_mb", 1500.0), (t, "mem.worker_rss_mb", 60.0 + i),
                 (t, "mem.charged_mb", 55.0 + i), (t, "cpu.freq_mhz", 1800.0), (t, "temp.cpu_thermal_c", 50.0)]
    return pd.DataFrame(rows, columns=["t_s", "metric", "value"])


def test_decimate_keeps_short_series_and_buckets_long_ones():
    x = np.arange(100, dtype=float)
    d = charts.decimate(x, x, max_points=200)
    assert not d["bucketed"] and len(d["x"]) == 100
    y = np.zeros(100_003)
    y[50_000] = 9.0  # one spike must survive decimation
    d = charts.decimate(np.arange(y.size), y, max_points=2000)
    assert d["bucketed"] and len(d["x"]) == 1000
    assert d["max"].max() == 9.0 and np.all(d["median"] == 0)
    assert np.all(np.diff(d["x"]) > 0)


def test_latency_timeline_shades_load_and_warmup_and_draws_a_median():
    t = np.linspace(0, 2, 500)
    lat = np.r_[np.full(50, 3.0), np.full(450, 1.0)]
    fig = charts.latency_timeline(t, lat, warmup=(0.1, 0.2), load=(0.0, 0.1))
    assert isinstance(fig, go.Figure)
    names = [tr.name for tr in fig.data]
    assert "rolling median" in names and "inference" in names
    assert len(fig.layout.shapes) == 2
    big = charts.latency_timeline(np.linspace(0, 10, 50_000), np.ones(50_000))
    assert sum(len(tr.x) for tr in big.data) <= 5 * 1000
    empty = charts.latency_timeline([], [])
    assert "waiting" in empty.layout.annotations[0].text
    ended = charts.latency_timeline([], [], status="oom_killed")
    assert ended.layout.annotations[0].text == "no inference was made: the run ended before its first one"


def test_a_fast_model_is_drawn_on_an_axis_that_shows_its_latencies():
    """digits-cnn: p50 0.134 ms after a 27-ms first inference; the axis shows the bulk, counts the spikes above it,
    and the load and warm-up labels sit one under the other."""
    rng = np.random.default_rng(0)
    lat = np.r_[27.0, rng.normal(0.2, 0.01, 40), rng.normal(0.134, 0.005, 5000)]
    lat[[500, 2000, 4000]] = 12.0
    t = np.cumsum(lat) / 1000
    fig = charts.latency_timeline(t, lat, load=(-0.1, 0.0), warmup=(0.03, 0.04), steady_from=41)
    lo, hi = fig.layout.yaxis.range
    assert lo == 0 and 0.14 < hi < 0.3
    assert fig.layout.yaxis.title.text == "latency (ms)"  # short: a long title was clipped
    labels = {a.text: a.y for a in fig.layout.annotations}
    assert "▲ 4 slower above the axis" in labels  # the first and 3 spikes
    assert labels["load"] != labels["warm-up"]
    log = charts.latency_timeline(t, lat, log=True)
    assert log.layout.yaxis.type == "log" and log.layout.yaxis.range is None

def test_telemetry_figures():
    tel = tel_frame()
    cpu = charts.cpu_figure(tel)
    assert {"device (100 = all cores busy)", "worker (cores busy, right axis)", "core 0", "core 1"} <= {
        tr.name for tr in cpu.data}
    mem = charts.memory_figure(tel, cap_mb=64)
    assert {"worker RSS", "charged to the cap"} <= {tr.name for tr in mem.data}
    assert any(a.text == "limit 64 MB" for a in mem.layout.annotations)
    top = max(float(np.nanmax(tr.y)) for tr in mem.data if tr.yaxis in (None, "y"))
    assert mem.layout.yaxis.range[1] >= max(64, top)  # the cap and every line on the axis
    killed = charts.memory_figure(tel, cap_mb=64, peak_charged_mb=64.0, killed_at_s=0.9)
    assert any(a.text == "OOM-killed" for a in killed.layout.annotations)
    peak = next(tr for tr in killed.data if tr.name == "peak charged (kernel)")
    assert list(peak.y) == [64.0] and list(peak.x) == [0.9]
    assert charts.fmt_mb(94.863) == "95 MB" and charts.fmt_mb(9.62) == "9.6 MB" and charts.fmt_mb(1536) == "1,536 MB"
    assert charts.gpu_figure(tel) is None  # no GPU metric: the page says why instead of a flat line
    gpu = pd.concat([tel, pd.DataFrame({"t_s": [0.0, 0.1], "metric": "gpu0.util_pct", "value": [10.0, 20.0]})])
    assert charts.gpu_figure(gpu) is not None
    assert charts.thermal_figure(tel) is not None
    assert charts.thermal_figure(tel[tel["metric"].str.startswith("cpu.core")]) is None
    flat = pd.DataFrame({"t_s": np.arange(20) / 10, "metric": "cpu.freq_mhz", "value": 2000.0})
    assert charts.thermal_figure(flat) is None  # no sensor and a frequency that never moves: no flat line
    assert charts.cpu_figure(tel.iloc[0:0]).layout.annotations  # empty frame: an annotated blank chart


def test_correlation_figures():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": np.arange(12.0), "b": np.arange(12.0) * 2 + rng.normal(0, 0.1, 12), "c": rng.normal(size=12)})
    corr = stats.correlation_matrix(df, ["a", "b", "c"])
    heat = charts.correlation_heatmap(corr)
    z = np.asarray(heat.data[0].z)
    assert z.shape == (3, 3) and np.allclose(np.diag(z), 1) and z[0, 1] > 0.99 and z[0, 1] == z[1, 0]
    sc = charts.scatter_fit(df["a"], df["b"], x_label="a", y_label="b")
    assert [tr.name for tr in sc.data][-1] == "least-squares fit"
    assert len(charts.scatter_fit([1, 2], [1, 2], x_label="x", y_label="y").data) == 1  # too few points for a line
    w = pd.DataFrame({"t_s": [0.0, 1.0], "latency_ms_median": [1.0, 2.0], "cpu.total_pct": [10.0, 20.0]})
    wf = charts.windowed_figure(w, "cpu.total_pct")
    assert len(wf.data) == 2 and wf.layout.yaxis2.tickmode == "auto"  # round ticks, not the left grid's 140.3 / 162.9
    assert [tr.name for tr in sc.data][0] == "runs"
    win = charts.scatter_fit(df["a"], df["b"], x_label="worker CPU", y_label="latency", points="time windows")
    assert [tr.name for tr in win.data] == ["time windows", "least-squares fit"]  # a window is not a run


def test_compare_figures():
    series = {"fp32": np.random.default_rng(0).gamma(2, 1, 10_000), "int8": np.array([0.5, 0.6, 0.7])}
    cdf = charts.latency_cdf(series)
    assert len(cdf.data) == 2 and len(cdf.data[0].x) <= 400
    rng = np.random.default_rng(1)
    spiky = {"a": np.r_[rng.normal(0.03, 0.002, 5000), 9.0], "b": np.r_[rng.normal(0.028, 0.002, 5000), 7.5]}
    cdf = charts.latency_cdf(spiky)  # one 9-ms spike must not squeeze two 0.03-ms curves onto the y axis
    assert cdf.layout.xaxis.range[1] < 0.05 and cdf.layout.xaxis.type != "log"
    assert cdf.layout.xaxis.title.text == "latency (ms; up to each run's p99.5)"
    box = charts.latency_box(series)
    assert len(box.data) == 2 and box.data[1].median[0] == 0.6
    long = "11-30 22:28:43 efficientnet-lite0 int8-dynamic · onnx · no limit · 2 threads · …7ca344"
    box = charts.latency_box({long: np.array([1.0, 2.0])})
    assert box.data[0].x[0].split("<br>") == ["11-30 22:28:43", "efficientnet-lite0", "int8-dynamic", "onnx", "no limit",
                                              "2 threads", "…7ca344"]
    assert box.layout.xaxis.tickangle == 0  # level labels, not rotated ones
    tel = tel_frame()
    ov = charts.telemetry_overlay({"a": tel, "b": tel}, "cpu.total_pct")
    assert len(ov.data) == 2
    assert charts.telemetry_overlay({"a": tel}, "gpu0.util_pct").layout.annotations


def test_bits_of():
    from edgeprof.config import bits_of

    assert [bits_of(p) for p in ("fp32", "fp16", "int8-dynamic", "int8-static", "mixed", None)] == [32, 16, 8, 8, None,
                                                                                                  None]


def test_live_buffer_fetches_incrementally_and_keeps_the_newest_points():
    """Snapshots as the runner makes them: a Recorder fed the worker's own messages."""
    from array import array

    from edgeprof.run.live import LiveBuffer
    from edgeprof.run.recorder import Recorder
    from edgeprof.worker.messages import PHASE_CODES, Batch

    rec = Recorder("r", store=None)
    buf = LiveBuffer("r", started_ns=0, started_wall=1000.0)
    buf.MAX_KEEP = 5
    for phase, t in (("load", 0), ("first", 100_000_000), ("warmup", 101_000_000), ("steady", 102_000_000)):
        rec.add_phase(phase, t)

    def batch(seq0, phase, n):
        ts = array("q", [100_000_000 + s * 1_000_000 for s in range(seq0, seq0 + n)])
        rec.add_batch(Batch(seq0, phase, ts, array("q", [500_000] * n)))
        rec.add_telemetry([(t, "host", "cpu.total_pct", 50.0, "%") for t in ts])

    def snap():
        state = {"status": "running", "phase": "steady", "reason": None, "result": None, "notes": [],
                 "memory_limit_mb": None}
        return {**state, **rec.snapshot(buf.next_seq, buf.tel_since_ns)}

    batch(0, "first", 1)
    batch(1, "warmup", 1)
    batch(2, "steady", 2)
    assert buf.update(snap()) == 4 and buf.next_seq == 4
    batch(4, "steady", 3)
    assert buf.update({**snap(), "seq": range(3, 7), **{k: v for k, v in rec.snapshot(3).items() if k != "telemetry"}}) \
        == 3  # an overlapping snapshot adds only what is new
    t, lat, ph = buf.arrays()
    assert len(t) == 5 and t[-1] == 106_000_000  # only the newest MAX_KEEP points are kept
    assert ph.tolist() == [PHASE_CODES["steady"]] * 5  # seq 2..6: the first and warm-up samples fell off the front
    fig = buf.figures()
    assert fig["load_ms"] == 100 and fig["first_inference_ms"] == 0.5 and fig["warmup_ms"] == 1
    assert fig["p50_ms"] == 0.5 and buf.newest_wall() == 1000.0 + 0.1065
    assert len(buf.tel_rows) == 7 and buf.tel_since_ns == 106_000_000


def test_live_buffer_tail_matches_a_plain_concatenation_and_old_views_never_change():
    import numpy as np

    from edgeprof.run.live import _Tail

    rng = np.random.default_rng(3)
    tail, keep, seen, views = _Tail(), 1000, [], []
    for _ in range(400):
        k = int(rng.integers(0, 700))
        t = np.arange(len(seen), len(seen) + k, dtype=np.int64)
        seen.extend(t.tolist())
        tail.append((t, t * 2, (t % 3).astype(np.int8)), keep)
        got = tail.view()
        want = np.asarray(seen[-keep:], dtype=np.int64)
        np.testing.assert_array_equal(got[0], want)
        np.testing.assert_array_equal(got[1], want * 2)
        np.testing.assert_array_equal(got[2], want % 3)
        views.append((got, want))
    for got, want in views:  # every view handed out still shows what it showed then
        np.testing.assert_array_equal(got[0], want)
    assert tail.cols[0].size <= 2 * keep


def test_numbers_read_the_same_everywhere():
    from edgeprof import ui

    assert [ui.fmt_rate(v) for v in (0.79, 12.4, 3456.0, 45_600.0, None)] == ["0.79/s", "12/s", "3,456/s", "45.6k/s",
                                                                              "-"]
    assert [ui.fmt_ms(v) for v in (0.0334, 4.567, 135.2, 12_345.0)] == ["33.4 \u00b5s", "4.57 ms", "135 ms", "12.3 s"]
    assert ui.limit_words(None) == "no limit" and ui.limit_words(94.863) == "95 MB"


def test_cpu_memory_and_pressure_axes_read_right():
    """A fresh user's screenshots: the CPU axis started at 80, the worker at 190 (% of one core) sat above the device
    at 100 (% of all cores) on one axis, the faults axis read "0 0 0 1 1 1", and the memory legend sat on "time (s)"."""
    rows = []
    for i in range(30):
        t = i * 0.1
        rows += [(t, "cpu.total_pct", 85.0 + i % 7), (t, "cpu.core0_pct", 80.0 + i % 5), (t, "cpu.core1_pct", 95.0),
                 (t, "cpu.worker_pct", 170.0 + i % 20), (t, "mem.pressure_some_pct", 1.0),
                 (t, "mem.major_faults_per_s", [0.0, 0.0, 0.5, 1.2][i % 4]), (t, "mem.charged_mb", 50.0),
                 (t, "mem.worker_rss_mb", 60.0), (t, "mem.used_mb", 1500.0 + t)]
    tel = pd.DataFrame(rows, columns=["t_s", "metric", "value"])
    cpu = charts.cpu_figure(tel)
    assert cpu.layout.yaxis.range[0] == 0 and cpu.layout.yaxis.title.text == "CPU (%)"
    worker = next(tr for tr in cpu.data if tr.name == "worker (cores busy, right axis)")
    assert worker.yaxis == "y2" and np.nanmax(worker.y) == pytest.approx(1.89)  # 189% of one core = 1.89 cores
    assert cpu.layout.yaxis2.title.text == "worker (cores)" and cpu.layout.yaxis2.tickmode == "auto"
    # two cores level with 100% on the left: the worker on both cores meets the device line, never above it
    assert cpu.layout.yaxis2.range[1] / 2 == pytest.approx(cpu.layout.yaxis.range[1] / 100)
    pressure = charts.pressure_figure(tel)
    assert pressure.layout.yaxis2.tickmode == "auto" and pressure.layout.yaxis2.tickformat == "~g"  # 0.5, not 0 or 1
    mem = charts.memory_figure(tel, cap_mb=64)
    for fig in (cpu, pressure, mem):  # anchored under the axis title, not at a share of the plot's height
        assert fig.layout.legend.yref == "container" and fig.layout.legend.y == 0
    assert mem.layout.yaxis2.tickmode == "auto"


def test_chart_glitches_seen_in_screenshots_stay_fixed():
    """Axis titles make room for themselves (automargin); the faults axis never goes below 0; a log axis labels 20 as
    20; killed runs have a legend entry."""
    fig = charts.latency_timeline(np.arange(100) / 100, np.full(100, 2.0))
    assert fig.layout.yaxis.automargin and fig.layout.xaxis.automargin
    tel = pd.DataFrame({"t_s": [0.0, 0.1, 0.2] * 2, "metric": ["mem.pressure_some_pct"] * 3 + ["mem.major_faults_per_s"] * 3,
                        "value": [0.0, 1.0, 2.0, 0.0, 5.0, 10.0]})
    assert charts.pressure_figure(tel).layout.yaxis2.rangemode == "tozero"
    ticks = charts.log_ticks(0.03, 25.0)
    assert ticks["tickvals"][-2:] == [10.0, 20.0] and ticks["ticktext"][-1] == "20" and ticks["ticktext"][0] == "0.05"
    box = charts.latency_box({"a": np.full(50, 0.05) + np.arange(50) / 1e4, "b": np.full(50, 20.0) + np.arange(50) / 100})
    assert "20" in box.layout.yaxis.ticktext
    pts = pd.DataFrame({"variant": ["v", "v", "v"], "factor": [0.5, 1.5, np.nan], "relative_p50": [np.nan, 1.1, 1.0],
                        "status": ["oom_killed", "ok", "ok"], "label": ["a", "b", "c"]})
    names = [t.name for t in charts.memory_effect_figure(pts).data]
    assert "v: killed (OOM) or timed out" in names


def test_long_run_chart_draws_medians_on_a_robust_axis():
    """A long run's chart from its reduction: the median line (it matches p50), a 5-95% band, the slowest as a thin
    line, an axis from the band (the slowest go above it), and a title that says only the drawing is reduced."""
    t = np.arange(100.0)
    med, lo, hi = np.full(100, 0.017), np.full(100, 0.015), np.full(100, 0.02)
    slowest = np.full(100, 2.0)
    fig = charts.latency_reduced(t, slowest, med, lo, hi, samples=27_000)
    assert fig.layout.title.text == ("Latency per inference: 27,000 inferences, drawn as the median of every 270 "
                                     "(statistics use every sample)")
    assert [d.name for d in fig.data if d.showlegend is not False] == [
        "slowest of each 270", "5-95% of each 270", "median of each 270"]
    assert fig.layout.yaxis.range[0] == 0.0 and abs(fig.layout.yaxis.range[1] - 0.024) < 1e-9
    assert fig.layout.annotations[-1].text == "▲ the slowest of 100 of 100 stretches above the axis"
    slowest[:90] = 0.021
    fig = charts.latency_reduced(t, slowest, med, lo, hi, samples=27_000)
    assert fig.layout.annotations[-1].text == "▲ the slowest of 10 of 100 stretches above the axis"
    # a run kept reduced: stored samples to 60 s, then a point a second
    t = np.concatenate([np.arange(0, 60, 0.4), np.arange(60, 600, 1.0)])
    fig = charts.latency_reduced(t, np.ones(t.size), np.ones(t.size), samples=400_000, exact_s=60.0)
    assert fig.layout.title.text == (
        "Latency per inference: 400,000 inferences, drawn as medians: to 60 s of each stretch of stored samples, "
        "after it one point a second (the median of the run's reservoir samples in it); only the drawing is reduced "
        "this way")
