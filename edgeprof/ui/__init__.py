"""Small helpers shared by the dashboard pages, one module per concern:

- ``store``: every page's start (the store opened and recovered once per process, sidebar, gate, fleet push), links
  between pages, an error in one sentence, the pages' titles (``PAGES``);
- ``runs``: runs in lists (a picker's label, this device's or the fleet's runs, the Runs table and its filters);
- ``frames``: a run's telemetry and phases as frames, the sentences where a chart is missing, the probe status;
- ``summary``: a run's result (headline, end-of-run block, why block, operators side by side) and the Run form's words;
- ``viewer``: who is watching, and the warning when the browser runs on the measured device;
- ``uploads``: model files from the browser and the Inputs panel;
- ``live``: the live view shared by every session watching a run;
- ``panel``: the telemetry panel (a chart per device class) of the Run and Runs pages;
- ``words``: numbers and text as the pages write them (pure).

Pages stay thin: gather inputs, call one library function, draw; they use ``from edgeprof import ui`` and
``ui.NAME``, re-exported here. The figures themselves live in ``charts.py`` (pure). To change what a helper does,
patch it in its own module (``edgeprof.ui.summary.render_summary``): a name re-exported here is a second reference.
"""

from ..run.explain import gpu_reason
from .frames import (
    footprint_table,
    metric_label,
    newest_run,
    phase_spans,
    probe_status,
    source_stops,
    telemetry_frame,
    thermal_reason,
)
from .live import LiveBuffer, shared_view
from .panel import MEMORY_CHART_NOTE, Cell, telemetry_charts, telemetry_panel
from .runs import (
    COLUMN_LABELS,
    VARIABLES,
    FleetSamples,
    filter_runs,
    fleet_choice,
    fleet_run,
    limit_words,
    run_label,
    runs_frame,
    runs_table,
    samples,
)
from .store import (
    PAGES,
    _store_for,
    db_path,
    fleet_push,
    get_store,
    page_link,
    page_setup,
    recover_at_start,
    show_error,
    sidebar,
)
from .summary import (
    AUTO,
    MEMORY_LIMIT_HELP,
    STATUS_WORDS,
    WHY_METRICS,
    backend_widgets,
    duration_words,
    footprint_hint,
    headline,
    interval_words,
    op_comparison,
    render_summary,
    render_why,
    retention_caption,
    summary_figures,
    why_lines,
)
from .uploads import (
    UPLOAD_CAP_MB,
    inputs_panel,
    model_label,
    model_uploader,
    now_utc,
    save_upload,
    upload_cap_mb,
    uploaded_models,
)
from .viewer import on_device_warning, viewer_address, watched_threads_words
from .words import fmt_duration, fmt_file_mb, fmt_ms, fmt_rate, md_text

__all__ = [
    "AUTO", "COLUMN_LABELS", "MEMORY_CHART_NOTE", "MEMORY_LIMIT_HELP", "PAGES", "STATUS_WORDS", "UPLOAD_CAP_MB",
    "VARIABLES", "WHY_METRICS", "Cell", "FleetSamples", "LiveBuffer", "_store_for", "backend_widgets", "db_path",
    "duration_words", "filter_runs", "fleet_choice", "fleet_push", "fleet_run", "fmt_duration", "fmt_file_mb",
    "fmt_ms", "fmt_rate",
    "footprint_hint", "footprint_table", "get_store", "gpu_reason", "headline", "inputs_panel", "interval_words",
    "limit_words", "md_text", "metric_label", "model_label", "model_uploader", "newest_run", "now_utc",
    "on_device_warning", "op_comparison", "page_link", "page_setup", "phase_spans", "probe_status", "recover_at_start",
    "render_summary", "render_why", "retention_caption", "run_label", "runs_frame", "runs_table", "samples",
    "save_upload", "shared_view",
    "show_error", "sidebar", "source_stops", "summary_figures", "telemetry_charts", "telemetry_frame", "telemetry_panel",
    "thermal_reason", "upload_cap_mb", "uploaded_models", "viewer_address", "watched_threads_words", "why_lines",
]
