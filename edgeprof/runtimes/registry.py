"""The backends, declared once: each is one module whose ``BACKEND`` says its name, the file formats it reads, its
options (a dataclass whose fields carry their help and allowed values), ``status()``, ``open()`` and what it runs on
(cpu / gpu / npu, for energy and telemetry). Everything else (the worker, the CLI's choices, the Run page's widgets,
fidelity, studies, the store, the summary's energy rule) asks this module, never a backend's name.

Adding a backend is a new module with a ``BACKEND`` and one line in ``MODULES``; a module outside the package is
registered with ``register(module)`` or named in ``$EDGEPROF_BACKENDS`` (the worker imports the module of the backend
it is told to run, so a backend registered at run time runs there too).
The order of ``MODULES`` is the order of preference: a file runs on the first available backend that reads its format
unless the run names one. Importing this module imports no runtime: a backend module imports its runtime when it opens
a file or reports its status.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, RuntimeUnavailable, UsageError
from .base import RuntimeStatus, Session

MODULES = [
    "edgeprof.runtimes.onnx",
    "edgeprof.runtimes.litert",
    "edgeprof.runtimes.tflite_runtime",
]
RUNS_ON = ("cpu", "gpu", "npu")
ENV_MODULES = "EDGEPROF_BACKENDS"  # more backend modules, comma-separated, after MODULES (a plug-in, the tests' own)


def option(default=None, *, help: str, choices: tuple = ()):  # noqa: A002 - argparse's name for it
    """A field of a backend's options dataclass with its help and allowed values (what the CLI and the Run page show)."""
    return field(default=default, metadata={"help": help, "choices": tuple(choices)})


@dataclass(frozen=True)
class NoOptions:
    """A backend without options."""


@dataclass(frozen=True)
class Backend:
    """One backend. ``open(path, threads, options, evictable) -> Session`` raises ModelError / RuntimeUnavailable
    (``evictable``: keep the weights in file-backed pages the kernel can evict, where the backend can);
    ``status() -> RuntimeStatus``; ``runs_on(ran) -> "cpu" | "gpu" | "npu"`` from the ``RuntimeInfo`` dict of what
    really ran (an execution provider that fell back to the CPU ran on the CPU)."""

    name: str
    formats: tuple[str, ...]
    summary: str
    open: Callable[[Path, int, object, bool], Session]
    status: Callable[[], RuntimeStatus]
    options: type = NoOptions
    runs_on: Callable[[dict], str] = lambda ran: "cpu"
    module: str = ""

    def make_options(self, given: dict | None):
        """``given`` ({option: value}; None or {}: the defaults) as this backend's options dataclass. Raises ConfigError
        that lists the options or values allowed."""
        given = dict(given or {})
        fields = {f.name: f for f in dataclasses.fields(self.options)}
        unknown = sorted(set(given) - set(fields))
        if unknown:
            allowed = ", ".join(fields) or "none"
            raise ConfigError(f"backend {self.name} has no option {', '.join(map(repr, unknown))} (its options: "
                              f"{allowed}).")
        for name, value in given.items():
            choices = fields[name].metadata.get("choices") or ()
            if value is not None and choices and value not in choices:
                raise ConfigError(f"{self.name} option {name} {value!r} is not one of: {', '.join(choices)}.")
        return self.options(**given)

    def option_fields(self) -> list[dataclasses.Field]:
        return list(dataclasses.fields(self.options))


_BACKENDS: dict[str, Backend] = {}


def register(module: str) -> Backend:
    """Import ``module`` and register its ``BACKEND`` (a later module of the same name replaces the earlier)."""
    _loaded()
    return _register(module)


def _register(module: str) -> Backend:
    backend = importlib.import_module(module).BACKEND
    backend = dataclasses.replace(backend, module=module)
    _BACKENDS[backend.name] = backend
    return backend


def unregister(name: str) -> None:
    _BACKENDS.pop(name, None)


_DEFAULTS_LOADED: list[bool] = []


def _loaded() -> dict[str, Backend]:
    if not _DEFAULTS_LOADED:
        _DEFAULTS_LOADED.append(True)
        extra = [m.strip() for m in os.environ.get(ENV_MODULES, "").split(",") if m.strip()]
        for module in [*MODULES, *extra]:
            _register(module)
    return _BACKENDS


def backends() -> list[Backend]:
    """Every registered backend, in order of preference."""
    return list(_loaded().values())


def names() -> tuple[str, ...]:
    return tuple(_loaded())


def formats() -> tuple[str, ...]:
    """The file formats some backend reads (``onnx``, ``tflite``), in order of first appearance."""
    return tuple(dict.fromkeys(f for b in backends() for f in b.formats))


def for_format(fmt: str) -> list[Backend]:
    return [b for b in backends() if fmt in b.formats]


def option_choices(option: str) -> tuple:
    """Every allowed value of the option called ``option`` across the backends that declare it."""
    return tuple(dict.fromkeys(c for b in backends() for f in b.option_fields() if f.name == option
                               for c in f.metadata.get("choices") or ()))


def get(name: str) -> Backend:
    """The backend called ``name``; ConfigError listing the registered ones otherwise."""
    found = _loaded().get(name)
    if found is None:
        raise ConfigError(f"backend {name!r} is not one of: {', '.join(names())}.")
    return found


def choose(fmt: str, name: str | None = None) -> Backend:
    """The backend that runs a file of ``fmt``: ``name`` when given (UsageError when it cannot read ``fmt``), else the
    first available one that reads it, else the first that reads it (whose ``open`` says what to install)."""
    if name:
        backend = get(name)
        if fmt not in backend.formats:
            raise UsageError(f"backend {name} reads {', '.join(backend.formats)} files, not {fmt}.",
                             f"Choose one of: {', '.join(b.name for b in for_format(fmt)) or 'none'}.")
        return backend
    candidates = for_format(fmt)
    if not candidates:
        raise UsageError(f"no backend reads {fmt} files (formats: {', '.join(formats())}).")
    for backend in candidates:
        if backend.status().available:
            return backend
    return candidates[0]


def requested(fmt: str, backend: str | None = None, options: dict | None = None, *,
              tflite_interpreter: str | None = None, execution_provider: str | None = None) -> tuple[str | None, dict]:
    """The backend a run asks for a file of ``fmt`` (None: the best available) and its options, checked: ConfigError
    for an unknown backend, option or value, UsageError for a backend that cannot read ``fmt``. Nothing is imported or
    probed. Reads RunConfig's fields of before this registry: ``tflite_interpreter`` names a backend for the files it
    reads (ignored for others, as it always was), ``execution_provider`` is the option of that name of a backend that
    declares it (ignored for a file whose backends have no such option)."""
    options = dict(options or {})
    if tflite_interpreter:
        readers = [b.name for b in for_format("tflite")]
        if tflite_interpreter not in readers:
            raise ConfigError(f"tflite interpreter {tflite_interpreter!r} is not one of: {', '.join(readers)}.")
        if not backend and fmt in get(tflite_interpreter).formats:
            backend = tflite_interpreter
    candidates = [choose(fmt, backend)] if backend else for_format(fmt)
    if not candidates:
        raise UsageError(f"no backend reads {fmt} files (formats: {', '.join(formats())}).")
    if execution_provider is not None:
        old = {"execution_provider": execution_provider}
        for b in backends():  # a value no backend knows is refused, also for a file that ignores it
            if "execution_provider" in {f.name for f in b.option_fields()}:
                b.make_options(old)
        if any("execution_provider" in {f.name for f in b.option_fields()} for b in candidates):
            options.setdefault("execution_provider", execution_provider)
    candidates[0].make_options(options)
    return backend, options


def for_config(fmt: str, cfg) -> tuple[str | None, dict]:
    """:func:`requested` for a ``RunConfig``."""
    return requested(fmt, cfg.backend, cfg.backend_options, tflite_interpreter=cfg.tflite_interpreter,
                     execution_provider=cfg.execution_provider)


def open_backend(path: Path, fmt: str, name: str | None, options: dict | None, threads: int,
                 evictable: bool = False) -> Session:
    """A loaded model on the chosen backend. Raises ConfigError, UsageError, ModelError, RuntimeUnavailable."""
    backend = choose(fmt, name)
    return backend.open(path, threads, backend.make_options(options), evictable)


def runs_on(ran: dict | None) -> str:
    """``cpu``, ``gpu`` or ``npu``: what the backend in a summary's ``backend`` block ran on (an unknown or older
    backend: cpu)."""
    ran = ran or {}
    found = _loaded().get(str(ran.get("name")))
    return found.runs_on(ran) if found is not None else "cpu"


def statuses() -> list[RuntimeStatus]:
    out = []
    for backend in backends():
        try:
            out.append(backend.status())
        except RuntimeUnavailable as exc:  # a status must not raise; one that does is unavailable
            out.append(RuntimeStatus(backend.name, False, None, str(exc)))
    return out
