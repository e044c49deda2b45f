"""Studies: config validation and cell order (pure), the quick preset end to end through the CLI with its report,
resuming after SIGKILL, and the Study and Report pages through AppTest."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT, cli_env, requires_cgroup

from edgeprof import study
from edgeprof.errors import ConfigError, UsageError
from edgeprof.store import Store

TINY = """
name = "tiny"
models = ["digits-cnn"]
precisions = ["fp32"]
runtimes = ["onnx"]
memory_limits = ["none", "2x", "1.5x"]
repetitions = {reps}
duration_s = 0.3
warmup = 5
cooldown_s = {cooldown}
"""


# ------------------------------------------------------------------------------------------------ pure

def test_config_validates_and_lists_allowed_values():
    with pytest.raises(ConfigError, match="digits-cnn"):
        study.StudyConfig(name="x", models=["resnet-9000"])
    with pytest.raises(ConfigError, match="fp32, fp16, int8-dynamic, int8-static"):
        study.StudyConfig(name="x", models=["digits-cnn"], precisions=["int4"])
    with pytest.raises(ConfigError, match="onnx, tflite"):
        study.StudyConfig(name="x", models=["digits-cnn"], runtimes=["tensorrt"])
    with pytest.raises(ConfigError, match="'none', a number of MB"):
        study.StudyConfig(name="x", models=["digits-cnn"], memory_limits=["lots"])
    with pytest.raises(ConfigError, match="listed twice"):
        study.StudyConfig(name="x", models=["digits-cnn"], memory_limits=["2x", "2.0x"])
    with pytest.raises(ConfigError, match="repetitions"):
        study.StudyConfig(name="x", models=["digits-cnn"], repetitions=0)
    with pytest.raises(ConfigError, match="unknown study setting.*allowed: name"):
        study.StudyConfig.from_toml('name = "x"\nmodels = ["digits-cnn"]\nmodel_count = 3\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        study.StudyConfig.from_toml("name = ")
    cfg = study.StudyConfig(name="x", models="all", precisions="all", runtimes="all", memory_limits=[0, 256, "1.25x"])
    assert cfg.precisions == ("fp32", "fp16", "int8-dynamic", "int8-static") and len(cfg.models) >= 2
    assert cfg.memory_limits == ("none", "256MB", "1.25x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.repetitions = 3  # type: ignore[misc]
    assert study.StudyConfig.from_dict(cfg.to_dict()) == cfg


def test_timeout_keeps_its_slack_over_a_longer_duration():
    """A timeout written for short cells must not end every cell of a longer override (all 8 cells of a 146-s
    quick study timed out before this)."""
    with pytest.raises(ConfigError, match=r"timeout_s \(5 s\) must be longer than the 10 s each cell measures"):
        study.StudyConfig(name="x", models=["digits-cnn"], duration_s=10, timeout_s=5)
    quick = study.load_preset("quick")
    assert (quick.duration_s, quick.timeout_s) == (3.0, 60.0)
    longer = quick.with_overrides(duration_s=146)
    assert (longer.duration_s, longer.timeout_s) == (146, 203.0)
    assert quick.with_overrides(duration_s=1).timeout_s == 60.0  # a shorter duration keeps the study's bound


def test_presets():
    quick = study.load_preset("quick")
    assert quick.models == ("digits-cnn", "efficientnet-lite0")
    assert quick.precisions == ("fp32", "fp16", "int8-dynamic", "int8-static") and quick.runtimes == ("onnx",)
    assert len(quick.memory_limits) == 3 and quick.n_cells == 24
    assert quick.estimate_s() < 10 * 60
    paper = study.load_preset("paper")
    from edgeprof.models.catalog import model_names

    assert set(paper.models) == set(model_names()) and paper.runtimes == ("onnx", "tflite")
    assert paper.repetitions == 3 and paper.memory_limits[0] == "none" and paper.memory_limits[-1] == "0.75x"
    with pytest.raises(UsageError, match="quick, paper"):
        study.load_preset("huge")


def test_cell_order_repetitions_outermost_limits_descending():
    cfg = study.StudyConfig(name="x", models=["digits-cnn", "efficientnet-lite0"], precisions=["fp32", "fp16"],
                            memory_limits=["1x", "none", "64", "2x"], repetitions=3)
    cells = study.plan(cfg, footprints={v: 40.0 for v in cfg.variants})
    assert len(cells) == cfg.n_cells == 4 * 4 * 3 and len({c.key for c in cells}) == len(cells)
    assert [c.rep for c in cells] == sorted(c.rep for c in cells)  # repetitions outermost
    first = cells[:4]
    assert [c.mem for c in first] == ["none", "2x", "64MB", "1x"]  # 80 MB, 64 MB, 40 MB: most generous first
    starts = [next(c.variant for c in cells if c.rep == r) for r in range(3)]
    assert len(set(starts)) == 3  # each repetition starts at another variant
    assert study.parse_cell_key(cells[5].key)["rep"] == cells[5].rep


def test_resuming_with_other_settings_is_refused(tmp_path):
    store = Store(tmp_path / "db.duckdb")
    cfg = study.StudyConfig.from_toml(TINY.format(reps=1, cooldown=0))
    store.create_study("s1", "tiny", {"kind": "edgeprof-study", **cfg.to_dict()})
    assert study.resolve_config(store, study_id="s1") == cfg
    assert study.resolve_config(store, study_id="s1", cooldown_s=5).cooldown_s == 5  # the cooldown may change
    with pytest.raises(UsageError, match="different settings"):
        study.resolve_config(store, study_id="s1", toml_text=TINY.format(reps=2, cooldown=0))
    with pytest.raises(UsageError, match="keeps them"):
        study.resolve_config(store, study_id="s1", duration_s=9)
    with pytest.raises(UsageError, match="no study"):
        study.resolve_config(store, study_id="nope")


# ------------------------------------------------------------------------------------------------ end to end

def _cli(args, home, timeout=900, **kw):
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=cli_env(EDGEPROF_HOME=home), **kw)


@pytest.mark.slow
@requires_cgroup
def test_quick_preset_end_to_end_with_report(tmp_path, edgeprof_home):
    db = tmp_path / "runs.duckdb"
    res = _cli(["study", "--preset", "quick", "--duration", "0.3", "--cooldown", "0", "--db", str(db), "--json"],
               edgeprof_home)
    assert res.returncode in (0, 3), res.stderr
    doc = json.loads(res.stdout)  # exactly one JSON object on stdout
    assert set(doc) == {"study_id", "cells", "done", "failed"}
    assert doc["cells"] == 24 and doc["done"] == 24, res.stderr
    assert "[  24/24]" in res.stderr  # progress went to stderr
    store = Store(db)
    cells = store.cells(doc["study_id"])
    grid = cells[cells["cell_key"].str.startswith("r0|")]
    assert len(grid) == 24 and grid["status"].isin(study.FINAL_STATUSES).all()
    assert (grid["status"] == "ok").sum() >= 16  # every "none" and 1.25x cell at least
    runs = store.list_runs(study_id=doc["study_id"])
    tags = runs["tags"].map(json.loads)
    rel = runs[tags.map(lambda t: t.get("mem") == "1.25x")]
    fp = tags[rel.index].map(lambda t: t["footprint_mb"])
    assert (abs(rel["memory_limit_mb"] - 1.25 * fp) < 0.01).all()  # relative limits from the recorded footprint

    out = tmp_path / "report"
    rep = _cli(["report", doc["study_id"], "--out", str(out), "--db", str(db)], edgeprof_home, timeout=300)
    assert rep.returncode == 0, rep.stderr
    page = (out / "index.html").read_text()
    assert "id='findings'" in page and "data:image/png;base64," in page
    from edgeprof.study.report import FIGURES, VERDICTS

    for name in FIGURES:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
        assert f"<a href='{name}'>" in page  # report --out writes the PNGs next to index.html and links them
    findings = json.loads((out / "findings.json").read_text())["findings"]
    assert {f["claim_id"] for f in findings} == {"memory_latency", "cpu_memory_cpu", "cpu_memory_gpu", "model_size",
                                                  "precision_bits"}
    assert all(f["verdict"] in VERDICTS for f in findings)
    assert next(f for f in findings if f["claim_id"] == "cpu_memory_gpu")["verdict"] == "not testable here"


def _final_cells(store, sid):
    df = store.cells(sid)
    if df.empty:
        return {}
    return {r.cell_key: r.run_id for r in df.itertuples() if r.status in study.FINAL_STATUSES}


@pytest.mark.slow
@requires_cgroup
def test_sigkill_mid_grid_then_resume_finishes_without_rerunning(tmp_path, edgeprof_home):
    db = tmp_path / "runs.duckdb"
    spec = tmp_path / "tiny.toml"
    spec.write_text(TINY.format(reps=3, cooldown=0.5))
    args = ["study", "--file", str(spec), "--db", str(db), "--study-id", "tiny-kill", "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "edgeprof", *args], cwd=ROOT, env=cli_env(EDGEPROF_HOME=edgeprof_home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        store = None
        while time.monotonic() < deadline:
            if db.exists():
                store = store or Store(db)
                if len(_final_cells(store, "tiny-kill")) >= 3:
                    break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        else:
            raise AssertionError("the study did not finish 3 cells in time")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _final_cells(store, "tiny-kill")
    assert 3 <= len(before) < 9
    listed = {r["study_id"]: r for r in study.list_studies(store)}
    assert listed["tiny-kill"]["status"] == "interrupted" and listed["tiny-kill"]["resumable"]

    res = _cli(args, edgeprof_home, timeout=300)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc == {"study_id": "tiny-kill", "cells": 9, "done": 9, "failed": 0}
    after = _final_cells(store, "tiny-kill")
    assert {k: after[k] for k in before} == before  # finished cells were not rerun
    assert len([k for k in after if k.startswith("r")]) == 9
    runs = store.list_runs(study_id="tiny-kill")
    assert "running" not in set(runs["status"])  # a stale run of the killed study is marked interrupted
    ok = runs[runs["status"] == "ok"]
    per_cell = ok["tags"].map(lambda t: json.loads(t)["cell"]).value_counts()
    assert per_cell.max() == 1 and len(per_cell) == 9  # no duplicate ok runs per cell
    assert set(after.values()) <= set(ok["run_id"])


@pytest.mark.slow
@requires_cgroup
def test_relative_limits_without_none_calibrate_once_then_reuse(tmp_path):
    store = Store(tmp_path / "runs.duckdb")
    cfg = study.StudyConfig.from_toml(TINY.format(reps=2, cooldown=0).replace('"none", "2x", "1.5x"', '"2x"'))
    assert study.run_study(cfg, store, study_id="cal-1") == {"study_id": "cal-1", "cells": 2, "done": 2, "failed": 0}
    cells = store.cells("cal-1").set_index("cell_key")
    cal = cells.loc["calibrate|digits-cnn|fp32|onnx|t2"]
    assert cal["status"] == "ok"
    calib = store.get_run(cal["run_id"])
    assert calib["tags"]["calibration"] and calib["peak_charged_mb"] > 0
    for key in ("r0|digits-cnn|fp32|onnx|t2|2x", "r1|digits-cnn|fp32|onnx|t2|2x"):
        run = store.get_run(cells.loc[key, "run_id"])
        assert run["tags"]["footprint_run_id"] == cal["run_id"]
        assert run["memory_limit_mb"] == pytest.approx(2 * calib["peak_charged_mb"], abs=0.01)
    # a second study on the same device reuses the stored footprint: no calibration run
    study.run_study(cfg.with_overrides(), store, study_id="cal-2")
    assert not store.cells("cal-2")["cell_key"].str.startswith("calibrate").any()


def test_a_study_runs_a_users_model_with_the_inputs_it_needs(tmp_path):
    """Per model, as --shape/--fill: a model that fails on guessed inputs runs in every cell when the study says."""
    from test_inputs import vad_like

    model = str(vad_like(tmp_path / "vad.onnx"))
    base = {"name": "vad", "models": [model], "memory_limits": ["none"], "duration_s": 0.3, "warmup": 5,
            "cooldown_s": 0}
    mine = {"allowed_paths": [tmp_path]}  # the file is outside the data directory: given as with --allow-path
    with pytest.raises(ConfigError, match="inputs names model 'other.onnx', which is not in the study's models"):
        study.StudyConfig.from_dict({**base, "inputs": {"other.onnx": {"input_fills": {"sr": 1}}}}, **mine)
    with pytest.raises(ConfigError, match="may hold only input_shapes and input_fills"):
        study.StudyConfig.from_dict({**base, "inputs": {model: {"shape": {"input": "1x512"}}}}, **mine)
    with pytest.raises(ConfigError, match="nor a .onnx or .tflite file that exists"):
        study.StudyConfig.from_dict({**base, "models": [str(tmp_path / "missing.onnx")]}, **mine)
    text = f"""name = "vad"\nmodels = ["{model}"]\nmemory_limits = ["none"]\nduration_s = 0.3\nwarmup = 5
cooldown_s = 0\n[inputs."{model}"]\ninput_shapes = {{ input = "1x512" }}\ninput_fills = {{ sr = 16000 }}\n"""
    with pytest.raises(ConfigError, match="is outside the data directory .* the only places a study file may name"):
        study.StudyConfig.from_toml(text)
    cfg = study.StudyConfig.from_toml(text, **mine)
    assert cfg.inputs == {model: {"input_shapes": {"input": [1, 512]}, "input_fills": {"sr": 16000}}}
    assert study.StudyConfig.from_dict(cfg.to_dict(), **mine) == cfg
    store = Store(tmp_path / "runs.duckdb")
    assert study.run_study(cfg, store, study_id="vad-1") == {"study_id": "vad-1", "cells": 1, "done": 1, "failed": 0}
    run = store.get_run(store.cells("vad-1").iloc[0]["run_id"])
    assert run["status"] == "ok" and run["config"]["input_fills"] == {"sr": 16000}


# ------------------------------------------------------------------------------------------------ pages

@pytest.fixture
def page_db(tmp_path, monkeypatch):
    path = tmp_path / "runs.duckdb"
    monkeypatch.setenv("EDGEPROF_DB", str(path))
    yield path
    h = study.active_study()
    if h is not None:
        h.stop()
        h.wait(60)


def _page(name: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "views" / name), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at) -> str:
    parts = []
    for kind in ("markdown", "error", "info", "warning", "success", "caption"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


@pytest.mark.slow
def test_study_page_runs_a_tiny_study_and_report_page_shows_findings(page_db):
    at = _page("6_Study.py")
    assert "No studies yet" in _texts(at)
    at.radio(key="study_source").set_value("toml").run()
    at.text_area(key="study_toml").input(TINY.format(reps=1, cooldown=0).replace("1.5x", "64")).run()
    assert "3 cells" in _texts(at)
    at.button(key="study_start").click().run()
    assert not at.exception, at.exception
    seen_bars = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        seen_bars += [b.value for b in at.get("progress")]
        if any("is done" in str(s.value) for s in at.success):
            break
        time.sleep(0.5)
        at.run()
        assert not at.exception, at.exception
    else:
        raise AssertionError("the study did not finish:\n" + _texts(at))
    assert seen_bars and seen_bars[-1] == 100  # a progress bar was shown, full at the end
    # a second start while none runs is fine; the listing shows the finished study
    at.run()
    assert "done" in str(at.dataframe[0].value["status"].tolist())
    sid = study.list_studies(Store(page_db))[0]["study_id"]

    rep = _page("7_Report.py")
    assert rep.selectbox(key="report_study").value == sid
    text = _texts(rep)
    assert "A smaller memory allocation leads to a higher latency." in text
    assert "not testable here" in text  # the GPU claim on this CPU-only machine
    assert len(rep.get("download_button")) == 1
    assert "Findings" in [h.value for h in rep.header] and "Figures" in [h.value for h in rep.header]
    from edgeprof.study.report import FIGURES

    drawn = {h.value for h in rep.subheader}
    assert set(FIGURES.values()) - {"Latency by model size"} <= drawn  # one figure under each
    assert "Latency by model size" not in drawn  # one model: nothing to compare, and the page says so
    assert "Latency by model size: not drawn, this study has one model, so there is no size to compare." in text
    download = rep.get("download_button")[0]
    assert download.proto.label == "Download the HTML report"


def test_report_page_without_studies(page_db):
    at = _page("7_Report.py")
    assert "No studies yet" in _texts(at)
