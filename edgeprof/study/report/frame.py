"""The study's data frame: one row per grid cell with its run's numbers, read from the store (the report's only I/O
besides ``study_meta`` and ``memory_curves``), and the row helpers the claims, tables and figures share.

``study_frame`` reads any object with ``cells``, ``list_runs``, ``list_studies`` and ``path`` (a ``Store``, or one
device's part of a fleet in ``study.across``); ``normalise_frame`` adds the derived columns, so a made-up table of
model, precision, runtime, threads, mem, status, memory_limit_mb and measured columns can stand in for it in tests.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ...config import bits_of
from ...errors import UsageError
from ..config import parse_memory_limit

DIED = ("oom_killed", "timed_out", "crashed")
FRAME_COLUMNS = ["cell_key", "cell_status", "run_id", "status", "rep", "model", "precision", "runtime", "threads",
                 "mem", "mem_kind", "mem_factor", "memory_limit_mb", "mem_value", "footprint_mb", "bits", "variant",
                 "model_size_mb", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "cov", "n", "cpu_system_mean_pct",
                 "cpu_worker_mean_pct", "peak_ram_mb", "gpu_util_mean_pct", "warmup_ms", "load_ms",
                 "first_inference_ms", "temp_max_c", "throttled", "major_faults", "mem_pressure_some_pct",
                 "mem_pressure_full_pct", "pressure_scope", "major_faults_per_s", "energy_mj_per_inference",
                 "energy_source", "top_ops"]
NUMERIC = ("p50_ms", "cpu_system_mean_pct", "cpu_worker_mean_pct", "peak_ram_mb", "gpu_util_mean_pct", "warmup_ms",
           "model_size_mb", "mem_pressure_some_pct", "mem_pressure_full_pct", "major_faults_per_s",
           "energy_mj_per_inference")


def variant_label(model, precision, runtime, threads) -> str:
    """``"digits-cnn fp32 onnx t2"``: the name of a variant in the frame, the tables and the figures."""
    return f"{model} {precision} {runtime} t{threads}"


def _mem_kind(label: str) -> tuple[str, float | None]:
    """(kind, value) of a cell's memory-limit label, by the one parser of those labels."""
    lim = parse_memory_limit(label)
    return lim.kind, lim.value


def _model_sizes(models) -> dict:
    """The fp32 ONNX file size (MB) of each bundled model: the model's size independent of its precision."""
    from ...models.catalog import get_model

    out = {}
    for m in models:
        try:
            v = get_model(m).variant("fp32", "onnx")
            out[m] = v.size_bytes / 1e6 if v.size_bytes else None
        except Exception:
            out[m] = None
    return out


def study_frame(store, study_id: str) -> pd.DataFrame:
    """One row per grid cell of the study with its run's numbers (NaN where the cell has no run)."""
    from ..plan import parse_cell_key

    cells = store.cells(study_id)
    if cells.empty:
        studies = store.list_studies()
        if studies.empty or study_id not in set(studies["study_id"]):
            raise UsageError(f"there is no study {study_id} in {store.path}.",
                             "List studies with `python -m edgeprof studies`.")
        return pd.DataFrame(columns=FRAME_COLUMNS)
    runs = store.list_runs(study_id=study_id)
    rows = []
    for c in cells.itertuples():
        parsed = parse_cell_key(c.cell_key)
        if parsed is None:  # a calibration cell: not part of the grid
            continue
        rows.append({"cell_key": c.cell_key, "cell_status": c.status, "run_id": c.run_id, **parsed})
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=FRAME_COLUMNS)
    keep = ["run_id", "status", "memory_limit_mb", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "cov", "n",
            "cpu_system_mean_pct", "cpu_worker_mean_pct", "peak_ram_mb", "gpu_util_mean_pct",
            "warmup_ms", "load_ms", "first_inference_ms", "temp_max_c", "mem_pressure_some_pct",
            "mem_pressure_full_pct", "major_faults_per_s", "energy_mj_per_inference", "tags", "summary"]
    runs = runs[[c for c in keep if c in runs.columns]] if not runs.empty else pd.DataFrame(columns=keep)
    df = df.merge(runs, on="run_id", how="left")
    df["status"] = df["status"].where(df["status"].notna(), df["cell_status"])
    tags = df["tags"].map(lambda t: json.loads(t) if isinstance(t, str) else (t if isinstance(t, dict) else {}))
    summ = df["summary"].map(lambda t: json.loads(t) if isinstance(t, str) else (t if isinstance(t, dict) else {}))
    df["footprint_mb"] = tags.map(lambda t: t.get("footprint_mb"))
    df["throttled"] = summ.map(lambda s: s.get("throttled"))
    df["major_faults"] = summ.map(lambda s: (s.get("memory") or {}).get("major_faults"))
    df["pressure_scope"] = summ.map(lambda s: ((s.get("memory") or {}).get("pressure") or {}).get("scope"))
    df["energy_source"] = summ.map(_energy_source)
    df["top_ops"] = summ.map(_top_ops)
    kinds = df["mem"].map(_mem_kind)
    df["mem_kind"] = kinds.map(lambda k: k[0])
    df["mem_factor"] = kinds.map(lambda k: k[1] if k[0] == "factor" else None)
    # a "none" cell ran under a non-binding accounting cap: its limit is "none" for the analysis
    df.loc[df["mem_kind"] == "none", "memory_limit_mb"] = np.nan
    sizes = _model_sizes(sorted(df["model"].unique()))
    df["model_size_mb"] = df["model"].map(sizes)
    df = df.drop(columns=[c for c in ("tags", "summary") if c in df.columns])
    return normalise_frame(df)


def _energy_source(s: dict) -> str | None:
    e = s.get("energy")
    if not isinstance(e, dict):
        return None
    return e.get("source") if "unavailable" not in e else f"unavailable: {e['unavailable']}"


def _top_ops(s: dict, n: int = 3) -> str | None:
    """``"ConvInteger 61%, Mul 7%, DynamicQuantizeLinear 6%"`` from a summary's operator profile; None without."""
    prof = s.get("op_profile")
    if not isinstance(prof, dict) or not prof.get("by_type"):
        return None
    return ", ".join(f"{t['op_type']} {100 * t['share']:.0f}%" for t in prof["by_type"][:n])


def normalise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Add the derived columns the analysis needs (idempotent): variant, bits, mem_kind, mem_value (the limit in MB,
    +inf for none, for ordering). Synthetic test frames need only model, precision, runtime, threads, mem, status,
    memory_limit_mb and the measured columns."""
    df = df.copy()
    for col in FRAME_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan
    df["threads"] = df["threads"].fillna(1).astype(int)
    df["rep"] = df["rep"].fillna(0).astype(int)
    df["variant"] = [variant_label(*r) for r in zip(df["model"], df["precision"], df["runtime"], df["threads"],
                                                     strict=True)]
    df["bits"] = df["precision"].map(bits_of)
    kinds = df["mem"].astype(str).map(_mem_kind)
    df["mem_kind"] = kinds.map(lambda k: k[0])
    lim = pd.to_numeric(df["memory_limit_mb"], errors="coerce")
    df["mem_value"] = np.where(df["mem_kind"] == "none", np.inf, lim)
    for col in NUMERIC:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df[FRAME_COLUMNS]


# ------------------------------------------------------------------------------------------- rows of the frame

def ok_rows(df: pd.DataFrame, column: str = "p50_ms") -> pd.DataFrame:
    """The ok runs with a finite ``column``."""
    return df[(df["status"] == "ok") & df[column].notna() & np.isfinite(df[column])]


def median_of(values) -> float | None:
    """The median of the numbers among ``values``; None without any."""
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
    return float(v.median()) if len(v) else None


def rank_within(df: pd.DataFrame, by: list[str], column: str) -> pd.Series:
    """Dense rank of ``column`` within each group (0 = smallest), so levels compare across groups."""
    return df.groupby(by)[column].rank(method="dense") - 1


def relative_to_group(df: pd.DataFrame, by: list[str], column: str, ref_mask: pd.Series | None = None) -> pd.Series:
    """``column`` divided by its group's reference: the median over ``ref_mask`` rows of the group (all if None)."""
    ref_rows = df if ref_mask is None else df[ref_mask]
    ref = ref_rows.groupby(by)[column].median().rename("_ref")
    joined = df.join(ref, on=by)
    return joined[column] / joined["_ref"]


def generous_mask(df: pd.DataFrame) -> pd.Series:
    """Rows at the most generous limit of their variant among rows with a result."""
    top = df.groupby("variant")["mem_value"].transform("max")
    return df["mem_value"] == top


def overview(df: pd.DataFrame) -> dict:
    """What the study holds: cells (by status), variants, models, throttled runs and the hottest temperature (C)."""
    df = normalise_frame(df)
    counts = df["status"].fillna("not run").value_counts().to_dict()
    return {"cells": int(len(df)), "by_status": {str(k): int(v) for k, v in counts.items()},
            "variants": int(df["variant"].nunique()), "models": sorted(map(str, df["model"].dropna().unique())),
            "throttled_runs": int(df["throttled"].fillna(False).astype(bool).sum()),
            "temp_max_c": float(df["temp_max_c"].max()) if df["temp_max_c"].notna().any() else None}


def study_meta(store, study_id: str) -> dict:
    """The study's row (name, status, description, config), the device its runs ran on in words and its id, and the
    edgeprof version writing the report. Raises UsageError for a study the store does not have."""
    from ... import __version__

    studies = store.list_studies()
    row = studies[studies["study_id"] == study_id]
    if row.empty:
        raise UsageError(f"there is no study {study_id} in {store.path}.", "List studies with `python -m edgeprof studies`.")
    r = row.iloc[0]
    cfg = json.loads(r["config"]) if isinstance(r["config"], str) else (r["config"] or {})
    runs = store.list_runs(study_id=study_id, limit=1)
    device = device_id = None
    if not runs.empty:
        device_id = runs.iloc[0]["device_id"]
        run = store.get_run(str(runs.iloc[0]["run_id"]))
        d = (run or {}).get("device") or {}
        name, host = d.get("device_name"), d.get("hostname")  # the device's name; its hostname only as a fallback
        who = f"{name} (host {host})" if name and host and name != host else (name or host)
        device = ", ".join(str(x) for x in (who, d.get("model"), d.get("cpu"),
                                            f"{d.get('cores')} cores" if d.get("cores") else None) if x)
    return {"study_id": study_id, "name": r["name"], "status": r["status"], "description": cfg.get("description"),
            "config": cfg, "device": device, "device_id": device_id, "version": __version__}


def memory_curves(store, df: pd.DataFrame, device_id: str | None) -> dict:
    """{variant label: the newest stored memory curve (``run.memory``) of that variant on the study's device}."""
    from ...run.memory import latest_curve

    out = {}
    if df.empty or device_id is None:
        return out
    for model, precision, runtime, threads in df[["model", "precision", "runtime", "threads"]].drop_duplicates() \
            .itertuples(index=False):
        try:
            curve = latest_curve(store, model, precision, runtime, device_id=device_id, threads=int(threads))
        except Exception:  # a store that cannot be read here leaves the claim as it was
            curve = None
        if curve is not None:
            out[variant_label(model, precision, runtime, threads)] = curve
    return out

