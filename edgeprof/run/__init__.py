"""One run, from the request to the stored result: ``runner`` (start_run, RunHandle), ``recorder`` (samples on
their way to the store), ``summary`` (the result document, a pure function of facts), ``live`` (the dashboard's
shared live view), ``recovery`` (after a crash), ``repeat`` (runs made together: --repeat, interleaved comparisons,
the noise floor)."""

from .recovery import recover
from .repeat import measure_noise_floor, run_interleaved, run_repeated
from .runner import DeviceBusy, RunHandle, active_runs, check_request, device_work, get_handle, start_run

__all__ = ["DeviceBusy", "RunHandle", "active_runs", "check_request", "device_work", "get_handle",
           "measure_noise_floor", "recover", "run_interleaved", "run_repeated", "start_run"]
