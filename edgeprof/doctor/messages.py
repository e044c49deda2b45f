"""What crosses the doctor's process boundary: the specs the parent pickles to the child's stdin, and the messages the
child sends back (``Progress`` lines, then one ``Result`` or ``Failed``). A module of its own, so the child (run as
``__main__``) and the parent unpickle the same classes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AnalyseSpec:
    """Compare the FP32 model with its ``precision`` variant tensor by tensor, profile both, build the mixes that
    keep the k worst operators in FP32 for k in ``mix_sizes``."""

    model: str  # bundled name or path of an fp32 .onnx file
    precision: str = "int8-static"
    data: str | None = None  # .npy / .npz of inputs (and labels), else the model's own data, else random inputs
    input_shapes: dict = field(default_factory=dict)
    threads: int = 2
    max_inputs: int = 64  # inputs compared tensor by tensor (fidelity in MeasureSpec uses them all)
    mix_sizes: tuple = (1, 2, 4, 8)
    profile_s: float = 1.0
    rlimit_as_bytes: int | None = None  # set by the parent where no cgroup can cap the child


@dataclass(frozen=True)
class MeasureSpec:
    """One variant: its outputs on every input (fidelity) and a timed loop (latency); the cap measures its memory."""

    model: str
    precision: str
    runtime: str = "onnx"  # onnx | tflite
    keep_fp32: tuple = ()
    path: str | None = None  # the file itself, already built (the analysis returns them): nothing to resolve
    data: str | None = None
    input_shapes: dict = field(default_factory=dict)
    threads: int = 2
    tflite_interpreter: str | None = None
    seconds: float = 2.0
    min_iterations: int = 50  # stats.sections: 5 batches of 10 at least, or no within-run interval
    warmup: int = 10
    rlimit_as_bytes: int | None = None


@dataclass(frozen=True)
class Progress:
    text: str


@dataclass(frozen=True)
class Result:
    doc: dict


@dataclass(frozen=True)
class Failed:
    kind: str  # usage | model | input | memory | error
    message: str
    detail: str = ""
