"""One run, from the request to the stored result: ``runner`` (start_run, RunHandle), ``recorder`` (samples on
their way to the store), ``summary`` (the result document, a pure function of facts), ``live`` (the dashboard's
shared live view), ``recovery`` (after a crash)."""

from .recovery import recover
from .runner import DeviceBusy, RunHandle, active_runs, check_request, get_handle, start_run

__all__ = ["DeviceBusy", "RunHandle", "active_runs", "check_request", "get_handle", "recover", "start_run"]
