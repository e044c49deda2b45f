"""A CLI study writes while the dashboard reads and writes (another process, the same DuckDB file): no lock error
reaches a page, the dashboard's own write (a delete) lands, and the study loses nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from helpers import ROOT, cli_env
from streamlit.testing.v1 import AppTest

from edgeprof.store import Store

pytestmark = pytest.mark.slow

STUDY = """
name = "concurrent"
models = ["digits-cnn"]
precisions = ["fp32", "fp16", "int8-dynamic", "int8-static"]
runtimes = ["onnx"]
memory_limits = ["none", 256]
threads = [1]
repetitions = 1
duration_s = 0.5
cooldown_s = 0.2
"""


def _problems(at) -> list[str]:
    out = [str(e.value) for e in at.exception]
    out += [str(e.value) for e in at.error if any(w in str(e.value).lower() for w in ("lock", "busy", "conflict"))]
    return out


def test_cli_study_while_the_dashboard_reads_and_writes(tmp_path, monkeypatch, edgeprof_home):
    db = tmp_path / "runs.duckdb"
    monkeypatch.setenv("EDGEPROF_DB", str(db))
    victim = subprocess.run([sys.executable, "-m", "edgeprof", "run", "--model", "digits-cnn", "--iterations", "20",
                             "--db", str(db), "--json", "--quiet"], capture_output=True, text=True, env=cli_env(),
                            cwd=ROOT, timeout=120)
    assert victim.returncode == 0, victim.stderr
    victim_id = json.loads(victim.stdout)["run_id"]
    spec = tmp_path / "study.toml"
    spec.write_text(STUDY)
    study = subprocess.Popen([sys.executable, "-m", "edgeprof", "study", "--file", str(spec), "--db", str(db), "--json",
                              "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=cli_env(EDGEPROF_HOME=edgeprof_home), cwd=ROOT)
    problems, renders, deleted = [], 0, False
    try:
        deadline = time.monotonic() + 240
        while study.poll() is None and time.monotonic() < deadline:
            for page in ("2_Runs.py", "3_Correlations.py", "4_Compare.py"):
                at = AppTest.from_file(str(ROOT / "views" / page), default_timeout=60).run()
                problems += _problems(at)
                renders += 1
                if page == "2_Runs.py" and not deleted and renders > 3:
                    at.multiselect(key="selected_runs").select(victim_id).run()
                    at.button(key="delete").click().run()
                    at.button(key="confirm_delete_yes").click().run()
                    problems += _problems(at)
                    deleted = True
        out, err = study.communicate(timeout=240)
    finally:
        if study.poll() is None:
            study.kill()
    assert not problems, problems
    assert renders >= 6
    doc = json.loads(out)
    assert doc["cells"] == 8 and doc["done"] == 8 and doc["failed"] == 0, (doc, err)
    store = Store(db)
    runs = store.list_runs(study_id=doc["study_id"])
    assert len(runs) == 8 and set(runs["status"]) == {"ok"}
    for run_id, n in zip(runs["run_id"], runs["n"], strict=True):
        lat = store.latency(run_id)
        assert (lat["phase"] == "steady").sum() == n, "samples lost"
    assert deleted and store.get_run(victim_id) is None, "the dashboard's delete did not land"
