"""Studies: a grid of runs (models x precisions x runtimes x memory limits x threads x repetitions), run one cell
after another, resumable. ``config`` (StudyConfig, presets, memory limits), ``plan`` (cells and their order),
``runner`` (StudyRunner, background studies, listing), ``report`` (figures, correlations, the paper's claims)."""

from .config import (
    STUDY_PRESETS,
    MemLimit,
    StudyConfig,
    load_preset,
    parse_memory_limit,
    preset_path,
    preset_text,
    resolve_config,
    stored_config,
)
from .plan import FAILED_STATUSES, FINAL_STATUSES, Cell, calibration_key, order_limits, parse_cell_key, plan, variant_order
from .runner import (
    Progress,
    StudyBusy,
    StudyHandle,
    StudyLock,
    StudyRunner,
    active_study,
    charges_memory,
    get_study_handle,
    list_studies,
    new_study_id,
    run_study,
    start_study_background,
    stored_footprint,
    this_device_id,
)

__all__ = [
    "FAILED_STATUSES", "FINAL_STATUSES", "STUDY_PRESETS", "Cell", "MemLimit", "Progress", "StudyBusy", "StudyConfig",
    "StudyHandle", "StudyLock", "StudyRunner", "charges_memory", "active_study", "calibration_key",
    "get_study_handle", "list_studies", "load_preset", "new_study_id", "order_limits", "parse_cell_key",
    "parse_memory_limit", "plan", "preset_path", "preset_text", "resolve_config", "run_study",
    "start_study_background", "stored_config", "stored_footprint", "this_device_id", "variant_order",
]
