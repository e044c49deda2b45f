"""A study's report: which of the paper's claims this device's data support, with the numbers that decide it.

Kept apart so the middle layers can be tested on made-up tables:

1. ``frame``: ``study_frame(store, study_id)`` reads the study's cells and their runs into one DataFrame (one row per
   grid cell; with ``study_meta`` and ``memory_curves`` the only I/O of the analysis).
2. ``claims``: one pure function per claim of the paper, listed in ``CLAIMS``; ``evaluate_claims`` gives one
   ``Finding`` each. ``tables``: the utilization-latency correlations and the "why" table.
3. ``render``: ``render_figures`` (matplotlib, Agg, PNG bytes), ``render_html``, ``build_report`` and
   ``write_report`` (what ``report STUDY_ID --out DIR`` writes).

The names below are the public API, importable from here as before the split.
"""

from .claims import (
    ALPHA,
    CLAIMS,
    FEW_N,
    MIN_N,
    NOT_SUPPORTED,
    NOT_TESTABLE,
    RATIO_METHOD,
    SUPPORTED,
    TOO_FEW,
    VERDICTS,
    Finding,
    cite_curves,
    claim_cpu_memory_cpu,
    claim_cpu_memory_gpu,
    claim_memory_latency,
    claim_model_size,
    claim_precision_bits,
    evaluate_claims,
    has_gpu,
    precision_ratios,
    pressure_evidence,
    uncertainty_words,
    untestable_reason,
)
from .frame import DIED, FRAME_COLUMNS, memory_curves, normalise_frame, overview, study_frame, study_meta
from .render import FIGURES, WHY_NOT_DRAWN, build_report, render_figures, render_html, why_html, write_report
from .tables import UTILIZATION, WHY, correlation_table, correlations_for_people, why_table

__all__ = [
    "ALPHA", "CLAIMS", "DIED", "FEW_N", "FIGURES", "FRAME_COLUMNS", "MIN_N", "NOT_SUPPORTED", "NOT_TESTABLE",
    "RATIO_METHOD", "SUPPORTED", "TOO_FEW", "UTILIZATION", "VERDICTS", "WHY", "WHY_NOT_DRAWN", "Finding",
    "build_report", "cite_curves", "claim_cpu_memory_cpu", "claim_cpu_memory_gpu", "claim_memory_latency",
    "claim_model_size", "claim_precision_bits", "correlation_table", "correlations_for_people", "evaluate_claims",
    "has_gpu", "memory_curves", "normalise_frame", "overview", "precision_ratios", "pressure_evidence",
    "render_figures", "render_html", "study_frame", "study_meta", "uncertainty_words", "untestable_reason",
    "why_html", "why_table", "write_report",
]
