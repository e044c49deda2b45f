"""Runs made together as one measurement, so the result carries the variation between runs.

A single run's interval describes that process only: a new process gets another memory layout, another frequency
history, other neighbours, and on a shared 2-core machine its median moved by 50% and more between runs while each
run's own interval was a few % wide (bench/bench_coverage.py). So:

- ``run_repeated``: one configuration N times, one separate worker process after another (each with its own load and
  warm-up), every run stored as itself and linked by a group id; the group's result is the median of the run
  medians with an interval between runs (``summary.group_summary``).
- ``run_interleaved``: two configurations in the order A B, B A, A B, ... so a drift in the machine's speed falls on
  both, compared pairwise (``summary.comparison_summary``).
- ``measure_noise_floor``: a short repeated run of a bundled model; how far two single runs of the same thing land
  apart on this device right now (``summary.noise_floor_summary``). The latest one is in ``Store.latest_noise_floor``.

Runs go one at a time through ``start_run`` (which holds the device lock per run); ``on_run(i, handle)`` lets the
caller watch each run and return True to stop the group after it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..config import NOISE_FLOOR_DURATION_S, NOISE_FLOOR_MODEL, NOISE_FLOOR_RUNS, RunConfig
from ..errors import EdgeprofError, UsageError
from ..store import Store, new_run_id
from .runner import RunHandle, start_run
from .summary import comparison_summary, group_summary, noise_floor_summary

OnRun = Callable[[int, RunHandle], "bool | None"]


def _store(store: Store | str | Path | None) -> Store:
    from .. import paths

    return store if isinstance(store, Store) else Store(Path(store) if store else paths.default_db())


def _check_repeat(repeat: int, least: int = 1) -> int:
    if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < least:
        raise UsageError(f"repeat must be a whole number of runs, at least {least} (got {repeat!r}).")
    return repeat


class _Group:
    """The members of one group as they run: starts each run (the group row is written once the first run has
    started, so a request refused at the start stores nothing), lets ``on_run`` watch it, and collects results."""

    def __init__(self, store: Store, kind: str, config: dict, on_run: OnRun | None):
        self.store, self.kind, self.config, self.on_run = store, kind, config, on_run
        self.group_id = new_run_id()
        self.created = False
        self.device_id: str | None = None
        self.stopped = False
        self.error: str | None = None
        self.count = 0

    def run(self, cfg: RunConfig) -> dict | None:
        """One member run to its end; None when it could not start after the first (``error`` says why)."""
        try:
            handle = start_run(cfg, self.store, group_id=self.group_id)
        except EdgeprofError as exc:
            if not self.created:
                raise
            self.error = str(exc)
            return None
        if not self.created:
            self.store.create_group(self.group_id, self.kind, None, self.config)
            self.created = True
        stop = bool(self.on_run(self.count, handle)) if self.on_run is not None else False
        self.count += 1
        result = handle.wait() or {"run_id": handle.run_id, "status": handle.status, "error": handle.reason}
        self.device_id = handle.device_id or self.device_id
        self.stopped = stop or result.get("status") == "stopped"
        return result

    def finish(self, doc: dict) -> None:
        if self.created:
            self.store.finish_group(self.group_id, doc["status"], {k: v for k, v in doc.items() if k != "runs"},
                                    device_id=self.device_id)


def run_repeated(cfg: RunConfig, store: Store | str | Path | None, repeat: int, *, kind: str = "repeat",
                 on_run: OnRun | None = None) -> dict:
    """Run ``cfg`` ``repeat`` times, each run its own worker process, one after the other; store each run with the
    group's id and the group's result; return ``summary.group_summary`` (status ok | partial | failed | stopped).

    Raises UsageError for a bad request and DeviceBusy when the device is busy, before anything is stored. A run
    refused later (another process took the device between two runs) ends the group as partial, the reason in
    ``error``."""
    _check_repeat(repeat)
    group = _Group(_store(store), kind, {"run": cfg.to_dict(), "repeat": repeat}, on_run)
    members: list[dict] = []
    try:
        for _ in range(repeat):
            result = group.run(cfg)
            if result is None:
                break
            members.append(result)
            if group.stopped:
                break
    finally:
        doc = group_summary(group.group_id, kind, members, requested=repeat, stopped=group.stopped,
                            error=group.error)
        if kind == "noise_floor":
            doc = noise_floor_summary(doc)
        group.finish(doc)
    return doc


def run_interleaved(cfg_a: RunConfig, cfg_b: RunConfig, store: Store | str | Path | None, repeat: int, *,
                    on_run: OnRun | None = None) -> dict:
    """Compare two configurations: ``repeat`` runs of each, interleaved A B, B A, A B, ... (so a steady drift of the
    machine's speed falls on both equally), each run stored and linked by one group id. Returns
    ``summary.comparison_summary``: each side's median of run medians and B/A with a paired interval between runs,
    and a sentence on whether the difference is distinguishable (for a single pair, against the device's latest
    noise floor). Raises like :func:`run_repeated`."""
    _check_repeat(repeat)
    if cfg_a == cfg_b:
        raise UsageError("the two configurations are the same.", "Change at least one setting of B (--vs KEY=VALUE).")
    store = _store(store)
    group = _Group(store, "compare", {"a": cfg_a.to_dict(), "b": cfg_b.to_dict(), "repeat": repeat}, on_run)
    sides: dict[str, list[dict]] = {"a": [], "b": []}
    try:
        order = [side for pair in range(repeat) for side in (("a", "b") if pair % 2 == 0 else ("b", "a"))]
        for side in order:
            result = group.run(cfg_a if side == "a" else cfg_b)
            if result is None:
                break
            sides[side].append(result)
            if group.stopped:
                break
    finally:
        floor = store.latest_noise_floor(group.device_id) if group.created and group.device_id else None
        doc = comparison_summary(group.group_id, sides["a"], sides["b"], requested=repeat, stopped=group.stopped,
                                 error=group.error, floor_pct=(floor or {}).get("floor_pct"))
        doc["noise_floor"] = None if floor is None else {"floor_pct": floor.get("floor_pct"),
                                                         "measured_at": str(floor["measured_at"])}
        group.finish(doc)
    return doc


def noise_floor_config(model: str = NOISE_FLOOR_MODEL, duration_s: float = NOISE_FLOOR_DURATION_S,
                       threads: int = 2) -> RunConfig:
    """The configuration a noise-floor measurement runs: a bundled model, short steady state, tagged as such."""
    return RunConfig(model=model, precision="fp32", runtime="onnx", threads=threads, duration_s=duration_s,
                     tags={"purpose": "noise_floor"})


def measure_noise_floor(store: Store | str | Path | None, *, model: str = NOISE_FLOOR_MODEL,
                        runs: int = NOISE_FLOOR_RUNS, duration_s: float = NOISE_FLOOR_DURATION_S, threads: int = 2,
                        on_run: OnRun | None = None) -> dict:
    """Measure this device's noise floor now: ``runs`` separate runs (>= 3) of ``model`` for ``duration_s`` s of
    steady state each (about 5 x 4 s with the defaults). Returns the group document with ``floor_pct`` (None when
    fewer than 3 runs finished ok; a floor from 3 of 5 ok runs is kept, its group ``partial``) and ``floor_note``;
    stored, so pages read the latest with ``Store.latest_noise_floor``."""
    _check_repeat(runs, 3)
    cfg = noise_floor_config(model, duration_s, threads)
    return run_repeated(cfg, store, runs, kind="noise_floor", on_run=on_run)
