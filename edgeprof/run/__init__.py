"""One run, from the request to the stored result: ``runner`` (start_run, RunHandle), ``recorder`` (samples on
their way to the store), ``summary`` (the result document, a pure function of facts), ``live`` (the dashboard's
shared live view), ``recovery`` (after a crash), ``repeat`` (runs made together: --repeat, interleaved comparisons,
the noise floor).

The names below load their module on first use (PEP 562): ``recover``, which every front end calls when it opens the
store, needs only ``recovery``, and the commands that only read the store (``runs``, ``show``) should not pay for the
runner, the recorder and pandas."""

from __future__ import annotations

__all__ = ["DeviceBusy", "RunHandle", "active_runs", "check_request", "device_work", "get_handle",
           "measure_noise_floor", "recover", "run_interleaved", "run_repeated", "start_run"]


def __getattr__(name: str):
    if name == "recover":
        from .recovery import recover as value
    elif name in ("measure_noise_floor", "run_interleaved", "run_repeated"):
        from . import repeat
        value = getattr(repeat, name)
    elif name in __all__:
        from . import runner
        value = getattr(runner, name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
