"""The booth's showcase (edgeprof.showcase, views/0_Booth.py): photos judged before decoding, a real photo through the
real worker in every precision, the cards and the sentence, the busy state shown before anyone presses anything, and
the page as a visitor sees it (AppTest)."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT
from PIL import Image
from streamlit.testing.v1 import AppTest

from edgeprof import showcase, ui
from edgeprof.errors import EdgeprofError
from edgeprof.models.catalog import get_model
from edgeprof.models.preprocess import image_tensor
from edgeprof.runtimes import TensorSpec
from edgeprof.runtimes.inputs import top_classes
from edgeprof.store import Store

TIMEOUT = 120


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 40, 40)).save(buf, "PNG")
    return buf.getvalue()


def _bomb(w: int, h: int) -> bytes:
    """A 1x1 PNG whose header (with a valid CRC) declares ``w`` x ``h`` pixels."""
    data = bytearray(_png(1, 1))
    ihdr = data.index(b"IHDR")
    body = struct.pack(">II", w, h) + bytes(data[ihdr + 12:ihdr + 17])
    data[ihdr + 4:ihdr + 17] = body
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(b"IHDR" + body) & 0xFFFFFFFF)
    return bytes(data)


def test_photos_are_judged_before_decoding_and_refused_in_one_sentence():
    assert showcase.open_photo(_png(40, 30)).size == (40, 30)
    cases = {
        b"": "the photo is empty.",
        b"x" * 2048: "this file is not a photo that can be read",
        _bomb(9_000, 8_000): "the photo is 9000 x 8000 pixels; up to 40 million pixels are taken.",
        _bomb(100_000, 100_000): "the photo declares more pixels than it can hold (a decompression bomb).",
    }
    for data, said in cases.items():
        with pytest.raises(showcase.PhotoError) as err:
            showcase.open_photo(data)
        assert said in str(err.value)
        assert "Traceback" not in str(err.value)
    with pytest.raises(showcase.PhotoError, match=r"the photo is 0\.0 MB; photos up to 0 MB"):
        showcase.open_photo(_png(4, 4), max_bytes=10)


def test_top_classes_softmax_logits_and_dequantize():
    top = top_classes(np.array([[1.0, 3.0, 2.0]], np.float32), TensorSpec("y", (1, 3), "float32"))
    assert [i for i, _ in top] == [1, 2, 0]
    assert sum(p for _, p in top) == pytest.approx(1.0)
    probs = top_classes(np.array([0.1, 0.7, 0.2]), TensorSpec("y", (3,), "float32"), k=1)
    assert probs == [(1, pytest.approx(0.7))]
    q = top_classes(np.array([[-128, 127]], np.int8), TensorSpec("y", (1, 2), "int8", quantization=(1 / 256, -128)))
    assert q[0][0] == 1


def _card(precision, label, p50, size, agrees=None):
    return showcase.Card(precision, "r", label=label, confidence=0.5, p50_ms=p50, size_mb=size, peak_mb=30.0,
                         agrees=agrees)


def test_the_sentence_names_speed_size_and_agreement():
    fp32 = _card("fp32", "tiger cat", 6.0, 17.7)
    cards = [fp32, _card("fp16", "tiger cat", 10.0, 8.9, True), _card("int8-static", "tiger cat", 2.0, 4.4, True)]
    assert showcase.verdict(cards) == "INT8 static agreed with FP32 and was 3.0x faster at a quarter of the size."
    cards[2] = _card("int8-static", "tabby", 2.0, 8.85, False)
    assert showcase.verdict(cards) == ("INT8 static said \u201ctabby\u201d where FP32 said \u201ctiger cat\u201d; it "
                                       "was 3.0x faster at half the size.")
    assert showcase.verdict([fp32]) == "No precision gave a result."


def test_a_photo_runs_in_every_precision_through_the_worker_and_the_store(edgeprof_home):
    info = get_model(showcase.SHOWCASE_MODEL)
    photo = showcase.open_photo((ROOT / "models" / "images" / "chelsea.jpg").read_bytes())
    tensors = {layout: image_tensor(photo, info.preprocessing, layout) for layout in ("NCHW", "NHWC")}
    store = Store(edgeprof_home / "runs.duckdb")
    seen = []
    result = showcase.run_photo(tensors, store, threads=1, progress=lambda i, n, p: seen.append(p))
    runtime = showcase.showcase_runtime()
    assert seen == showcase.precisions(runtime) and len(seen) >= 3
    fp32 = result.cards[0]
    assert fp32.precision == "fp32" and fp32.label in ("tiger cat", "tabby", "Egyptian cat")  # a cat, really
    for c in result.cards:
        assert c.error is None, c.error
        assert c.p50_ms > 0 and c.size_mb > 0 and c.peak_mb > 0 and 0 < c.confidence <= 1
        run = store.get_run(c.run_id)
        assert run["status"] == "ok" and run["tags"] == {"showcase": "photo"}
        # the size in the app's one MB (10**6 bytes): the Models page and `edgeprof models` read 18.55, not 17.7
        listed = store.list_runs().set_index("run_id").loc[c.run_id, "model_size_mb"]
        assert c.size_mb == pytest.approx(listed) and ui.fmt_file_mb(c.size_mb) == f"{listed:.2f} MB"
        assert run["summary"]["prediction"][0]["index"] == info.labels.index(c.label)
        assert "input: the tensor in photo-" in " ".join(run["summary"]["notes"])
        assert not Path(run["config"]["input_file"]).exists(), "the photo's tensor outlived its runs"
    assert [c.agrees for c in result.cards[1:]] == [c.label == fp32.label for c in result.cards[1:]]
    assert result.sentence.endswith("of the size.") or result.sentence.endswith("the size.")


def test_a_tensor_of_the_wrong_shape_is_a_failed_run_with_one_sentence(edgeprof_home, tmp_path):
    from edgeprof.config import RunConfig
    from edgeprof.run import start_run

    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((1, 3, 8, 8), np.float32))
    res = start_run(RunConfig("digits-cnn", duration_s=0.2, input_file=str(bad)),
                    edgeprof_home / "runs.duckdb").wait(60)
    assert res["status"] == "failed"
    assert "the input file holds a tensor of shape [1, 3, 8, 8]; the model takes [1, 1, 8, 8]" in res["error"]
    with pytest.raises(EdgeprofError, match="input file must be the path of a .npy file"):
        RunConfig("digits-cnn", input_file="photo.jpg")


def test_busy_device_is_said_with_the_wait_before_anyone_presses_anything(edgeprof_home):
    from edgeprof.run.runner import DeviceLock

    assert showcase.device_busy() is None
    lock = DeviceLock()
    lock.acquire("01abc")
    try:
        busy = showcase.device_busy()
        assert busy.holder.startswith("01abc") and busy.wait_s is None
        assert busy.sentence == "The device is busy with another run: your turn when it ends."
        assert showcase.Busy("x", 18.0, "a run of digits-cnn fp32").sentence.startswith(
            "The device is busy with a run of digits-cnn fp32: your turn in ~20 s.")
    finally:
        lock.release()


@pytest.fixture
def visitor(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    monkeypatch.setenv("EDGEPROF_PASSWORD", "visitors")
    monkeypatch.setenv("EDGEPROF_ADMIN_PASSWORD", "staff")


def _texts(at) -> str:
    kinds = ("error", "info", "warning", "markdown", "caption", "success")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def test_a_visitor_lands_on_the_showcase_and_gets_the_card_row_in_one_click(visitor):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.text_input(key="login_password").input("visitors")
    at.button[0].click().run()
    assert not at.exception, at.exception
    text = _texts(at)
    assert "What does a smaller model cost?" in text
    assert "The device is free." in text
    assert not [b for b in at.button if b.label == "Start run"], "a visitor lands on the showcase, not the Run page"
    at.button(key="classify").click().run()
    assert not at.exception, at.exception
    text = _texts(at)
    assert "agreed with FP32" in text or "where FP32 said" in text
    for title in ("FP32", "INT8 static"):
        assert f"**{title}**" in text
    assert "per photo" in text and "MB peak memory" in text
    assert re.search(r"\b\d+\.\d\d MB model", text), text  # ui.fmt_file_mb, as the Models page writes sizes
    assert "the photo is not kept" in text


def test_staff_still_land_on_the_run_page_and_reach_the_showcase_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert at.button(key="start").label == "Start run"
    page = AppTest.from_file(str(ROOT / "views" / "0_Booth.py"), default_timeout=TIMEOUT).run()
    assert not page.exception, page.exception
    assert "Pick a photo" in _texts(page)


def test_the_showcase_says_the_device_is_busy_before_anyone_presses_anything(visitor):
    from edgeprof.run.runner import DeviceLock

    lock = DeviceLock()
    lock.acquire("01busy")
    try:
        at = AppTest.from_file(str(ROOT / "views" / "0_Booth.py"), default_timeout=TIMEOUT)
        at.session_state["edgeprof_role"] = "visitor"
        at.run()
        assert not at.exception, at.exception
        assert "The device is busy with another run: your turn when it ends." in _texts(at)
        at.button(key="classify").click().run()
        text = _texts(at)
        assert "your turn" in text and "Error" not in text and not at.error  # a wait, not a refusal
    finally:
        lock.release()


def test_the_run_page_says_the_device_is_busy_before_start(tmp_path, monkeypatch):
    from edgeprof.run.runner import DeviceLock

    monkeypatch.setenv("EDGEPROF_DB", str(tmp_path / "runs.duckdb"))
    lock = DeviceLock()
    lock.acquire("01cli")
    try:
        at = AppTest.from_file(str(ROOT / "views" / "1_Run.py"), default_timeout=TIMEOUT).run()
        assert not at.exception, at.exception
        assert "The device is busy with another run: your turn when it ends." in _texts(at)
        assert at.button(key="start").disabled
    finally:
        lock.release()
