"""The database schema, declared once: tables, the columns each batch carries, and the migrations that got every
older file here.

``MIGRATIONS`` is the whole history of the schema: entry ``i`` takes a database from version ``i`` to ``i + 1``
(version 1 is the first entry; a new file runs them all). Each migration runs in one transaction and records itself in
``schema_version``, so a crash half-way leaves the file at the previous version. Never edit a migration that has
shipped: append a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb

from ..worker.messages import PHASES
from . import columns

_V1 = [
    """CREATE TABLE schema_version (
        version     INTEGER PRIMARY KEY,
        applied_at  TIMESTAMP NOT NULL,
        description TEXT
    )""",
    """CREATE TABLE devices (
        device_id  TEXT PRIMARY KEY,
        hostname   TEXT,
        machine    TEXT,
        model      TEXT,
        cpu        TEXT,
        cores      INTEGER,
        ram_mb     DOUBLE,
        os         TEXT,
        kernel     TEXT,
        info       JSON,
        first_seen TIMESTAMP,
        last_seen  TIMESTAMP
    )""",
    """CREATE TABLE runs (
        run_id              TEXT PRIMARY KEY,
        device_id           TEXT,
        created_at          TIMESTAMP NOT NULL,
        finished_at         TIMESTAMP,
        status              TEXT NOT NULL,
        reason              TEXT,
        model               TEXT,
        precision           TEXT,
        runtime             TEXT,
        interpreter         TEXT,
        provider            TEXT,
        threads             INTEGER,
        memory_limit_mb     DOUBLE,
        model_path          TEXT,
        model_sha256        TEXT,
        model_size_bytes    BIGINT,
        study_id            TEXT,
        config              JSON,
        software            JSON,
        summary             JSON,
        load_ms             DOUBLE,
        first_inference_ms  DOUBLE,
        warmup_ms           DOUBLE,
        warmup_iterations   INTEGER,
        p50_ms              DOUBLE,
        p90_ms              DOUBLE,
        p95_ms              DOUBLE,
        p99_ms              DOUBLE,
        mean_ms             DOUBLE,
        std_ms              DOUBLE,
        cov                 DOUBLE,
        n                   BIGINT,
        median_ci_low_ms    DOUBLE,
        median_ci_high_ms   DOUBLE,
        throughput_ips      DOUBLE,
        cpu_system_mean_pct DOUBLE,
        cpu_worker_mean_pct DOUBLE,
        peak_rss_mb         DOUBLE,
        peak_charged_mb     DOUBLE,
        gpu_util_mean_pct   DOUBLE,
        temp_max_c          DOUBLE,
        mem_mechanism       TEXT,
        oom_killed          BOOLEAN,
        flags               JSON,
        owner_pid           INTEGER,
        owner_host          TEXT
    )""",
    # No foreign keys and no indexes on the sample tables: rows of one run arrive together, so DuckDB's zone maps
    # already skip other runs, and an index would slow every batched append.
    """CREATE TABLE latency (
        run_id     TEXT NOT NULL,
        seq        INTEGER NOT NULL,
        t_ns       BIGINT NOT NULL,
        latency_ns BIGINT NOT NULL,
        phase      TEXT NOT NULL
    )""",
    """CREATE TABLE telemetry (
        run_id TEXT NOT NULL,
        t_ns   BIGINT NOT NULL,
        source TEXT NOT NULL,
        metric TEXT NOT NULL,
        value  DOUBLE,
        unit   TEXT
    )""",
    """CREATE TABLE studies (
        study_id   TEXT PRIMARY KEY,
        name       TEXT,
        created_at TIMESTAMP NOT NULL,
        config     JSON,
        status     TEXT
    )""",
    """CREATE TABLE study_cells (
        study_id TEXT NOT NULL,
        cell_key TEXT NOT NULL,
        run_id   TEXT,
        status   TEXT,
        PRIMARY KEY (study_id, cell_key)
    )""",
]

_V2 = [
    # Free-text notes a user attaches to a run, and the run's tags lifted out of the config for filtering.
    "ALTER TABLE runs ADD COLUMN notes TEXT",
    "ALTER TABLE runs ADD COLUMN tags JSON",
    "UPDATE runs SET tags = json_extract(config, '$.tags') WHERE config IS NOT NULL",
]

FILL_CPU_OTHERS = columns.fill_sql("cpu_others_mean_pct")
_V3 = [
    # CPU that other processes used while the run measured (the summary's cpu.others_mean_pct), so the Correlations
    # page can set contention against latency; filled from the stored summaries of older runs.
    "ALTER TABLE runs ADD COLUMN cpu_others_mean_pct DOUBLE",
    FILL_CPU_OTHERS,
]

_V4 = [
    # One name per thing: the run config's names for the TFLite interpreter and the ONNX Runtime execution provider.
    "ALTER TABLE runs RENAME COLUMN interpreter TO tflite_interpreter",
    "ALTER TABLE runs RENAME COLUMN provider TO execution_provider",
]
RENAMED_COLUMNS = {"interpreter": "tflite_interpreter", "provider": "execution_provider"}  # in bundles of schema < 4

NO_LIMIT_IS_NULL = [
    # Study cells with limit "none" ran under a non-binding cap of the device's RAM and stored it as their limit
    # (24,105 MB beside real caps of 29-256 MB); no limit is stored as no limit, in the column and the summary.
    """UPDATE runs SET memory_limit_mb = NULL,
           summary = CASE WHEN summary IS NULL THEN NULL
                          ELSE json_merge_patch(summary, '{"memory": {"requested_mb": null}}') END
       WHERE json_extract_string(tags, '$.mem') = 'none'""",
]

_RUN_GROUPS = [
    # Runs made together as one measurement: `run --repeat N` (kind "repeat"), an interleaved comparison of two
    # configurations (kind "compare") and a device's noise-floor measurement (kind "noise_floor"). Each member run
    # keeps its own row in runs, linked by runs.group_id; the group's result (median of the run medians, the
    # interval between runs, the noise floor) is its own document.
    """CREATE TABLE run_groups (
        group_id    TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        device_id   TEXT,
        created_at  TIMESTAMP NOT NULL,
        finished_at TIMESTAMP,
        status      TEXT NOT NULL,
        config      JSON,
        result      JSON
    )""",
    "ALTER TABLE runs ADD COLUMN group_id TEXT",
]

# Why a run is slow (summary keys op_profile, memory.pressure, memory.major_faults_per_s, energy): the profile as a
# JSON column of its own (the `ops` command and the Compare page read it without the whole summary), the figures as
# columns the Correlations page and the study report set against latency.
_WHY_NAMES = ("op_profile", "mem_pressure_some_pct", "mem_pressure_full_pct", "major_faults_per_s",
              "energy_mj_per_inference", "avg_power_w")
WHY_COLUMNS = {n: (columns.BY_NAME[n].type, "$." + columns.BY_NAME[n].summary) for n in _WHY_NAMES}  # column -> (type, path)
_WHY = columns.added(*_WHY_NAMES)


FILL_DEVICE_NAME = ("UPDATE runs SET device_name = (SELECT coalesce(d.device_name, d.hostname) FROM devices d"
                    " WHERE d.device_id = runs.device_id) WHERE device_name IS NULL")
_DEVICE_NAME = [
    # A fleet shows runs of many devices: each device has a human name (`edgeprof devices --name`, default the
    # hostname), and each run keeps the name its device had when it ran. Older rows take the hostname.
    "ALTER TABLE devices ADD COLUMN device_name TEXT",
    "UPDATE devices SET device_name = hostname",
    "ALTER TABLE runs ADD COLUMN device_name TEXT",
    FILL_DEVICE_NAME,
]

# The backend that ran a run (a name in runtimes.registry) and the options it was asked for, in place of the two
# per-backend columns: filled from the summary's backend block, else the old columns (the backend of an ONNX file was
# always onnxruntime). The old columns stay for readers of older code and bundles; new code reads these.
FILL_BACKEND = ("UPDATE runs SET backend = coalesce(json_extract_string(summary, '$.backend.name'),"
                " json_extract_string(summary, '$.runtime.name'), tflite_interpreter,"
                " CASE WHEN runtime = 'onnx' THEN 'onnxruntime' END) WHERE backend IS NULL")
FILL_BACKEND_OPTIONS = ("UPDATE runs SET backend_options = json_object('execution_provider', execution_provider)"
                        " WHERE backend_options IS NULL AND execution_provider IS NOT NULL AND backend = 'onnxruntime'")
BACKEND_COLUMNS = [
    "ALTER TABLE runs ADD COLUMN backend TEXT",
    "ALTER TABLE runs ADD COLUMN backend_options JSON",
    FILL_BACKEND,
    FILL_BACKEND_OPTIONS,
]

# A long run's reduction (``RunConfig.retention``, run.recorder): past the exact part stored in latency, each second's
# samples as one aggregate row per phase (a second that two flushes saw has two rows: readers add them up), and a
# seeded uniform reservoir of the steady samples (Vitter's algorithm R over every steady sample of the run) written when
# the run ends. runs.retention says which the run got: all or reduced.
RETENTION = [
    """CREATE TABLE latency_seconds (
        run_id    TEXT NOT NULL,
        phase     TEXT NOT NULL,
        n         BIGINT NOT NULL,
        seq_first INTEGER NOT NULL,
        seq_last  INTEGER NOT NULL,
        t_first   BIGINT NOT NULL,
        t_last    BIGINT NOT NULL,
        min_ns    BIGINT NOT NULL,
        max_ns    BIGINT NOT NULL,
        sum_ns    BIGINT NOT NULL,
        sumsq_ms2 DOUBLE NOT NULL,
        last_ns   BIGINT NOT NULL
    )""",
    """CREATE TABLE latency_reservoir (
        run_id     TEXT NOT NULL,
        seq        INTEGER NOT NULL,
        t_ns       BIGINT NOT NULL,
        latency_ns BIGINT NOT NULL
    )""",
    *columns.added("retention"),
    "UPDATE runs SET retention = 'all' WHERE retention IS NULL",  # every run before this kept every sample
]

# (description, statements or a callable taking the connection). Append only.
MIGRATIONS: list[tuple[str, Sequence[str] | Callable[[duckdb.DuckDBPyConnection], None]]] = [
    ("initial schema: devices, runs, latency, telemetry, studies, study_cells", _V1),
    ("runs.notes and runs.tags (filled from config.tags)", _V2),
    ("runs.cpu_others_mean_pct (filled from summary.cpu.others_mean_pct)", _V3),
    ("runs.interpreter -> tflite_interpreter, runs.provider -> execution_provider", _V4),
    ("no limit stored as no limit (study cells 'none' held the device's RAM)", NO_LIMIT_IS_NULL),
    ("run_groups (repeated runs, interleaved comparisons, noise floors) and runs.group_id", _RUN_GROUPS),
    ("runs.op_profile, mem_pressure_some_pct/full_pct, major_faults_per_s, energy_mj_per_inference, avg_power_w "
     "(filled from the summary)", _WHY),
    ("devices.device_name and runs.device_name (filled from the hostname)", _DEVICE_NAME),
    ("runs.backend and runs.backend_options (from the summary, runs.tflite_interpreter, runs.execution_provider)",
     BACKEND_COLUMNS),
    ("latency_seconds, latency_reservoir and runs.retention (a long run's reduction)", RETENTION),
    ("runs.power_mode (filled from the summary)", columns.added("power_mode")),
]
SCHEMA_VERSION = len(MIGRATIONS)

TABLES = ("devices", "runs", "latency", "telemetry", "studies", "study_cells", "run_groups", "latency_seconds",
          "latency_reservoir")
SAMPLE_TABLES = ("latency", "telemetry", "latency_seconds", "latency_reservoir")  # rows of one run each
LATENCY_COLUMNS = ("seq", "t_ns", "latency_ns", "phase")
SECONDS_COLUMNS = ("phase", "n", "seq_first", "seq_last", "t_first", "t_last", "min_ns", "max_ns", "sum_ns",
                   "sumsq_ms2", "last_ns")
RESERVOIR_COLUMNS = ("seq", "t_ns", "latency_ns")
TELEMETRY_COLUMNS = ("t_ns", "source", "metric", "value", "unit")
JSON_RUN_COLUMNS = columns.JSON_RUN_COLUMNS
GROUP_KINDS = ("repeat", "compare", "noise_floor", "memory")  # memory: run.memory's curve


# The summary document (runs.summary) has its own version: 2 names the runtime ("onnx" | "tflite", as in the config)
# and the backend that ran it apart; version 1 had "format" and a "runtime" block. Stored documents are not rewritten:
# they are read through upgrade_summary.
SUMMARY_VERSION = 2


#: How a run stored before intervals had a scope computed its median interval (read into ``ci_method``).
OLD_CI_METHOD = ("binomial order statistics, assuming independent samples (edgeprof before scoped intervals): too "
                 "narrow when consecutive latencies are correlated")


def upgrade_summary(doc: dict | None) -> dict | None:
    """A stored summary in the current shape: version 1 (before SUMMARY_VERSION) had ``format`` for the runtime and a
    ``runtime`` block {name, version, provider, threads} for the backend; a summary without ``latency_ms.ci_scope``
    (before scoped intervals) gets ``p50_ci`` from its median interval, labelled with the method that made it. Runs
    stored by older edgeprof versions and bundles from other devices are read through this, so pages and the CLI
    see one shape."""
    if not isinstance(doc, dict):
        return doc
    if doc.get("summary_version", 1) < SUMMARY_VERSION:
        doc = _upgrade_v1(doc)
    lat = doc.get("latency_ms")
    if isinstance(lat, dict) and "ci_scope" not in lat:
        low, high = lat.get("median_ci_low"), lat.get("median_ci_high")
        doc = {**doc, "latency_ms": {
            **lat, "p50_ci": None if low is None or high is None else [low, high], "p90_ci": None,
            "ci_scope": "within-run", "ci_method": OLD_CI_METHOD,
            "ci_note": "interval within this run only, computed as if its samples were independent: narrower than "
                       "it should be, and variation between runs is not in it"}}
    return doc


def _upgrade_v1(doc: dict) -> dict:
    doc = dict(doc)
    old = doc.get("runtime") if isinstance(doc.get("runtime"), dict) else {}
    name, provider = old.get("name"), old.get("provider")
    tflite = name in ("litert", "tflite-runtime")
    doc["backend"] = {"name": name, "version": old.get("version"),
                      "execution_provider": None if tflite else provider, "delegate": provider if tflite else None,
                      "threads": old.get("threads")}
    doc["runtime"] = doc.pop("format", None) or ("tflite" if tflite else "onnx" if name else None)
    doc["summary_version"] = SUMMARY_VERSION
    return doc


def phase_code_sql(column: str = "phase") -> str:
    """SQL that turns the stored phase name into its code (``worker.messages.PHASE_CODES``), from the one tuple."""
    cases = " ".join(f"WHEN '{p}' THEN {i}" for i, p in enumerate(PHASES))
    return f"CAST(CASE {column} {cases} END AS TINYINT)"
