"""The commands that only read (``--help``, ``runs``, ``show``, ``devices``, ``models``) load only what they use: no
pandas, scipy or pyarrow (~150 MB and ~0.4 CPU-s of imports on this machine, a third of a 1 GB board's spare memory
for a table of 50 rows), and nothing that runs a model where the command runs none (issue 24). Held by what each
command's process has imported when it ends, not by timing it; ``bench/bench_scale.py`` prints the CPU-s and peak
RSS.

Each command runs in its own process as users run it (``python -m edgeprof ...``, through runpy), against a real
DuckDB store holding a real run, and the test also checks what the user reads."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from helpers import ROOT, cli_env

from edgeprof.store import Store

# python -m edgeprof ARGS, then the names of every module the process imported, into the file named by argv[1]
WRAPPER = """
import runpy, sys
out, sys.argv = sys.argv[1], ["edgeprof", *sys.argv[2:]]
try:
    runpy.run_module("edgeprof", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
else:
    code = 0
with open(out, "w") as fh:
    fh.write("\\n".join(sorted(sys.modules)))
sys.exit(code)
"""



def _duckdb_binds_through_pandas() -> bool:
    """DuckDB 1.5.x (the last for Python 3.10, JetPack 6's) imports pandas and pyarrow itself the first time it binds
    any query parameter; 2.x does not. Asked of the installed DuckDB, not guessed from its version."""
    code = "import sys, duckdb; duckdb.connect().execute('SELECT ?', [1]); print('pandas' in sys.modules)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.strip() == "True"


# where DuckDB loads pandas and pyarrow on its own, no command of ours can avoid them: the rest still holds
NEVER = tuple(m for m in ("pandas", "scipy", "pyarrow", "plotly", "streamlit", "onnx")
              if not (m in ("pandas", "pyarrow") and _duckdb_binds_through_pandas()))
# `devices` says which runtimes work and their versions and execution providers: it asks the runtimes themselves
RUNS_A_RUNTIME = {"devices", "devices --json"}
RUNTIMES = ("onnxruntime", "ai_edge_litert", "tflite_runtime")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A data directory with one real run of digits-cnn and one run stored with no thread count (a run of an older
    version, or one that failed before its configuration was complete)."""
    home = tmp_path_factory.mktemp("light-home")
    r = subprocess.run([sys.executable, "-m", "edgeprof", "run", "--model", "digits-cnn", "--iterations", "20",
                        "--json", "--quiet"], capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env=_env(home))
    assert r.returncode == 0, r.stderr
    store = Store(home / "runs.duckdb")
    bare = store.insert_run(None, None, {"model": "digits-cnn", "precision": "fp32", "runtime": "onnx"},
                            owner_pid=0, owner_host="elsewhere")
    store.finish_run(bare, "failed", "the worker could not start")
    return {"path": home, "run_id": json.loads(r.stdout)["run_id"], "bare": bare}


def _env(home) -> dict:
    env = cli_env(EDGEPROF_HOME=home)
    for name in ("EDGEPROF_DB", "EDGEPROF_FLEET"):
        env.pop(name, None)
    return env


def _edgeprof(home, tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    listing = tmp_path / "modules.txt"
    r = subprocess.run([sys.executable, "-c", WRAPPER, str(listing), *args], capture_output=True, text=True,
                       timeout=300, cwd=ROOT, env=_env(home))
    assert listing.exists(), f"`edgeprof {' '.join(args)}` ended before its modules could be listed: {r.stderr}"
    return r, set(listing.read_text().split())


def _heavy(modules: set[str], names) -> list[str]:
    return sorted(n for n in names if n in modules or any(m.startswith(n + ".") for m in modules))


COMMANDS = {
    "--help": ("usage: python -m edgeprof", "runs"),
    "runs": ("started (UTC)", "p50"),
    "runs --json": ('"run_id"', '"p50_ms"'),
    "show RUN": ("  latency      p50 ", "p50"),
    "show --json RUN": ('"summary"', '"latency_ms"'),
    "devices": ("name     ", "runtime  onnxruntime"),
    "devices --json": ('"identity"', '"runtimes"'),
    "models": ("digits-cnn", "precision"),
    "models --json": ('"variants"', '"digits-cnn"'),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_reading_commands_load_no_pandas_scipy_or_pyarrow(home, tmp_path, command):
    args = command.replace("RUN", home["run_id"]).split()
    r, modules = _edgeprof(home["path"], tmp_path, *args)
    assert r.returncode == 0, r.stderr
    for text in COMMANDS[command]:
        assert text in r.stdout, f"`edgeprof {command}` did not print {text!r}:\n{r.stdout}"
    assert "edgeprof.cli.main" in modules  # the listing is of a process that ran the CLI
    assert not _heavy(modules, NEVER), f"`edgeprof {command}` imported {_heavy(modules, NEVER)}"
    if command not in RUNS_A_RUNTIME:
        assert not _heavy(modules, RUNTIMES), f"`edgeprof {command}` runs no model but imported {_heavy(modules, RUNTIMES)}"


def test_runs_on_an_empty_store_loads_no_pandas(tmp_path):
    home = tmp_path / "fresh"
    home.mkdir()
    r, modules = _edgeprof(home, tmp_path, "runs")
    assert r.returncode == 0, r.stderr
    assert "no runs stored yet: start one with `python -m edgeprof run --model digits-cnn`" in r.stdout
    assert not _heavy(modules, NEVER)


def _table(text: str) -> list[dict]:
    """A table as ``cli.text.table`` writes it, read back by the spans of its rule line."""
    header, rule, *rows = text.splitlines()
    spans, at = [], 0
    for dashes in rule.split("  "):
        spans.append((at, at + len(dashes)))
        at += len(dashes) + 2
    cells = lambda line: [line[a:b].strip() for a, b in spans]  # noqa: E731
    return [dict(zip(cells(header), cells(row), strict=True)) for row in rows]


def test_runs_prints_a_dash_for_a_run_with_no_thread_count(home, tmp_path):
    """A fresh user saw ``<NA>`` there (pandas' missing integer); a missing value prints as the others do."""
    r, _ = _edgeprof(home["path"], tmp_path, "runs")
    rows = {row["run_id"]: row for row in _table(r.stdout)}
    bare, real = rows[home["bare"]], rows[home["run_id"]]
    assert (bare["status"], bare["threads"], bare["p50"], bare["limit"]) == ("failed", "-", "-", "no limit")
    assert real["threads"] == "2" and re.fullmatch(r"\d+(\.\d+)? (µs|ms)", real["p50"]), real["p50"]
    assert "<NA>" not in r.stdout and "nan" not in r.stdout.lower()
    doc, _ = _edgeprof(home["path"], tmp_path, "runs", "--json")
    by_id = {row["run_id"]: row for row in json.loads(doc.stdout)}
    assert by_id[home["bare"]]["threads"] is None and by_id[home["run_id"]]["threads"] == 2


def test_run_rows_are_list_runs_as_plain_rows(home):
    """One query, two shapes: the CLI's plain rows hold what the pages' frame holds, missing values as None."""
    import math

    import pandas as pd

    from edgeprof.errors import StorageError

    store = Store(home["path"] / "runs.duckdb")
    rows, frame = store.run_rows(status=["ok", "failed"]), store.list_runs(status=["ok", "failed"])
    assert [r["run_id"] for r in rows] == list(frame["run_id"]) and len(rows) == 2
    for row, record in zip(rows, frame.to_dict(orient="records"), strict=True):
        assert row.keys() == record.keys()
        for key, value in record.items():
            missing = value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
            assert (row[key] is None) if missing else (row[key] == value), key
    assert store.run_rows(limit=1, columns=["status", "threads"]) == [{"status": "failed", "threads": None}]
    with pytest.raises(StorageError, match="not a column"):
        store.run_rows(columns=["threads; DROP TABLE runs"])
