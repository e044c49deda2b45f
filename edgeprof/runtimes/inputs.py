"""What to feed a model: the user's shapes and fill values, guesses for the rest, and every guess said in words.

A model file declares each input's type and shape; where a dimension is not fixed, something must be chosen, and for
integer inputs (token ids, a sample rate, indices) random values may be wrong. Peer tools let the user say what to
feed (LiteRT ``benchmark_model --input_layer_shape``, ``onnxruntime_perf_test``, ``trtexec --shapes``); edgeprof takes
``--shape NAME=D1xD2...`` and ``--fill NAME=VALUE`` (``RunConfig.input_shapes`` / ``input_fills``) and guesses the rest.

Dimensions (``TensorSpec.shape``): an int >= 0 is a real size (0 too: ONNX Runtime accepts empty tensors); a str is a
symbolic name (ONNX ``dim_param``, e.g. ``batch``), which takes ONE value across all inputs; None is unknown.
Guesses, in order: a symbolic name already bound (by ``--shape`` or an earlier input); TFLite's stored ``shape`` where
the ``shape_signature`` says -1 (what the converter traced with); 1 for a batch-like name or the first dimension;
224 for the other dimensions of a rank-4 (image) input; 128 for a rank-2 or rank-3 (sequence) input; else 16.

Pure numpy: the worker imports this, and everything the worker imports is charged to its memory cap.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from ..config import describe_shape, format_shape, parse_fill, parse_given, parse_shape, parse_value  # noqa: F401
from ..errors import ModelError, UsageError

BATCH_NAMES = frozenset({"batch", "batch_size", "batchsize", "n", "b", "bs", "num_batches"})

# Types numpy (and so ONNX Runtime's Python API) cannot hold: a run on them gets one sentence, not a TypeError.
UNSUPPORTED_DTYPES = ("bfloat16", "float8e4m3fn", "float8e4m3fnuz", "float8e5m2", "float8e5m2fnuz", "float8e8m0",
                      "float4e2m1", "int4", "uint4", "int2", "uint2")
_WORDS = ("edge", "device", "model", "latency", "memory", "quantized", "tensor", "input")


@dataclass(frozen=True)
class Feed:
    """One input as it will be fed: concrete ``shape``, ``dtype``, and ``fill`` (None: synthetic values)."""

    name: str
    kind: str  # tensor | sequence
    dtype: str
    shape: tuple  # ints; for a sequence: the shape of each element
    fill: float | int | bool | str | None = None
    guessed: tuple = ()  # plain words for each guess made for this input, e.g. "sequence=128 guessed"
    guessed_dims: tuple = ()  # indices of the dimensions that were guessed
    values: str = ""  # how the values are made, e.g. "random normal", "random ids 0..99", "filled with 16000"

    def describe(self) -> str:
        """``'sr' int64 [] filled with 16000`` -- what a note or an error message says about this input."""
        kind = f"sequence of 2 {self.dtype}" if self.kind == "sequence" else self.dtype
        text = f"{self.name!r} {kind} {list(self.shape)} {self.values}".rstrip()
        return text + (f" ({', '.join(self.guessed)})" if self.guessed else "")


@dataclass(frozen=True)
class FeedPlan:
    feeds: tuple  # tuple[Feed, ...] in the model's input order
    notes: tuple = field(default_factory=tuple)

    @property
    def guessed(self) -> bool:
        """True when a shape or a value was not given by the user and could matter (a guess that can be wrong)."""
        return any(f.guessed or (f.fill is None and _values_matter(f)) for f in self.feeds)

    @property
    def shapes(self) -> list[tuple]:
        return [f.shape for f in self.feeds]

    def describe(self) -> str:
        return "; ".join(f.describe() for f in self.feeds)


def _values_matter(feed: Feed) -> bool:
    """Random floats and full-range small integers are what a real input looks like to the kernels; random ids,
    booleans and strings can be out of a model's range (a sample rate, an index, a vocabulary)."""
    dtype = feed.dtype
    return dtype in ("string", "bool") or (dtype.startswith(("int", "uint")) and np.dtype(dtype).itemsize >= 4)


# ----------------------------------------------------------------------------------------------------------- plan


def plan_feeds(specs, shapes: dict | None = None, fills: dict | None = None, *, resizable: bool = False) -> FeedPlan:
    """Decide every input's concrete shape and values from the declared ``specs`` (list of TensorSpec), the user's
    ``shapes`` ({name: tuple of ints}) and ``fills`` ({name: scalar}).

    ``resizable``: the runtime may change a declared fixed dimension (TFLite resizes any input; ONNX Runtime checks
    fixed dimensions on every run, so there a different size is refused here, before anything runs).
    Raises UsageError for a name that is not an input, a rank or fixed size that contradicts the model, or a fill
    that the input's type cannot hold; ModelError for an input of a type edgeprof cannot make data for.
    """
    shapes, fills = dict(shapes or {}), dict(fills or {})
    names = [s.name for s in specs]
    for flag, given in (("--shape", shapes), ("--fill", fills)):
        unknown = [n for n in given if n not in names]
        if unknown:
            raise UsageError(f"{flag} names {', '.join(map(repr, unknown))}, which the model does not have as an input; "
                             f"its inputs are {', '.join(map(repr, names)) or 'none'}.")
    bound: dict[str, int] = {}
    for spec in specs:  # the user's shapes bind symbolic names first, so every input sees the same value
        if spec.name in shapes:
            _bind_user_shape(spec, shapes[spec.name], bound, resizable)
    feeds, notes = [], []
    for spec in specs:
        _check_type(spec)
        if spec.name in shapes:
            shape, guessed, dims = tuple(shapes[spec.name]), [], ()
            notes.append(f"input {spec.name!r} shape {list(shape)} (--shape)")
        else:
            shape, guessed, dims = _guess_shape(spec, bound)
        fill = fills.get(spec.name)
        if fill is not None:
            fill = _check_fill(spec, fill)
            values = f"filled with {fill!r}" if isinstance(fill, str) else f"filled with {fill:g}"
        else:
            values = _synthetic_kind(spec)
        feed = Feed(spec.name, getattr(spec, "kind", "tensor"), spec.dtype, shape, fill=fill, guessed=tuple(guessed),
                    guessed_dims=dims, values=values)
        feeds.append(feed)
        if guessed:
            notes.append(f"input {spec.name!r}: {', '.join(guessed)}; fed {list(shape)}")
        if fill is not None:
            notes.append(f"input {spec.name!r} {values} (--fill)")
        elif _values_matter(feed):
            kind = "integers" if spec.dtype.startswith(("int", "uint")) else spec.dtype
            notes.append(f"input {spec.name!r} takes {kind} ({spec.dtype}: e.g. token ids, indices or a sample rate); "
                         f"fed {values} (set it with --fill {spec.name}=VALUE)")
    return FeedPlan(tuple(feeds), tuple(notes))


def _bind_user_shape(spec, shape: tuple, bound: dict, resizable: bool) -> None:
    declared = tuple(spec.shape)
    if getattr(spec, "kind", "tensor") != "tensor":
        return  # a sequence's element shape is not declared
    if declared and len(shape) != len(declared) and not resizable:
        raise UsageError(f"--shape {spec.name}={format_shape(shape)} has {len(shape)} dimensions; the model declares "
                         f"{len(declared)} ({describe_shape(declared)}).")
    for i, (want, got) in enumerate(zip(declared, shape, strict=False)):
        if isinstance(want, str):
            if bound.setdefault(want, got) != got:
                raise UsageError(f"--shape gives the dimension {want!r} two values ({bound[want]} and {got}); every "
                                 "input that declares it must get the same.")
        elif isinstance(want, int) and want != got and not resizable:
            raise UsageError(f"--shape {spec.name}={format_shape(shape)} changes dimension {i}, which the model fixes at "
                             f"{want} ({describe_shape(declared)}); ONNX Runtime only accepts other sizes where a dimension is "
                             "dynamic.")


def _guess_shape(spec, bound: dict) -> tuple[tuple, list[str], tuple]:
    declared = tuple(spec.shape)
    stored = tuple(getattr(spec, "stored_shape", None) or ())
    out, guessed, dims = [], [], []
    rank = len(declared)
    for i, dim in enumerate(declared):
        if isinstance(dim, int) and dim >= 0:
            out.append(dim)
            continue
        label = dim if isinstance(dim, str) and re.fullmatch(r"[A-Za-z_][\w.]*", dim) else f"dimension {i}"
        dims.append(i)
        if isinstance(dim, str) and dim in bound:
            out.append(bound[dim])
            guessed.append(f"{label}={bound[dim]} as for the other inputs")
            continue
        if len(stored) == rank and stored[i] > 0:
            value, why = int(stored[i]), "the size stored in the file"
        elif i == 0 or (isinstance(dim, str) and dim.lower() in BATCH_NAMES):
            value, why = 1, "guessed"
        elif rank == 4:
            value, why = 224, "guessed"
        elif rank in (2, 3):
            value, why = 128, "guessed"
        else:
            value, why = 16, "guessed"
        if isinstance(dim, str):
            bound[dim] = value
        out.append(value)
        guessed.append(f"{label}={value} {why}")
    if getattr(spec, "kind", "tensor") == "sequence" and not declared:
        out, guessed, dims = [3], ["element shape [3] guessed"], [0]
    return tuple(out), guessed, tuple(dims)


def _check_type(spec) -> None:
    kind = getattr(spec, "kind", "tensor")
    if kind not in ("tensor", "sequence") or spec.dtype in UNSUPPORTED_DTYPES or spec.dtype.startswith(("map(", "unknown")):
        what = getattr(spec, "type_name", None) or spec.dtype
        raise ModelError(f"input {spec.name!r} has type {what}, which edgeprof cannot make data for (numpy, and so the "
                         "runtime's Python API, has no such type).",
                         "Export the model with float32, float16 or integer inputs (for example keep_io_types=True).")


def _check_fill(spec, value):
    dtype = spec.dtype
    bad = f"--fill {spec.name}={value!r} does not fit input {spec.name!r}, which takes {dtype}"
    if dtype == "string":
        return str(value)
    if isinstance(value, str):
        raise UsageError(f"{bad}: give a number.")
    kind = np.dtype(dtype).kind
    if kind == "b":
        if value not in (0, 1, True, False):
            raise UsageError(f"{bad}: give true, false, 1 or 0.")
        return bool(value)
    if kind in "iu":
        if isinstance(value, float) and not value.is_integer():
            raise UsageError(f"{bad}: give a whole number.")
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            raise UsageError(f"{bad}: give a value from {info.min} to {info.max}.")
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and abs(value) > np.finfo(dtype).max:
        raise UsageError(f"{bad}: the largest {dtype} is {np.finfo(dtype).max:g}.")
    return float(value)


def _synthetic_kind(spec) -> str:
    dtype = spec.dtype
    if dtype == "string":
        return "random words"
    kind = np.dtype(dtype).kind
    if kind == "f":
        return "random normal"
    if kind == "b":
        return "random true/false"
    if kind in "iu" and getattr(spec, "quantization", None) is None and np.dtype(dtype).itemsize >= 4:
        return "random ids 0..99"
    if kind in "iu":
        return f"random {dtype} over its full range"
    return "random"


# ----------------------------------------------------------------------------------------------------------- make


def make_feeds(plan: FeedPlan, seed: int = 0) -> list:
    """The arrays (a list of arrays for a sequence input) in the model's input order."""
    rng = np.random.default_rng(seed)
    out = []
    for f in plan.feeds:
        if f.kind == "sequence":
            out.append([_array(f, rng) for _ in range(2)])
        else:
            out.append(_array(f, rng))
    return out


def _array(f: Feed, rng) -> np.ndarray:
    if f.dtype == "string":
        if f.fill is not None:
            return np.full(f.shape, f.fill, dtype=object)
        return rng.choice(np.array(_WORDS, dtype=object), size=f.shape)
    dtype = np.dtype(f.dtype)
    if f.fill is not None:
        return np.full(f.shape, f.fill, dtype=dtype)
    if dtype.kind == "f":
        return rng.standard_normal(f.shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=f.shape).astype(dtype)
    if f.values.startswith("random ids"):
        return rng.integers(0, 100, size=f.shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=f.shape, endpoint=True, dtype=dtype)
    return rng.standard_normal(f.shape).astype(dtype)  # complex: real parts only


def synthetic_inputs(specs, seed: int = 0, shapes: dict | None = None, fills: dict | None = None,
                     *, resizable: bool = False) -> tuple[list, list[str]]:
    """Arrays for ``specs`` and plain-word notes on every guess; :func:`plan_feeds` says what may be raised."""
    plan = plan_feeds(specs, shapes, fills, resizable=resizable)
    notes = list(plan.notes)
    if len(specs) > 1:
        notes.append(f"the model has {len(specs)} inputs; each got data as noted")
    return make_feeds(plan, seed), notes


def guessed_inputs_failed(plan: FeedPlan, what: str = "the first inference", cause: str | None = None) -> str:
    """The one sentence for a run that failed on inputs edgeprof chose: what was fed, the runtime's cleaned cause
    (``cause``, cut to 200 characters: "idx=500 must be within [-100,99]" tells which input is wrong) and how to set
    them."""
    example = next((f for f in plan.feeds if f.guessed), None)
    if example is not None:
        letters = iter("NMKLPQ")
        sizes = [next(letters, "N") if i in example.guessed_dims and i > 0 else d for i, d in enumerate(example.shape)]
        hint = f", e.g. --shape {example.name}={format_shape(sizes) or '1'} with the sizes it takes"
    else:
        example = next((f for f in plan.feeds if f.fill is None and _values_matter(f)), None)
        hint = f", e.g. --fill {example.name}=VALUE" if example is not None else ""
    said = " ".join((cause or "").split()).rstrip(".")
    said = f" (the runtime said: {said[:200]}{'...' if len(said) > 200 else ''})" if said else ""
    return (f"{what} failed on inputs that edgeprof guessed: {plan.describe()}{said}. Say what the model takes with "
            f"--shape NAME=D1xD2... and --fill NAME=VALUE{hint} (on the Run page: the Inputs panel); the runtime's own "
            "message is in the run's details.")


# ----------------------------------------------------------------------------------------------- real data


def to_feed(x: np.ndarray, spec) -> np.ndarray:
    """Cast a float input to what the session takes: quantize for int8/uint8 inputs, cast for float16."""
    dtype = np.dtype(spec.dtype)
    if dtype.kind in "iu" and spec.quantization:
        scale, zero = spec.quantization
        info = np.iinfo(dtype)
        q = np.round(x / np.float32(scale)) + zero
        return np.clip(q, info.min, info.max).astype(dtype)
    return x.astype(dtype, copy=False)


def from_output(y: np.ndarray, spec) -> np.ndarray:
    """Float32 view of an output: dequantized when the output is quantized."""
    if np.dtype(spec.dtype).kind in "iu" and spec.quantization:
        scale, zero = spec.quantization
        return (y.astype(np.float32) - np.float32(zero)) * np.float32(scale)
    return np.asarray(y, dtype=np.float32)


def top_classes(y: np.ndarray, spec, k: int = 5) -> list[tuple[int, float]]:
    """The ``k`` best classes of one output row as ``[(index, probability), ...]``, best first: the output
    dequantized (``from_output``), then used as it is where it already holds probabilities (non-negative, summing
    to ~1), else softmaxed (the bundled image classifier writes logits)."""
    x = from_output(np.asarray(y), spec).astype(np.float64).reshape(-1)
    if x.size == 0:
        return []
    is_probs = (x >= -1e-6).all() and abs(float(x.sum()) - 1.0) <= 0.05
    p = np.clip(x, 0.0, None) if is_probs else np.exp(x - x.max())
    p = p / max(float(p.sum()), 1e-12)
    idx = np.argsort(-p, kind="stable")[:k]
    return [(int(i), float(p[i])) for i in idx]
