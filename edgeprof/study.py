"""Studies: a grid of runs (models x precisions x runtimes x memory limits x threads x repetitions), run one cell
after another with a cooldown between cells, resumable after an interruption.

A study is described by a preset (``studies/<name>.toml``) or a TOML file of the same format (docs/studies.md).
``StudyConfig`` is frozen and validated when it is built; the resolved config is stored with the study, so a resumed
study runs exactly the grid it started with.

Cell order (see docs/studies.md for the why): repetitions outermost; within a repetition the variants (model,
precision, runtime, threads) in an order rotated from one repetition to the next; within a variant the memory
limits from the most generous ("none") down to the tightest.

Resuming: every cell has a key (``r0|digits-cnn|fp32|onnx|t2|1.25x``) stored with ``Store.set_cell``. A cell whose
status is final (``FINAL_STATUSES``) is never rerun. A cell left ``running`` by a killed study has its stale run
marked ``interrupted`` (``Store.mark_interrupted``, via ``runs_cli.recover``) and is run again.

Relative memory limits ("2x") are multiples of the variant's footprint: the peak memory the kernel charged to an
ok run of the variant under a non-binding cap on this device. A "none" cell runs under such a cap (the device's whole
RAM) where a memory cgroup exists, so it measures the footprint itself; otherwise a stored run is reused or one
calibration run is made (cell key ``calibrate|model|precision|runtime|tN``, outside the grid).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path

from . import paths
from .config import PRECISIONS, RUNTIMES, RunConfig
from .config import PRESETS as RUN_PRESETS
from .errors import ConfigError, EdgeprofError, UsageError
from .locks import HolderLock

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

STUDIES_DIR = paths.STUDIES_DIR
STUDY_PRESETS = ("quick", "paper")
# A cell with one of these statuses is a result and is never rerun; "error" means no run record could be made.
FINAL_STATUSES = ("ok", "oom_killed", "crashed", "timed_out", "failed", "error")
# Counted in "failed": the cell produced no run record, or its run ended failed (the tool, not the device, gave up).
FAILED_STATUSES = ("failed", "error")
PRECISION_BITS = {"fp32": 32, "fp16": 16, "int8-dynamic": 8, "int8-static": 8}
CELL_OVERHEAD_S = 3.0  # spawn, import, load and warm-up on top of the measured seconds; used for estimates only
BUSY_WAIT_S = 300.0  # how long a cell waits for a device held by another run before the study gives up
NON_BINDING = 1.5  # a cap this many times a run's charged peak did not shape it: the peak is the footprint

_KEYS = ("name", "description", "models", "precisions", "runtimes", "memory_limits", "threads", "repetitions",
         "duration_s", "iterations", "run_preset", "warmup", "timeout_s", "cooldown_s", "sample_hz", "inputs")
_INPUT_KEYS = ("input_shapes", "input_fills")
_MEM_RE = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>x|mb|MB|)\s*$")


class StudyBusy(EdgeprofError):
    exit_code = 1


# ------------------------------------------------------------------------------------------------ memory limits

@dataclass(frozen=True)
class MemLimit:
    """One memory-limit setting: ``kind`` none | mb | factor; ``label`` is its canonical text (used in cell keys)."""

    kind: str
    value: float | None
    label: str

    def resolve(self, footprint_mb: float | None) -> float | None:
        if self.kind == "none":
            return None
        if self.kind == "mb":
            return self.value
        return None if footprint_mb is None else round(self.value * footprint_mb, 3)


def parse_memory_limit(value) -> MemLimit:
    """``"none"`` (or 0), a number of MB (``256``, ``"256MB"``), or a multiple of the footprint (``"1.25x"``)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
        return MemLimit("none", None, "none")
    if isinstance(value, bool):
        raise ConfigError(f"memory limit {value!r} is not 'none', a number of MB or a multiple like '2x'.")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"memory limit {value!r} must be a positive number of MB, 'none' or a multiple like '2x'.")
        return MemLimit("none", None, "none") if value == 0 else MemLimit("mb", float(value), f"{float(value):g}MB")
    m = _MEM_RE.match(str(value))
    if not m:
        raise ConfigError(f"memory limit {value!r} is not one of: 'none', a number of MB (256 or '256MB'), "
                          "a multiple of the variant's footprint ('2x', '0.75x').")
    num = float(m["num"])
    if m["unit"] == "x":
        if num <= 0:
            raise ConfigError(f"memory limit {value!r}: a multiple of the footprint must be above 0.")
        return MemLimit("factor", num, f"{num:g}x")
    return MemLimit("none", None, "none") if num == 0 else MemLimit("mb", num, f"{num:g}MB")


# ------------------------------------------------------------------------------------------------ config

def _as_list(name: str, value, allowed: tuple | None = None) -> tuple:
    if value is None:
        raise ConfigError(f"{name} is missing" + (f"; allowed: {', '.join(allowed)} or 'all'." if allowed else "."))
    if isinstance(value, str) and value.strip().lower() == "all":
        if allowed is None:
            raise ConfigError(f"{name} cannot be 'all'.")
        return tuple(allowed)
    if isinstance(value, (str, int, float)):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{name} must be a non-empty list" + (f" of: {', '.join(allowed)}." if allowed else "."))
    out = []
    for v in value:
        if allowed is not None and v not in allowed:
            raise ConfigError(f"{name}: {v!r} is not one of: {', '.join(map(str, allowed))} (or 'all').")
        if v in out:
            raise ConfigError(f"{name}: {v!r} is listed twice.")
        out.append(v)
    return tuple(out)


def _opt_number(name: str, value, minimum: float, integer: bool = False):
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}.")
    try:
        num = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}.") from None
    if integer and float(value) != num:
        raise ConfigError(f"{name} must be a whole number, got {value!r}.")
    if not math.isfinite(num) or num < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, got {value!r}.")
    return num


def _model_file(model: str) -> bool:
    """A model path a study can use: an existing .onnx/.tflite file, without '|' (the cell key's separator)."""
    return model.lower().endswith((".onnx", ".tflite")) and "|" not in model and Path(model).is_file()


def _study_inputs(value, models: tuple) -> dict:
    """``inputs`` validated as RunConfig validates --shape/--fill: {model: {"input_shapes": .., "input_fills": ..}}."""
    from .config import _input_fills, _input_shapes

    if not isinstance(value, dict):
        raise ConfigError("inputs must be a table per model: [inputs.MODEL] with input_shapes and input_fills.")
    out = {}
    for model, spec in value.items():
        if model not in models:
            raise ConfigError(f"inputs names model {model!r}, which is not in the study's models.")
        if not isinstance(spec, dict) or set(spec) - set(_INPUT_KEYS):
            raise ConfigError(f"inputs.{model} may hold only {' and '.join(_INPUT_KEYS)}, e.g. "
                              "input_shapes = { input = \"1x512\" }, input_fills = { sr = 16000 }.")
        shapes = _input_shapes(spec.get("input_shapes", {}))
        fills = _input_fills(spec.get("input_fills", {}))
        known = _input_names(model)
        unknown = sorted((set(shapes) | set(fills)) - known) if known else []
        if unknown:
            raise ConfigError(f"inputs.{model} names {', '.join(map(repr, unknown))}, which no variant of {model} has "
                              f"as an input; its inputs are {', '.join(map(repr, sorted(known)))}.")
        out[model] = {"input_shapes": {k: list(v) for k, v in shapes.items()}, "input_fills": fills}
    return out


def _input_names(model: str, precision: str | None = None, runtime: str | None = None) -> set[str]:
    """Input names of the model's variants (of one variant when precision and runtime are given); an empty set when
    no file can be read (the run then says why). ONNX and TFLite exports of one model often name inputs differently
    ("input" and "serving_default_input:0"), so a study names both and each variant takes the one it has."""
    from .models.catalog import model_inputs, resolve_variant

    formats = [runtime] if runtime else (["onnx", "tflite"] if model in _bundled_models() else [None])
    names: set[str] = set()
    for fmt in formats:
        try:
            names |= {s.name for s in model_inputs(resolve_variant(model, precision or "fp32", fmt, build=False))}
        except EdgeprofError:
            continue
    return names


def _bundled_models() -> tuple[str, ...]:
    from .models.catalog import model_names

    return tuple(model_names())


@dataclass(frozen=True)
class StudyConfig:
    """A study's grid and how each cell is measured. Lists may be given as ``"all"`` (resolved when built)."""

    name: str
    models: tuple = ()
    precisions: tuple = ("fp32",)
    runtimes: tuple = ("onnx",)
    memory_limits: tuple = ("none",)
    threads: tuple = (2,)
    repetitions: int = 1
    duration_s: float | None = None
    iterations: int | None = None
    run_preset: str | None = None  # RunConfig duration preset when duration_s and iterations are both absent
    warmup: str | int = "auto"
    timeout_s: float | None = None
    cooldown_s: float = 2.0
    sample_hz: float = 10.0
    description: str = ""
    # per model: {"input_shapes": {input: "1x512"}, "input_fills": {input: 16000}}, as --shape/--fill of `run`
    inputs: dict = field(default_factory=dict)

    def __post_init__(self):
        set_ = object.__setattr__
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", self.name):
            raise ConfigError(f"study name {self.name!r} must be 1-64 letters, digits, '-', '_' or '.'.")
        bundled = _bundled_models()
        every = isinstance(self.models, str) and self.models.strip().lower() == "all"
        models = bundled if every else _as_list("models", self.models or None, None)
        for m in models:
            if not isinstance(m, str) or (m not in bundled and not _model_file(m)):
                raise ConfigError(f"models: {m!r} is not one of: {', '.join(bundled)}, nor a .onnx or .tflite file "
                                  "that exists.")
        set_(self, "models", models)
        set_(self, "inputs", _study_inputs(self.inputs, models))
        set_(self, "precisions", _as_list("precisions", self.precisions, PRECISIONS))
        set_(self, "runtimes", _as_list("runtimes", self.runtimes, RUNTIMES))
        limits = [parse_memory_limit(v) for v in _as_list("memory_limits", self.memory_limits)]
        labels = [x.label for x in limits]
        dup = {x for x in labels if labels.count(x) > 1}
        if dup:
            raise ConfigError(f"memory_limits: {', '.join(sorted(dup))} listed twice.")
        set_(self, "memory_limits", tuple(labels))
        threads = tuple(_opt_number("threads", t, 1, integer=True) for t in _as_list("threads", self.threads))
        if len(set(threads)) != len(threads):
            raise ConfigError("threads: a value is listed twice.")
        set_(self, "threads", threads)
        set_(self, "repetitions", _opt_number("repetitions", self.repetitions, 1, integer=True))
        set_(self, "duration_s", _opt_number("duration_s", self.duration_s, 0.05))
        set_(self, "iterations", _opt_number("iterations", self.iterations, 1, integer=True))
        if self.run_preset is not None and self.run_preset not in RUN_PRESETS:
            raise ConfigError(f"run_preset {self.run_preset!r} is not one of: {', '.join(RUN_PRESETS)}.")
        if self.duration_s is None and self.iterations is None and self.run_preset is None:
            set_(self, "run_preset", "quick")
        if self.warmup != "auto":
            set_(self, "warmup", _opt_number("warmup", self.warmup, 0, integer=True))
        set_(self, "timeout_s", _opt_number("timeout_s", self.timeout_s, 1))
        if self.timeout_s is not None and self.timeout_s <= self.cell_seconds():
            raise ConfigError(f"timeout_s ({self.timeout_s:g} s) must be longer than the {self.cell_seconds():g} s each "
                              "cell measures (it also covers loading and warm-up): raise it or leave it out.")
        set_(self, "cooldown_s", _opt_number("cooldown_s", self.cooldown_s, 0))
        set_(self, "sample_hz", _opt_number("sample_hz", self.sample_hz, 0.1))
        if not isinstance(self.description, str):
            raise ConfigError("description must be text.")

    # -- construction ---------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, doc: dict) -> StudyConfig:
        if not isinstance(doc, dict):
            raise ConfigError("a study description must be a table of settings.")
        unknown = sorted(set(doc) - set(_KEYS))
        if unknown:
            raise ConfigError(f"unknown study setting(s) {', '.join(unknown)}; allowed: {', '.join(_KEYS)}.")
        if "name" not in doc:
            raise ConfigError("a study needs a name (name = \"my-study\").")
        return cls(**doc)

    @classmethod
    def from_toml(cls, text: str, *, source: str = "the study file") -> StudyConfig:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source} is not valid TOML ({exc}).", "See docs/studies.md for the format.") from None
        return cls.from_dict(doc)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> StudyConfig:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise UsageError(f"cannot read the study file {p}: {exc.strerror or exc}.") from None
        return cls.from_toml(text, source=str(p))

    def to_dict(self) -> dict:
        doc = asdict(self)
        for k in ("models", "precisions", "runtimes", "memory_limits", "threads"):
            doc[k] = list(doc[k])
        return doc

    def with_overrides(self, duration_s: float | None = None, cooldown_s: float | None = None,
                       iterations: int | None = None) -> StudyConfig:
        """A longer duration moves the per-cell timeout by as much, so the slack the study allowed (for load, warm-up
        and thrashing under a tight cap) is kept: a timeout written for 3-s cells must not end every 146-s cell."""
        changes: dict = {}
        if duration_s is not None:
            changes["duration_s"] = duration_s
            if self.timeout_s is not None and duration_s > self.cell_seconds():
                changes["timeout_s"] = self.timeout_s + (duration_s - self.cell_seconds())
        if cooldown_s is not None:
            changes["cooldown_s"] = cooldown_s
        if iterations is not None:
            changes["iterations"] = iterations
        return replace(self, **changes) if changes else self

    # -- the grid -----------------------------------------------------------------------------------------------
    @property
    def limits(self) -> tuple[MemLimit, ...]:
        return tuple(parse_memory_limit(x) for x in self.memory_limits)

    @property
    def variants(self) -> list[tuple[str, str, str, int]]:
        return [(m, p, r, t) for m in self.models for p in self.precisions for r in self.runtimes for t in self.threads]

    @property
    def n_cells(self) -> int:
        return len(self.variants) * len(self.memory_limits) * self.repetitions

    def cell_seconds(self) -> float:
        if self.duration_s is not None:
            return self.duration_s
        if self.iterations is not None:
            return 1.0
        return RUN_PRESETS[self.run_preset][0]

    def estimate_s(self) -> float:
        """A rough wall-clock estimate: measured seconds plus a fixed overhead and the cooldown per cell."""
        return self.n_cells * (self.cell_seconds() + CELL_OVERHEAD_S + self.cooldown_s)

    def grid_signature(self) -> dict:
        """What must match for a resumed study to be the same study (the cooldown may change)."""
        doc = self.to_dict()
        doc.pop("cooldown_s")
        doc.pop("description")
        return doc


def preset_path(name: str) -> Path:
    return STUDIES_DIR / f"{name}.toml"


def load_preset(name: str) -> StudyConfig:
    if name not in STUDY_PRESETS:
        raise UsageError(f"study preset {name!r} is not one of: {', '.join(STUDY_PRESETS)}.",
                         "Or pass --file with a TOML study description.")
    return StudyConfig.from_file(preset_path(name))


def preset_text(name: str) -> str:
    load_preset(name)  # validates the name
    return preset_path(name).read_text()


# ------------------------------------------------------------------------------------------------ cells and order

@dataclass(frozen=True)
class Cell:
    rep: int
    model: str
    precision: str
    runtime: str
    threads: int
    mem: str  # the canonical memory-limit label

    @property
    def key(self) -> str:
        return f"r{self.rep}|{self.model}|{self.precision}|{self.runtime}|t{self.threads}|{self.mem}"

    @property
    def variant(self) -> tuple[str, str, str, int]:
        return (self.model, self.precision, self.runtime, self.threads)


def calibration_key(variant: tuple[str, str, str, int]) -> str:
    m, p, r, t = variant
    return f"calibrate|{m}|{p}|{r}|t{t}"


def parse_cell_key(key: str) -> dict | None:
    parts = key.split("|")
    if len(parts) != 6 or not parts[0].startswith("r") or not parts[4].startswith("t"):
        return None
    return {"rep": int(parts[0][1:]), "model": parts[1], "precision": parts[2], "runtime": parts[3],
            "threads": int(parts[4][1:]), "mem": parts[5]}


def variant_order(cfg: StudyConfig, rep: int) -> list[tuple[str, str, str, int]]:
    """Variants for repetition ``rep``: the list rotated by floor(rep * V / R) (rep mod V when R > V), so over the
    R repetitions each variant runs at evenly spread positions of a pass: near the start, the middle, the end."""
    v = cfg.variants
    if not v:
        return []
    n, reps = len(v), cfg.repetitions
    k = (rep * n) // reps if reps <= n else rep % n
    return v[k:] + v[:k]


def order_limits(limits: tuple[MemLimit, ...], footprint_mb: float | None) -> list[MemLimit]:
    """Most generous first: "none", then by resolved MB descending (relative ones by factor if no footprint)."""
    def key(x: MemLimit):
        if x.kind == "none":
            return (0, 0.0)
        mb = x.resolve(footprint_mb)
        return (1, -(mb if mb is not None else x.value * 1e6))

    return sorted(limits, key=key)


def plan(cfg: StudyConfig, footprints: dict | None = None) -> list[Cell]:
    """All cells in execution order. Footprints (variant -> MB) order mixed absolute and relative limits."""
    footprints = footprints or {}
    cells = []
    for rep in range(cfg.repetitions):
        for var in variant_order(cfg, rep):
            for lim in order_limits(cfg.limits, footprints.get(var)):
                cells.append(Cell(rep, *var, lim.label))
    return cells


# ------------------------------------------------------------------------------------------------ study lock

class StudyLock(HolderLock):
    """One study at a time per device, any process: an flock on ``study.lock`` in the data directory."""

    def __init__(self, path: Path | None = None):
        super().__init__(path or paths.data_dir() / "study.lock", StudyBusy, "study")


# ------------------------------------------------------------------------------------------------ footprints

def accounting_cap_mb() -> float | None:
    """A cap that never binds but makes the kernel account the run's charged memory: the device's whole RAM.
    None where no memory cgroup can be made (then a "none" cell runs truly uncapped and the footprint is RSS)."""
    from .worker import limits

    if limits.detect().kind not in ("cgroup1", "cgroup2"):
        return None
    import psutil

    return float(psutil.virtual_memory().total // 2**20)


def this_device_id() -> str:
    from .store import device_id_for
    from .telemetry import static_info

    return device_id_for(static_info())


def stored_footprint(store, variant: tuple[str, str, str, int], device_id: str | None, *,
                     charged: bool = True, study_id: str | None = None) -> tuple[float, str, str] | None:
    """(MB, run id, kind) from an ok run of ``variant`` on this device under a non-binding cap (the cap at least
    NON_BINDING times the peak it charged), or, without cgroups (``charged=False``), an uncapped run's peak RSS.

    The first such run of ``study_id`` wins (so every repetition and a resumed study use the same footprint), else
    the newest on the device."""
    model, precision, runtime, threads = variant
    df = store.list_runs(model=model, precision=precision, status="ok")
    if df is None or df.empty:
        return None
    df = df[(df["runtime"] == runtime) & (df["threads"] == threads)]
    if device_id is not None:
        df = df[df["device_id"] == device_id]
    if charged:
        df = df[df["peak_charged_mb"].notna() & df["memory_limit_mb"].notna()]
        df = df[df["memory_limit_mb"] >= NON_BINDING * df["peak_charged_mb"]]
        col, kind = "peak_charged_mb", "charged"
    else:
        df = df[df["memory_limit_mb"].isna() & df["peak_rss_mb"].notna()]
        col, kind = "peak_rss_mb", "rss"
    if df.empty:
        return None
    mine = df[df["study_id"] == study_id] if study_id is not None else df.iloc[0:0]
    row = mine.iloc[-1] if len(mine) else df.iloc[0]  # list_runs is newest first
    return float(row[col]), str(row["run_id"]), kind


# ------------------------------------------------------------------------------------------------ running

def new_study_id(name: str) -> str:
    return f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def _now() -> float:
    return time.monotonic()


@dataclass
class Progress:
    """What a study reports after each step; also the page's progress bar."""

    study_id: str
    total: int
    done: int = 0
    failed: int = 0
    state: str = "starting"  # starting | running | cooldown | done | stopped | failed
    current: str | None = None
    last: dict | None = None
    started: float = field(default_factory=_now)
    elapsed_s: float = 0.0
    eta_s: float | None = None
    ran_this_session: int = 0
    message: str | None = None
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> dict:
        return {"study_id": self.study_id, "cells": self.total, "done": self.done, "failed": self.failed}


class _Stopped(Exception):
    pass


class StudyRunner:
    """Runs one study in the calling thread; ``stop()`` from another thread ends it after stopping the current run."""

    def __init__(self, cfg: StudyConfig, store, *, study_id: str | None = None,
                 progress: Callable[[Progress], None] | None = None, lock: StudyLock | None = None,
                 busy_wait_s: float = BUSY_WAIT_S):
        self.cfg = cfg
        self.store = store
        self.study_id = study_id or new_study_id(cfg.name)
        self.progress = Progress(self.study_id, cfg.n_cells)
        self._on_progress = progress
        self._lock = lock
        self._stop = threading.Event()
        self._handle = None
        self._busy_wait_s = busy_wait_s
        self.footprints: dict = {}  # variant -> (MB, run id, kind)

    # -- public ---------------------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        h = self._handle
        if h is not None:
            h.stop()

    def run(self) -> dict:
        """Run (or resume) the study; returns {"study_id", "cells", "done", "failed"}."""
        from .runs_cli import recover

        own_lock = self._lock is None
        lock = self._lock or StudyLock()
        if own_lock:
            lock.acquire(self.study_id)
        try:
            recover(self.store)
            self._open_study()  # a refusal here leaves the stored study as it was
            self._state("running")
            try:
                try:
                    self._run_grid()
                except KeyboardInterrupt:
                    raise _Stopped from None
            except _Stopped:
                self.store.set_study_status(self.study_id, "stopped")
                self._state("stopped", "stopped before the grid was finished; resume it with its id")
                return self.progress.summary()
            except BaseException as exc:
                # keep "running" in the database only for a kill; an error is recorded so the list says so
                with contextlib.suppress(Exception):
                    self.store.set_study_status(self.study_id, "failed")
                self._state("failed", str(exc))
                raise
            final = self.progress.done == self.progress.total
            self.store.set_study_status(self.study_id, "done" if final else "stopped")
            self._state("done" if final else "stopped")
            return self.progress.summary()
        finally:
            if own_lock:
                lock.release()

    # -- steps ----------------------------------------------------------------------------------------------------
    def _open_study(self) -> None:
        store, sid = self.store, self.study_id
        existing = store.list_studies()
        row = existing[existing["study_id"] == sid] if not existing.empty else existing
        doc = {"kind": "edgeprof-study", "version": 1, **self.cfg.to_dict()}
        if len(row):
            stored = stored_config(row.iloc[0]["config"])
            if stored is not None and stored.grid_signature() != self.cfg.grid_signature():
                raise UsageError(f"study {sid} was started with a different grid or run settings "
                                 f"({stored.name}, {stored.n_cells} cells).",
                                 "Resume it with only --study-id (its stored settings are used), or start a new study.")
            store.set_study_status(sid, "running")
        else:
            store.create_study(sid, self.cfg.name, doc, status="running")
        cells = store.cells(sid)
        self._cells = {r.cell_key: (r.run_id, r.status) for r in cells.itertuples()} if not cells.empty else {}
        # a cell left running by a killed study: its run is interrupted now (recover() marked it); run it again
        for key, (run_id, status) in list(self._cells.items()):
            if status == "running":
                run = store.get_run(run_id) if isinstance(run_id, str) else None
                # killed after its run recorded a result but before the cell did: the result stands
                new = run["status"] if run is not None and run["status"] in FINAL_STATUSES else "interrupted"
                store.set_cell(sid, key, run_id, new)
                self._cells[key] = (run_id, new)
        grid = {c.key for c in plan(self.cfg)}
        self.progress.done = sum(1 for k, (_, s) in self._cells.items() if k in grid and s in FINAL_STATUSES)
        self.progress.failed = sum(1 for k, (_, s) in self._cells.items() if k in grid and s in FAILED_STATUSES)

    def _run_grid(self) -> None:
        cfg = self.cfg
        self._cap = accounting_cap_mb()
        self._device_id = this_device_id()
        self._ran_any = False
        for rep in range(cfg.repetitions):
            for var in variant_order(cfg, rep):
                todo = [lim for lim in cfg.limits if not self._final(Cell(rep, *var, lim.label).key)]
                if not todo:
                    continue
                # the generous end first: "none" measures the footprint the relative limits need
                for lim in order_limits(tuple(todo), self._footprint_mb(var)):
                    if lim.kind == "factor" and var not in self.footprints:
                        self._calibrate(var, rep)
                    self._run_cell(Cell(rep, *var, lim.label), lim)

    def _before_run(self) -> None:
        """The cooldown between two runs (none before the first run of this session)."""
        if self._ran_any:
            self._cooldown()
        self._ran_any = True

    def _final(self, key: str) -> bool:
        return self._cells.get(key, (None, None))[1] in FINAL_STATUSES

    def _footprint_mb(self, var) -> float | None:
        if var not in self.footprints:
            found = stored_footprint(self.store, var, self._device_id, charged=self._cap is not None,
                                     study_id=self.study_id)
            if found is not None:
                self.footprints[var] = found
        fp = self.footprints.get(var)
        return fp[0] if fp else None

    def _calibrate(self, var, rep: int) -> None:
        """Find or measure the footprint of ``var``: a stored run, else one run under the non-binding cap."""
        if self._footprint_mb(var) is not None:
            return
        # the "none" cell of this variant just ended without a result: a calibration run would fail the same way
        none_cell = Cell(rep, *var, "none").key
        if self._cells.get(none_cell, (None, None))[1] not in (None, "ok"):
            return
        key = calibration_key(var)
        self._before_run()
        self._note(f"calibrating {'/'.join(map(str, var))}: measuring its footprint without a binding limit")
        status, run_id, _ = self._start_and_wait(key, var, self._cap, {"calibration": True})
        if status == "ok":
            self._footprint_mb(var)

    def _run_cell(self, cell: Cell, lim: MemLimit) -> None:
        var = cell.variant
        tags: dict = {"rep": cell.rep, "mem": lim.label}
        if lim.kind == "factor":
            fp = self.footprints.get(var)
            if fp is None:
                self._record(cell.key, None, "error", None,
                             f"no footprint for {'/'.join(map(str, var))}: its uncapped run did not end ok")
                return
            mb = lim.resolve(fp[0])
            tags.update(mem_factor=lim.value, footprint_mb=fp[0], footprint_run_id=fp[1], footprint_kind=fp[2])
        elif lim.kind == "mb":
            mb = lim.value
        else:
            mb = self._cap  # non-binding: accounts the footprint, never limits
            tags["accounting_cap_mb"] = mb
        self._before_run()
        self.progress.current = f"{cell.key} ({'none' if lim.kind == 'none' else f'{mb:.1f} MB'})"
        self._emit()
        status, run_id, result = self._start_and_wait(cell.key, var, mb, tags)
        if lim.kind == "none" and status == "ok" and var not in self.footprints:
            self._footprint_mb(var)
        self._record(cell.key, run_id, status, result, None, counted=True)

    def _run_config(self, var, mb: float | None, tags: dict, key: str) -> RunConfig:
        cfg = self.cfg
        model, precision, runtime, threads = var
        given = cfg.inputs.get(model, {})
        if given:  # each variant takes the names it has (see _input_names)
            have = _input_names(model, precision, runtime) or None
            given = {k: {n: v for n, v in d.items() if have is None or n in have} for k, d in given.items()}
        return RunConfig(model=model, precision=precision, runtime=runtime, threads=threads, memory_limit_mb=mb,
                         duration_s=cfg.duration_s, iterations=cfg.iterations, preset=cfg.run_preset,
                         warmup=cfg.warmup, timeout_s=cfg.timeout_s, sample_hz=cfg.sample_hz,
                         tags={"study_id": self.study_id, "cell": key, **tags},
                         input_shapes=given.get("input_shapes", {}), input_fills=given.get("input_fills", {}))

    def _start_and_wait(self, key: str, var, mb, tags) -> tuple[str, str | None, dict | None]:
        from .runner import DeviceBusy, start_run
        from .store import new_run_id

        try:
            rc = self._run_config(var, mb, tags, key)
        except EdgeprofError as exc:
            self._note(f"{key}: {exc}")
            return "error", None, None
        deadline = _now() + self._busy_wait_s
        while True:
            if self._stop.is_set():
                raise _Stopped
            run_id = new_run_id()
            # the cell names its run before the run exists: a kill in between leaves a cell to rerun, never a lost run
            self.store.set_cell(self.study_id, key, run_id, "running")
            self._cells[key] = (run_id, "running")
            try:
                self._handle = start_run(rc, self.store.path, store=self.store, study_id=self.study_id, run_id=run_id)
                break
            except DeviceBusy as exc:
                self.store.set_cell(self.study_id, key, None, "pending")
                self._cells[key] = (None, "pending")
                if _now() > deadline:
                    raise StudyBusy(f"the device stayed busy for {self._busy_wait_s:g} s: {exc}",
                                    f"Resume the study later with --study-id {self.study_id}.") from None
                self.progress.message = f"waiting for the device: {exc}"
                self._emit()
                self._stop.wait(2.0)
            except EdgeprofError as exc:
                self._note(f"{key}: could not start: {exc}")
                return "error", None, None
        handle = self._handle
        try:
            result = handle.wait()
        except KeyboardInterrupt:  # Ctrl-C in the CLI: stop the run in steps, keep the cell for a resume
            handle.stop()
            handle.wait(30)
            self.store.set_cell(self.study_id, key, run_id, "stopped")
            self._cells[key] = (run_id, "stopped")
            raise _Stopped from None
        finally:
            self._handle = None
        status = (result or {}).get("status") or handle.status
        if status == "stopped" or (self._stop.is_set() and status not in FINAL_STATUSES):
            self.store.set_cell(self.study_id, key, run_id, "stopped")
            self._cells[key] = (run_id, "stopped")
            raise _Stopped
        if status not in FINAL_STATUSES:
            status = "failed"
        self.store.set_cell(self.study_id, key, run_id, status)
        self._cells[key] = (run_id, status)
        return status, run_id, result

    def _record(self, key: str, run_id, status: str, result: dict | None, note: str | None,
                counted: bool = True) -> None:
        if status == "error":
            self.store.set_cell(self.study_id, key, run_id, "error")
            self._cells[key] = (run_id, "error")
        if note:
            self._note(f"{key}: {note}")
        p = self.progress
        p.done += 1
        p.ran_this_session += 1
        if status in FAILED_STATUSES:
            p.failed += 1
        lat = (result or {}).get("latency_ms") or {}
        p.last = {"key": key, "run_id": run_id, "status": status, "p50_ms": lat.get("p50"),
                  "error": (result or {}).get("error")}
        p.elapsed_s = _now() - p.started
        left = p.total - p.done
        p.eta_s = left * (p.elapsed_s / p.ran_this_session) if p.ran_this_session else None
        p.current = None
        self._emit()

    def _cooldown(self) -> None:
        if self.cfg.cooldown_s > 0:
            self._state("cooldown")
            if self._stop.wait(self.cfg.cooldown_s):
                raise _Stopped
            self._state("running")
        elif self._stop.is_set():
            raise _Stopped

    def _note(self, text: str) -> None:
        self.progress.notes.append(text)
        self.progress.message = text
        self._emit()

    def _state(self, state: str, message: str | None = None) -> None:
        self.progress.state = state
        if message:
            self.progress.message = message
        self.progress.elapsed_s = _now() - self.progress.started
        self._emit()

    def _emit(self) -> None:
        if self._on_progress is not None:
            with contextlib.suppress(Exception):
                self._on_progress(self.progress)


def stored_config(doc) -> StudyConfig | None:
    """The StudyConfig stored with a study (a JSON string or dict), or None if it cannot be read."""
    import json

    if doc is None:
        return None
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError:
            return None
    if not isinstance(doc, dict):
        return None
    doc = {k: v for k, v in doc.items() if k in _KEYS}
    try:
        return StudyConfig.from_dict(doc)
    except EdgeprofError:
        return None


def resolve_config(store, *, preset: str | None = None, file: str | None = None, toml_text: str | None = None,
                   study_id: str | None = None, duration_s: float | None = None, cooldown_s: float | None = None,
                   iterations: int | None = None) -> StudyConfig:
    """The config to run: the named preset / file / text with overrides; for a resumed study (its id exists) its
    stored config (a given preset or file must describe the same grid)."""
    given = [x for x in (preset, file, toml_text) if x]
    if len(given) > 1:
        raise UsageError("give one of a preset, a file or TOML text.")
    cfg = None
    if preset:
        cfg = load_preset(preset)
    elif file:
        cfg = StudyConfig.from_file(file)
    elif toml_text:
        cfg = StudyConfig.from_toml(toml_text)
    stored = None
    if study_id:
        studies = store.list_studies()
        row = studies[studies["study_id"] == study_id] if not studies.empty else studies
        if len(row):
            stored = stored_config(row.iloc[0]["config"])
            if stored is None:
                raise UsageError(f"study {study_id} has no readable stored settings.", "Start a new study.")
        elif cfg is None:
            raise UsageError(f"there is no study {study_id} in {store.path}.",
                             "List studies with `python -m edgeprof studies`, or give --preset / --file to start it.")
    if stored is not None:
        base = stored
        if cfg is not None:
            cfg = cfg.with_overrides(duration_s=duration_s, iterations=iterations)
            if cfg.grid_signature() != stored.grid_signature():
                raise UsageError(f"study {study_id} was started with different settings than given now.",
                                 "Resume it with only --study-id, or start a new study.")
        elif (duration_s is not None or iterations is not None) and \
                base.with_overrides(duration_s=duration_s, iterations=iterations).grid_signature() != base.grid_signature():
            raise UsageError(f"study {study_id} was started with other run settings; a resumed study keeps them.",
                                 "Leave out --duration to resume it.")
        return base.with_overrides(cooldown_s=cooldown_s)
    if cfg is None:
        raise UsageError("say which study to run: --preset quick|paper, --file STUDY.toml, or --study-id ID to resume.")
    return cfg.with_overrides(duration_s=duration_s, cooldown_s=cooldown_s, iterations=iterations)


def run_study(cfg: StudyConfig, store, *, study_id: str | None = None,
              progress: Callable[[Progress], None] | None = None) -> dict:
    """Run or resume a study in this thread; returns {"study_id", "cells", "done", "failed"}."""
    return StudyRunner(cfg, store, study_id=study_id, progress=progress).run()


# ------------------------------------------------------------------------------------------------ background studies

class StudyHandle:
    """A study running in a background thread of this process (the dashboard's server), polled by pages."""

    def __init__(self, runner: StudyRunner, lock: StudyLock):
        self.runner = runner
        self.study_id = runner.study_id
        self.result: dict | None = None
        self.error: str | None = None
        self._lock = lock
        self._mutex = threading.Lock()
        self._progress = runner.progress.to_dict()
        runner._on_progress = self._update
        self._thread = threading.Thread(target=self._main, name=f"edgeprof-study-{self.study_id}", daemon=True)

    def _update(self, p: Progress) -> None:
        with self._mutex:
            self._progress = p.to_dict()

    def _main(self) -> None:
        try:
            self.result = self.runner.run()
        except Exception as exc:
            self.error = str(exc)
        finally:
            self._lock.release()
            self._update(self.runner.progress)

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive() and self._thread.ident is not None

    def progress(self) -> dict:
        with self._mutex:
            return dict(self._progress)

    def stop(self) -> None:
        self.runner.stop()

    def wait(self, timeout: float | None = None) -> dict | None:
        self._thread.join(timeout)
        return self.result


_studies: dict[str, StudyHandle] = {}
_studies_lock = threading.Lock()


def start_study_background(cfg: StudyConfig, store, *, study_id: str | None = None) -> StudyHandle:
    """Start (or resume) a study in a background thread; refuses while another study runs in any process."""
    with _studies_lock:
        busy = [h for h in _studies.values() if not h.finished]
        if busy:
            raise StudyBusy(f"study {busy[0].study_id} is running.", "Wait for it or stop it first.")
        runner = StudyRunner(cfg, store, study_id=study_id, lock=None)
        lock = StudyLock()
        lock.acquire(runner.study_id)
        runner._lock = lock  # held by the thread; released by the handle when the study ends
        handle = StudyHandle(runner, lock)
        _studies[handle.study_id] = handle
        handle._thread.start()
        return handle


def active_study() -> StudyHandle | None:
    with _studies_lock:
        return next((h for h in _studies.values() if not h.finished), None)


def get_study_handle(study_id: str) -> StudyHandle | None:
    with _studies_lock:
        return _studies.get(study_id)


# ------------------------------------------------------------------------------------------------ listing

def list_studies(store) -> list[dict]:
    """Studies, newest first, with their grid size, cells done and failed, and whether they can be resumed.
    A study whose status is still "running" while no study holds the lock was killed: it shows as interrupted."""
    df = store.list_studies()
    holder = StudyLock().holder()
    out = []
    for row in df.itertuples():
        cfg = stored_config(row.config)
        cells = store.cells(row.study_id)
        grid = {c.key for c in plan(cfg)} if cfg else set()
        in_grid = cells[cells["cell_key"].isin(grid)] if not cells.empty else cells
        done = int(in_grid["status"].isin(FINAL_STATUSES).sum()) if len(in_grid) else 0
        failed = int(in_grid["status"].isin(FAILED_STATUSES).sum()) if len(in_grid) else 0
        status = row.status
        if status == "running" and not (holder and holder.startswith(f"{row.study_id} ")):
            status = "interrupted"
        total = cfg.n_cells if cfg else None
        out.append({"study_id": row.study_id, "name": row.name, "created_at": row.created_at, "status": status,
                    "cells": total, "done": done, "failed": failed,
                    "resumable": cfg is not None and total is not None and done < total and status != "running"})
    return out
