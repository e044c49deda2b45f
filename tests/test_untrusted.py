"""Untrusted data stays in its box: a run bundle (folder or zip), an upload or a study file can make edgeprof read only
files inside itself, within size limits, and a refusal is one sentence that names the entry and leaves the database as
it was. The hostile cases here are fixed examples; tests/test_fuzz_untrusted.py generates more of them.

Two detectors say that nothing outside was read: the data in ``secret/`` (six runs of another store, a model) would
show up in the database if it had been, and an inotify watch on ``secret/`` sees any open of it or of a file in it by
any part of the process, DuckDB's C++ readers included (``Canary``).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from helpers import ROOT, cli_env
from inotify_simple import INotify
from inotify_simple import flags as iflags
from test_store import CONFIG, DEVICE, META, SOFTWARE, SUMMARY, latency_rows, make_run

from edgeprof import paths
from edgeprof.errors import BundleError, ConfigError, ModelError, UsageError
from edgeprof.store import TABLES, Store, new_run_id
from edgeprof.store.bundle import export_runs, import_bundle
from edgeprof.untrusted import Limits, safe_member, unsafe_reason, within

# ------------------------------------------------------------------------------------------------ the box and its canary


class Canary:
    """An inotify watch on a folder outside the box: ``touched()`` lists the opens and reads of it or of any file in
    it since the last call (from any thread, any library)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.ino = INotify()
        self.ino.add_watch(str(folder), iflags.OPEN | iflags.ACCESS)

    def touched(self) -> list[str]:
        return [f"{e.name or '.'} ({', '.join(str(f.name) for f in iflags.from_mask(e.mask))})"
                for e in self.ino.read(timeout=0)]

    def close(self) -> None:
        self.ino.close()


@dataclass
class Layout:
    root: Path
    bundle: Path        # a good folder bundle of two runs, made as one group
    secret: Path        # outside the bundle: private_runs.parquet (six other runs), model.onnx
    db: Path            # the database imported into; it holds one run of its own
    own_run: str
    canary: Canary

    @property
    def private_runs(self) -> Path:
        return self.secret / "private_runs.parquet"


def digest(db: Path) -> dict:
    """Every table's row count and a hash of its rows: equal digests mean equal contents."""
    with duckdb.connect(str(db), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*), md5(coalesce(string_agg(x, chr(10) ORDER BY x), '')) FROM "
                               f"(SELECT CAST(t AS VARCHAR) AS x FROM {t} t)").fetchone() for t in TABLES}


def make_layout(root: Path, template: Layout | None = None) -> Layout:
    """The layout under ``root``: built (about 3 s), or copied from ``template``."""
    if template is not None:
        shutil.copytree(template.root, root, symlinks=True)
        return Layout(root, root / "bundle", root / "secret", root / "dst.duckdb", template.own_run, Canary(root / "secret"))
    root.mkdir(parents=True, exist_ok=True)
    src = Store(root / "src.duckdb")
    ids = [make_run(src, n=30), make_run(src, status="oom_killed", n=30)]
    group = src.create_group(new_run_id(), "repeat", config={"repeat": 2})  # so bundles carry run_groups (schema 6)
    with src._writing() as con:
        con.execute("UPDATE runs SET group_id = ?", [group])
    src.finish_group(group, "partial", {"latency_ms": {"p50": 7.0}})
    bundle = export_runs(src, ids, root / "bundle")
    other = Store(root / "other.duckdb")
    others = [make_run(other, n=5) for _ in range(6)]
    export_runs(other, others, root / "other-bundle")
    secret = root / "secret"
    secret.mkdir()
    shutil.copy(root / "other-bundle" / "runs.parquet", secret / "private_runs.parquet")
    shutil.copy(root / "other-bundle" / "latency.parquet", secret / "private_latency.parquet")
    shutil.copy(ROOT / "tests" / "data" / "models" / "token_ids.onnx", secret / "model.onnx")
    dst = Store(root / "dst.duckdb")
    own = make_run(dst, n=10)
    return Layout(root, bundle, secret, dst.path, own, Canary(secret))


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    lay = make_layout(tmp_path_factory.mktemp("template") / "lab")
    lay.canary.close()
    return lay


@pytest.fixture
def box(tmp_path, template):
    lay = make_layout(tmp_path / "lab", template)
    yield lay
    lay.canary.close()


def set_file(bundle: Path, table: str, name) -> None:
    doc = json.loads((bundle / "manifest.json").read_text())
    doc["tables"][table]["file"] = name
    (bundle / "manifest.json").write_text(json.dumps(doc))


def zip_folder(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.iterdir()):
            zf.write(f, f.name)
    return out


def assert_refused(lay: Layout, call, *needles: str) -> str:
    """``call()`` raises a BundleError of one sentence holding the needles; the database and the canary are as they
    were. Returns the message."""
    before = digest(lay.db)
    with pytest.raises(BundleError) as err:
        call()
    msg = str(err.value)
    assert "\n" not in msg and msg.endswith("."), msg
    assert "; nothing was imported." in msg or "is not an edgeprof bundle" in msg, msg
    for n in needles:
        assert n in msg, msg
    assert digest(lay.db) == before
    assert lay.canary.touched() == []
    return msg


def cli(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, cwd=ROOT,
                          env=cli_env(**(env or {})), timeout=timeout)


# ------------------------------------------------------------------------------------------------ the done criteria

HOSTILE_NAMES = {
    "traversal": ("../secret/private_runs.parquet", "which climbs out of it with '..'"),
    "absolute": (None, "which is an absolute path"),  # the canary's absolute path, filled in below
    "glob": ("*.parquet", "which is a pattern"),
    "glob-outside": ("../secret/private_*.parquet", "which climbs out of it with '..'"),
    "url": (None, "which is a URL"),  # file:// to the canary
    "s3-url": ("s3://fleet-bucket/devices/pi4/runs.parquet", "which is a URL"),
}


def _hostile_name(lay: Layout, case: str) -> str:
    name, _ = HOSTILE_NAMES[case]
    if case == "absolute":
        return str(lay.private_runs)
    if case == "url":
        return f"file://{lay.private_runs}"
    return name


def test_the_canary_sees_a_read_outside_and_a_listing(box):
    assert box.canary.touched() == []
    box.private_runs.read_bytes()
    assert any(t.startswith("private_runs.parquet") for t in box.canary.touched())
    with duckdb.connect() as con:  # DuckDB's own reader and its glob expansion are seen too
        con.execute(f"SELECT count(*) FROM read_parquet('{box.secret}/private_*.parquet')").fetchall()
    assert box.canary.touched() != []


def test_the_bug_as_reported_the_old_reader_would_have_added_the_six_private_runs(box):
    """What the issue saw: DuckDB reads a name from a manifest wherever it points. The same query the old import ran,
    on the traversal, finds the six private runs; the import now refuses the bundle."""
    with duckdb.connect() as con:
        n = con.execute(f"SELECT count(*) FROM read_parquet('{box.bundle}/../secret/private_runs.parquet')").fetchone()[0]
    assert n == 6
    box.canary.touched()
    set_file(box.bundle, "runs", "../secret/private_runs.parquet")
    assert_refused(box, lambda: import_bundle(Store(box.db), box.bundle))


@pytest.mark.parametrize("case", list(HOSTILE_NAMES))
@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_a_manifest_naming_a_file_outside_is_refused_by_the_library(box, case, kind):
    name = _hostile_name(box, case)
    set_file(box.bundle, "runs", name)
    src = box.bundle if kind == "folder" else zip_folder(box.bundle, box.root / "bundle.zip")
    msg = assert_refused(box, lambda: import_bundle(Store(box.db), src), HOSTILE_NAMES[case][1])
    assert msg == f"the bundle {src} is refused: its runs table is {name!r}, {unsafe_reason(name)}; nothing was imported."


@pytest.mark.parametrize("case", list(HOSTILE_NAMES))
def test_the_cli_import_refuses_it_with_one_line_and_exit_2(box, case):
    name = _hostile_name(box, case)
    set_file(box.bundle, "runs", name)
    before = digest(box.db)
    r = cli("import", str(box.bundle), "--db", str(box.db))
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr == f"error: the bundle {box.bundle} is refused: its runs table is {name!r}, " \
                       f"{unsafe_reason(name)}; nothing was imported.\n"
    assert digest(box.db) == before and box.canary.touched() == []


def test_a_symlink_out_of_a_folder_bundle_is_refused(box):
    runs = box.bundle / "runs.parquet"
    runs.unlink()
    runs.symlink_to(box.private_runs)
    assert_refused(box, lambda: import_bundle(Store(box.db), box.bundle),
                   "its runs table is 'runs.parquet', which is a symbolic link")
    r = cli("import", str(box.bundle), "--db", str(box.db))
    assert r.returncode == 2 and "which is a symbolic link" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert box.canary.touched() == []


def test_a_symlinked_folder_and_a_symlinked_manifest_are_refused(box):
    (box.bundle / "sub").symlink_to(box.secret, target_is_directory=True)
    set_file(box.bundle, "runs", "sub/private_runs.parquet")
    assert_refused(box, lambda: import_bundle(Store(box.db), box.bundle), "'sub/private_runs.parquet'",
                   "which is a symbolic link")
    manifest = box.bundle / "manifest.json"
    (box.secret / "manifest.json").write_text(manifest.read_text())
    box.canary.touched()
    manifest.unlink()
    manifest.symlink_to(box.secret / "manifest.json")
    assert_refused(box, lambda: import_bundle(Store(box.db), box.bundle), "its manifest is 'manifest.json', which is "
                                                                          "a symbolic link")


def _zip_bomb(path: Path, mb: int) -> Path:
    """A real bomb: manifest, and a member of ``mb`` MiB of zeros (deflate packs it about 1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps({"format": "edgeprof-bundle", "bundle_version": 1,
                                                 "schema_version": 1, "file_format": "csv",
                                                 "tables": {"runs": {"file": "runs.csv", "rows": 1}}}))
        with zf.open("runs.csv", "w", force_zip64=True) as w:
            block = b"\0" * (1024 * 1024)
            for _ in range(mb):
                w.write(block)
    return path


def _lie_about_size(path: Path, member: str, size: int) -> None:
    """Rewrite the uncompressed size that the central directory declares for ``member`` (below 4 GiB: no ZIP64)."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    at = 0
    while True:
        at = data.find(b"PK\x01\x02", at)
        assert at >= 0, "member not found"
        n = struct.unpack("<H", data[at + 28: at + 30])[0]
        if data[at + 46: at + 46 + n] == name:
            break
        at += 4
    struct.pack_into("<I", data, at + 24, size)
    path.write_bytes(bytes(data))


def test_a_zip_bomb_is_refused_before_anything_is_unpacked(box, monkeypatch):
    bomb = _zip_bomb(box.root / "bomb.zip", 64)
    assert bomb.stat().st_size < 1024 * 1024
    liar = zip_folder(box.bundle, box.root / "liar.zip")  # headers that claim 2 x 4 GiB
    for member in ("latency.parquet", "telemetry.parquet"):
        _lie_about_size(liar, member, 2**32 - 2)
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: opened.append(a) or real_open(self, *a, **k))
    assert_refused(box, lambda: import_bundle(Store(box.db), bomb, limits=Limits(max_bytes=16 * 1024 * 1024)),
                   f"the bundle {bomb} is refused: it would unpack to 64 MB, over the 16 MB limit; nothing was "
                   "imported. Set EDGEPROF_MAX_BUNDLE_MB")
    assert opened == []  # judged by its central directory alone
    assert_refused(box, lambda: import_bundle(Store(box.db), liar), "it would unpack to 8192 MB, over the 4096 MB limit")
    assert opened == []
    r = cli("import", str(bomb), "--db", str(box.db), env={"EDGEPROF_MAX_BUNDLE_MB": "16", "TMPDIR": box.root})
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "would unpack to 64 MB, over the 16 MB limit; nothing was imported." in r.stderr
    assert not list(box.root.glob("edgeprof-import-*")), "no staging folder left behind"


def test_a_member_bigger_than_its_header_says_is_refused_as_damaged(box):
    z = zip_folder(box.bundle, box.root / "small-lie.zip")
    _lie_about_size(z, "latency.parquet", 10)
    assert_refused(box, lambda: import_bundle(Store(box.db), z), "its entry 'latency.parquet' is damaged")


@pytest.mark.parametrize("entry, why", [("../evil.parquet", "which climbs out of it with '..'"),
                                        ("/abs.parquet", "which is an absolute path"),
                                        ("sub/../../x", "which climbs out of it with '..'"),
                                        ("", "which is empty"),  # found by fuzzing: zipfile's is_dir() raised
                                        ("/", "which is empty")])
def test_a_zip_entry_with_a_bad_name_is_refused(box, entry, why):
    z = zip_folder(box.bundle, box.root / "evil.zip")
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr(zipfile.ZipInfo(entry), b"x")
    assert_refused(box, lambda: import_bundle(Store(box.db), z), f"it holds an entry {entry!r}, {why}")


def test_a_zip_with_a_symlink_entry_is_refused(box):
    z = zip_folder(box.bundle, box.root / "link.zip")
    info = zipfile.ZipInfo("link.parquet")
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr(info, str(box.private_runs))
    set_file(box.bundle, "runs", "link.parquet")
    assert_refused(box, lambda: import_bundle(Store(box.db), z), "it holds an entry 'link.parquet', which is a "
                                                                 "symbolic link")


def test_a_fifo_in_a_folder_bundle_is_refused_without_blocking(box):
    runs = box.bundle / "runs.parquet"
    runs.unlink()
    os.mkfifo(runs)
    done = []
    t = threading.Thread(target=lambda: done.append(assert_refused(box, lambda: import_bundle(Store(box.db), box.bundle),
                                                                   "which is not a regular file")), daemon=True)
    t.start()
    t.join(60)
    assert done, "the import blocked on a FIFO"


# ------------------------------------------------------------------------------------------------ table contents


def rewrite(bundle: Path, table: str, select: str, rows: int | None = None) -> None:
    """Replace a table file of a Parquet folder bundle by ``select`` over it (``FROM t``); ``rows`` for the manifest."""
    f = bundle / f"{table}.parquet"
    tmp = f.with_suffix(".new")
    with duckdb.connect() as con:
        con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet('{f}')")
        con.execute(f"COPY ({select}) TO '{tmp}' (FORMAT parquet)")
        n = con.execute(f"SELECT count(*) FROM read_parquet('{tmp}')").fetchone()[0]
    os.replace(tmp, f)
    doc = json.loads((bundle / "manifest.json").read_text())
    doc["tables"][table]["rows"] = n if rows is None else rows
    (bundle / "manifest.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("table, select, needle", [
    ("runs", "SELECT * REPLACE ('run-v1' AS run_id) FROM t LIMIT 1",
     "its runs table has the run_id 'run-v1', which is not 32 hex digits (a run id)"),
    ("runs", "SELECT * REPLACE ('../x' AS device_id) FROM t",
     "its runs table has the device_id '../x', which is not 16 hex digits (a device id)"),
    ("runs", "SELECT * REPLACE ('pwned' AS status) FROM t", "its runs table has the status 'pwned', which is not one"),
    ("runs", "SELECT * REPLACE (repeat('x', 70000) AS notes) FROM t",
     "its runs table has a notes of 70000 characters, over the 65536 allowed"),
    ("runs", "SELECT * FROM t UNION ALL SELECT * FROM t", "its runs table lists the same run_id twice"),
    ("runs", "SELECT * REPLACE ('not json' AS summary) FROM t", "its runs file does not read as edgeprof's runs table"),
    ("latency", "SELECT * REPLACE ('{own}' AS run_id) FROM t", "its latency table has rows of the run_id '{own}', "
                                                               "which none of its runs has"),
    ("study_cells", "SELECT 's1' AS study_id, 'c9' AS cell_key, '{own}' AS run_id, 'ok' AS status",
     "its study_cells table has rows of the run_id '{own}', which none of its runs has"),
    ("devices", "SELECT * REPLACE ('00000000000000ff' AS device_id) FROM t",
     "its devices table has rows of the device_id '00000000000000ff', which none of its runs has"),
    ("latency", "SELECT * REPLACE ('lunch' AS phase) FROM t", "its latency table has the phase 'lunch', which is not "
                                                              "one of: first, warmup, steady"),
])
def test_tables_that_are_not_as_edgeprof_writes_them_are_refused(box, table, select, needle):
    """Ids of another shape, unknown statuses, overlong text, duplicates, rows that belong to runs the bundle does not
    carry (here: a run already in the database, which the bundle would extend)."""
    rewrite(box.bundle, table, select.format(own=box.own_run))
    assert_refused(box, lambda: import_bundle(Store(box.db), box.bundle), needle.format(own=box.own_run))


def grouped_bundle(root: Path) -> tuple[Path, str, list[str]]:
    """A folder bundle of two runs made as one group (``run --repeat 2`` stores them so): (bundle, group id, run ids)."""
    src = Store(root / "grouped.duckdb")
    gid = src.create_group(new_run_id(), "repeat", config={"repeat": 2})
    dev = src.upsert_device(DEVICE)
    ids = []
    for _ in range(2):
        rid = src.insert_run(None, dev, CONFIG, SOFTWARE, META, group_id=gid)
        src.append_latency(rid, latency_rows(5))
        src.finish_run(rid, "ok", "finished", SUMMARY)
        ids.append(rid)
    src.finish_group(gid, "ok", {"latency_ms": {"p50": 7.0}}, device_id=dev)
    return export_runs(src, ids, root / "grouped-bundle"), gid, ids


def test_a_bundle_with_a_group_of_runs_passes_the_checks(box, tmp_path):
    """Groups (run_groups, runs.group_id: schema 6) are checked like the rest and imported with their runs."""
    bundle, gid, ids = grouped_bundle(tmp_path)
    store = Store(box.db)
    assert sorted(import_bundle(store, bundle)) == sorted(ids)
    group = store.get_group(gid)
    assert group["status"] == "ok" and sorted(group["run_ids"]) == sorted(ids)
    assert box.canary.touched() == []


@pytest.mark.parametrize("table, select, needle", [
    ("run_groups", "SELECT * REPLACE ('../g' AS group_id) FROM t",
     "its run_groups table has the group_id '../g', which is not 32 hex digits (a group id)"),
    ("run_groups", "SELECT * REPLACE ('{other}' AS group_id) FROM t",
     "its run_groups table has rows of the group_id '{other}', which none of its runs has"),
    ("run_groups", "SELECT * REPLACE ('sweep' AS kind) FROM t",
     "its run_groups table has the kind 'sweep', which is not one of: repeat, compare, noise_floor"),
    ("run_groups", "SELECT * REPLACE ('done' AS status) FROM t",
     "its run_groups table has the status 'done', which is not one of: running, ok, partial, failed, stopped"),
    ("run_groups", "SELECT * FROM t UNION ALL SELECT * FROM t", "its run_groups table lists the same group_id twice"),
    ("runs", "SELECT * REPLACE ('x' || group_id AS group_id) FROM t",
     "its runs table has the group_id 'x"),
])
def test_groups_that_are_not_as_edgeprof_writes_them_are_refused(box, tmp_path, table, select, needle):
    bundle, _, _ = grouped_bundle(tmp_path)
    other = new_run_id()
    rewrite(bundle, table, select.format(other=other))
    assert_refused(box, lambda: import_bundle(Store(box.db), bundle), needle.format(other=other))


def test_the_group_statuses_checked_are_the_ones_groups_are_stored_with():
    from edgeprof.run.summary import GROUP_STATUSES
    from edgeprof.store import checks

    assert ("running", *GROUP_STATUSES) == checks.GROUP_STATUSES


def test_row_counts_must_match_the_manifest(box):
    rewrite(box.bundle, "latency", "SELECT * FROM t", rows=5)
    assert_refused(box, lambda: import_bundle(Store(box.db), box.bundle),
                   "its manifest promises 5 rows of latency and the file holds 60")


@pytest.mark.parametrize("field, value, needle", [
    ("bundle_version", "1", "its manifest has the bundle_version '1', which is not a whole number from 1"),
    ("schema_version", None, "its manifest has the schema_version None"),
    ("file_format", "orc", "its manifest has the file format 'orc', not parquet or csv"),
    ("tables", [], "its manifest lists no runs table"),
    ("run_ids", "all", "its manifest's run_ids is not a list of run ids"),
    ("run_ids", ["0" * 32], "its manifest lists other runs than its runs table holds"),
])
def test_a_manifest_with_fields_of_the_wrong_shape_is_refused(box, field, value, needle):
    doc = json.loads((box.bundle / "manifest.json").read_text())
    doc[field] = value
    (box.bundle / "manifest.json").write_text(json.dumps(doc))
    assert_refused(box, lambda: import_bundle(Store(box.db), box.bundle), needle)


def test_a_manifest_nested_too_deep_or_too_big_is_refused(box):
    (box.bundle / "manifest.json").write_text("[" * 200_000 + "]" * 200_000)
    assert_refused(box, lambda: import_bundle(Store(box.db), box.bundle), "its manifest.json is not JSON")
    (box.bundle / "manifest.json").write_text(" " * (9 * 1024 * 1024))
    assert_refused(box, lambda: import_bundle(Store(box.db), box.bundle), "'manifest.json' is over 8192 KiB")


def test_a_csv_header_cannot_inject_sql(box, tmp_path):
    """Found while writing these tests: the old import put a CSV bundle's column names into read_csv's SQL as they
    were, so a header could close the string and run its own statements (here: a COPY that writes a file anywhere)."""
    src = Store(tmp_path / "csv-src.duckdb")
    b = export_runs(src, [make_run(src, n=5)], tmp_path / "csv-bundle", fmt="csv")
    pwned = tmp_path / "pwned.csv"
    evil = f"x': 'VARCHAR'}}); COPY (SELECT 42 AS pwned) TO '{pwned}'; SELECT * FROM read_csv('{b}/runs.csv', columns={{'y"
    lines = (b / "runs.csv").read_text().splitlines()
    lines[0] += ',"' + evil.replace('"', '""') + '"'
    (b / "runs.csv").write_text("\n".join([lines[0]] + [x + "," for x in lines[1:]]) + "\n")
    assert_refused(box, lambda: import_bundle(Store(box.db), b), "its runs file has a column named",
                   "which is not a column name edgeprof writes")
    assert not pwned.exists()


def test_bundles_made_by_both_builds_and_by_export_still_import(box, tmp_path):
    """The committed bundles (DuckDB 1.5 and 2.0 builds: study id 's1', schema 3 names) pass every check."""
    for z in sorted((ROOT / "tests" / "data" / "bundles").glob("bundle-duckdb-*.zip")):
        dst = Store(tmp_path / f"{z.stem}.duckdb")
        assert len(import_bundle(dst, z)) == 3
    assert len(import_bundle(Store(box.db), box.bundle)) == 2
    assert box.canary.touched() == []


# ------------------------------------------------------------------------------------------------ the rules themselves


@pytest.mark.parametrize("name, why", [
    ("runs.parquet", None), ("sub/runs.parquet", None), ("a_b-c.1.csv", None),
    ("", "which is empty"), ("../x", "which climbs out of it with '..'"), ("a/../../x", "which climbs out"),
    ("/etc/passwd", "which is an absolute path"), ("\\\\server\\share\\x", "which is an absolute path"),
    ("C:\\x.parquet", "which is a URL"), ("file:x", "which is a URL"), ("http://h/x", "which is a URL"),
    ("~/x", "which names a home folder"), ("x*", "which is a pattern"), ("x[0]", "which is a pattern"),
    ("{a,b}", "which is a pattern"), ("./x", "which is not a plain name"), ("a//b", "which is not a plain name"),
    (".hidden", "which is not a plain name"), ("x\x00y", "which has control characters"),
    ("x\ny", "which has control characters"), ("a" * 300, "which is longer than 255"), (7, "which is not a file name"),
    ("caf\u00e9", "which is not a plain name"), ("a b", "which is not a plain name"), ("a\\b", "which has a backslash"),
])
def test_unsafe_reason(name, why):
    got = unsafe_reason(name)
    assert (got is None) if why is None else (got is not None and got.startswith(why)), got


def test_safe_member_and_within(tmp_path):
    root = tmp_path / "box"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_text("x")
    (tmp_path / "out").write_text("secret")
    (root / "link").symlink_to(tmp_path / "out")
    assert safe_member("d/f", root) == root / "d" / "f"
    for name, needle in [("link", "symbolic link"), ("d", "not a regular file"), ("nope", "lacks"), ("../out", "..")]:
        with pytest.raises(BundleError, match=needle):
            safe_member(name, root)
    assert within(root / "d" / "f", [root]) and within(root, [root])
    assert not within(tmp_path / "out", [root]) and not within(root / "link", [root])
    assert not within(str(root) + "-other/f", [root])  # a sibling whose name starts like the root


def test_limits_from_the_environment():
    assert Limits.from_env({}).max_bytes == 4096 * 1024 * 1024
    assert Limits.from_env({"EDGEPROF_MAX_BUNDLE_MB": "16"}).max_bytes == 16 * 1024 * 1024
    for bad in ("0", "-1", "lots", "nan"):
        with pytest.raises(UsageError, match="EDGEPROF_MAX_BUNDLE_MB"):
            Limits.from_env({"EDGEPROF_MAX_BUNDLE_MB": bad})


# ------------------------------------------------------------------------------------------------ the Runs page


def test_the_runs_page_shows_the_same_sentence(box, monkeypatch):
    from streamlit.testing.v1 import AppTest

    set_file(box.bundle, "runs", "../secret/private_runs.parquet")
    z = zip_folder(box.bundle, box.root / "lab-runs.zip")
    with pytest.raises(BundleError) as lib:
        import_bundle(Store(box.db), z, name="lab-runs.zip")
    before = digest(box.db)
    monkeypatch.setenv("EDGEPROF_DB", str(box.db))
    at = AppTest.from_file(str(ROOT / "views" / "2_Runs.py"), default_timeout=60).run()
    at.file_uploader(key="import_bundle").upload("lab-runs.zip", z.read_bytes(), "application/zip").run()
    at.button(key="import").click().run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert errors == [f"Import failed: {lib.value}"], errors
    assert str(lib.value) == ("the bundle lab-runs.zip is refused: its runs table is '../secret/private_runs.parquet', "
                              "which climbs out of it with '..'; nothing was imported.")
    assert digest(box.db) == before and box.canary.touched() == []


# ------------------------------------------------------------------------------------------------ uploads and models


def test_an_onnx_model_whose_external_data_leads_outside_is_refused(box, tmp_path):
    """Uploads keep every weight inside (a separate data file is refused), and a model on disk may keep its data file
    only in its own folder: '..', an absolute location and a link leading out are refused before a runtime reads it."""
    import onnx
    from test_models_lib import tiny_model_bytes

    from edgeprof.models import catalog
    from edgeprof.models.inspect import inspect_file

    weights = box.secret / "weights.bin"
    folder = tmp_path / "models"
    folder.mkdir()
    for i, location in enumerate(["../lab/secret/weights.bin", str(weights), "linked.bin"]):
        model = onnx.load_from_string(tiny_model_bytes())
        path = folder / f"m{i}.onnx"
        onnx.save(model, str(path), save_as_external_data=True, location=f"scratch{i}.bin", size_threshold=0)
        shutil.copy(folder / f"scratch{i}.bin", weights)
        model = onnx.load(str(path), load_external_data=False)
        for init in model.graph.initializer:
            for e in init.external_data:
                if e.key == "location":
                    e.value = location
        path.write_bytes(model.SerializeToString())
        (folder / "linked.bin").unlink(missing_ok=True)
        (folder / "linked.bin").symlink_to(weights)
        box.canary.touched()
        with pytest.raises(ModelError, match="missing or outside its folder"):
            inspect_file(path)
        with pytest.raises(ModelError, match="upload rejected: .*missing or outside its folder"):
            catalog.add_upload(path.read_bytes(), "model.onnx")
        assert box.canary.touched() == [], location
    assert [p.name for p in paths.uploads_dir().iterdir()] == []


# ------------------------------------------------------------------------------------------------ study files


def _study(models: list[str]) -> str:
    return f'name = "s"\nmodels = {json.dumps(models)}\nduration_s = 0.2\n'


def test_a_study_file_may_name_models_only_in_the_data_directory_or_the_bundled_ones(box, edgeprof_home, tmp_path):
    from edgeprof.study import StudyConfig

    outside = str(box.secret / "model.onnx")
    for models in ([outside], ["../lab/secret/model.onnx"], ["digits-cnn", outside]):
        with pytest.raises(ConfigError, match="is outside the data directory .* the only places a study file may name"):
            StudyConfig.from_toml(_study(models))
    # a link inside the data directory that leads out is judged by where it leads
    (edgeprof_home / "uploads").mkdir(exist_ok=True)
    (edgeprof_home / "uploads" / "sneaky.onnx").symlink_to(outside)
    with pytest.raises(ConfigError, match="sneaky.onnx' is outside"):
        StudyConfig.from_toml(_study([str(edgeprof_home / "uploads" / "sneaky.onnx")]))
    assert box.canary.touched() == []
    # an upload, a bundled model by path, and a file the user gave on the command line are fine
    up = edgeprof_home / "uploads" / "0123456789abcdef.onnx"
    shutil.copy(ROOT / "tests" / "data" / "models" / "token_ids.onnx", up)
    assert StudyConfig.from_toml(_study([str(up)])).models == (str(up),)
    bundled = str(paths.MODELS_DIR / "digits-cnn" / "fp32.onnx")
    if Path(bundled).is_file():
        assert StudyConfig.from_toml(_study([bundled])).models == (bundled,)
    assert StudyConfig.from_toml(_study([outside]), allowed_paths=[box.secret]).models == (outside,)


def test_the_cli_study_file_paths_need_allow_path(box, tmp_path):
    spec = tmp_path / "s.toml"
    missing = str(box.secret / "missing.onnx")  # inside the allowed folder but absent: refused after the path check
    spec.write_text(_study([missing]))
    db = str(tmp_path / "runs.duckdb")
    r = cli("study", "--file", str(spec), "--db", db)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "is outside the data directory" in r.stderr, r.stderr
    assert "--allow-path" in r.stderr
    r = cli("study", "--file", str(spec), "--db", db, "--allow-path", str(box.secret))
    assert r.returncode == 2 and "nor a .onnx or .tflite file that exists" in r.stderr, r.stderr
    assert box.canary.touched() == []


def test_stored_study_settings_from_a_bundle_are_checked_on_resume(box, tmp_path):
    """A study's stored settings can come in with a bundle: resuming it names a model outside, so it is refused with
    the reason, and only a --allow-path the user gives now lets it through."""
    from edgeprof.study import list_studies, resolve_config

    store = Store(box.db)
    doc = {"kind": "edgeprof-study", "version": 1, "name": "s", "models": [str(box.secret / "model.onnx")],
           "duration_s": 0.2}
    store.create_study("s-imported", "s", doc, status="stopped")
    box.canary.touched()
    with pytest.raises(UsageError, match="study s-imported's stored settings cannot be used: models: .* is outside"):
        resolve_config(store, study_id="s-imported")
    row = next(r for r in list_studies(store) if r["study_id"] == "s-imported")
    assert row["cells"] is None and not row["resumable"]
    assert box.canary.touched() == []
    assert resolve_config(store, study_id="s-imported", allowed_paths=[box.secret]).models == (doc["models"][0],)


def test_a_new_study_id_has_the_shape_bundles_carry(tmp_path):
    from edgeprof.study import resolve_config

    store = Store(tmp_path / "runs.duckdb")
    for bad in ("../x", "a b", "-x", "x" * 129, "s1;DROP"):
        with pytest.raises(UsageError, match="study id .* must be 1-128 letters"):
            resolve_config(store, preset="quick", study_id=bad)
    assert resolve_config(store, preset="quick", study_id="my-study.2").name == "quick"
