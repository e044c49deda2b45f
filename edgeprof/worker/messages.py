"""The whole parent/worker protocol: a few small, picklable, typed messages.

Parent -> worker: one pickled ``WorkerSpec`` on stdin (the resolved file, runtime, limits and inputs; never the
``RunConfig``); then SIGTERM to stop.
Worker -> parent, on a dedicated pipe: Loaded, Phase, Batch..., then exactly one of Done or Failed. A run that asked
for a per-operator profile goes on after a completed Done: the worker waits for the parent's SIGUSR1 (the parent has
read the cap's peak memory, so the profile phase does not count in it; ``PROFILE_ACK_WAIT_S`` at most), sends
Phase("profile") and then exactly one OpProfile. Everything measured was sent before Done; nothing after it is a
latency sample.
All ``t_ns`` are ``time.monotonic_ns()``, the clock the parent's sampler uses too, so samples line up.

The phases of a run's inferences live here and only here: ``PHASES`` in order, ``PHASE_CODES`` their int8 codes (the
runner's arrays, the store's SQL, the live view all derive from these two).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

PHASES = ("first", "warmup", "steady")  # of the latency samples; "load" is a span before them, not a sample phase
PHASE_CODES = {name: i for i, name in enumerate(PHASES)}
PROFILE_PHASE = "profile"  # after the steady phase, only in runs that asked for an operator profile; no samples
PROFILE_ACK_WAIT_S = 5.0


@dataclass(frozen=True)
class WorkerSpec:
    """What the parent resolved for the worker: the exact file, runtime and limits."""

    model_path: str
    runtime: str
    precision: str
    threads: int
    backend: str | None  # a name in runtimes.registry; None: the best available for the runtime (file format)
    backend_options: dict
    warmup: str | int
    min_duration_s: float
    min_iterations: int
    exact_iterations: bool
    rlimit_as_bytes: int | None = None
    input_shapes: dict = field(default_factory=dict)  # {input name: tuple of ints}, from --shape
    input_fills: dict = field(default_factory=dict)  # {input name: scalar}, from --fill
    batch_interval_s: float = 0.1
    warmup_max_iterations: int = 1000
    warmup_max_s: float = 30.0
    profile_ops: bool = False  # a per-operator profile phase after the steady phase (runtimes.profile)
    backend_module: str | None = None  # the module that declares ``backend`` when it is not one of registry.MODULES
    memory_cgroup: str | None = None  # the cap's cgroup directory: the worker reads its charge at each MEMORY_MARKS
    memory_cgroup_kind: str | None = None  # cgroup1 | cgroup2
    evictable: bool = False  # keep weights in file-backed pages the kernel can evict (runtimes.open_session)
    input_file: str | None = None  # a .npy float tensor fed to the model's one input instead of random data
    top_k: int = 0  # > 0: send the first inference's top classes (Prediction) after its Batch


MEMORY_MARKS = ("imported", "loaded", "first", "steady")  # runtime imported, model loaded, first inference, steady end


@dataclass(frozen=True)
class MemoryMark:
    """The worker's charged memory read by the worker itself at ``mark`` (one of MEMORY_MARKS), so it is exact to
    that moment: ``stat`` the cgroup's memory.stat text, ``usage`` its charged bytes (memory.usage_in_bytes or
    memory.current), ``rss_kb`` the worker's VmRSS. Sent only when the spec names a memory cgroup."""

    mark: str
    t_ns: int
    stat: str
    usage: int | None
    rss_kb: int | None


@dataclass(frozen=True)
class Loaded:
    t_ns: int
    load_ns: int
    runtime: dict
    inputs: list
    outputs: list
    notes: list = field(default_factory=list)
    pid: int = 0
    heavy_modules: list = field(default_factory=list)  # any of streamlit, duckdb, pandas, scipy found imported


@dataclass(frozen=True)
class Phase:
    """The worker entered ``phase`` (first, warmup, steady) at ``t_ns``; ``reason`` says why the last one ended."""

    phase: str
    t_ns: int
    reason: str = ""


@dataclass(frozen=True)
class Batch:
    """Consecutive inferences of one phase, starting at sequence number ``seq0``.

    The columns are ``array('q')``: they pickle as one block of bytes, where a list of ints pickles (and unpickles in
    the server) one Python int at a time, ~45,000 a second for a fast model.
    """

    seq0: int
    phase: str
    t_ns: array  # start of each inference
    latency_ns: array


@dataclass(frozen=True)
class Prediction:
    """The first inference's ``top`` classes of the first output: ``[(class index, probability), ...]``, best
    first (probabilities: the output itself where it already is one, else its softmax)."""

    top: list


@dataclass(frozen=True)
class Done:
    t_ns: int
    iterations: int
    reason: str  # "completed" or "stopped"
    max_rss_mb: float
    major_faults: int


@dataclass(frozen=True)
class OpProfile:
    """The per-operator profile (``runtimes.profile.ort_profile``'s document, or {"unavailable": why})."""

    t_ns: int
    profile: dict


@dataclass(frozen=True)
class Failed:
    """``kind``: model (bad file), input (the inputs fed were refused), runtime (missing interpreter or provider),
    memory (allocation failed), error."""

    kind: str
    message: str
    traceback: str = ""
    phase: str = ""
    detail: str = ""  # the runtime's own text, for the run's details; ``message`` is the sentence a user reads
