"""The booth's showcase: one photo through the bundled image classifier in every precision, side by side.

A visitor's photo is data, not a model: its bytes are size-capped, decoded by Pillow with a pixel limit (a small file
can declare a huge image: a decompression bomb), turned into the model's input tensor in this process, and kept only
in memory and, while its runs last, as a temporary ``.npy`` that is deleted afterwards. Each precision is a real run
(``run.start_run``): the worker, under its memory cap, is fed the photo's tensor (``RunConfig.input_file``) and
reports the first inference's top classes (``top_k``); the latency is the p50 of a short bounded steady phase
(``SHOWCASE_SECONDS``), and the run, its samples and its prediction are stored like any other run (tag
``showcase``). Runs take the device lock one at a time, so a busy device is said up front (:func:`device_busy`) with
an estimate of the wait, not refused after a click.

Sizes are the model files' bytes; peak memory is the run's ``peak_ram_mb`` (charged to its cgroup where one measured
it, else peak RSS); "agrees with FP32" compares the top-1 class of the same photo.
"""

from __future__ import annotations

import io
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import RunConfig
from .errors import EdgeprofError, UsageError

SHOWCASE_MODEL = "efficientnet-lite0"
SHOWCASE_SECONDS = 1.0  # of steady state per precision: a p50 over ~100-400 inferences here
SHOWCASE_WARMUP = 5  # inferences before the timed ones
PRECISION_ORDER = ("fp32", "fp16", "int8-dynamic", "int8-static")
PRECISION_LABELS = {"fp32": "FP32", "fp16": "FP16", "int8-dynamic": "INT8 dynamic", "int8-static": "INT8 static"}
MAX_PHOTO_BYTES = 10 * 2**20  # what the uploader accepts (also its max_upload_size)
MAX_PHOTO_PIXELS = 40_000_000  # about 7,700 x 5,200: a phone's photo fits, a decompression bomb does not
TAG = "showcase"


class PhotoError(UsageError):
    """A photo that cannot be used: too large, not an image, or a decompression bomb."""


@dataclass(frozen=True)
class Card:
    """One precision's result for the photo. ``p50_ms`` in ms, ``size_mb`` the model file in MB of 10**6 bytes (the
    app's MB for a file, ``ui.fmt_file_mb``), ``peak_mb`` the run's peak memory in MB, ``agrees`` whether its top-1
    class is FP32's (None for FP32 itself or when either is missing); ``error`` one sentence when the run did not
    give a result."""

    precision: str
    run_id: str | None
    label: str | None = None
    confidence: float | None = None  # 0..1
    p50_ms: float | None = None
    size_mb: float | None = None
    peak_mb: float | None = None
    peak_source: str | None = None  # "charged" (cgroup) or "RSS"
    agrees: bool | None = None
    backend: str | None = None  # "litert 2.3.0, 2 threads"
    error: str | None = None

    @property
    def title(self) -> str:
        return PRECISION_LABELS.get(self.precision, self.precision)


@dataclass(frozen=True)
class Showcase:
    cards: list = field(default_factory=list)  # list[Card], FP32 first
    sentence: str = ""
    runtime: str = ""


@dataclass(frozen=True)
class Busy:
    """Who holds the device now and about how long until it is free (``wait_s``, None when unknown)."""

    holder: str
    wait_s: float | None
    what: str  # "a run of efficientnet-lite0 int8-static" / "another run"

    @property
    def sentence(self) -> str:
        turn = f"your turn in ~{_round_wait(self.wait_s)} s" if self.wait_s is not None else "your turn when it ends"
        return f"The device is busy with {self.what}: {turn}."


def _round_wait(s: float) -> int:
    return int(max(5, 5 * round(s / 5)))


# ------------------------------------------------------------------------------------------------------------ photo


def open_photo(data: bytes, max_bytes: int = MAX_PHOTO_BYTES, max_pixels: int = MAX_PHOTO_PIXELS):
    """``data`` as a decoded PIL image (RGB), judged before decoding: at most ``max_bytes`` bytes and ``max_pixels``
    pixels (read from the header; Pillow's own bomb check is turned into the same refusal). Raises PhotoError with
    one sentence; Pillow's text is its ``detail``."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise PhotoError("the photo is empty.", "Pick another photo.")
    if len(data) > max_bytes:
        raise PhotoError(f"the photo is {len(data) / 2**20:.1f} MB; photos up to {max_bytes / 2**20:.0f} MB are taken.",
                         "Pick a smaller photo.")
    try:
        im = Image.open(io.BytesIO(data))
        w, h = im.size
        if w * h > max_pixels:
            raise PhotoError(f"the photo is {w} x {h} pixels; up to {max_pixels / 1e6:.0f} million pixels are taken.",
                             "Pick a smaller photo.")
        im.load()
        return im.convert("RGB")
    except PhotoError:
        raise
    except Image.DecompressionBombError as exc:
        raise PhotoError("the photo declares more pixels than it can hold (a decompression bomb).",
                         "Pick another photo.", detail=str(exc)) from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise PhotoError("this file is not a photo that can be read (JPEG, PNG, WebP and the like are).",
                         "Pick another photo.", detail=str(exc)) from None


def sample_photos() -> dict[str, Path]:
    """The bundled photographs (``models/images``) by a readable name: ``"chelsea"`` -> ``Chelsea``."""
    from .models.catalog import get_model

    return {p.stem.replace("_", " ").replace("-", " ").capitalize(): p for p in sorted(get_model(SHOWCASE_MODEL).images)}


# ------------------------------------------------------------------------------------------------------------ runs


def showcase_runtime() -> str:
    """``tflite`` where a TFLite interpreter is installed (all four precisions ship as files), else ``onnx``."""
    from .runtimes import registry

    for backend in registry.for_format("tflite"):
        try:
            if backend.status().available:
                return "tflite"
        except Exception:  # a status that raises is an unavailable backend  # noqa: BLE001
            continue
    return "onnx"


def precisions(runtime: str) -> list[str]:
    """The precisions shown, in ``PRECISION_ORDER``: every variant of the model in ``runtime``. ONNX leaves out
    int8-dynamic, which runs 2.5x slower than FP32 on x86 CPUs (ConvInteger) and is missing from ONNX Runtime 1.23."""
    from .models.catalog import get_model

    have = {v.precision for v in get_model(SHOWCASE_MODEL).variants if v.format == runtime}
    if runtime == "onnx":
        have.discard("int8-dynamic")
    return [p for p in PRECISION_ORDER if p in have]


def configs(runtime: str, input_file: str = "photo.npy", threads: int = 2,
            memory_limit_mb: float | None = None) -> list[RunConfig]:
    """The runs the showcase starts, one per precision: short, bounded in seconds (a visitor's limits apply)."""
    return [RunConfig(SHOWCASE_MODEL, precision=p, runtime=runtime, threads=threads, duration_s=SHOWCASE_SECONDS,
                      warmup=SHOWCASE_WARMUP, memory_limit_mb=memory_limit_mb, input_file=input_file, top_k=3,
                      tags={TAG: "photo"})
            for p in precisions(runtime)]


def device_busy(store=None) -> Busy | None:
    """Who holds the device lock now, or None when it is free; the wait estimated from the holder's config (its
    ``estimate_seconds`` at its model's typical latency) minus what it ran so far."""
    from .run.runner import DeviceLock, get_handle

    holder = DeviceLock().holder()
    if holder is None:
        return None
    run_id = holder.split(" ", 1)[0]
    handle = get_handle(run_id)
    cfg, started = None, None
    if handle is not None:
        cfg, started = handle.config, handle.started_wall
    elif store is not None:
        try:
            row = store.get_run(run_id)
        except EdgeprofError:
            row = None
        if row:
            try:
                cfg = RunConfig(**{k: v for k, v in (row.get("config") or {}).items()
                                   if k in RunConfig.__dataclass_fields__})
            except (EdgeprofError, TypeError):
                cfg = None
            created = row.get("created_at")
            started = created.timestamp() if hasattr(created, "timestamp") else None
    if cfg is None:
        return Busy(holder, None, "another run")
    what = f"a run of {Path(cfg.model).name} {cfg.precision}"
    if started is None:
        return Busy(holder, None, what)
    left = cfg.estimate_seconds(0.01) - (time.time() - started)
    return Busy(holder, max(left, 5.0), what)


def run_photo(tensors: dict, store=None, *, runtime: str | None = None, threads: int = 2,
              memory_limit_mb: float | None = None, progress=None, timeout_s: float = 120.0,
              bound=None) -> Showcase:
    """Run the photo (``tensors``: layout -> float32 input from ``models.preprocess.image_tensor``) in every
    precision, one run after another, and read each stored result back into a Card. ``progress(i, n, precision)``
    is called before each run; ``bound(cfg)`` returns the config as this user may start it (a visitor's limits:
    ``booth.bound_run``) or raises an EdgeprofError that becomes the card's sentence. Raises DeviceBusy when the
    device is taken before the first run; a run refused later (someone took the device between two runs) becomes
    that card's error."""
    from .models.catalog import get_model, resolve_variant
    from .run.runner import DeviceBusy, start_run

    runtime = runtime or showcase_runtime()
    info = get_model(SHOWCASE_MODEL)
    labels = info.labels or []
    cards = []
    with tempfile.TemporaryDirectory(prefix="edgeprof-photo-") as tmp:
        files = {}
        for layout, x in tensors.items():
            files[layout] = str(Path(tmp) / f"photo-{layout.lower()}.npy")
            np.save(files[layout], np.asarray(x, np.float32), allow_pickle=False)
        cfgs = configs(runtime, "photo.npy", threads, memory_limit_mb)
        for i, cfg in enumerate(cfgs):
            if progress:
                progress(i, len(cfgs), cfg.precision)
            layout = resolve_variant(cfg.model, cfg.precision, cfg.runtime, build=False).layout or "NCHW"
            cfg = cfg.replace(input_file=files[layout])
            try:
                cfg = bound(cfg) if bound is not None else cfg
            except EdgeprofError as exc:
                cards.append(Card(cfg.precision, None, error=str(exc)))
                continue
            try:
                handle = start_run(cfg, store)
            except DeviceBusy as exc:
                if i == 0:
                    raise
                cards.append(Card(cfg.precision, None, error=str(exc)))
                continue
            result = handle.wait(timeout_s) or {}
            cards.append(_card(cfg.precision, handle.run_id, result, labels))
    cards = _with_agreement(cards)
    return Showcase(cards, verdict(cards), runtime)


def _card(precision: str, run_id: str, result: dict, labels: list) -> Card:
    if result.get("status") != "ok":
        why = result.get("error") or "the run did not finish"
        return Card(precision, run_id, error=f"{PRECISION_LABELS.get(precision, precision)} did not run: {why}")
    pred = (result.get("prediction") or [{}])[0]
    idx = pred.get("index")
    label = labels[idx] if idx is not None and 0 <= idx < len(labels) else (f"class {idx}" if idx is not None else None)
    mem = result.get("memory") or {}
    peak, source = (mem.get("peak_charged_mb"), "charged") if mem.get("peak_charged_mb") else \
        (mem.get("peak_rss_mb"), "RSS")
    backend = result.get("backend") or {}
    size = result.get("model_size_bytes")
    return Card(precision, run_id, label=label, confidence=pred.get("probability"),
                p50_ms=(result.get("latency_ms") or {}).get("p50"), size_mb=size / 1e6 if size else None,
                peak_mb=peak, peak_source=source if peak else None,
                backend=f"{backend.get('name')} {backend.get('version')}, {backend.get('threads')} threads"
                if backend.get("name") else None)


def _with_agreement(cards: list) -> list:
    ref = next((c for c in cards if c.precision == "fp32" and c.label), None)
    out = []
    for c in cards:
        agrees = None if ref is None or c is ref or c.label is None else c.label == ref.label
        out.append(Card(**{**c.__dict__, "agrees": agrees}))
    return out


def _share(fraction: float) -> str:
    for value, words in ((0.25, "a quarter of the size"), (0.5, "half the size"), (1 / 3, "a third of the size")):
        if abs(fraction - value) <= 0.03:
            return words
    return f"{fraction:.0%} of the size"


def verdict(cards: list) -> str:
    """One sentence on the trade-off: the fastest other precision against FP32 (agreement, speed, size)."""
    ref = next((c for c in cards if c.precision == "fp32" and c.p50_ms), None)
    others = [c for c in cards if c is not ref and c.p50_ms]
    if ref is None or not others:
        return "FP32 gave no result to compare against." if others else "No precision gave a result."
    best = min(others, key=lambda c: c.p50_ms)
    ratio = ref.p50_ms / best.p50_ms
    speed = f"{ratio:.1f}x faster" if ratio >= 1.05 else (f"{1 / ratio:.1f}x slower" if ratio <= 0.95
                                                           else "as fast")
    size = f" at {_share(best.size_mb / ref.size_mb)}" if best.size_mb and ref.size_mb else ""
    if best.agrees:
        return f"{best.title} agreed with FP32 and was {speed}{size}."
    return f"{best.title} said \u201c{best.label}\u201d where FP32 said \u201c{ref.label}\u201d; it was {speed}{size}."
