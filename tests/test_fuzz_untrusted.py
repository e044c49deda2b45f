"""Fuzzing what comes from outside (Hypothesis): hostile manifests, zips, table files, study TOML and command lines.

Each property: no traceback (only BundleError / ConfigError / UsageError, or success), a refusal is one sentence, the
database is unchanged when refused (tests/test_untrusted.py ``digest``), and nothing in ``secret/`` beside the bundle is
ever opened (the inotify ``Canary``; ``secret/`` holds six other runs as Parquet and a model). What may be imported is
only the bundle's own runs.

Budget: about 1 minute for the module (420 cases) on a loaded 2-core machine; ``EDGEPROF_FUZZ_SCALE=20`` multiplies every
``max_examples`` for a deeper run by hand. Under CI (``CI`` set) the examples are derandomized, so a CI run is
repeatable; elsewhere each run draws new ones. ``--hypothesis-show-statistics`` prints how many cases each tried.
The cases that found bugs are fixed examples in tests/test_untrusted.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_untrusted import digest, make_layout

from edgeprof.errors import BundleError, ConfigError, UsageError
from edgeprof.store import TABLES, Store
from edgeprof.store.bundle import import_bundle
from edgeprof.untrusted import Limits, unsafe_reason, within

SCALE = float(os.environ.get("EDGEPROF_FUZZ_SCALE", "1"))


def budget(n: int):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, database=None,
                    derandomize=bool(os.environ.get("CI")), print_blob=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.large_base_example])


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    lay = make_layout(tmp_path_factory.mktemp("fuzz-template") / "lab")
    lay.canary.close()
    return lay


@pytest.fixture
def lab(tmp_path, template):
    lay = make_layout(tmp_path / "lab", template)
    lay.bundle_ids = set(json.loads((lay.bundle / "manifest.json").read_text())["run_ids"])
    lay.store = Store(lay.db)
    lay.contents = digest(lay.db)
    yield lay
    lay.canary.close()


def file_hash(path: Path) -> tuple:
    wal = path.with_name(path.name + ".wal")
    return hashlib.sha256(path.read_bytes()).hexdigest(), wal.exists() and wal.read_bytes()


def fresh_bundle(lay) -> Path:
    work = Path(tempfile.mkdtemp(dir=lay.root, prefix="case-"))
    shutil.copytree(lay.bundle, work / "bundle")
    return work / "bundle"


def attempt(lay, src, **kw) -> str:
    """Import ``src``; check the properties; 'ok' or 'refused'."""
    before = file_hash(lay.db)  # the same bytes mean the same contents; else the contents are compared
    try:
        ids = import_bundle(lay.store, src, **kw)
    except BundleError as err:
        msg = str(err)
        assert "\n" not in msg and msg.endswith("."), msg
        assert "; nothing was imported." in msg or "is not an edgeprof bundle" in msg or "there is no bundle" in msg \
            or "was written by a newer edgeprof" in msg, msg
        assert file_hash(lay.db) == before or digest(lay.db) == lay.contents, msg
        outcome = "refused"
    else:
        assert set(ids) <= lay.bundle_ids, ids
        with duckdb.connect(str(lay.db), read_only=True) as con:
            stored = {r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()}
        assert stored <= lay.bundle_ids | {lay.own_run}
        lay.contents = digest(lay.db)
        outcome = "ok"
    assert lay.canary.touched() == [], f"read outside the bundle: {src}"
    return outcome


def zipped(folder: Path) -> Path:
    out = folder.with_suffix(".zip")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f.name)
    return out


# ------------------------------------------------------------------------------------------------ strategies

PARTS = ["..", ".", "", "secret", "private_runs.parquet", "private_*.parquet", "*", "**", "runs.parquet", "~",
         "bundle", "latency.parquet", "%2e%2e", "\u2025", "lab", "manifest.json", "sub", "?", "[a-z]", "{a,b}"]
PREFIXES = ["", "/", "file://", "s3://", "http://127.0.0.1:9/", "./", "//", "\\\\", "C:", "~/", "duckdb:", "md:"]


@st.composite
def member_names(draw, lay):
    """Names a manifest may give for a table file: hostile ones built from parts, fixed ones aimed at the canary,
    and any text."""
    canary = str(lay.private_runs)
    fixed = ["../secret/private_runs.parquet", canary, f"file://{canary}", "../secret/*.parquet", "*.parquet",
             "runs.parq[a-z]et", "{runs,latency}.parquet", "runs.parquet/", "./runs.parquet", "sub/../runs.parquet",
             "/dev/zero", "/proc/self/environ", "/dev/stdin", canary.replace("/", "//"), "../" * 12 + canary[1:],
             "runs.parquet\x00../secret/private_runs.parquet", "RUNS.PARQUET", "runs.parquet ", "..\\secret",
             f"{lay.root}/secret/../secret/private_runs.parquet", "runs.parquet", "latency.parquet", "manifest.json"]
    kind = draw(st.sampled_from(["fixed", "built", "text"]))
    if kind == "fixed":
        return draw(st.sampled_from(fixed))
    if kind == "built":
        return draw(st.sampled_from(PREFIXES)) + "/".join(draw(st.lists(st.sampled_from(PARTS), min_size=1, max_size=6)))
    return draw(st.text(max_size=40))


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                           max_leaves=12)


# ------------------------------------------------------------------------------------------------ bundles


@budget(80)
@given(data=st.data())
def test_fuzz_manifest_file_names(lab, data):
    """A table's file named by any text: refused unless it is a plain name of a file in the bundle."""
    table = data.draw(st.sampled_from(TABLES), "table")
    name = data.draw(member_names(lab), "name")
    as_zip = data.draw(st.booleans(), "zip")
    bundle = fresh_bundle(lab)
    doc = json.loads((bundle / "manifest.json").read_text())
    doc["tables"].setdefault(table, {"rows": 0})["file"] = name
    (bundle / "manifest.json").write_text(json.dumps(doc))
    outcome = attempt(lab, zipped(bundle) if as_zip else bundle)
    if unsafe_reason(name) is not None:
        assert outcome == "refused"


@budget(60)
@given(data=st.data())
def test_fuzz_manifest_documents(lab, data):
    """Any JSON (or not) in place of manifest.json, or the real one with one field replaced by any JSON value."""
    bundle = fresh_bundle(lab)
    real = json.loads((bundle / "manifest.json").read_text())
    how = data.draw(st.sampled_from(["field", "table-field", "whole", "bytes", "drop"]), "how")
    doc = json.loads(json.dumps(real))
    if how == "field":
        doc[data.draw(st.sampled_from([*doc, "extra"]), "key")] = data.draw(JSON_VALUES, "value")
    elif how == "table-field":
        table = data.draw(st.sampled_from(TABLES), "table")
        doc["tables"][table][data.draw(st.sampled_from(["file", "rows", "x"]), "key")] = data.draw(JSON_VALUES)
    elif how == "drop":
        doc.pop(data.draw(st.sampled_from(sorted(doc)), "key"))
    raw = (json.dumps(doc) if how != "whole" else json.dumps(data.draw(JSON_VALUES, "doc"))).encode()
    if how == "bytes":
        raw = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 8), "flips")):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    (bundle / "manifest.json").write_bytes(bytes(raw))
    attempt(lab, bundle)


@budget(80)
@given(data=st.data())
@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")  # duplicates are one of the cases
def test_fuzz_zips(lab, data):
    """Zips with hostile entries (names, links, duplicates, declared sizes) or a good zip with bytes flipped or cut."""
    bundle = fresh_bundle(lab)
    good = zipped(bundle)
    how = data.draw(st.sampled_from(["entries", "flip", "truncate"]), "how")
    out = bundle.parent / "case.zip"
    if how == "entries":
        with zipfile.ZipFile(good) as zf, zipfile.ZipFile(out, "w") as w:
            for info in zf.infolist():
                if data.draw(st.booleans(), f"keep {info.filename}"):
                    w.writestr(info, zf.read(info))
            for _ in range(data.draw(st.integers(0, 3), "extra entries")):
                info = zipfile.ZipInfo(data.draw(member_names(lab), "entry"))
                info.compress_type = data.draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
                if data.draw(st.booleans(), "symlink"):
                    info.external_attr = 0o120777 << 16
                w.writestr(info, data.draw(st.sampled_from([b"", str(lab.private_runs).encode(), b"\0" * 1000])))
    else:
        raw = bytearray(good.read_bytes())
        if how == "flip":
            for _ in range(data.draw(st.integers(1, 16), "flips")):
                raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        else:
            raw = raw[: data.draw(st.integers(0, len(raw) - 1), "cut")]
        out.write_bytes(bytes(raw))
    attempt(lab, out, limits=Limits(max_bytes=8 * 1024 * 1024, max_members=16))


TEXT_COLUMNS = {"runs": ["run_id", "device_id", "study_id", "group_id", "status", "notes", "model", "config",
                         "summary"],
                "latency": ["run_id", "phase"], "telemetry": ["run_id", "source", "metric", "unit"],
                "devices": ["device_id", "hostname", "info"], "studies": ["study_id", "config"],
                "study_cells": ["study_id", "cell_key", "run_id", "status"],
                "run_groups": ["group_id", "kind", "device_id", "status", "config", "result"]}


@budget(40)
@given(data=st.data())
def test_fuzz_table_values(lab, data):
    """One column of one table set to a hostile value (any text, ids aimed at the database's own run, very long text,
    NULL, a number) and perhaps renamed (any text, which a CSV header carries into SQL), in Parquet or CSV: refused, or
    imported with only the bundle's runs."""
    bundle = fresh_bundle(lab)
    table = data.draw(st.sampled_from(sorted(TEXT_COLUMNS)), "table")
    column = data.draw(st.sampled_from(TEXT_COLUMNS[table]), "column")
    value = data.draw(st.one_of(st.text(max_size=30), st.none(), st.just(lab.own_run), st.just("x" * 70_000),
                                st.sampled_from(["{", "[]", "null", "0" * 32, "../x", "s1';--"]), st.integers()),
                      "value")
    fmt = data.draw(st.sampled_from(["parquet", "csv"]), "format")
    rename = data.draw(st.none() | st.text(min_size=1, max_size=30) | st.sampled_from(
        ["x'); SELECT 1; --", "a\nb", "Run_ID", "interpreter", "run_id"]), "new column name")
    f = bundle / f"{table}.parquet"
    with duckdb.connect() as con:
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{f}')")
        con.execute(f"ALTER TABLE t ALTER \"{column}\" SET DATA TYPE VARCHAR")
        con.execute(f"UPDATE t SET \"{column}\" = ?", [None if value is None else str(value)])
        if rename is not None and "\0" not in rename:
            quoted = '"' + rename.replace('"', '""') + '"'
            with contextlib.suppress(duckdb.Error):  # a name the table already has
                con.execute(f"ALTER TABLE t RENAME \"{column}\" TO {quoted}")
        if fmt == "parquet":
            con.execute(f"COPY t TO '{f}' (FORMAT parquet)")
        else:
            for other in TABLES:
                p = bundle / f"{other}.parquet"
                if other != table and p.exists():
                    con.execute(f"COPY (SELECT * FROM read_parquet('{p}')) TO '{bundle / other}.csv' "
                                "(FORMAT csv, HEADER, NULLSTR '\\N')")
                    p.unlink()
            con.execute(f"COPY t TO '{bundle / table}.csv' (FORMAT csv, HEADER, NULLSTR '\\N')")
            f.unlink()
            doc = json.loads((bundle / "manifest.json").read_text())
            doc["file_format"] = "csv"
            for t, entry in doc["tables"].items():
                entry["file"] = f"{t}.csv"
            (bundle / "manifest.json").write_text(json.dumps(doc))
    attempt(lab, bundle)


# ------------------------------------------------------------------------------------------------ study files


@st.composite
def study_models(draw, lay, home: Path):
    """A models list with at least one path outside the data directory and the bundled models."""
    outside = [str(lay.secret / "model.onnx"), "../secret/model.onnx", f"{lay.root}/secret/./model.onnx",
               f"{home}/../lab/secret/model.onnx", f"{home}/uploads/link.onnx", "file://" + str(lay.secret / "model.onnx"),
               str(lay.secret) + "/*.onnx", str(lay.secret / "model.onnx") + "\0.onnx", "/dev/zero.onnx",
               f"{home}/uploads/../../lab/secret/model.onnx"]
    inside = ["digits-cnn", "efficientnet-lite0", f"{home}/uploads/0123456789abcdef.onnx", "all", "nope"]
    models = draw(st.lists(st.sampled_from(inside) | st.text(max_size=20), max_size=3))
    models.insert(draw(st.integers(0, len(models))), draw(st.sampled_from(outside)))
    return models


def toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a TOML basic string (same escapes)


@budget(120)
@given(data=st.data())
def test_fuzz_study_toml(lab, edgeprof_home, data):
    """TOML a file or the Study page gives, naming models outside the box (also in [inputs."MODEL"] tables), or any
    text: refused with a ConfigError or UsageError, never read."""
    link = edgeprof_home / "uploads" / "link.onnx"
    if not link.is_symlink():
        link.parent.mkdir(exist_ok=True)
        link.symlink_to(lab.secret / "model.onnx")
    from edgeprof.study import StudyConfig

    if data.draw(st.booleans(), "raw text"):
        text = data.draw(st.text(max_size=200), "text")
    else:
        models = data.draw(study_models(lab, edgeprof_home), "models")
        lines = ['name = "fuzz"', f"models = [{', '.join(toml_str(m) for m in models)}]", "duration_s = 0.2"]
        for m in data.draw(st.lists(st.sampled_from(models), max_size=2, unique=True), "inputs"):
            lines += [f"[inputs.{toml_str(m)}]", 'input_fills = { input = 1 }']
        text = "\n".join(lines) + "\n"
    try:
        cfg = StudyConfig.from_toml(text)
    except (ConfigError, UsageError) as err:
        assert "\n" not in str(err) or "TOML" in str(err), str(err)
    else:
        assert all(m in ("digits-cnn", "efficientnet-lite0") or within(m, [edgeprof_home]) for m in cfg.models)
    assert lab.canary.touched() == [], text


# ------------------------------------------------------------------------------------------------ command lines


@budget(40)
@given(data=st.data())
def test_fuzz_cli_arguments(lab, edgeprof_home, data, capsys, monkeypatch):
    """Command lines of the commands that read input from outside (import, study --file, show, runs, report), with
    hostile values and hostile files: an exit code of 0-3, at most one error line, never a traceback."""
    from edgeprof.cli.main import main

    monkeypatch.chdir(lab.root)
    db = str(lab.db)
    hostile = st.one_of(member_names(lab).filter(lambda s: "private_runs" not in s and "secret" not in s),
                        st.sampled_from(["bundle", "case.zip", "-", "--", "--json", "-h"]))
    command = data.draw(st.sampled_from(["import", "study", "show", "runs", "report"]), "command")
    if command == "import":
        bundle = fresh_bundle(lab)
        doc = json.loads((bundle / "manifest.json").read_text())
        doc["tables"]["runs"]["file"] = data.draw(member_names(lab).filter(lambda s: unsafe_reason(s) is not None))
        (bundle / "manifest.json").write_text(json.dumps(doc))
        argv = ["import", data.draw(st.sampled_from([str(bundle), str(zipped(bundle))]) | hostile, "bundle")]
    elif command == "study":
        spec = lab.root / "study.toml"
        models = data.draw(study_models(lab, edgeprof_home), "models")
        spec.write_text(f'name = "fuzz"\nmodels = [{", ".join(toml_str(m) for m in models)}]\nduration_s = 0.2\n')
        argv = ["study", "--file", str(spec), "--quiet"]
        if data.draw(st.booleans(), "study id"):
            argv += ["--study-id", data.draw(hostile | st.text(max_size=20))]
    elif command == "show":
        argv = ["show", data.draw(hostile | st.text(max_size=40), "run id")]
    elif command == "runs":
        argv = ["runs", data.draw(st.sampled_from(["--model", "--status", "--limit"])), data.draw(hostile, "value")]
    else:
        argv = ["report", data.draw(hostile | st.text(max_size=30), "study id"), "--out", str(lab.root / "report")]
    argv += data.draw(st.lists(st.sampled_from(["--json", "--debug-not", "-x", "--db"]), max_size=1), "extra")
    argv = [a for a in argv if "\0" not in a]  # the OS cannot pass a NUL in an argument
    try:
        rc = main([*argv, "--db", db])
    except SystemExit as exc:  # argparse's --help / -h
        rc = exc.code or 0
    out, err = capsys.readouterr()
    assert rc in (0, 1, 2, 3), (argv, rc, err)
    assert "Traceback" not in err and "unexpected" not in err, (argv, err)
    if rc:
        lines = [x for x in err.splitlines() if x.startswith("error:")]
        assert len(lines) == 1, (argv, err)
    assert lab.canary.touched() == [], argv


# ------------------------------------------------------------------------------------------------ measured values

NUMBER_COLUMNS = {"runs": ["created_at", "p50_ms", "p90_ms", "mean_ms", "n", "load_ms", "peak_charged_mb",
                           "memory_limit_mb", "temp_max_c", "threads", "model_size_bytes", "finished_at"],
                  "latency": ["seq", "t_ns", "latency_ns"], "telemetry": ["t_ns", "value"],
                  "devices": ["cores", "ram_mb", "first_seen"]}
HOSTILE_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**63, 2**63 - 1),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), -1e308, 1e308, -1, 0, 2**31, -2**62]))
HOSTILE_TIMES = st.one_of(st.datetimes(), st.sampled_from(["9999-12-31", "0001-01-01", "1969-12-31 23:59:59",
                                                           "2262-04-12", "2099-12-31"]).map(str))


@budget(15)
@given(data=st.data())
def test_fuzz_measured_values(lab, data):
    """One measured column of one table set to a hostile number or time (NaN, inf, -1e308, a negative count, a date in
    9999): refused in a sentence, or imported with every value in range, and the CLI's tables and summaries print it."""
    from edgeprof.cli.text import run_summary, runs_table
    from edgeprof.store.checks import EARLIEST, LATEST, MAX_MAGNITUDE, SIGNED

    bundle = fresh_bundle(lab)
    table = data.draw(st.sampled_from(sorted(NUMBER_COLUMNS)), "table")
    column = data.draw(st.sampled_from(NUMBER_COLUMNS[table]), "column")
    f = bundle / f"{table}.parquet"
    with duckdb.connect() as con:
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{f}')")
        sql_type = con.execute("SELECT data_type FROM information_schema.columns WHERE table_name = 't' AND "
                               "column_name = ?", [column]).fetchone()[0]
        value = data.draw(HOSTILE_TIMES if sql_type.startswith("TIMESTAMP") else HOSTILE_NUMBERS, "value")
        with contextlib.suppress(duckdb.Error):  # a value the column's type cannot hold: the bundle stays as it was
            con.execute(f'UPDATE t SET "{column}" = CAST(? AS {sql_type})', [str(value)])
        con.execute(f"COPY t TO '{f}' (FORMAT parquet)")
    if attempt(lab, bundle) != "ok":
        return
    with duckdb.connect(str(lab.db), read_only=True) as con:
        stored = [r[0] for r in con.execute(f'SELECT "{column}" FROM {table}').fetchall()]
    for v in stored:
        if v is None:
            continue
        if sql_type.startswith("TIMESTAMP"):
            assert EARLIEST <= str(v) < LATEST, v
        elif isinstance(v, float) and (table, column) in SIGNED:
            assert v != v or abs(v) <= MAX_MAGNITUDE, v  # a sensor's NaN may stay
        else:
            assert -MAX_MAGNITUDE <= v <= (MAX_MAGNITUDE if isinstance(v, float) else 2**63) and v == v, v
            assert (table, column) in SIGNED or v >= 0, v
    store = Store(lab.db)
    runs_table(store.run_rows())
    for rid in store.list_runs()["run_id"]:
        run = store.get_run(rid)
        run_summary(run.get("summary") or {"run_id": rid, "status": run["status"]}, details=True)


@budget(60)
@given(name=st.text(max_size=40) | st.sampled_from(["![b](http://127.0.0.1:9/x)", "<img src=x onerror=alert(1)>",
                                                    "[a](javascript:alert(1))", ":red[x]", "$\\frac{1}{2}$",
                                                    "`code`", "<http://127.0.0.1:9/>", "\\![b](x)"]))
def test_fuzz_names_render_as_text(name):
    """Any name (an input's, a model's, a reason) shown in markdown: every character that opens a link, an image, HTML,
    code, LaTeX or a directive is escaped (preceded by an odd number of backslashes), and unescaping gives the name."""
    import re

    from edgeprof.ui import md_text

    out = md_text(name)
    for m in re.finditer(r"[\[\]<>`$]", out):
        run = len(out[:m.start()]) - len(out[:m.start()].rstrip("\\"))
        assert run % 2 == 1, (name, out)
    assert re.sub(r"\\(.)", r"\1", out, flags=re.S) == name
