"""Issue 22's attacks, each in the form the attacker used: a second browser context for the visitor, a server started
with an empty address, hostile bundles, a full disk on a small tmpfs, a read-only data directory. Each test failed on
the code before the fix."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, cli_env, requires_cgroup

from edgeprof.run.runner import oom_reason
from edgeprof.store import Store


def _cli(*args, home, **kw):
    return subprocess.run([sys.executable, "-m", "edgeprof", *args], capture_output=True, text=True, timeout=300,
                          env=cli_env(EDGEPROF_HOME=home), cwd=ROOT, **kw)


# -- 5: an OOM kill without a cap -------------------------------------------------------------------------------------

def test_oom_kill_without_a_cap_says_the_kernels_reason():
    """The worker's cgroup had no limit and the kernel killed it anyway: the reason used to raise TypeError (None:g)."""
    device = oom_reason({"requested_mb": None, "mechanism": "none", "oom_kill_count": 1})
    assert device.startswith("the kernel OOM-killed the worker: this run had no memory limit and the device ran out")
    outer = oom_reason({"requested_mb": None, "mechanism": "none", "oom_kill_count": 1, "enclosing_limit_mb": 512.0})
    assert "the 512 MB limit of the cgroup that edgeprof runs in was reached" in outer
    assert "64 MB memory limit" in oom_reason({"requested_mb": 64.0, "mechanism": "cgroup1", "oom_kill_count": 1})


@requires_cgroup
@pytest.mark.slow
def test_a_run_without_a_cap_killed_by_the_kernel_is_oom_killed_with_its_reason(tmp_path, edgeprof_home):
    """The attacker's form: no limit and a huge --shape (TFLite resizes to anything), in a process whose cgroup has a
    limit (on a board: the whole device's memory). The status said "failed: ... TypeError" and the row stayed running."""
    from edgeprof.worker import limits

    mech = limits.detect()
    outer = Path(mech.parent) / f"edgeprof-outer-{os.getpid()}"
    outer.mkdir()
    try:
        (outer / ("memory.limit_in_bytes" if mech.kind == "cgroup1" else "memory.max")).write_text(str(500 * 2**20))
        db = tmp_path / "runs.duckdb"
        r = subprocess.run(
            ["bash", "-c", f'echo $$ > {outer}/cgroup.procs; exec "$@"', "bash", sys.executable, "-m", "edgeprof",
             "run", "--model", "efficientnet-lite0", "--runtime", "tflite", "--shape",
             "serving_default_input:0=1x1792x1792x3", "--iterations", "3", "--db", str(db), "--json", "--quiet"],
            capture_output=True, text=True, timeout=300, env=cli_env(EDGEPROF_HOME=edgeprof_home), cwd=ROOT)
    finally:
        with contextlib.suppress(OSError):
            outer.rmdir()
    assert "TypeError" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    row = Store(db).get_run(json.loads(r.stdout)["run_id"])
    assert row["status"] == "oom_killed", (row["status"], row["reason"])
    assert row["reason"].startswith("the kernel OOM-killed the worker: this run had no memory limit of its own, and "
                                    "the 500 MB limit of the cgroup that edgeprof runs in was reached"), row["reason"]


# -- 8 and the minor ones: a full disk, a read-only data directory -----------------------------------------------------

@pytest.fixture
def tiny_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(fs, leave: int = 8192) -> None:
    st = os.statvfs(fs)
    (fs / "ballast").write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))


@pytest.mark.slow
def test_a_run_whose_samples_were_not_stored_is_not_ok(tiny_fs, edgeprof_home):
    """On a full disk the run measures, its samples cannot be written: the stored row, `runs` and `show` say so."""
    db = tiny_fs / "runs.duckdb"
    first = _cli("run", "--model", "digits-cnn", "--iterations", "50", "--db", str(db), "--json", "--quiet",
                 home=edgeprof_home)
    assert first.returncode == 0, first.stderr
    _fill(tiny_fs)
    r = _cli("run", "--model", "digits-cnn", "--duration", "6", "--db", str(db), "--json", "--quiet",
             home=edgeprof_home)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "the disk holding" in r.stderr and "is full" in r.stderr, r.stderr
    run_id = json.loads(r.stdout)["run_id"]
    (tiny_fs / "ballast").unlink()
    row = Store(db).get_run(run_id)
    assert row["status"] != "ok", row["status"]
    runs = _cli("runs", "--db", str(db), home=edgeprof_home)
    line = next(x for x in runs.stdout.splitlines() if run_id[:8] in x or run_id in x)
    assert " ok " not in f" {line} "
    show = _cli("show", run_id, "--db", str(db), home=edgeprof_home)
    assert "could not be stored" in show.stdout or "interrupted" in show.stdout, show.stdout


def test_read_only_data_directory_says_so(tmp_path, edgeprof_home):
    """A data directory on a read-only file system: one sentence about it, not "unexpected OSError ... device.lock"."""
    ro = tmp_path / "ro"
    ro.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(ro)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here (needs root): {r.stderr.decode().strip()}")
    try:
        out = _cli("run", "--model", "digits-cnn", "--iterations", "5", "--db", str(tmp_path / "runs.duckdb"),
                   home=ro)
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
    assert out.returncode != 0
    assert "read-only file system" in out.stderr and "unexpected" not in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_export_on_a_full_disk_says_the_disk_is_full(tiny_fs, edgeprof_home, tmp_path):
    db = tmp_path / "runs.duckdb"
    made = _cli("run", "--model", "digits-cnn", "--iterations", "50", "--db", str(db), "--quiet", home=edgeprof_home)
    assert made.returncode == 0, made.stderr
    _fill(tiny_fs, leave=0)
    r = _cli("export", "--db", str(db), "--out", str(tiny_fs / "out"), home=edgeprof_home)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "cannot read the database" not in r.stderr and "is full" in r.stderr, r.stderr


# -- 2: an empty address -----------------------------------------------------------------------------------------------

def test_the_address_check_reads_the_socket():
    """What the server binds decides, not the option's text: empty, 0.0.0.0 and :: reach the LAN; so does a listening
    socket on 0.0.0.0 whatever the option says."""
    import socket

    from edgeprof import auth

    assert not auth.is_loopback("") and not auth.is_loopback(None) and not auth.is_loopback("::")
    assert auth.is_loopback("localhost") and auth.is_loopback("::ffff:127.0.0.1")
    for host, exposed in (("0.0.0.0", True), ("127.0.0.1", False)):
        with socket.socket() as s:
            s.bind((host, 0))
            s.listen()
            port = s.getsockname()[1]
            assert (auth.exposure("127.0.0.1", port) is not None) is exposed, host
    assert auth.exposure("", None) == "every interface"


@pytest.mark.browser
@pytest.mark.slow
def test_a_server_started_with_an_empty_address_shows_no_page_without_a_password(tmp_path, monkeypatch):
    """`streamlit run app.py --server.address=` binds every interface: without a password no page, no database path."""
    from test_browser import CHROMIUM, chromium_page, streamlit_server

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"needs Chromium at {CHROMIUM}")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("EDGEPROF_HOME", str(home))
    monkeypatch.delenv("EDGEPROF_PASSWORD", raising=False)
    monkeypatch.delenv("EDGEPROF_ADMIN_PASSWORD", raising=False)
    with streamlit_server(home, tmp_path / "runs.duckdb", address="") as url, chromium_page() as page:
        page.goto(url)
        page.get_by_text("but has no password").wait_for()
        body = page.locator("body").inner_text()
        assert "This server listens on" in body and ("0.0.0.0" in body or "::" in body), body
        assert "Start run" not in body and "Database:" not in body and str(tmp_path) not in body


# -- 3: password attempts --------------------------------------------------------------------------------------------

def test_throttle_grows_then_locks_out():
    from edgeprof.auth import Throttle

    now = [0.0]
    t = Throttle(free=3, base_s=2, lockout_after=6, lockout_s=300, clock=lambda: now[0])
    assert [t.failed("s", "a") for _ in range(5)] == [0, 0, 0, 2, 4]
    assert t.wait_s("s") == 4 and t.wait_s("other", "a") == 4 and t.wait_s("other") == 0
    assert t.refusal("s") == "Too many wrong passwords: wait 4 s before the next try."
    now[0] = 4.0
    assert t.refusal("s") is None
    assert t.failed("s") == 300
    assert t.refusal("s") == ("Too many wrong passwords: this browser is locked out for 5 min 0 s more. Ask the "
                              "person running this booth.")
    t.succeeded("s")
    assert t.refusal("s") is None and t.failures("a") == 5
    t.MAX_KEYS = 3  # past MAX_KEYS, the keys whose wait ended over lockout_s ago are forgotten
    t.failed("s2")
    t.failed("a")
    now[0] = 1000.0
    for n in range(4):
        t.failed(f"new{n}")
    assert t.failures("s2") == 0 and len(t._fails) <= 5


@pytest.fixture
def booth(tmp_path, monkeypatch):
    from edgeprof import auth

    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    monkeypatch.setenv("EDGEPROF_PASSWORD", "visitors")
    monkeypatch.setenv("EDGEPROF_ADMIN_PASSWORD", "staff")
    monkeypatch.setattr(auth, "THROTTLE", auth.Throttle())


def _errors(at) -> str:
    return "\n".join(str(e.value) for e in at.error)


def test_wrong_passwords_in_a_row_then_the_right_one_is_not_accepted(booth, caplog):
    """The attacker's 30 guesses in 9.5 s from one browser session, then the right password: refused until the wait
    is over, with the time left in a sentence, and every wrong guess logged for staff."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    for guess in ("a", "b", "c", "d", "e"):
        at.text_input(key="login_password").input(guess)
        at.button[0].click().run()
    assert "Too many wrong passwords: wait" in _errors(at) and "before the next try" in _errors(at)
    at.text_input(key="login_password").input("visitors")
    at.button[0].click().run()
    assert "edgeprof_role" not in at.session_state, "the right password was accepted during the wait"
    assert "Too many wrong passwords" in _errors(at)
    assert sum("wrong password from" in r.getMessage() for r in caplog.records) == 4  # the 5th came during the wait


# -- 1 and 4: what a visitor may start ---------------------------------------------------------------------------------

def _page(name: str, role: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "views" / name), default_timeout=60)
    at.session_state["edgeprof_role"] = role
    at.run()
    assert not at.exception, at.exception
    return at


def _shown(at) -> str:
    return "\n".join(str(e.value) for kind in ("error", "info", "warning", "markdown", "caption") for e in at.get(kind))


def test_visitors_may_not_quantize_or_compute_fidelity(booth):
    """The Models page gave visitors Quantize (which ran a huge declared input in the server process until the kernel
    killed the server) and Compute fidelity (minutes of CPU beside a run on show): staff work, in one sentence."""
    visitor = _page("5_Models.py", "visitor")
    assert not [b for b in visitor.button if b.key in ("quantize", "fidelity")]
    shown = _shown(visitor)
    assert ("Quantizing a model is for staff at this booth (it keeps the device busy for everyone): visitors run the "
            "bundled models; ask staff, or unlock with the admin password in the sidebar (Staff).") in shown
    assert "Computing fidelity is for staff at this booth" in shown
    staff = _page("5_Models.py", "admin")
    assert staff.button(key="quantize") and staff.button(key="fidelity")


def test_staff_heavy_work_and_runs_never_overlap(edgeprof_home):
    from edgeprof import run
    from edgeprof.config import RunConfig

    with run.device_work("quantizing digits-cnn to int8-static"):
        with pytest.raises(run.DeviceBusy, match=r"the device is busy with staff work \(quantizing digits-cnn to "
                                                 r"int8-static\)\."):
            run.start_run(RunConfig(model="digits-cnn", iterations=5))
        with pytest.raises(run.DeviceBusy), run.device_work("computing the fidelity of digits-cnn"):
            pass
    with run.device_work("computing the fidelity of digits-cnn"):  # released: the next work may start
        pass


def test_the_visitor_cap_comes_from_the_footprint_within_a_share_of_ram():
    from edgeprof import booth

    assert booth.memory_cap_mb(85.0, 4096) == (170, "2x this variant's footprint measured here (85 MB)")
    assert booth.memory_cap_mb(20.0, 4096)[0] == booth.MIN_MB
    cap, why = booth.memory_cap_mb(900.0, 1024)
    assert cap == 256 and "leaves no more room" in why
    cap, why = booth.memory_cap_mb(None, 8192)
    assert cap == 2048 and "not measured here yet" in why
    assert booth.memory_cap_mb(float("nan"), 1024)[0] == 256


def test_a_visitor_run_always_has_a_cap_bounded_inputs_and_time():
    from edgeprof import booth
    from edgeprof.config import RunConfig

    limits = booth.VisitorLimits(170, "2x this variant's footprint")
    bundled = ["digits-cnn"]
    cfg = booth.bound_run(RunConfig(model="digits-cnn", preset="quick"), bundled, limits)
    assert cfg.memory_limit_mb == 170 and cfg.timeout_s == booth.TIMEOUT_S
    assert booth.bound_run(RunConfig(model="digits-cnn", memory_limit_mb=64), bundled, limits).memory_limit_mb == 64
    assert booth.bound_run(RunConfig(model="digits-cnn", memory_limit_mb=4096), bundled, limits).memory_limit_mb == 170
    with pytest.raises(booth.VisitorRefused, match=r"Input 'x' would hold 4,294,967,296 values; visitors may give at "
                                                   r"most 4,194,304 per input"):
        booth.bound_run(RunConfig(model="digits-cnn", input_shapes={"x": (1, 65536, 65536)}), bundled, limits)
    with pytest.raises(booth.VisitorRefused, match=r"digits-cnn at int8-static \(onnx\) is not quantized on this "
                                                   r"device yet, and quantizing is for staff at this booth"):
        booth.bound_run(RunConfig(model="digits-cnn", precision="int8-static", runtime="onnx"), bundled, limits)
    with pytest.raises(booth.VisitorRefused, match="Running an uploaded model is for staff"):
        booth.bound_run(RunConfig(model="/tmp/x.onnx"), bundled, limits)


def test_a_visitor_cannot_pick_no_limit_nor_a_huge_input_on_the_run_page(booth, edgeprof_home):
    """The attacker picked "no limit" and a --shape that took the worker to 2.8 GB: a visitor's options are the booth
    cap and tighter ones, and a huge shape is refused in a sentence before anything starts."""
    from edgeprof import run

    at = _page("1_Run.py", "visitor")
    options = at.selectbox(key="memory_limit").options
    assert "no limit" not in options and options[0].startswith("booth limit (")
    assert "Visitor runs are capped at" in _shown(at) and "values per input" in _shown(at)
    shape_key = next(t.key for t in at.text_input if t.key and t.key.startswith("input_shape|"))
    at.text_input(key=shape_key).input("1x65536x65536")
    at.button(key="start").click().run()
    assert not at.exception
    assert "visitors may give at most 4,194,304 per input" in "\n".join(str(e.value) for e in at.error)
    assert not run.active_runs()
    staff = _page("1_Run.py", "admin")
    assert "no limit" in staff.selectbox(key="memory_limit").options


# -- 6 and 7: hostile values in a bundle ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_bundle(tmp_path_factory):
    """A bundle exported from a real run (digits-cnn, 50 inferences)."""
    root = tmp_path_factory.mktemp("bundle")
    home = root / "home"
    home.mkdir()
    db = root / "runs.duckdb"
    made = _cli("run", "--model", "digits-cnn", "--iterations", "50", "--db", str(db), "--quiet", home=home)
    assert made.returncode == 0, made.stderr
    out = _cli("export", "--db", str(db), "--out", str(root / "bundle"), home=home)
    assert out.returncode == 0, out.stderr
    return root / "bundle"


def hostile(bundle, tmp_path, table: str, sql_set: str):
    """A copy of ``bundle`` with ``UPDATE <table> SET <sql_set>`` applied to its Parquet file."""
    import shutil

    import duckdb

    out = tmp_path / f"hostile-{abs(hash((table, sql_set)))}"
    shutil.copytree(bundle, out)
    f = out / f"{table}.parquet"
    with duckdb.connect() as con:
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{f}')")
        con.execute(f"UPDATE t SET {sql_set}")
        con.execute(f"COPY t TO '{f}' (FORMAT parquet)")
    return out


HOSTILE_VALUES = [
    ("runs", "created_at = TIMESTAMP '9999-12-31'", "created_at '9999-12-31 00:00:00', outside 1970-01-01 to 2100"),
    ("runs", "p50_ms = 'nan'::DOUBLE", "p50_ms 'nan', which is not a finite number"),
    ("runs", "p50_ms = 'inf'::DOUBLE", "p50_ms 'inf', which is not a finite number"),
    ("runs", "p50_ms = -1e308", "p50_ms '-1e+308', which is not a finite number"),
    ("latency", "latency_ns = -5", "latency_ns '-5', which is negative"),
    ("telemetry", "value = 'inf'::DOUBLE", "value 'inf', which is not a finite number"),
    ("runs", "model = chr(27) || '[2J' || chr(27) || ']52;c;ZXZpbA==' || chr(7) || 'evil'",
     "which holds control characters (terminal escapes)"),
    ("runs", "n = -1", "n '-1', which is negative"),
]


@pytest.mark.parametrize(("table", "sql_set", "words"), HOSTILE_VALUES, ids=[v[1][:24] for v in HOSTILE_VALUES])
def test_hostile_values_in_a_bundle_are_refused(real_bundle, tmp_path, edgeprof_home, table, sql_set, words):
    """The issue's bundle: a date in 9999, NaN, inf, -1e308 latencies, negative samples, infinite telemetry, a model
    name with terminal escapes; each imported before. Refused in one sentence; the database keeps what it had."""
    db = tmp_path / "mine.duckdb"
    r = _cli("import", str(hostile(real_bundle, tmp_path, table, sql_set)), "--db", str(db), home=edgeprof_home)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and "nothing was imported" in r.stderr, r.stderr
    assert "\x1b" not in r.stderr and "Traceback" not in r.stderr


def _store_hostile_row(db) -> str:
    """A run row holding what the store can hold but no import lets in any more (as an older edgeprof stored it)."""
    import duckdb

    made = Store(db)
    run_id = "f" * 32
    with duckdb.connect(str(made.path)) as con:
        con.execute("INSERT INTO runs (run_id, created_at, status, model, precision, runtime, p50_ms, p90_ms, n, "
                    "memory_limit_mb, reason) VALUES (?, TIMESTAMP '9999-12-31', 'ok', ?, 'fp32', 'onnx', 'nan', "
                    "'inf', -1, 'inf', ?)",
                    [run_id, "![b](http://127.0.0.1:9/x) <img src=x>\x1b[2J\x1b]52;c;ZXZpbA==\x07", "\x9b31m"])
    return run_id


def test_the_cli_survives_any_stored_value_and_prints_no_terminal_escape(tmp_path, edgeprof_home):
    db = tmp_path / "runs.duckdb"
    run_id = _store_hostile_row(db)
    for args in (("runs",), ("show", run_id), ("runs", "--json")):
        r = _cli(*args, "--db", str(db), home=edgeprof_home)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (args, r.stderr)
        assert "\x1b" not in r.stdout and "\x9b" not in r.stdout and "\x07" not in r.stdout, args
        assert "\\u001b" in r.stdout or "\\u009b" in r.stdout, (args, r.stdout)  # shown as visible text


def test_the_runs_page_survives_any_stored_value(tmp_path, monkeypatch):
    """A date in 9999 made ui.filter_runs raise OverflowError for everyone; names are text, never markdown."""
    from streamlit.testing.v1 import AppTest

    db = tmp_path / "runs.duckdb"
    run_id = _store_hostile_row(db)
    monkeypatch.setenv("EDGEPROF_DB", str(db))
    at = AppTest.from_file(str(ROOT / "views" / "2_Runs.py"), default_timeout=60)
    at.session_state["edgeprof_role"] = "admin"
    at.query_params["run_id"] = run_id
    at.run()
    assert not at.exception, at.exception
    rendered = "\n".join(str(m.value) for m in at.markdown)
    assert "![b](http" not in rendered, "a stored name reached the page as markdown"


@pytest.mark.parametrize("page", ["2_Runs.py", "3_Correlations.py", "4_Compare.py", "6_Study.py", "7_Report.py"])
def test_every_history_page_survives_any_stored_value(tmp_path, monkeypatch, page):
    """Rows as an older edgeprof could store them: NaN, inf, -1e308, a date in 9999, no thread count. The Correlations
    page raised on a run without a thread count."""
    import duckdb
    from streamlit.testing.v1 import AppTest

    db = tmp_path / "runs.duckdb"
    _store_hostile_row(db)
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO runs (run_id, created_at, status, model, precision, runtime, p50_ms, p90_ms, n, "
                    "memory_limit_mb, peak_charged_mb) VALUES (?, now(), 'ok', 'digits-cnn', 'fp32', 'onnx', -1e308, "
                    "'nan', 5, 64, 'inf')", ["a" * 32])
    monkeypatch.setenv("EDGEPROF_DB", str(db))
    at = AppTest.from_file(str(ROOT / "views" / page), default_timeout=60)
    at.session_state["edgeprof_role"] = "admin"
    at.run()
    assert not at.exception, at.exception


# -- recovery before the password ----------------------------------------------------------------------------------

def test_runs_left_running_by_a_crashed_server_are_interrupted_before_anyone_logs_in(booth, tmp_path):
    """After a server crash a run stayed `running` until someone passed the password screen: now the first page
    load, the password screen itself, marks it interrupted."""
    import duckdb
    from streamlit.testing.v1 import AppTest

    from edgeprof import paths

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    store = Store(paths.default_db())
    with duckdb.connect(str(store.path)) as con:
        con.execute("INSERT INTO runs (run_id, created_at, status, model, precision, runtime, owner_pid, owner_host) "
                    "VALUES (?, now(), 'running', 'digits-cnn', 'fp32', 'onnx', ?, ?)",
                    ["e" * 32, gone.pid, __import__("socket").gethostname()])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert at.text_input(key="login_password") is not None and "edgeprof_role" not in at.session_state
    assert Store(paths.default_db()).get_run("e" * 32)["status"] == "interrupted"


# -- in a real browser: a visitor in a second context, and the address throttle --------------------------------------

@pytest.mark.browser
@pytest.mark.slow
def test_in_the_browser_a_visitor_gets_bounded_work_and_guesses_are_throttled_per_address(tmp_path, monkeypatch):
    """Staff in one browser context, a visitor in a second: the visitor's Models page has no Quantize or Compute
    fidelity, their Run page no "no limit". Then wrong passwords from a third context throttle a fourth (a new session
    from the same address), and the right password is refused while the wait lasts."""
    from playwright.sync_api import sync_playwright
    from test_browser import CHROMIUM, CHROMIUM_ARGS, select_option, streamlit_server, wait_for_app

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"needs Chromium at {CHROMIUM}")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("EDGEPROF_HOME", str(home))
    monkeypatch.setenv("EDGEPROF_PASSWORD", "visitors")
    monkeypatch.setenv("EDGEPROF_ADMIN_PASSWORD", "staff")

    def login(browser, url, password):
        page = browser.new_context(viewport={"width": 1400, "height": 2300}).new_page()
        page.set_default_timeout(30_000)
        page.goto(url)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_role("button", name="Enter").click()
        return page

    with streamlit_server(home, tmp_path / "runs.duckdb") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            staff = login(browser, url, "staff")
            staff.get_by_role("button", name="Start run").wait_for()
            visitor = login(browser, url, "visitors")
            visitor.get_by_role("button", name="Classify this photo").wait_for()  # a visitor lands on Try it
            visitor.get_by_test_id("stExpandSidebarButton").click()
            visitor.get_by_role("link", name="Run").first.click()
            visitor.get_by_role("button", name="Start run").wait_for()
            wait_for_app(visitor)
            visitor.get_by_text("Visitor runs are capped at").wait_for()
            box = visitor.locator('[data-testid="stSelectbox"]').filter(
                has=visitor.get_by_text("Memory limit (MB)", exact=True)).first
            box.click()
            options = visitor.get_by_role("option").all_inner_texts()
            assert "no limit" not in options and options[0].startswith("booth limit ("), options
            visitor.keyboard.press("Escape")
            visitor.get_by_role("link", name="Models").first.click()
            visitor.get_by_text("Quantizing a model is for staff at this booth").wait_for()
            visitor.get_by_text("Computing fidelity is for staff at this booth").wait_for()
            assert visitor.get_by_role("button", name="Quantize").count() == 0
            assert visitor.get_by_role("button", name="Compute fidelity").count() == 0
            staff.get_by_role("link", name="Models").first.click()
            staff.get_by_role("button", name="Quantize").wait_for()
            select_option(staff, "Model to quantize", "digits-cnn")  # staff keep the controls

            import re
            import time

            guesser = login(browser, url, "guess-0")
            for n in range(1, 12):  # wrong guesses, each after the wait it earned, until one earns 16 s or more
                guesser.locator('[data-testid="stAlert"]').first.wait_for()
                wait_for_app(guesser)
                said = guesser.locator('[data-testid="stAlert"]').first.inner_text()
                earned = re.search(r"[Ww]ait (\d+) s", said)
                if earned and int(earned.group(1)) >= 16 and said.startswith("Wrong password"):
                    break
                time.sleep(int(earned.group(1)) + 0.5 if earned else 0)
                guesser.get_by_label("Password", exact=True).fill(f"guess-{n}")
                guesser.get_by_role("button", name="Enter").click()
                guesser.wait_for_timeout(300)
            else:
                raise AssertionError(f"no growing wait after 11 wrong passwords: {said}")
            fresh = login(browser, url, "visitors")  # the right password, from a new session at the same address
            fresh.get_by_text("Too many wrong passwords: wait").first.wait_for()
            assert fresh.get_by_role("button", name="Start run").count() == 0
        finally:
            browser.close()


def test_the_runs_page_says_a_run_measured_but_was_not_stored(tmp_path, monkeypatch):
    """The full-disk run: the page said it "ended before its first inference"; it measured and could not store."""
    import duckdb
    from streamlit.testing.v1 import AppTest

    from edgeprof.run.runner import unstored_reason

    db = tmp_path / "runs.duckdb"
    Store(db)
    reason = unstored_reason(62567, "the disk holding the database is full")
    summary = json.dumps({"run_id": "d" * 32, "status": "failed", "error": reason, "latency_ms": {"n": 62567}})
    with duckdb.connect(str(db)) as con:
        con.execute("INSERT INTO runs (run_id, created_at, status, reason, model, precision, runtime, n, summary) "
                    "VALUES (?, now(), 'failed', ?, 'digits-cnn', 'fp32', 'onnx', 62567, ?)", ["d" * 32, reason, summary])
    monkeypatch.setenv("EDGEPROF_DB", str(db))
    at = AppTest.from_file(str(ROOT / "views" / "2_Runs.py"), default_timeout=60)
    at.session_state["edgeprof_role"] = "admin"
    at.query_params["run_id"] = "d" * 32
    at.run()
    assert not at.exception, at.exception
    assert any("measured, but 62,567 of its samples could not be stored" in str(e.value) for e in at.error)
    assert ("This run measured 62,567 inferences, but none of its samples could be stored, so there is nothing to "
            "draw.") in [str(i.value) for i in at.info]


def test_an_input_named_in_markdown_is_shown_as_text_on_the_run_page(edgeprof_home, tmp_path, monkeypatch):
    """The issue's model: an input named ``![b](http://127.0.0.1:9999/x)`` made the Run page fetch that URL."""
    from onnx import TensorProto, helper
    from streamlit.testing.v1 import AppTest
    from test_inputs import save

    from edgeprof import paths

    name = "![b](http://127.0.0.1:9999/x)"
    graph = helper.make_graph([helper.make_node("Identity", [name], ["y"])], "g",
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, "<img src=x>"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "<img src=x>"])])
    model = save(graph, paths.uploads_dir() / "hostile.onnx")
    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    at = AppTest.from_file(str(ROOT / "views" / "1_Run.py"), default_timeout=60).run()
    at.selectbox(key="model").select(str(model)).run()
    assert not at.exception, at.exception
    shown = "\n".join(str(m.value) for m in at.markdown)
    assert "**!\\[b\\](http://127.0.0.1:9999/x)** · float32 · declared [1, \\<img src=x\\>]" in shown, shown
    assert not __import__("re").search(r"(?<!\\)(!\[|<img)", shown), shown
