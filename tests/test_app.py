"""The dashboard pages, driven by widget keys through Streamlit's AppTest (real runs, real DuckDB, no browser).

AppTest never fires ``run_every`` fragments on its own, so a live run is followed by calling ``at.run()`` again.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from edgeprof import run as runner
from edgeprof.config import RunConfig
from edgeprof.store import Store
from edgeprof.worker import priority

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow
TIMEOUT = 60


@pytest.fixture
def db(tmp_path, monkeypatch):
    path = tmp_path / "runs.duckdb"
    monkeypatch.setenv("EDGEPROF_DB", str(path))
    yield path
    for h in runner.active_runs():  # never leave a worker behind
        h.stop()
        h.wait(15)


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "views" / name), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "error", "info", "warning", "success", "caption"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def figures(at: AppTest) -> list[dict]:
    """The plotly figures on the page as the browser receives them (layout titles, axes, traces)."""
    import json

    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def follow(at: AppTest, timeout: float = 60) -> None:
    """Rerun the page until the run it watches has finished and its summary shows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if at.success or any("Run `" in str(e.value) and ("stopped" in str(e.value) or "failed" in str(e.value))
                             for e in list(at.warning) + list(at.error)):
            return
        time.sleep(0.3)
    raise AssertionError("the run did not finish in time:\n" + texts(at))


def start_digits(at: AppTest, duration_s: float) -> None:
    """One thread: the worker has CPU priority (worker/priority.py), so a run on every core would leave this test
    process, which plays the server and the browser, almost nothing until the run ends."""
    at.selectbox(key="model").select("digits-cnn")
    at.selectbox(key="precision").select("fp32")
    at.number_input(key="threads").set_value(1)
    at.number_input(key="duration_s").set_value(duration_s)
    at.button(key="start").click().run()
    assert not at.exception, at.exception


def make_runs(db: Path, n: int, **kw) -> list[str]:
    ids = []
    for i in range(n):
        cfg = RunConfig(model="digits-cnn", duration_s=0.2, iterations=20, threads=1 + i % 2, **kw)
        h = runner.start_run(cfg, db)
        res = h.wait(60)
        assert res and res["status"] == "ok", res
        ids.append(h.run_id)
    return ids


def test_run_page_runs_digits_and_stores_it(db):
    at = page("1_Run.py")
    assert at.selectbox(key="model").label == "Model"
    assert at.selectbox(key="memory_limit").label == "Memory limit (MB)"
    assert at.button(key="start").label == "Start run"
    start_digits(at, 1.0)
    assert "ep-live" in texts(at), "the live view did not appear"
    follow(at)
    assert "finished normally" in texts(at)
    # the interval says what it covers, and what to do for one that covers reruns
    assert "**within this run only**" in texts(at) and "Another run (a new process) can land outside it" in texts(at)
    assert "`--repeat 3`" in texts(at)
    labels = [m.label for m in at.metric]
    assert {"Load", "First inference", "Warm-up", "p50 latency", "p90 latency", "Throughput"} <= set(labels)
    runs = Store(db).list_runs()
    assert len(runs) == 1 and runs.iloc[0]["status"] == "ok" and runs.iloc[0]["model"] == "digits-cnn"
    # how the worker was put ahead of the page's own work, as the run recorded it
    prio = Store(db).get_run(runs.iloc[0]["run_id"])["summary"]["cpu_priority"]
    kind = priority.detect().kind
    assert (prio["mechanism"].startswith(kind) if kind != "off" else prio.get("unavailable")), prio
    assert f"Worker CPU priority: {priority.describe(prio)}." in texts(at)
    # the measured footprint (a run with no limit measures it too) now shows next to the memory limit, saying which
    # number it is
    at.run()
    shown = texts(at)
    assert "This variant's footprint here: **" in shown and "MB** charged at its peak" in shown, shown
    assert "A limit below that will likely OOM-kill the run." in shown
    assert at.selectbox(key="memory_limit").help.startswith("The most memory the model may use, as the kernel counts")


def test_run_page_inputs_panel_says_what_is_fed_and_takes_shapes_and_values(db, edgeprof_home):
    """A model that needs a longer input and a sample rate: the panel opens by itself (sizes are guessed), lists each
    input with its type and declared shape, and the shape and value typed there make the run succeed."""
    from test_inputs import vad_like

    from edgeprof import paths

    model = vad_like(paths.uploads_dir() / "vad_like.onnx")
    at = page("1_Run.py")
    at.selectbox(key="model").select(str(model)).run()
    assert not at.exception, at.exception
    panel = next(e for e in at.expander if e.label.startswith("Inputs: 3"))
    assert panel.label == "Inputs: 3 (some sizes are guessed: check them)"
    shown = texts(at)
    for line in ("**input** · float32 · declared [batch, sequence]", "**state** · float32 · declared [2, batch, 128]",
                 "**sr** · int64 · declared []"):
        assert line in shown
    shape = at.text_input(key=f"input_shape|{model}|input")
    assert shape.label == "Shape" and shape.placeholder == "1x128 (guessed)"
    assert at.text_input(key=f"input_fill|{model}|sr").placeholder == "random ids 0..99"
    shape.input("1x512")
    at.text_input(key=f"input_fill|{model}|sr").input("16000")
    at.number_input(key="duration_s").set_value(0.5)
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    follow(at)
    (run,) = Store(db).list_runs().to_dict("records")
    assert run["status"] == "ok", run
    stored = Store(db).get_run(run["run_id"])
    assert stored["config"]["input_shapes"] == {"input": [1, 512]} and stored["config"]["input_fills"] == {"sr": 16000}


def test_an_uploaded_model_keeps_its_name_in_history(db, edgeprof_home):
    from edgeprof.models.catalog import add_upload

    data = (ROOT / "models" / "digits-cnn" / "digits-cnn-fp32.onnx").read_bytes()
    stored = add_upload(data, "my digits.onnx")
    assert stored.name != "my digits.onnx"  # stored by hash
    res = runner.start_run(RunConfig(model=str(stored), duration_s=0.2, iterations=20), db).wait(60)
    assert res["status"] == "ok"
    at = page("2_Runs.py")  # a new session: the name comes from the uploads folder, not this session's memory
    assert list(at.dataframe[0].value["model"]) == ["my digits.onnx (uploaded)"]


def test_second_session_attaches_and_a_second_start_is_refused(db):
    first = page("1_Run.py")
    start_digits(first, 30.0)
    rid = first.session_state["watch_run"]
    second = page("1_Run.py")  # another tab: attaches to the run in progress
    assert f"Run `{rid}`" in texts(second)
    start_digits(second, 1.0)
    assert any("One run at a time: this device is busy with run" in e.value and rid in e.value for e in second.error)
    second.button(key="stop").click().run()
    follow(second, 30)
    assert Store(db).get_run(rid)["status"] == "stopped"
    first.run()
    assert "was stopped by a user" in texts(first)


def test_runs_page_lists_shows_exports_and_deletes_with_confirmation(db):
    ids = make_runs(db, 2)
    at = page("2_Runs.py")
    table = at.dataframe[0].value
    assert len(table) == 2
    assert list(table.columns) == ["started (UTC)", "device", "model", "precision", "runtime", "threads", "memory limit",
                                   "status", "p50 (ms)", "p90 (ms)", "inferences/s", "peak charged (MB)",
                                   "peak RSS (MB)", "run"]
    assert set(table["memory limit"]) == {"no limit"} and set(table["status"]) == {"ok"}
    assert "Runtime" in [m.label for m in at.multiselect] and "Memory limit" in [m.label for m in at.multiselect]
    at.selectbox(key="show_run").select(ids[0]).run()
    assert not at.exception, at.exception
    assert "finished normally" in texts(at)
    at.multiselect(key="selected_runs").select(ids[1]).run()
    at.button(key="export").click().run()
    assert not at.exception, at.exception
    assert at.get("download_button"), "no download button after export"
    at.button(key="delete").click().run()
    assert any("Delete 1 run(s)" in w.value for w in at.warning)
    at.button(key="confirm_delete_yes").click().run()
    assert not at.exception, at.exception
    assert list(Store(db).list_runs()["run_id"]) == [ids[0]]
    assert "Deleted 1 run(s)." in texts(at)


def test_correlations_page_shows_table_and_small_n_note(db):
    make_runs(db, 3)
    at = page("3_Correlations.py")
    at.radio(key="corr_mode").set_value("across runs").run()
    table = at.dataframe[0].value
    assert {"Pearson r", "Spearman rho", "95% CI", "n", "note"} <= set(table.columns)
    assert not table.isna().any().any() and "None" not in table.to_string()  # every cell reads as something
    assert "n is too small" in texts(at)
    long_run = runner.start_run(RunConfig(model="digits-cnn", duration_s=3, sample_hz=20), db).wait(60)
    assert long_run["status"] == "ok"
    at.run()
    at.radio(key="corr_mode").set_value("over time inside one run").run()
    at.selectbox(key="corr_run").select(long_run["run_id"]).run()
    assert not at.exception, at.exception
    assert "windows** of 0.25 s over the steady state of this run" in texts(at)  # 3 s of steady state / 40, at least
    (windowed,) = [f for f in figures(at) if f["layout"]["title"]["text"] == "Latency and utilization over time windows"]
    assert windowed["layout"]["xaxis"]["title"]["text"] == "window start (s)"
    assert windowed["layout"]["yaxis"]["title"]["text"] == "latency (ms)"
    assert windowed["layout"]["yaxis2"]["title"]["text"] == "worker CPU (% of one core)"  # words, not cpu.worker_pct
    assert windowed["layout"]["yaxis2"]["tickmode"] == "auto"  # its own round ticks, not the left axis' grid
    (scatter,) = [f for f in figures(at) if f["layout"]["title"]["text"].startswith("latency median (ms) vs ")]
    assert scatter["data"][0]["name"] == "time windows"  # the points are windows of this run, not runs
    assert at.selectbox(key="corr_metric").value == "cpu.worker_pct"
    said = texts(at)
    assert "cpu." not in said and "mem." not in said and " y did not vary" not in said, said  # labels, not names
    windows = at.dataframe[0].value
    assert not windows.isna().any().any() and "None" not in windows.to_string()


@pytest.mark.skipif(not __import__("helpers").cgroup_writable(), reason="footprints need a memory cgroup")
def test_correlations_answers_the_memory_question_on_a_small_study(db):
    """A tiny study (digits-cnn fp32 and int8-static: no limit, 2x and 1.25x footprint, 2 repetitions): the default
    view sets each capped run against its own variant and says what that shows, with n."""
    from edgeprof import study

    cfg = study.StudyConfig(name="mem", models=["digits-cnn"], precisions=["fp32", "int8-static"],
                            memory_limits=["none", "2x", "1.25x"], repetitions=2, duration_s=0.3, warmup=5,
                            cooldown_s=0)
    study.run_study(cfg, Store(db))
    at = page("3_Correlations.py")
    assert at.radio(key="corr_mode").value == "does less memory slow inference?"
    (fig,) = [f for f in figures(at) if f["layout"]["title"]["text"] == "Does less memory make inference slower?"]
    assert fig["layout"]["xaxis"]["title"]["text"] == "memory limit / the variant's footprint (x)"
    assert fig["layout"]["yaxis"]["title"]["text"] == "p50 / p50 without a limit (x)"
    assert "no limit" in fig["layout"]["xaxis"]["ticktext"] and "2x" in fig["layout"]["xaxis"]["ticktext"]
    assert {t["name"] for t in fig["data"] if t.get("name")} >= {"digits-cnn fp32 onnx t2", "digits-cnn int8-static onnx t2"}
    sentence = next(m.value for m in at.markdown if "n = 8 runs of 2 variant(s)" in m.value)
    assert sentence.startswith(("No evidence that less memory makes inference slower here",
                                "Yes: here a tighter memory limit makes inference slower",
                                "Here latency falls as the limit tightens"))
    footprints = at.table[0].value.reset_index()
    assert list(footprints.columns) == ["variant", "footprint", "p50 without a limit"]
    assert footprints["footprint"].str.fullmatch(r"\d+ MB").all(), footprints
    assert footprints["p50 without a limit"].str.endswith(("ms", "\u00b5s")).all()


def test_compare_page_with_two_runs(db):
    make_runs(db, 2)
    at = page("4_Compare.py")
    table = at.dataframe[0].value
    assert list(table.columns[:5]) == ["run", "p50 ratio vs baseline", "ratio 95% interval", "interval covers",
                                       "difference"]
    assert len(table) == 2 and abs(table["p50 ratio vs baseline"].iloc[0] - 1.0) < 1e-9  # the baseline itself
    assert table["ratio 95% interval"].iloc[0] == "baseline" and " to " in table["ratio 95% interval"].iloc[1]
    assert table["interval covers"].iloc[1] == "within these runs only (single run: no between-run uncertainty)"
    said = next(m.value for m in at.markdown if re.search(r"time per inference (than|as) the baseline", m.value))
    assert said.startswith("- digits-cnn"), said  # the model name as written
    assert all(" · onnx · no limit · " in name and re.search(r" \d+ threads? · …", name) for name in table["run"])
    (cdf,) = [f for f in figures(at) if f["layout"]["title"]["text"] == "Latency distribution (CDF)"]
    assert {t["name"] for t in cdf["data"]} == set(table["run"])
    at.selectbox(key="cmp_metric").select("mem.worker_rss_mb").run()
    assert not at.exception, at.exception
    (overlay,) = [f for f in figures(at) if f["layout"]["title"]["text"] == "worker RSS (MB) over time"]
    assert overlay["layout"]["yaxis"]["title"]["text"] == "worker RSS (MB)" and len(overlay["data"]) == 2


def test_models_page_lists_models(db):
    at = page("5_Models.py")
    models = set(at.dataframe[0].value["model"])
    assert "digits-cnn" in models


def test_pages_without_runs_say_what_to_do(db):
    for name in ("2_Runs.py", "3_Correlations.py", "4_Compare.py"):
        at = page(name)
        hints = " ".join(str(i.value) for i in at.info)
        assert "**Run** page" in hints, f"{name} does not say where runs come from: {hints!r}"


def test_models_page_quantizes_and_computes_fidelity(db):
    at = page("5_Models.py")
    at.selectbox(key="q_model").select("digits-cnn")
    at.selectbox(key="q_precision").select("fp16")
    at.button(key="quantize").click().run()
    assert not at.exception, at.exception
    assert any("digits-cnn at fp16" in s.value for s in at.success), texts(at)
    at.selectbox(key="fid_model").select("digits-cnn")
    at.button(key="fidelity").click().run()
    assert not at.exception, at.exception
    fid = at.dataframe[1].value
    assert {"precision", "top1_agreement", "accuracy"} <= set(fid.columns) and len(fid) >= 4


def test_runs_page_opens_the_run_named_in_the_link(db):
    ids = make_runs(db, 2)
    at = AppTest.from_file(str(ROOT / "views" / "2_Runs.py"), default_timeout=TIMEOUT)
    at.query_params["run_id"] = ids[0]
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="show_run").value == ids[0]
    assert f"Run `{ids[0]}` finished normally." in texts(at)


def test_app_entry_registers_the_pages_and_opens_run(db):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    assert at.button(key="start").label == "Start run"
    assert str(db) in texts(at)  # the database path is shown in the sidebar


def test_models_table_says_not_built_where_a_variant_has_no_file_yet(db, tmp_path, monkeypatch):
    """A fresh user read grey "None" sizes for the ONNX variants that are quantized on first use."""
    monkeypatch.setenv("EDGEPROF_HOME", str(tmp_path / "home"))  # an empty cache: no derived variant built
    at = page("5_Models.py")
    table = next(d.value for d in at.dataframe if "size (MB)" in d.value.columns)
    onnx = table[(table["model"] == "digits-cnn") & (table["format"] == "onnx")].set_index("precision")
    assert list(onnx.loc[["fp16", "int8-dynamic", "int8-static"], "size (MB)"]) == ["not built"] * 3
    assert re.fullmatch(r"0\.\d{3}", onnx.loc["fp32", "size (MB)"])  # the shipped file: 0.1 MB, three decimals
    assert table["size (MB)"].notna().all() and "None" not in set(table["size (MB)"])


def _no_inference_run(db, status: str, summary: dict, *, telemetry: bool = False) -> str:
    """A run stored as a worker that ended before its first inference leaves it (a text file named bad.onnx, an OOM
    kill while loading)."""
    from edgeprof.store import Store
    from tests.test_store import DEVICE

    store = Store(db)
    rid = store.insert_run(None, store.upsert_device(DEVICE), {
        "model": "bad.onnx", "precision": "fp32", "runtime": None, "threads": 2, "memory_limit_mb": None})
    if telemetry:
        store.append_telemetry(rid, [(10**9 + i * 10**8, "host", "cpu.total_pct", 50.0, "%") for i in range(20)])
    store.finish_run(rid, status, summary.get("error"), {"run_id": rid, "status": status, **summary})
    return rid


def test_runs_page_shows_a_failed_run_without_empty_figures(db):
    """A fresh user read "Memory: peak charged - ...", "CPU: device - busy", "statistics from all 0 steady samples",
    "None" in the table, "· nan ·" in the picker, and a link to Runs on Runs, for a run that failed at load."""
    rid = _no_inference_run(db, "failed", {
        "error": "bad.onnx is not a model ONNX Runtime can read", "memory": {"requested_mb": None,
        "peak_charged_mb": None, "peak_rss_mb": None}, "cpu": {"cores": 2, "system_mean_pct": None,
        "worker_mean_pct": None}, "retention": {"requested": "auto", "kept": "all", "exact_samples": 0,
        "steady_samples": 0, "reservoir_samples": None, "statement": "every sample kept: statistics from all 0 "
        "steady samples"}})
    at = AppTest.from_file(str(ROOT / "views" / "2_Runs.py"), default_timeout=TIMEOUT)
    at.query_params["run_id"] = rid
    at.run()
    assert not at.exception, at.exception
    words = texts(at)
    assert "bad.onnx is not a model ONNX Runtime can read" in words
    for empty in ("Memory:", "CPU:", "Samples:", "0 steady samples", "Open this run in Runs"):
        assert empty not in words, words
    assert not at.metric, [m.label for m in at.metric]  # no row of six dashes
    label = at.selectbox(key="show_run").format_func(rid)
    assert "bad.onnx fp32 · no limit · 2 threads [failed] …" in label and "nan" not in label, label
    table = at.dataframe[0].value  # what the page's table shows in each cell
    row = table[table["run"] == rid].iloc[0]
    assert (row["runtime"], row["threads"], row["p50 (ms)"], row["peak RSS (MB)"]) == ("-", "2", "-", "-"), row
    assert not table.isna().any().any(), table


def test_runs_page_says_a_finished_run_never_made_an_inference(db):
    """An OOM kill before the first inference, with telemetry: the latency chart said "waiting for the first
    inference..." of a run that had ended."""
    rid = _no_inference_run(db, "oom_killed", {"error": "killed for memory"}, telemetry=True)
    at = AppTest.from_file(str(ROOT / "views" / "2_Runs.py"), default_timeout=TIMEOUT)
    at.query_params["run_id"] = rid
    at.run()
    assert not at.exception, at.exception
    latency = figures(at)[0]
    assert latency["layout"]["annotations"][0]["text"] == "no inference was made: the run ended before its first one"
