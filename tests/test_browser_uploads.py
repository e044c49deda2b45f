"""Model uploads through the real st.file_uploader widgets, in a real browser (headless Chromium via Playwright).

One `streamlit run app.py` per module, with the upload limit lowered to 1 MB (``STREAMLIT_SERVER_MAX_UPLOAD_SIZE``,
the environment form of ``--server.maxUploadSize 1``), and one browser page; every case opens its page afresh (a new
session) and feeds the uploader's <input type=file> with Playwright's ``set_input_files``. On the Run page and on the
Models page: wrong extensions and an oversize file are refused with a clear message and nothing is stored; a name
with folders and odd characters is stored only under uploads/ by its hash; a text file and a truncated file named
.onnx, and an ONNX file whose weights live in a missing separate file, are refused with one st.error and no
traceback, leaving nothing half-written. Then two runs on the Run page: custom_op.tflite fails clearly naming the
custom op (stored as failed), token_ids.onnx runs on synthetic input with the note about integer token ids.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_browser import CHROMIUM, ROOT, chromium_page, streamlit_server, wait_for_app

FIX = ROOT / "tests" / "data" / "models"
UPLOADER = '[data-testid="stFileUploader"]'
FILE_INPUT = '[data-testid="stFileUploaderDropzoneInput"]'
ALERT = '[data-testid="stAlert"]'
LIVE_JS = "() => { const e = document.querySelector('.ep-live'); return e ? e.dataset.run : null; }"
PAGES = {"run": "", "models": "/Models"}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)"),
]


# ------------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(url, home, db, tmp root): one server for the module, its data directory in a fresh tmp dir."""
    root = tmp_path_factory.mktemp("uploads")
    home = root / "home"
    home.mkdir()
    db = root / "runs.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEPROF_HOME", str(home))  # this process's Store and paths agree with the server's
        mp.setenv("STREAMLIT_SERVER_MAX_UPLOAD_SIZE", "1")  # MB; streamlit_server passes the environment on
        with streamlit_server(home, db) as url:
            yield url, home, db, root


@pytest.fixture(scope="module")
def page(server):
    with chromium_page() as p:
        p.set_viewport_size({"width": 1400, "height": 1600})
        yield p


# ------------------------------------------------------------------------------------------------ helpers

def files_under(folder: Path) -> set[str]:
    """Every file below ``folder`` (hidden ones included), as relative paths."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def uploads(home: Path) -> set[str]:
    return files_under(home / "uploads")


def page_text(page) -> str:
    return page.locator('[data-testid="stApp"]').inner_text()


def open_uploader(page, url: str, where: str):
    page.goto(url + PAGES[where])
    wait_for_app(page)
    if where == "run":
        page.get_by_role("button", name="Start run").wait_for()
        page.get_by_text("Upload your own model (.onnx or .tflite)", exact=True).click()
    else:
        page.get_by_text("Upload a model", exact=True).wait_for()
    box = page.locator(UPLOADER).first
    box.wait_for()
    return box


def upload(page, url: str, where: str, name: str, data: bytes, mime: str = "application/octet-stream") -> str:
    """Upload ``data`` as ``name`` on the Run or Models page; returns the uploader's and the alerts' text once the
    outcome shows (an error on the uploader itself, or an alert from the page)."""
    box = open_uploader(page, url, where)
    before = page.locator(ALERT).count()
    box.locator(FILE_INPUT).set_input_files({"name": name, "mimeType": mime, "buffer": data})
    page.wait_for_function(
        """([sel, alert, n]) => {
             const box = document.querySelector(sel);
             return (box && box.innerText.includes('Error')) || document.querySelectorAll(alert).length > n;
           }""", arg=[UPLOADER, ALERT, before], timeout=30_000)
    wait_for_app(page)
    alerts = [a.inner_text() for a in page.locator(ALERT).all()]
    return "\n".join([box.inner_text(), *alerts])


def assert_clean(page) -> None:
    text = page_text(page)
    assert "Traceback" not in text, text[-2000:]
    assert page.locator('[data-testid="stException"]').count() == 0


# ------------------------------------------------------------------------------------------------ refusals

@pytest.mark.parametrize("where", list(PAGES))
@pytest.mark.parametrize("name,mime", [("model.pkl", "application/octet-stream"), ("model.txt", "text/plain")])
def test_wrong_extension_is_refused(server, page, where, name, mime):
    url, home, _, _ = server
    before = uploads(home)
    shown = upload(page, url, where, name, b"\x80\x04not a model", mime)
    assert f"{mime} files are not allowed" in shown, shown  # Streamlit's type filter, next to the file name
    assert "Stored" not in shown
    assert uploads(home) == before
    assert_clean(page)


@pytest.mark.parametrize("where", list(PAGES))
def test_oversize_file_is_refused(server, page, where):
    url, home, _, root = server
    before = uploads(home)
    shown = upload(page, url, where, "big.onnx", os.urandom(2 * 1024 * 1024 + 1000))
    assert "File must be 1.0MB or smaller" in shown, shown  # the browser refuses it before sending a byte
    assert "413" not in shown and "AxiosError" not in shown, shown
    assert "at most 1 MB" in shown  # the label says the limit in force
    assert uploads(home) == before
    assert_clean(page)
    if where == "models":
        page.screenshot(path=str(root / "models-oversize.png"))


@pytest.mark.parametrize("where", list(PAGES))
def test_odd_file_name_is_stored_by_hash_only_under_uploads(server, page, where):
    import hashlib

    url, home, _, root = server
    data = (FIX / "token_ids.onnx").read_bytes()
    name = "../../evil model é.onnx"
    outside_before = files_under(root) - {f"home/uploads/{f}" for f in uploads(home)}
    shown = upload(page, url, where, name, data)
    stored = f"{hashlib.sha256(data).hexdigest()[:16]}.onnx"
    assert "Stored" in shown and name in shown, shown
    assert stored in uploads(home)
    assert all(not f.startswith(".") for f in uploads(home)), uploads(home)  # no temporary file left behind
    assert (home / "uploads" / stored).read_bytes() == data
    # nothing written anywhere else: not next to uploads/ (where "../../" points), not in the tmp root, not in the repo
    outside_after = files_under(root) - {f"home/uploads/{f}" for f in uploads(home)}
    new = {f for f in outside_after - outside_before if not f.endswith((".log", ".wal")) and "runs.duckdb" not in f}
    assert not new, new
    for base in (home / "uploads", ROOT, root):
        assert not (base / name).resolve().exists()
        assert not (base / "evil model é.onnx").exists()
    assert_clean(page)


@pytest.mark.parametrize("where", list(PAGES))
@pytest.mark.parametrize("case", ["text", "truncated", "external_data"])
def test_unreadable_models_are_refused_clearly(server, page, where, case):
    url, home, _, root = server
    if case == "text":
        name, data, needle = "notes.onnx", b"this is a text file, not a model\n" * 20, "is text, not an ONNX protobuf"
    elif case == "truncated":
        full = (FIX / "token_ids.onnx").read_bytes()
        name, data, needle = "truncated.onnx", full[: len(full) // 2], "truncated"
    else:
        # catalog.add_upload's own "keeps its weights in a separate file" refusal, or inspection's "... in an external
        # data file that is missing" (what a lone upload gets today: inspection refuses it first)
        name, data, needle = "external_data.onnx", (FIX / "external_data.onnx").read_bytes(), "keeps its weights in"
    before = uploads(home)
    shown = upload(page, url, where, name, data)
    errors = [e.inner_text() for e in page.locator(ALERT).filter(has=page.locator('[data-testid="stAlertContentError"]')).all()]
    assert len(errors) == 1, shown
    assert needle in errors[0] and name in errors[0], errors
    if case == "external_data":
        assert "separate file" in errors[0] or "external data file" in errors[0], errors
    assert "Stored" not in shown
    assert uploads(home) == before  # nothing stored, no half-written .upload-* file
    assert_clean(page)
    if case == "truncated" and where == "run":
        time.sleep(0.5)  # the alert's entrance animation
        page.screenshot(path=str(root / "run-truncated.png"))


# ------------------------------------------------------------------------------------------------ runs of uploads

def start_uploaded_run(page, url: str, name: str, duration_s: float) -> str:
    """Upload fixture ``name`` on the Run page (it becomes the selected model), set the duration, press Start run."""
    shown = upload(page, url, "run", name, (FIX / name).read_bytes())
    assert f"Stored {name}; it is selected below." in shown, shown
    assert page.get_by_label("Model", exact=True).input_value() == f"{name} (uploaded)"  # the Model select shows it
    page.get_by_text("Advanced", exact=True).click()
    field = page.get_by_label("Duration override (s of steady state; 0 = use the preset)")
    field.fill(str(duration_s))
    field.press("Enter")
    wait_for_app(page)
    page.get_by_role("button", name="Start run").click()
    page.wait_for_function(LIVE_JS, timeout=60_000)
    return page.evaluate(LIVE_JS)


def test_custom_op_model_is_stored_then_its_run_fails_clearly(server, page):
    from edgeprof.store import Store

    url, _, db, root = server
    start_uploaded_run(page, url, "custom_op.tflite", 1)
    err = page.locator(ALERT).filter(has_text="failed")
    err.first.wait_for(timeout=90_000)
    wait_for_app(page)
    text = err.first.inner_text()
    assert "custom op" in text and "MatrixDeterminant" in text, text
    rid = page.evaluate(LIVE_JS)
    assert rid and rid in text
    time.sleep(0.5)
    page.screenshot(path=str(root / "run-custom-op.png"))
    assert_clean(page)
    run = Store(db).get_run(rid)
    assert run["status"] == "failed" and "custom op" in run["reason"], run


def test_token_ids_model_runs_on_synthetic_input_with_a_note(server, page):
    from edgeprof.store import Store

    url, _, db, _ = server
    rid = start_uploaded_run(page, url, "token_ids.onnx", 4)
    page.get_by_text("e.g. token ids").first.wait_for(timeout=60_000)  # the live view's note while it runs
    note = page.get_by_text("e.g. token ids").first.inner_text()
    assert "integers" in note and "random ids" in note, note
    assert_clean(page)
    page.get_by_text("finished normally").wait_for(timeout=90_000)
    assert_clean(page)
    run = Store(db).get_run(rid)
    assert run["status"] == "ok", run
    assert any("token ids" in n for n in run["summary"]["notes"])
