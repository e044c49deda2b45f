"""The columns of a run, declared once: name, SQL type, where the value comes from in the summary, the label people
read and where it is shown. What is generated from this table: ``Store.finish_run``'s flattening of the summary, the
fill of a new column's migration (``added``), the refill of columns a bundle from an older schema lacks
(``refill_sql``), the JSON columns parsed on reading, the `runs` command's columns and the Correlations variables.

A new column on every run is one row here and one line in ``schema.MIGRATIONS``; the Jetson power mode was added so:
the row ``power_mode`` (from the summary's ``device.power_mode``, which ``telemetry.static_info`` reads from
``nvpmodel``) and ``("runs.power_mode (filled from the summary)", columns.added("power_mode"))``.

``summary``: a path of keys in the summary document (as ``schema.upgrade_summary`` shapes it), several alternatives
separated by ``|`` (the first present wins), or None for a column the summary does not fill. ``only_present``: a
summary without the value leaves the column as the run's start wrote it. ``stored=False``: a column ``list_runs``
derives in SQL, not a stored one. ``shown``: ``runs`` (the `runs` command, in this order), ``correlate`` (a variable
of the Correlations page).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    summary: str | None = None
    label: str = ""
    header: str = ""  # the `runs` command's column header (default: the name)
    shown: tuple[str, ...] = ()
    only_present: bool = False
    stored: bool = True

    @property
    def paths(self) -> list[tuple[str, ...]]:
        return [tuple(p.split(".")) for p in self.summary.split("|")] if self.summary else []


C = Column
RUN_COLUMNS: tuple[Column, ...] = (
    C("run_id", "TEXT", header="run_id", shown=("runs",)),
    C("created_at", "TIMESTAMP", header="started (UTC)", shown=("runs",)),
    C("device_name", "TEXT", header="device", shown=("runs",)),
    C("status", "TEXT", shown=("runs",)),
    C("model", "TEXT", shown=("runs",)),
    C("precision", "TEXT", shown=("runs",)),
    C("runtime", "TEXT", shown=("runs",)),
    C("threads", "INTEGER", label="threads", shown=("runs", "correlate")),
    C("memory_limit_mb", "DOUBLE", label="memory limit (MB)", header="limit", shown=("runs", "correlate")),
    C("config", "JSON"), C("software", "JSON"), C("summary", "JSON"), C("tags", "JSON"),
    C("backend_options", "JSON"),
    C("load_ms", "DOUBLE", "load_ms", "load (ms)", shown=("correlate",)),
    C("first_inference_ms", "DOUBLE", "first_inference_ms"),
    C("warmup_ms", "DOUBLE", "warmup_ms", "warm-up (ms)", shown=("correlate",)),
    C("warmup_iterations", "INTEGER", "warmup_iterations"),
    C("p50_ms", "DOUBLE", "latency_ms.p50", "latency p50 (ms)", "p50 ms", ("runs", "correlate")),
    C("p90_ms", "DOUBLE", "latency_ms.p90", "latency p90 (ms)", "p90 ms", ("runs", "correlate")),
    C("p95_ms", "DOUBLE", "latency_ms.p95"),
    C("p99_ms", "DOUBLE", "latency_ms.p99"),
    C("mean_ms", "DOUBLE", "latency_ms.mean"),
    C("std_ms", "DOUBLE", "latency_ms.std"),
    C("cov", "DOUBLE", "latency_ms.cov"),
    C("n", "BIGINT", "latency_ms.n"),
    C("median_ci_low_ms", "DOUBLE", "latency_ms.median_ci_low"),
    C("median_ci_high_ms", "DOUBLE", "latency_ms.median_ci_high"),
    C("throughput_ips", "DOUBLE", "throughput_ips", "throughput (inf/s)", shown=("correlate",)),
    C("cpu_system_mean_pct", "DOUBLE", "cpu.system_mean_pct", "CPU system mean (%)", shown=("correlate",)),
    C("cpu_worker_mean_pct", "DOUBLE", "cpu.worker_mean_pct", "CPU worker mean (%)", shown=("correlate",)),
    C("cpu_others_mean_pct", "DOUBLE", "cpu.others_mean_pct", "CPU other processes mean (% of a core)",
      shown=("correlate",)),
    C("peak_ram_mb", "DOUBLE", label="peak RAM (MB)", shown=("correlate",), stored=False),
    C("model_size_mb", "DOUBLE", label="model size (MB)", shown=("correlate",), stored=False),
    C("bits", "DOUBLE", label="bits", shown=("correlate",), stored=False),
    C("peak_rss_mb", "DOUBLE", "memory.peak_rss_mb"),
    C("peak_charged_mb", "DOUBLE", "memory.peak_charged_mb", header="peak charged MB", shown=("runs",)),
    C("gpu_util_mean_pct", "DOUBLE", "gpu.util_mean_pct|gpu.utilization_mean_pct", "GPU utilization (%)",
      shown=("correlate",)),
    C("temp_max_c", "DOUBLE", "temp_max_c", "temperature max (C)", shown=("correlate",)),
    C("mem_mechanism", "TEXT", "memory.mechanism"),
    C("oom_killed", "BOOLEAN", "memory.oom_killed"),
    C("flags", "JSON", "flags"),
    C("op_profile", "JSON", "op_profile"),
    C("mem_pressure_some_pct", "DOUBLE", "memory.pressure.some_pct", "memory pressure, some stalled (% of time)",
      shown=("correlate",)),
    C("mem_pressure_full_pct", "DOUBLE", "memory.pressure.full_pct", "memory pressure, all stalled (% of time)",
      shown=("correlate",)),
    C("major_faults_per_s", "DOUBLE", "memory.major_faults_per_s", "major page faults (/s)", shown=("correlate",)),
    C("energy_mj_per_inference", "DOUBLE", "energy.mj_per_inference", "energy per inference (mJ)",
      shown=("correlate",)),
    C("avg_power_w", "DOUBLE", "energy.avg_power_w", "mean power (W)", shown=("correlate",)),
    C("execution_provider", "TEXT", "backend.execution_provider", only_present=True),
    C("backend", "TEXT", "backend.name", only_present=True),
    C("retention", "TEXT", "retention.kept", header="samples kept", shown=("runs",), only_present=True),
    C("power_mode", "TEXT", "device.power_mode", "power mode", header="power mode", shown=("runs",)),
)
del C

BY_NAME = {c.name: c for c in RUN_COLUMNS}
FROM_SUMMARY = tuple(c for c in RUN_COLUMNS if c.summary)
JSON_RUN_COLUMNS = tuple(c.name for c in RUN_COLUMNS if c.type == "JSON" and c.stored)
RUNS_LIST = tuple(c.name for c in RUN_COLUMNS if "runs" in c.shown)
RUNS_HEADERS = {c.name: c.header or c.name for c in RUN_COLUMNS if "runs" in c.shown}
# The Correlations page's order (label -> column), as it always was
_CORRELATE_ORDER = ("p50_ms", "p90_ms", "warmup_ms", "cpu_system_mean_pct", "cpu_worker_mean_pct", "cpu_others_mean_pct",
                    "peak_ram_mb", "memory_limit_mb", "model_size_mb", "bits", "gpu_util_mean_pct", "temp_max_c",
                    "throughput_ips", "load_ms", "threads", "energy_mj_per_inference", "avg_power_w",
                    "mem_pressure_some_pct", "mem_pressure_full_pct", "major_faults_per_s")
CORRELATE = {BY_NAME[n].label: n for n in _CORRELATE_ORDER} | {
    c.label: c.name for c in RUN_COLUMNS if "correlate" in c.shown and c.name not in _CORRELATE_ORDER}


def fill_sql(name: str) -> str:
    """The UPDATE that fills column ``name`` of rows that lack it from their stored summaries (the first path)."""
    col = BY_NAME[name]
    path = "$." + ".".join(col.paths[0])
    if col.type == "JSON":
        value = f"json_extract(summary, '{path}')"
    elif col.type == "TEXT":
        value = f"json_extract_string(summary, '{path}')"
    else:
        value = f"TRY_CAST(json_extract_string(summary, '{path}') AS {col.type})"
    return f"UPDATE runs SET {name} = {value} WHERE {name} IS NULL AND summary IS NOT NULL"


def added(*names: str) -> list[str]:
    """A migration that adds these declared columns to ``runs`` and fills them from the stored summaries."""
    return [f"ALTER TABLE runs ADD COLUMN {n} {BY_NAME[n].type}" for n in names] + [
        fill_sql(n) for n in names if BY_NAME[n].summary]


def refill_sql(lacking) -> list[str]:
    """The fills of the summary's columns among ``lacking`` (the columns a bundle's runs table does not have)."""
    return [fill_sql(c.name) for c in FROM_SUMMARY if c.name in set(lacking)]
