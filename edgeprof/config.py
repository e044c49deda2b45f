"""What a run is asked to do, validated when it is built: ``RunConfig`` (frozen, picklable), the allowed values of
each setting, the one number check (``check_number``), the user's syntax for inputs (``--shape NAME=1x512``,
``--fill NAME=VALUE``), and facts every layer shares (precisions and their bits, run statuses). The runner turns a
RunConfig into the worker's ``WorkerSpec``; the worker never sees the RunConfig itself."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace

from .errors import ConfigError, UsageError

PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8-static")
RUNTIMES = ("onnx", "tflite")  # file formats; the backends that read them are declared in runtimes.registry
PRECISION_BITS = {"fp32": 32, "fp16": 16, "int8-dynamic": 8, "int8-static": 8, "int16x8": 16}
NON_BINDING = 1.5  # a memory limit this many times a run's charged peak did not shape it: that peak is the footprint
#: What a run keeps of its latency samples (``RunConfig.retention``, ``--retention``, a study's ``retention``): ``all``
#: every sample; ``reduced`` every sample of the first minute, then a seeded uniform reservoir and per-second aggregates
#: (``run.recorder``); ``auto`` all up to ``run.recorder.RETENTION_MAX_ALL`` samples, reduced beyond.
RETENTIONS = ("auto", "all", "reduced")
#: ``auto`` keeps every sample of a run up to this many (~7 MB stored; a fast model reaches it in about a minute, a
#: 10-ms model in 3 hours) and reduces a longer one. Environment: ``EDGEPROF_RETENTION_MAX_ALL``.
RETENTION_MAX_ALL = 1_000_000
STATUSES = ("running", "ok", "oom_killed", "crashed", "timed_out", "stopped", "failed", "interrupted")

# name: (minimum steady-state seconds, minimum steady-state iterations)
PRESETS = {
    "quick": (10.0, 50),
    "standard": (60.0, 200),
    "long": (600.0, 1000),
}

# A device's noise floor (run.repeat.measure_noise_floor): this many short runs of this bundled model, each its own
# process, tell how far apart two runs of one configuration land on the device right now.
NOISE_FLOOR_MODEL = "digits-cnn"
NOISE_FLOOR_RUNS = 5
NOISE_FLOOR_DURATION_S = 2.0


def bits_of(precision: str | None) -> int | None:
    """Bits per weight of a precision (fp32 32, fp16 16, int8-* 8, int16x8 16); None when unknown (mixed, a file's
    own labels)."""
    return PRECISION_BITS.get(str(precision).lower()) if precision else None


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} {value!r} is not one of: {', '.join(map(str, allowed))}.")


def check_number(name: str, value, minimum: float, integer: bool = False, allow_none: bool = True):
    """``value`` as a finite int or float of at least ``minimum`` (None passes when ``allow_none``); else a
    ConfigError naming the setting. The one number check of run and study settings (text from a page or a TOML
    file is accepted when it reads as a number; True and False are not numbers)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, got {value!r}.")
    try:
        num = int(value) if integer else float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}.") from None
    if integer and float(value) != num:
        raise ConfigError(f"{name} must be a whole number, got {value!r}.")
    if isinstance(num, float) and not math.isfinite(num):
        raise ConfigError(f"{name} must be a finite number, got {value!r}.")
    if num < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, got {value!r}.")
    return num


# ------------------------------------------------------------------------------------------------ inputs: --shape, --fill


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``"input=1x512"`` -> ``("input", (1, 512))``; ``"sr="`` is a scalar. Raises UsageError with the format."""
    name, sep, dims = str(text).rpartition("=")
    if not sep or not name:
        raise UsageError(f"--shape {text!r} is not NAME=D1xD2... (e.g. --shape input=1x512).")
    dims = dims.strip().lower()
    if dims in ("", "scalar", "[]", "()"):
        return name, ()
    parts = re.split(r"[x,]", dims.strip("[]()"))
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"--shape {text!r}: dimensions must be whole numbers separated by x (e.g. 1x3x224x224).") from None
    if any(d < 0 for d in shape):
        raise UsageError(f"--shape {text!r}: a dimension cannot be negative.")
    return name, shape


def parse_fill(text: str) -> tuple[str, float | int | bool | str]:
    """``"sr=16000"`` -> ``("sr", 16000)``; numbers become int or float, ``true``/``false`` bool, anything else a str."""
    name, sep, value = str(text).rpartition("=")
    if not sep or not name:
        raise UsageError(f"--fill {text!r} is not NAME=VALUE (e.g. --fill sr=16000).")
    return name, parse_value(value)


def parse_value(value: str) -> float | int | bool | str:
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(low, 0) if re.fullmatch(r"[+-]?(0x[0-9a-f]+|\d+)", low) else float(low)
    except ValueError:
        return value


def parse_given(shapes: dict, fills: dict) -> tuple[dict, dict]:
    """Texts typed per input ({name: "1x512"}, {name: "16000"}; empty ones ignored) -> RunConfig's input_shapes
    and input_fills. Raises UsageError as --shape / --fill do."""
    out_shapes = {n: parse_shape(f"{n}={t.strip()}")[1] for n, t in shapes.items() if t and t.strip()}
    out_fills = {n: parse_value(t.strip()) for n, t in fills.items() if t and t.strip()}
    return out_shapes, out_fills


def describe_shape(shape) -> str:
    """``("batch", 512)`` -> ``[batch, 512]``, an unknown size as ``?``."""
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def format_shape(shape) -> str:
    """``(1, 512)`` -> ``"1x512"`` (the --shape syntax); a scalar is ``""``."""
    return "x".join(str(d) for d in shape)


def check_input_shapes(value) -> dict:
    """{name: (d1, ...)} with whole, non-negative dimensions; "1x512" strings are accepted (study files, pages)."""
    if not isinstance(value, dict):
        raise ConfigError(f"input shapes must be a mapping of input name to shape, got {value!r}.")
    out = {}
    for name, shape in value.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"an input shape needs an input name, got {name!r}.")
        if isinstance(shape, str):
            shape = parse_shape(f"{name}={shape}")[1]
        try:
            dims = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            raise ConfigError(f"the shape of input {name!r} must be whole numbers like 1x512, got {shape!r}.") from None
        if any(d < 0 for d in dims) or any(float(a) != d for a, d in zip(shape, dims, strict=True)):
            raise ConfigError(f"the shape of input {name!r} must be whole, non-negative numbers, got {shape!r}.")
        out[name] = dims
    return out


def check_input_fills(value) -> dict:
    """{name: scalar}; strings that read as numbers or true/false become them (values typed into a page)."""
    if not isinstance(value, dict):
        raise ConfigError(f"input fill values must be a mapping of input name to value, got {value!r}.")
    out = {}
    for name, v in value.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a fill value needs an input name, got {name!r}.")
        if isinstance(v, str):
            v = parse_value(v)
        if not isinstance(v, (bool, int, float, str)):
            raise ConfigError(f"the fill value of input {name!r} must be one number, true/false or a string, got {v!r}.")
        out[name] = v
    return out


def check_backend_options(value) -> dict:
    """{option: scalar}; which options and values a backend takes is checked by ``runtimes.registry`` when the run is
    requested (this layer does not know the backends)."""
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise ConfigError(f"backend options must be a mapping of option name to value, got {value!r}.")
    for name, v in value.items():
        if v is not None and not isinstance(v, (bool, int, float, str)):
            raise ConfigError(f"backend option {name} must be one number, true/false or a name, got {v!r}.")
    return dict(value)


def check_keep_fp32(names, precision: str) -> tuple[str, ...]:
    """``--keep-fp32 A,B`` (a comma-separated string or a sequence of node names) as a sorted tuple; int8-static only."""
    if isinstance(names, str):
        names = names.split(",")
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"keep_fp32 must be operator names, got {names!r}.")
    names = tuple(sorted({n.strip() for n in names}))
    if any(not n for n in names):
        raise ConfigError("keep_fp32 has an empty operator name.", "Write the names comma-separated: --keep-fp32 A,B.")
    if names and precision != "int8-static":
        raise ConfigError(f"--keep-fp32 applies to int8-static only, not {precision}.",
                          "Add --precision int8-static.")
    return names


@dataclass(frozen=True)
class RunConfig:
    """What to run and how to measure it. ``model`` is a bundled model name or a path to a .onnx / .tflite file."""

    model: str
    precision: str = "fp32"
    runtime: str | None = None  # None: taken from the file
    tflite_interpreter: str | None = None  # before backends were declared: read as ``backend`` for a .tflite file
    execution_provider: str | None = None  # before backends were declared: read as an option in ``backend_options``
    threads: int = 2
    memory_limit_mb: float | None = None  # None or 0: no cap
    duration_s: float | None = None
    iterations: int | None = None
    warmup: str | int = "auto"
    timeout_s: float | None = None
    preset: str | None = None
    sample_hz: float = 10.0
    swap: bool = True
    tags: dict = field(default_factory=dict)
    input_shapes: dict = field(default_factory=dict)  # {input name: tuple of ints}: --shape NAME=D1xD2...
    input_fills: dict = field(default_factory=dict)  # {input name: int, float, bool or str}: --fill NAME=VALUE
    profile_ops: bool = False  # a per-operator profile after the steady phase (--profile-ops; runtimes.profile)
    backend: str | None = None  # a name in runtimes.registry; None: the best available for the file's format
    backend_options: dict = field(default_factory=dict)  # {option: value} of the backend's options dataclass
    data: str | None = None  # --data PATH: what int8-static of a user's fp32 ONNX file calibrates on (models.data)
    evictable: bool = False  # weights in file-backed, evictable pages where the runtime allows (--evictable)
    keep_fp32: tuple = ()  # int8-static only: operators left in fp32, a mix the quantization doctor chose
    input_file: str | None = None  # a .npy float tensor for the model's one input (a photo, prepared); None: random
    top_k: int = 0  # > 0: the summary's ``prediction`` holds the first inference's top classes
    retention: str = "auto"  # RETENTIONS: what the store keeps of a long run's samples (run.recorder)
    watched: bool = False  # started from a browser on this device: run.runner.watched_choice leaves it a core

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError("model must be a bundled model name or a path to a .onnx or .tflite file.")
        _choice("precision", self.precision, PRECISIONS)
        if self.runtime is not None:
            _choice("runtime", self.runtime, RUNTIMES)
        for name in ("backend", "tflite_interpreter", "execution_provider"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{name.replace('_', ' ')} must be a name, got {value!r}.")
        object.__setattr__(self, "backend_options", check_backend_options(self.backend_options))
        if self.preset is not None:
            _choice("preset", self.preset, tuple(PRESETS))
        set_ = object.__setattr__
        set_(self, "threads", check_number("threads", self.threads, minimum=1, integer=True, allow_none=False))
        mem = check_number("memory limit (MB)", self.memory_limit_mb, minimum=0)
        set_(self, "memory_limit_mb", mem or None)
        set_(self, "duration_s", check_number("duration (s)", self.duration_s, minimum=0))
        set_(self, "iterations", check_number("iterations", self.iterations, minimum=1, integer=True))
        set_(self, "timeout_s", check_number("timeout (s)", self.timeout_s, minimum=0.1))
        set_(self, "sample_hz", check_number("sample rate (Hz)", self.sample_hz, minimum=0.1, allow_none=False))
        if self.warmup != "auto":
            set_(self, "warmup", check_number("warm-up", self.warmup, minimum=0, integer=True, allow_none=False))
        set_(self, "input_shapes", check_input_shapes(self.input_shapes))
        set_(self, "input_fills", check_input_fills(self.input_fills))
        if self.data is not None and (not isinstance(self.data, str) or not self.data.strip()):
            raise ConfigError("data must be the path of a folder of images or a .npz/.npy file.")
        for name in ("profile_ops", "evictable", "watched"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}.")
        set_(self, "keep_fp32", check_keep_fp32(self.keep_fp32, self.precision))
        if self.input_file is not None and (not isinstance(self.input_file, str) or not self.input_file.endswith(".npy")):
            raise ConfigError(f"input file must be the path of a .npy file, got {self.input_file!r}.")
        _choice("retention", self.retention, RETENTIONS)
        set_(self, "top_k", check_number("top k", self.top_k, minimum=0, integer=True, allow_none=False))
        if self.duration_s is None and self.iterations is None and self.preset is None:
            set_(self, "preset", "quick")

    @property
    def min_duration_s(self) -> float:
        if self.duration_s is not None:
            return self.duration_s
        if self.iterations is not None:
            return 0.0
        return PRESETS[self.preset][0]

    @property
    def min_iterations(self) -> int:
        if self.iterations is not None:
            return self.iterations
        if self.duration_s is not None:
            return 1
        return PRESETS[self.preset][1]

    def estimate_seconds(self, latency_s: float) -> float:
        """A rough wall-clock estimate of a run of a model whose inferences take ``latency_s``: loading (~2 s),
        warm-up ("auto": at least 40 inferences, at most 30 s), then the steady state, the longer of the minimum
        time and the minimum number of inferences. What a page says before Start; never a measurement."""
        warm = min(30.0, max(40 * latency_s, 0.1)) if self.warmup == "auto" else int(self.warmup) * latency_s
        if self.iterations is not None and self.duration_s is None:
            steady = self.iterations * latency_s
        else:
            steady = max(self.min_duration_s, self.min_iterations * latency_s)
        return 2.0 + warm + steady

    def effective_timeout_s(self) -> float:
        """A wall-clock bound for the whole run: a capped model can thrash on evicted pages for minutes."""
        if self.timeout_s is not None:
            return self.timeout_s
        return 120.0 + 3.0 * self.min_duration_s

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> RunConfig:
        return replace(self, **changes)
