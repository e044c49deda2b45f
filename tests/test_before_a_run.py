"""Before a run measures anything: the CLI's progress lines while it prepares (a quantized variant being built), said
when they change and every few seconds, never "starting preparing n=0" once a second; a variant not built yet shows
its inputs."""

from __future__ import annotations

import time

import numpy as np

from edgeprof.cli import run as cli_run


class Preparing:
    """A RunHandle that prepares for ``seconds`` (its notes change once), then finishes without a sample."""

    def __init__(self, seconds: float):
        self.started_ns = time.monotonic_ns()
        self.until = time.monotonic() + seconds
        self.half = time.monotonic() + seconds / 2

    def wait(self, timeout):
        time.sleep(timeout)
        return {"status": "ok"} if time.monotonic() >= self.until else None

    def count(self):
        return 0

    def snapshot(self, since_seq=0):
        notes = ["int8-static: pre-processing"] + (["int8-static: calibrating"] if time.monotonic() > self.half else [])
        return {"status": "starting", "phase": "preparing", "notes": notes, "latency_ns": np.array([], np.int64)}


def test_preparing_is_said_when_it_changes_not_every_second(capsys, monkeypatch):
    monkeypatch.setattr(cli_run, "PREPARING_EVERY_S", 100.0)
    cli_run._follow(Preparing(4.5), quiet=False)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["preparing: int8-static: pre-processing",
                                                          "preparing: int8-static: calibrating"], lines
    assert not any("n=0" in line for line in lines)


def test_a_users_file_shows_its_inputs_before_its_int8_variant_is_built(tmp_path):
    """Choosing int8-static for an uploaded fp32 model said "the model's inputs cannot be read (model file
    .../cache/....onnx does not exist)" before a run that then worked."""
    import shutil

    from edgeprof.models.catalog import get_model, model_inputs, resolve_variant

    mine = tmp_path / "mine.onnx"
    shutil.copy(get_model("digits-cnn").variant("fp32", "onnx").path, mine)
    variant = resolve_variant(str(mine), "int8-static", None, build=False)
    assert not variant.path.is_file()
    (spec,) = model_inputs(variant)
    assert spec.dtype == "float32" and len(spec.shape) == 4
