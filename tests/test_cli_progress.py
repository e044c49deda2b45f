"""The CLI's progress lines while a run prepares (a quantized variant being built): what is being done, said when it
changes and every few seconds, never "starting preparing n=0" once a second."""

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
