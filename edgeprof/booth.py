"""What a booth visitor may start: the limits every visitor run is held to, as a small library API.

A visitor (booth mode, the visitor password) starts only bounded work: a bundled model, for at most a minute of
measuring (``auth.VISITOR_MAX_S``, the quick or standard preset), under a memory cap chosen for them, with inputs of at
most ``MAX_INPUT_ELEMENTS`` values each, inside a wall-clock bound (``TIMEOUT_S``). Everything else that keeps the
device busy or stores something new (quantizing, also on the first run of a precision not built yet, fidelity, the
noise floor, uploads, imports, studies) is staff work (``staff_only``), and staff's heavy work holds the device lock
like a run (``run.device_work``), so it never overlaps a run on show.

The cap: ``HEADROOM`` times the variant's footprint measured on this device (the peak charged memory of its newest ok
run under no binding limit, as the Run page shows it), at least ``MIN_MB`` and at most ``RAM_SHARE`` of the device's
RAM; a variant never measured gets that share. A visitor may pick a tighter limit, never a looser one or none: without
a cap a worker with a huge input takes the whole device's memory and the kernel's OOM killer picks its victim
device-wide (the server, the desktop); under the cap only the worker is killed, and that is a result to record.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from . import auth
from .config import NON_BINDING, RunConfig
from .errors import EdgeprofError, UsageError

RAM_SHARE = 0.25  # a visitor's run may be charged at most this share of the device's RAM
HEADROOM = 2.0  # the cap over the variant's measured footprint: a normal run never meets it
MIN_MB = 64.0  # below this no bundled variant starts (ORT FP32 digits-cnn is charged ~85 MB, TFLite ~45 MB)
MAX_INPUT_ELEMENTS = 4 * 2**20  # values per input: 16 MiB as float32; the bundled models take 64 to 150,528
TIMEOUT_S = 180.0  # wall clock for the whole visitor run: load, warm-up (at most 30 s), 60 s measuring, the profile

STAFF_WORK = {"quantize": "Quantizing a model", "fidelity": "Computing fidelity",
              "noise_floor": "Measuring the noise floor", "upload": "Uploading models", "import": "Importing runs",
              "study": "Running a study", "memory": "Measuring a memory curve"}


class VisitorRefused(UsageError):
    """A visitor asked for work outside their limits; the message says what they may pick instead."""


def staff_only(what: str) -> str:
    """The one sentence a visitor reads for staff work (``what``: a key of ``STAFF_WORK``)."""
    return (f"{STAFF_WORK[what]} is for staff at this booth (it keeps the device busy for everyone): visitors run the "
            f"bundled models; {auth.STAFF_HINT}.")


def ram_mb() -> float:
    """This device's physical RAM in MB (sysconf)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20


def memory_cap_mb(footprint_mb: float | None, device_ram_mb: float) -> tuple[float, str]:
    """(cap in MB, where it comes from in words) for a variant whose measured footprint is ``footprint_mb`` (None:
    not measured here yet) on a device with ``device_ram_mb`` of RAM. Whole MB."""
    share = max(MIN_MB, math.floor(RAM_SHARE * device_ram_mb))
    if footprint_mb is None or not math.isfinite(footprint_mb) or footprint_mb <= 0:
        return share, (f"a quarter of this device's {device_ram_mb / 1024:.1f} GB of RAM (this variant's footprint is "
                       "not measured here yet)")
    wanted = math.ceil(HEADROOM * footprint_mb)
    if wanted >= share:
        return share, (f"a quarter of this device's {device_ram_mb / 1024:.1f} GB of RAM (this variant's footprint, "
                       f"{footprint_mb:.0f} MB, leaves no more room)")
    cap = max(MIN_MB, wanted)
    return cap, f"{HEADROOM:g}x this variant's footprint measured here ({footprint_mb:.0f} MB)"


def measured_footprint_mb(store, model: str, precision: str, runtime: str) -> float | None:
    """The variant's peak charged memory (MB) in its newest ok run on this device under no binding limit, or None."""
    try:
        df = store.list_runs(model=model, precision=precision, status="ok", runtime=runtime, limit=50)
    except EdgeprofError:
        return None
    if df.empty or "peak_charged_mb" not in df:
        return None
    df = df[df["peak_charged_mb"].notna()]
    free = df[df["memory_limit_mb"].isna() | (df["memory_limit_mb"] >= NON_BINDING * df["peak_charged_mb"])]
    return None if free.empty else float(free.iloc[0]["peak_charged_mb"])


@dataclass(frozen=True)
class VisitorLimits:
    """The bounds of one visitor run (MB, seconds, values per input) and where the memory cap comes from."""

    memory_mb: float
    memory_basis: str
    max_s: float = auth.VISITOR_MAX_S
    presets: tuple[str, ...] = auth.VISITOR_PRESETS
    max_input_elements: int = MAX_INPUT_ELEMENTS
    timeout_s: float = TIMEOUT_S

    def words(self) -> str:
        """The sentence a visitor reads under the Run form."""
        return (f"Visitor runs are capped at {self.memory_mb:g} MB of memory ({self.memory_basis}), at most "
                f"{self.max_input_elements:,} values per input and {self.timeout_s:g} s in all.")


def limits_for(store, model: str, precision: str, runtime: str, device_ram_mb: float | None = None) -> VisitorLimits:
    """The limits a visitor run of this variant gets on this device."""
    cap, basis = memory_cap_mb(measured_footprint_mb(store, model, precision, runtime),
                               ram_mb() if device_ram_mb is None else device_ram_mb)
    return VisitorLimits(cap, basis)


def bound_run(cfg: RunConfig, bundled, limits: VisitorLimits) -> RunConfig:
    """``cfg`` as a visitor may start it: their memory limit if tighter, else the visitor cap (never none), and the
    visitor wall-clock bound. Raises ``VisitorRefused`` (one sentence saying what to pick) for anything else: a model
    that is not bundled, an iteration count, a long duration, an input with too many values."""
    why = auth.visitor_refusal(cfg.model, bundled, cfg.preset, cfg.duration_s, cfg.iterations)
    if why:
        raise VisitorRefused(why)
    variant = _variant(cfg)
    if variant is not None and not variant.built:  # it would be quantized on first use: staff work
        raise VisitorRefused(
            f"{cfg.model} at {cfg.precision} ({variant.format}) is not quantized on this device yet, and quantizing is "
            f"for staff at this booth: pick a precision that is ready (fp32, or any TFLite one), or {auth.STAFF_HINT}.")
    for name, shape in cfg.input_shapes.items():
        values = math.prod(shape)
        if values > limits.max_input_elements:
            raise VisitorRefused(
                f"Input {name!r} would hold {values:,} values; visitors may give at most "
                f"{limits.max_input_elements:,} per input: pick a smaller shape or leave it empty, or "
                f"{auth.STAFF_HINT}.")
    mem = cfg.memory_limit_mb if cfg.memory_limit_mb and cfg.memory_limit_mb < limits.memory_mb else limits.memory_mb
    timeout = min(cfg.timeout_s or limits.timeout_s, limits.timeout_s)
    return cfg.replace(memory_limit_mb=mem, timeout_s=timeout)


def _variant(cfg: RunConfig):
    """The bundled variant ``cfg`` names, or None when the catalog cannot say (the run's own check will)."""
    from .models import catalog

    try:
        return catalog.get_model(cfg.model).variant(cfg.precision, cfg.runtime or "onnx")
    except EdgeprofError:
        return None
